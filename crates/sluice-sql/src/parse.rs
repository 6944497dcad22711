//! Query string → classified statements. Runs on the classifier's
//! large-stack threads (see `pool`): the C parser, the protobuf decoder,
//! the walk and the fingerprint all recurse. The string is parsed once; each
//! statement's fingerprint comes from its tree (see `fingerprint`).

use crate::analyze::{analyze, Analysis};
use crate::fingerprint::fingerprint;
use pg_query::protobuf::{node::Node as N, RawStmt};
use pg_query::ParserOptions;
use sluice_core::Statement;

/// A parsed query string: each statement's exact text and node.
pub(crate) struct Parsed {
    result: pg_query::ParseResult,
}

/// Parses `sql`; the error is the message an `Unknown` statement carries.
pub(crate) fn parse(sql: &str) -> Result<Parsed, String> {
    pg_query::parse(sql, ParserOptions::DEFAULT)
        .map(|result| Parsed { result })
        .map_err(describe)
}

fn describe(error: pg_query::Error) -> String {
    match error {
        pg_query::Error::Conversion(_) => "query contains a NUL byte".into(),
        // prost refuses messages nested deeper than its recursion limit.
        pg_query::Error::Decode(_) => "statement nested too deeply".into(),
        pg_query::Error::Parse(msg) if msg.contains("stack depth limit exceeded") => {
            format!("statement nested too deeply ({msg})")
        }
        pg_query::Error::Parse(msg) => format!("syntax error: {msg}"),
        other => other.to_string(),
    }
}

impl Parsed {
    /// Each statement's exact text (from the parser's locations, so `;`
    /// inside strings, comments or dollar quotes cannot split it) and node.
    pub fn statements<'q>(&self, sql: &'q str) -> Result<Vec<(&'q str, Option<&N>)>, String> {
        self.result
            .protobuf
            .stmts
            .iter()
            .map(|raw| {
                Ok((
                    text_of(sql, raw)?,
                    raw.stmt.as_ref().and_then(|n| n.node.as_ref()),
                ))
            })
            .collect()
    }
}

fn text_of<'q>(sql: &'q str, raw: &RawStmt) -> Result<&'q str, String> {
    let start = usize::try_from(raw.stmt_location).map_err(|_| "bad statement location")?;
    let len = usize::try_from(raw.stmt_len).map_err(|_| "bad statement length")?;
    // A length of 0 means "to the end of the string".
    let end = if len == 0 {
        sql.len()
    } else {
        start.saturating_add(len)
    };
    sql.get(start..end)
        .map(str::trim)
        .ok_or_else(|| "statement location outside the query".into())
}

/// Classifies every statement of `sql` (no cache, no size cap: callers
/// check those).
pub(crate) fn classify_query(sql: &str) -> Vec<Statement> {
    classify_shareable(sql).0
}

/// What a shape template needs of a string that holds exactly one
/// SELECT/INSERT/UPDATE/DELETE whose walk read no constant (see `shape`).
pub(crate) struct Shareable {
    /// Byte offset of the statement's text in the string.
    pub text_at: usize,
    /// Where each `A_Const` of its tree starts.
    pub constants: Vec<i32>,
}

/// [`classify_query`], and whether its one statement may be shared by
/// texts of the same shape.
pub(crate) fn classify_shareable(sql: &str) -> (Vec<Statement>, Option<Shareable>) {
    let parsed = match parse(sql) {
        Ok(parsed) => parsed,
        Err(e) => return (vec![Statement::unknown(sql, e)], None),
    };
    let statements = match parsed.statements(sql) {
        Ok(statements) => statements,
        Err(e) => return (vec![Statement::unknown(sql, e)], None),
    };
    let single = statements.len() == 1;
    let mut shareable = None;
    let classified = statements
        .into_iter()
        .map(|(text, node)| match node {
            Some(node) => {
                let mut analysis = analyze(node);
                let dml = matches!(
                    node,
                    N::SelectStmt(_) | N::InsertStmt(_) | N::UpdateStmt(_) | N::DeleteStmt(_)
                );
                if let (true, true, Some(constants)) = (single, dml, analysis.constants.take()) {
                    let text_at = (text.as_ptr() as usize).saturating_sub(sql.as_ptr() as usize);
                    shareable = Some(Shareable { text_at, constants });
                }
                with_fingerprint(text, node, analysis)
            }
            None => Statement::unknown(text, "empty statement"),
        })
        .collect::<Vec<_>>();
    let known = classified
        .first()
        .is_some_and(|s| s.action != sluice_core::Action::Unknown);
    (classified, shareable.filter(|_| known))
}

/// The statement, or `Unknown` if its tree cannot be fingerprinted.
/// `node` is the statement's own tree (the fingerprint is computed from it,
/// not by parsing `text` again).
pub(crate) fn with_fingerprint(text: &str, node: &N, analysis: Analysis) -> Statement {
    match fingerprint(node) {
        Ok(fp) => analysis.into_statement(text, fp),
        // Already unknown (e.g. the walk found it nested too deeply, which
        // the encoder's equal limit then refuses too): keep that reason.
        Err(_) if analysis.action == sluice_core::Action::Unknown => {
            analysis.into_statement(text, String::new())
        }
        Err(e) => Statement::unknown(text, e.to_string()),
    }
}
