//! A complete walk of a parse tree, collecting what policy needs.
//!
//! The walk is driven by the parse tree's `serde::Serialize` implementation
//! (see [`ser`]): every field of every node is visited, so no node type can be
//! forgotten and a data-modifying statement or a dangerous function call
//! cannot hide in a corner of the grammar that a hand-written walker skipped.
//! Node types are recognised by their struct name, fields by their name.
//!
//! Serialization recurses, so the walk counts its depth and gives up past
//! [`MAX_DEPTH`] ("statement nested too deeply"); it runs on the classifier's
//! large-stack threads anyway.

mod scope;
mod ser;

use crate::functions;
use scope::Scope;
use serde::Serialize;
use sluice_core::Action;

/// Deepest nesting of serialized values (structs and lists) the walk accepts.
pub(crate) const MAX_DEPTH: usize = 1_000;

/// Why a walk gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct WalkError(pub String);

impl serde::ser::Error for WalkError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        WalkError(msg.to_string())
    }
}

/// One INSERT/UPDATE/DELETE/MERGE found in the tree (the top-level one or a
/// nested one, e.g. in a CTE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Write {
    pub action: Action,
    /// UPDATE/DELETE: a WHERE that references a column (or `CURRENT OF`);
    /// MERGE: an ON condition that references a column; INSERT: true.
    pub restricted: bool,
}

/// What a walk found.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    /// Tables in order of first appearance (CTE references removed).
    pub tables: Vec<String>,
    /// Tables found so far, with their position in the text.
    found: Vec<(i32, String)>,
    /// Functions called, in order of appearance.
    pub functions: Vec<String>,
    pub writes: Vec<Write>,
    /// Actions that dangerous function calls imply.
    pub escalations: Vec<Action>,
    pub calls_volatile: bool,
    /// Calls not proven read-only without the catalog, as in `functions`.
    pub unproven: Vec<String>,
    /// A `FOR UPDATE / SHARE` locking clause.
    pub locks_rows: bool,
    /// Names selected from a row (`t.f`, `(x).f`): a call of `f` when a
    /// function of that name takes a row.
    pub fields: Vec<String>,
    /// Where each `A_Const` node starts in the text (see `shape`).
    pub constants: Vec<i32>,
    /// The walk read a constant's value (`set_config`'s first argument):
    /// the statement's classification depends on a literal.
    pub reads_constants: bool,
    /// `ColumnRef`/`CurrentOfExpr` nodes seen so far (tells a restricting
    /// WHERE from `WHERE true`).
    column_refs: usize,
    depth: usize,
    max_depth: usize,
    scopes: Vec<Scope>,
    /// Inside a DML target or `INTO` relation: a real table, never a CTE.
    in_target: bool,
}

/// Walks `node` (any parse-tree value).
pub(crate) fn walk<T: Serialize + ?Sized>(node: &T) -> Result<Walk, WalkError> {
    walk_with_limit(node, MAX_DEPTH)
}

pub(crate) fn walk_with_limit<T: Serialize + ?Sized>(
    node: &T,
    max_depth: usize,
) -> Result<Walk, WalkError> {
    let mut walk = Walk {
        max_depth,
        ..Walk::default()
    };
    node.serialize(&mut walk)?;
    while !walk.scopes.is_empty() {
        walk.pop_scope();
    }
    // Scopes resolve inside out and fields come in struct order (a
    // SELECT's FROM before its WITH): restore the order of the text.
    let mut found = std::mem::take(&mut walk.found);
    found.sort_by_key(|(location, _)| *location);
    walk.tables = found.into_iter().map(|(_, name)| name).collect();
    dedup(&mut walk.tables);
    dedup(&mut walk.functions);
    dedup(&mut walk.unproven);
    dedup(&mut walk.fields);
    Ok(walk)
}

fn dedup(items: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    items.retain(|item| seen.insert(item.clone()));
}

/// Statement types that own a WITH clause: CTE names are visible inside them.
fn is_scope(name: &str) -> bool {
    matches!(
        name,
        "SelectStmt" | "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt"
    )
}

impl Walk {
    fn enter(&mut self) -> Result<(), WalkError> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(WalkError("statement nested too deeply".into()));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// A struct named `name` starts.
    fn begin(&mut self, name: &str) {
        match name {
            "ColumnRef" | "CurrentOfExpr" => self.column_refs += 1,
            _ if is_scope(name) => self.scopes.push(Scope::default()),
            _ => {}
        }
    }

    /// A struct named `name` ends; `restricted` is what its WHERE/ON said.
    fn finish(&mut self, name: &str, restricted: bool) {
        let action = match name {
            "InsertStmt" => Some(Action::Insert),
            "UpdateStmt" => Some(Action::Update),
            "DeleteStmt" => Some(Action::Delete),
            "MergeStmt" => Some(Action::Merge),
            _ => None,
        };
        if let Some(action) = action {
            let restricted = restricted || action == Action::Insert;
            self.writes.push(Write { action, restricted });
        }
        if is_scope(name) {
            self.pop_scope();
        }
    }

    /// A relation name was written (`[catalog.][schema.]name`) at `location`.
    fn table(&mut self, parts: [String; 3], location: i32) {
        let qualified = !parts[0].is_empty() || !parts[1].is_empty();
        let name = parts
            .iter()
            .filter(|p| !p.is_empty())
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(".");
        if name.is_empty() {
            return;
        }
        let real = qualified || self.in_target;
        match self.scopes.last_mut() {
            Some(scope) => scope.reference(name, real, location),
            None => self.found.push((location, name)),
        }
    }

    fn pop_scope(&mut self) {
        let Some(scope) = self.scopes.pop() else {
            return;
        };
        for (name, real, location) in scope.unresolved() {
            match self.scopes.last_mut() {
                Some(parent) => parent.reference(name, real, location),
                None => self.found.push((location, name)),
            }
        }
    }

    /// A function call was written; returns its index in `functions`.
    fn function(&mut self, parts: &[String]) -> usize {
        self.functions.push(parts.join("."));
        self.functions.len() - 1
    }

    /// The call at `index` is complete: record its effect.
    fn function_done(
        &mut self,
        index: usize,
        parts: &[String],
        sql_syntax: bool,
        arg: Option<&str>,
    ) {
        let Some((name, schema)) = parts.split_last() else {
            self.calls_volatile = true;
            return;
        };
        let schema = (!schema.is_empty()).then(|| schema.join("."));
        // EXTRACT(...), SUBSTRING(x FROM y) ...: the parser wrote pg_catalog.
        if sql_syntax && schema.as_deref() == Some("pg_catalog") {
            if let Some(slot) = self.functions.get_mut(index) {
                slot.clone_from(name);
            }
        }
        let effect = functions::effect(schema.as_deref(), name, arg);
        if !effect.read_only {
            self.calls_volatile = true;
        }
        match effect.escalate {
            Some(action) => self.escalations.push(action),
            None if !effect.read_only => {
                if let Some(written) = self.functions.get(index) {
                    self.unproven.push(written.clone());
                }
            }
            None => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests;
