//! One statement node → its classification: the statement type's action
//! ([`kinds`]) combined with what the full walk found ([`walk`]).

use crate::kinds::{self, Kind};
use crate::rank::stronger;
use crate::walk;
use pg_query::protobuf::node::Node as N;
use sluice_core::{Action, Statement, Unproven};

/// A statement's classification, before it gets its text and fingerprint.
#[derive(Debug, Clone)]
pub(crate) struct Analysis {
    /// The action without SQL-level session state: a statement that runs a
    /// prepared statement is at least `prepare`.
    pub action: Action,
    /// The action of everything except the prepared statement it runs
    /// (`select`, the neutral element, for a bare `EXECUTE`).
    pub base: Action,
    pub executes_prepared: Option<String>,
    pub tables: Vec<String>,
    pub has_where: bool,
    pub functions: Vec<String>,
    pub calls_volatile: bool,
    pub error: Option<String>,
    pub commits: bool,
    pub copies_out: bool,
    pub locks_rows: bool,
    pub defines_code: bool,
    pub field_names: Vec<String>,
    /// Calls that run now and that only the catalog can prove read-only:
    /// `action` and `base` are at least `call` while they are unproven.
    pub unproven: Option<Unproven>,
    /// Where each `A_Const` starts in the text; `None` when the walk read a
    /// constant's value (see `shape`).
    pub constants: Option<Vec<i32>>,
}

pub(crate) fn analyze(node: &N) -> Analysis {
    let walk = match walk::walk(node) {
        Ok(walk) => walk,
        Err(e) => return Analysis::unknown(e.0),
    };
    let Kind {
        action: mut base,
        executes,
        executes_prepared,
        mut tables,
        error,
        commits,
        copies_out,
        defines_code,
    } = kinds::kind_of(node);
    if executes {
        for write in &walk.writes {
            base = stronger(base, write.action);
        }
        for escalation in &walk.escalations {
            base = stronger(base, *escalation);
        }
    }
    // PREPARE reports its body's WHERE; plain EXPLAIN runs nothing.
    let has_where = if executes || base == Action::Prepare {
        walk.writes.iter().all(|w| w.restricted)
    } else {
        true
    };
    // A call that runs now and is not proven read-only is a `call`,
    // until the catalog shows it only reads.
    let unproven = (executes && !walk.unproven.is_empty()).then(|| Unproven {
        functions: walk.unproven.clone(),
        action: base,
        calls_volatile: !walk.escalations.is_empty(),
    });
    if unproven.is_some() {
        base = stronger(base, Action::Call);
    }
    let action = match &executes_prepared {
        Some(_) => stronger(base, Action::Prepare),
        None => base,
    };
    for table in walk.tables {
        if !tables.contains(&table) {
            tables.push(table);
        }
    }
    Analysis {
        action,
        base,
        executes_prepared,
        tables,
        has_where,
        functions: walk.functions,
        calls_volatile: walk.calls_volatile,
        error: if action == Action::Unknown {
            Some(error.unwrap_or_else(|| "statement could not be classified".into()))
        } else {
            None
        },
        commits,
        copies_out,
        locks_rows: walk.locks_rows,
        defines_code,
        field_names: if executes { walk.fields } else { Vec::new() },
        unproven,
        constants: (!walk.reads_constants).then_some(walk.constants),
    }
}

impl Analysis {
    /// The unproven calls of a statement given `action`: without the
    /// prepared statement an EXECUTE runs, `base` carries them; an
    /// `unknown` statement has nothing left to prove.
    fn unproven_for(&self, action: Action) -> Option<Unproven> {
        if action == Action::Unknown {
            return None;
        }
        let mut unproven = self.unproven.clone()?;
        if action != self.base {
            // The statement as a whole: it runs a prepared statement.
            unproven.action = stronger(unproven.action, Action::Prepare);
        }
        Some(unproven)
    }

    fn unknown(error: String) -> Analysis {
        Analysis {
            action: Action::Unknown,
            base: Action::Unknown,
            executes_prepared: None,
            tables: Vec::new(),
            has_where: false,
            functions: Vec::new(),
            calls_volatile: true,
            error: Some(error),
            commits: false,
            copies_out: false,
            locks_rows: false,
            defines_code: true,
            field_names: Vec::new(),
            unproven: None,
            constants: None,
        }
    }

    /// The statement as classified without session state.
    pub fn into_statement(self, text: &str, fingerprint: String) -> Statement {
        self.statement(self.action, text, fingerprint)
    }

    /// The statement with `action` (e.g. the base of an EXECUTE).
    pub fn statement(&self, action: Action, text: &str, fingerprint: String) -> Statement {
        Statement {
            action,
            text: text.to_owned(),
            tables: self.tables.clone(),
            has_where: self.has_where,
            functions: self.functions.clone(),
            calls_volatile: self.calls_volatile || action == Action::Unknown,
            fingerprint,
            error: self.error.clone(),
            commits: self.commits,
            copies_out: self.copies_out,
            locks_rows: self.locks_rows,
            defines_code: self.defines_code,
            field_names: self.field_names.clone(),
            kubernetes: None,
            s3: None,
            unproven: self.unproven_for(action),
        }
    }
}
