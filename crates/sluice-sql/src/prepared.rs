//! What a statement does to SQL-level prepared statements (PREPARE,
//! EXECUTE), for [`crate::SqlSession`]. DEALLOCATE and DISCARD ALL do
//! nothing here: the session never forgets a name (see
//! [`crate::SqlSession`]).
//!
//! Only statements whose text contains one of the keywords are parsed again:
//! a keyword cannot be written without its letters (comments split tokens,
//! and escapes only exist in identifiers and strings), so the text test
//! cannot miss one.

use crate::analyze::analyze;
use crate::fingerprint::fingerprint;
use crate::kinds::inner;
use crate::parse::{self, with_fingerprint};
use pg_query::protobuf::node::Node as N;
use sluice_core::{Action, Statement, Unproven};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PreparedOp {
    /// Nothing to do with prepared statements.
    None,
    /// `PREPARE name AS body`: the body's classification (text: the PREPARE).
    Prepare { name: String, body: Statement },
    /// Runs prepared statement `name`; `base` is everything else the
    /// statement does (action `select` for a bare EXECUTE).
    Execute { name: String, base: Statement },
}

const KEYWORDS: [&str; 2] = ["prepare", "execute"];

/// Whether `text` could hold a prepared-statement operation.
pub(crate) fn may_apply(text: &str) -> bool {
    let bytes = text.as_bytes();
    KEYWORDS.iter().any(|k| {
        bytes
            .windows(k.len())
            .any(|w| w.eq_ignore_ascii_case(k.as_bytes()))
    })
}

/// The operation of one statement's text (as split by the classifier).
pub(crate) fn prepared_op(text: &str) -> PreparedOp {
    let Ok(parsed) = parse::parse(text) else {
        return PreparedOp::None;
    };
    let Ok(statements) = parsed.statements(text) else {
        return PreparedOp::None;
    };
    let [(_, Some(node))] = statements.as_slice() else {
        return PreparedOp::None;
    };
    match node {
        N::PrepareStmt(p) => {
            let body = match inner(&p.query) {
                Some(query) => with_fingerprint(text, node, analyze(query)),
                None => Statement::unknown(text, "PREPARE without a statement"),
            };
            PreparedOp::Prepare {
                name: p.name.clone(),
                body,
            }
        }
        _ => {
            let analysis = analyze(node);
            match analysis.executes_prepared.clone() {
                Some(name) => {
                    let base = match fingerprint(node) {
                        Ok(fp) => analysis.statement(analysis.base, text, fp),
                        Err(e) => Statement::unknown(text, e.to_string()),
                    };
                    PreparedOp::Execute { name, base }
                }
                None => PreparedOp::None,
            }
        }
    }
}

/// `EXECUTE` of `body` by a statement whose own effects are `base`.
pub(crate) fn merge_execute(base: &Statement, body: &Statement) -> Statement {
    let mut merged = merge(body, base);
    merged.text.clone_from(&base.text);
    merged.fingerprint.clone_from(&base.fingerprint);
    merged
}

/// Both statements' effects in one (the stronger action, every table and
/// function, WHERE only if both restrict). Used for EXECUTE and when a name
/// is prepared again: the gateway cannot tell which PREPARE the server kept
/// (the second fails if the first succeeded), so it assumes both.
pub(crate) fn merge(a: &Statement, b: &Statement) -> Statement {
    let mut out = a.clone();
    out.action = crate::rank::stronger(a.action, b.action);
    for table in &b.tables {
        if !out.tables.contains(table) {
            out.tables.push(table.clone());
        }
    }
    for function in &b.functions {
        if !out.functions.contains(function) {
            out.functions.push(function.clone());
        }
    }
    out.has_where = a.has_where && b.has_where;
    out.calls_volatile = a.calls_volatile || b.calls_volatile;
    out.commits = a.commits || b.commits;
    out.copies_out = a.copies_out || b.copies_out;
    out.locks_rows = a.locks_rows || b.locks_rows;
    out.defines_code = a.defines_code || b.defines_code;
    out.unproven = merge_unproven(a, b);
    for field in &b.field_names {
        if !out.field_names.contains(field) {
            out.field_names.push(field.clone());
        }
    }
    if out.action == Action::Unknown && out.error.is_none() {
        out.error.clone_from(&b.error);
    }
    out
}

/// A statement's action, `calls_volatile` and calls to prove, as they are
/// once its calls are proven.
fn once_proven(s: &Statement) -> (Action, bool, &[String]) {
    match &s.unproven {
        Some(u) => (u.action, u.calls_volatile, u.functions.as_slice()),
        None => (s.action, s.calls_volatile, &[]),
    }
}

/// The unproven calls of both: what the merge is once all of them are
/// proven (each side without its own unproven calls).
fn merge_unproven(a: &Statement, b: &Statement) -> Option<Unproven> {
    if a.unproven.is_none() && b.unproven.is_none() {
        return None;
    }
    let (a_action, a_volatile, a_functions) = once_proven(a);
    let (b_action, b_volatile, b_functions) = once_proven(b);
    let mut functions = a_functions.to_vec();
    for f in b_functions {
        if !functions.contains(f) {
            functions.push(f.clone());
        }
    }
    Some(Unproven {
        functions,
        action: crate::rank::stronger(a_action, b_action),
        calls_volatile: a_volatile || b_volatile,
    })
}
