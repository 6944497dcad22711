//! Which of a resource's functions and views only read, judged once per
//! catalog load, and how that changes a classified statement.
//!
//! A builtin (in `pg_catalog` or `information_schema`) reads when it is
//! immutable or stable, or on the curated list of volatile builtins that
//! change nothing (`random()`), and is not one the classifier escalates
//! (`nextval`, `set_config`, `pg_read_file`, ...). A user function reads
//! when it is immutable or stable, written in SQL or PL/pgSQL, not
//! `SECURITY DEFINER`, a plain function (not an aggregate, whose state
//! functions would need judging too), and every function and view its body
//! names reads too. The last condition matters: PostgreSQL refuses a write
//! statement in a stable function, but not a call from it to a volatile
//! one, so `STABLE` alone proves nothing. A body that runs dynamic SQL
//! (`EXECUTE`) or names a function the catalog does not have is not proven.
//! A view reads when every function and view its definition names reads.
//! Bodies and definitions are read with PostgreSQL's own lexer; a name
//! counts when it is followed by `(` (a call) or equals a view's name, so
//! the judgement errs towards "not proven", never the other way.

use crate::functions::{curated_read_only, escalates};
use crate::rank::stronger;
use pg_query::protobuf::{KeywordKind, Token};
use sluice_core::routines::{FunctionDef, Routines, Volatility};
use sluice_core::{Action, Statement};
use std::collections::{HashMap, HashSet};

const BUILTIN_SCHEMAS: [&str; 2] = ["pg_catalog", "information_schema"];

/// The verdicts for one resource's catalog.
#[derive(Debug, Default)]
pub struct FunctionCatalog {
    /// Bare function name → each definition.
    functions: HashMap<String, Vec<Def>>,
    /// Views whose definition calls something not proven read-only:
    /// how many of each bare name, and each qualified name.
    unproven_views: HashMap<String, usize>,
    unproven_qualified_views: HashSet<String>,
}

#[derive(Debug)]
struct Def {
    schema: String,
    reads: bool,
    /// `t.name` calls it (see [`FunctionDef::takes_row`]).
    takes_row: bool,
}

/// What a body or view definition names.
#[derive(Debug, Default)]
struct Names {
    /// Names followed by `(`: bare, or `schema.name`. The bool: written as
    /// a keyword (`if (`), which is a call only if such a function exists.
    calls: Vec<(String, bool)>,
    /// Every identifier (to catch views).
    idents: HashSet<String>,
    /// Runs dynamic SQL, or could not be read.
    opaque: bool,
}

impl FunctionCatalog {
    /// Judges every function and view of `routines`.
    pub fn build(routines: &Routines) -> FunctionCatalog {
        let mut catalog = FunctionCatalog::default();
        // Bodies to prove: (index into functions, names).
        let mut pending: Vec<(usize, Names)> = Vec::new();
        for (i, f) in routines.functions.iter().enumerate() {
            let verdict = if BUILTIN_SCHEMAS.contains(&f.schema.as_str()) {
                Some(builtin_reads(f))
            } else if user_candidate(f) {
                match &f.body {
                    Some(body) => {
                        pending.push((i, names(body)));
                        None
                    }
                    None => Some(false),
                }
            } else {
                Some(false)
            };
            catalog
                .functions
                .entry(f.name.clone())
                .or_default()
                .push(Def {
                    schema: f.schema.clone(),
                    reads: verdict.unwrap_or(false),
                    takes_row: f.takes_row,
                });
        }
        let mut views: Vec<(String, String, Names, bool)> = routines
            .views
            .iter()
            .map(|v| {
                (
                    v.schema.clone(),
                    v.name.clone(),
                    names(&v.definition),
                    false,
                )
            })
            .collect();
        for (schema, name, _, _) in &views {
            catalog.mark_view(schema, name, true);
        }
        // Least fixpoint: a body is proven once everything it names is;
        // what only cycles back to itself stays unproven.
        let mut proven_functions = vec![false; pending.len()];
        loop {
            let mut changed = false;
            for (k, (i, body)) in pending.iter().enumerate() {
                if !proven_functions[k] && catalog.names_read(body) {
                    proven_functions[k] = true;
                    changed = true;
                    let f = &routines.functions[*i];
                    catalog.set_function_read(&f.schema, &f.name);
                }
            }
            for (schema, name, definition, proven) in views.iter_mut() {
                if !*proven && catalog.names_read(definition) {
                    *proven = true;
                    changed = true;
                    catalog.mark_view(schema, name, false);
                }
            }
            if !changed {
                break;
            }
        }
        catalog
    }

    fn mark_view(&mut self, schema: &str, name: &str, unproven: bool) {
        let qualified = format!("{schema}.{name}");
        let count = self.unproven_views.entry(name.to_owned()).or_default();
        if unproven {
            *count += 1;
            self.unproven_qualified_views.insert(qualified);
        } else {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.unproven_views.remove(name);
            }
            self.unproven_qualified_views.remove(&qualified);
        }
    }

    fn set_function_read(&mut self, schema: &str, name: &str) {
        if let Some(defs) = self.functions.get_mut(name) {
            // One body proven marks one definition; overloads of a name
            // in one schema are proven one by one, so mark the first
            // unproven one of that schema.
            if let Some(def) = defs.iter_mut().find(|d| d.schema == schema && !d.reads) {
                def.reads = true;
            }
        }
    }

    fn names_read(&self, names: &Names) -> bool {
        if names.opaque {
            return false;
        }
        let calls_read = names.calls.iter().all(|(name, keyword)| {
            match self.definitions(name) {
                Some(mut defs) => defs.all(|d| d.reads),
                // No such function: a keyword construct (`IF (`) or a cast;
                // an identifier the catalog does not know is not proven.
                None => *keyword,
            }
        });
        calls_read
            && !names
                .idents
                .iter()
                .any(|i| self.view_unproven(i) || self.field_call_unproven(i))
    }

    /// Every definition `written` can call: `schema.name` in that schema,
    /// a bare name in any schema (the session's search_path may reach any).
    fn definitions<'a>(&'a self, written: &'a str) -> Option<impl Iterator<Item = &'a Def>> {
        let (schema, name) = split_name(written);
        let defs = self.functions.get(name)?;
        let mut matching = defs
            .iter()
            .filter(move |d| schema.is_none_or(|want| want == d.schema))
            .peekable();
        matching.peek()?;
        Some(matching)
    }

    /// Whether every definition `written` can reach reads (false when there
    /// is none).
    pub fn proves(&self, written: &str) -> bool {
        self.definitions(written)
            .is_some_and(|mut defs| defs.all(|d| d.reads))
    }

    /// Whether `t.name` can call a function of that name not proven
    /// read-only.
    fn field_call_unproven(&self, name: &str) -> bool {
        self.functions
            .get(name)
            .is_some_and(|defs| defs.iter().any(|d| d.takes_row && !d.reads))
    }

    /// Whether a call the classifier proved (an unqualified builtin on the
    /// curated list) can reach a user function of the same name that is not
    /// proven: an overload with better-matching argument types wins.
    fn shadowed(&self, written: &str) -> bool {
        self.definitions(written).is_some_and(|mut defs| {
            defs.any(|d| !d.reads && !BUILTIN_SCHEMAS.contains(&d.schema.as_str()))
        })
    }

    pub fn view_unproven(&self, table: &str) -> bool {
        let (schema, name) = split_name(table);
        match schema {
            Some(schema) => self
                .unproven_qualified_views
                .contains(&format!("{schema}.{name}")),
            None => self.unproven_views.contains_key(name),
        }
    }
}

/// Completes `statement`'s classification with what the catalog knows:
/// calls it proves read-only no longer make the statement a `call`; an
/// unqualified builtin that a user function of its name shadows, a view
/// whose definition calls what is not proven, or `t.f` where a function `f`
/// that takes a row is not proven, makes it one. Without a
/// catalog (`None`: it could not be read, or DDL that can define code ran
/// since it was) nothing is proven: every unqualified call and every
/// table (which could be a view) makes the statement a `call`.
pub fn resolve(catalog: Option<&FunctionCatalog>, statement: &mut Statement) {
    if statement.action == Action::Unknown {
        return;
    }
    if let (Some(catalog), Some(unproven)) = (catalog, statement.unproven.as_ref()) {
        if unproven.functions.iter().all(|f| catalog.proves(f)) {
            statement.action = unproven.action;
            statement.calls_volatile = unproven.calls_volatile;
            statement.unproven = None;
        }
    }
    // The calls the classifier proved: unqualified builtins on the curated
    // list, which a user overload of the same name could stand in for.
    let unsafe_call = statement.functions.iter().any(|f| {
        let proven_builtin = !f.contains('.') && curated_read_only(f);
        proven_builtin && catalog.is_none_or(|catalog| catalog.shadowed(f))
    });
    let unsafe_view = statement.tables.iter().any(|t| match catalog {
        Some(catalog) => catalog.view_unproven(t),
        None => true,
    });
    let unsafe_field = statement.field_names.iter().any(|f| match catalog {
        Some(catalog) => catalog.field_call_unproven(f),
        None => true,
    });
    if (unsafe_call || unsafe_view || unsafe_field) && runs_now(statement.action) {
        statement.action = stronger(statement.action, Action::Call);
        statement.calls_volatile = true;
    }
}

/// Whether reading a table in a statement of this action runs a view's
/// definition now (plain EXPLAIN and PREPARE only plan).
fn runs_now(action: Action) -> bool {
    !matches!(action, Action::Explain | Action::Prepare)
}

fn split_name(written: &str) -> (Option<&str>, &str) {
    // `catalog.schema.name`: the catalog part is the current database.
    let mut parts = written.rsplitn(3, '.');
    let name = parts.next().unwrap_or(written);
    (parts.next(), name)
}

fn builtin_reads(f: &FunctionDef) -> bool {
    !escalates(&f.name) && (f.volatility != Volatility::Volatile || curated_read_only(&f.name))
}

/// A user function whose body may prove it read-only.
fn user_candidate(f: &FunctionDef) -> bool {
    f.volatility != Volatility::Volatile
        && matches!(f.language.as_str(), "sql" | "plpgsql")
        && !f.security_definer
        && f.kind == 'f'
        && !escalates(&f.name)
}

/// What `source` (a function body or view definition) names, by
/// PostgreSQL's lexer.
fn names(source: &str) -> Names {
    let Ok(scanned) = pg_query::scan(source) else {
        return Names {
            opaque: true,
            ..Names::default()
        };
    };
    let mut out = Names::default();
    // The previous name: (text, keyword), and whether a `.` follows it.
    let mut previous: Option<(String, bool)> = None;
    let mut qualifier: Option<String> = None;
    for token in &scanned.tokens {
        let text = usize::try_from(token.start)
            .ok()
            .zip(usize::try_from(token.end).ok())
            .and_then(|(a, b)| source.get(a..b))
            .unwrap_or("");
        let kind = Token::try_from(token.token).unwrap_or(Token::Nul);
        let keyword = KeywordKind::try_from(token.keyword_kind).unwrap_or(KeywordKind::NoKeyword);
        // Dynamic SQL, and identifiers written with Unicode escapes (which
        // this reading does not decode).
        if matches!(kind, Token::Execute | Token::Uident) {
            out.opaque = true;
        }
        if kind == Token::Ascii40 {
            if let Some((name, is_keyword)) = previous.take() {
                out.calls.push((name, is_keyword));
            }
            qualifier = None;
            continue;
        }
        if kind == Token::Ascii46 {
            qualifier = previous.take().map(|(name, _)| name);
            continue;
        }
        if kind == Token::Ident || keyword != KeywordKind::NoKeyword {
            let name = identifier(text);
            out.idents.insert(name.clone());
            let full = match qualifier.take() {
                Some(schema) => {
                    let full = format!("{schema}.{name}");
                    out.idents.insert(full.clone());
                    full
                }
                None => name,
            };
            previous = Some((full, kind != Token::Ident));
            continue;
        }
        previous = None;
        qualifier = None;
    }
    out
}

/// An identifier token's name: unquoted ones fold to lower case.
fn identifier(text: &str) -> String {
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => text.to_lowercase(),
    }
}

#[cfg(test)]
#[path = "routines_tests.rs"]
mod tests;
