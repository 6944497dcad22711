//! SQL-level PREPARE/EXECUTE tracking for one session.

use crate::prepared::{may_apply, merge, merge_execute, PreparedOp};
use crate::Classifier;
use sluice_core::{Action, Statement};
use std::collections::HashMap;

/// Most prepared statement names remembered per session; beyond this a
/// PREPARE of a new name is not recorded and its EXECUTE is `Unknown` (fails
/// closed). DEALLOCATE does not free a slot (names are never forgotten).
pub const MAX_PREPARED: usize = 10_000;

/// SQL-level PREPARE/EXECUTE tracking for one session: `EXECUTE name` is
/// classified by what `PREPARE name AS ...` held earlier in that session.
///
/// A PREPARE is recorded when it is resolved, before the server has run (or
/// refused) it. The record errs toward the stricter side: preparing a name
/// again merges both bodies (the server keeps the first if the name still
/// exists, the second if the first failed). DEALLOCATE (a name or ALL) and
/// DISCARD ALL forget nothing: the gateway cannot tell whether the server
/// ran them (a Parse never executed, an aborted transaction), and forgetting
/// a name the server still holds would let a harmless re-PREPARE, refused by
/// the server, stand for the original body. So a name is judged by every
/// body it was ever prepared with in the session. Prepared statements
/// created inside procedural code (DO, functions) are invisible here: their
/// EXECUTE is `Unknown` unless the name was also prepared in SQL.
#[derive(Debug, Default)]
pub struct SqlSession {
    prepared: HashMap<String, Statement>,
}

impl SqlSession {
    /// Applies the PREPAREs of these statements to the session and
    /// returns the statements with each EXECUTE replaced by the
    /// classification of its prepared statement (action, tables, where,
    /// functions of the prepared body, combined with what the EXECUTE itself
    /// does, e.g. a `CREATE TABLE AS EXECUTE` or function calls in its
    /// parameters; text and fingerprint stay the EXECUTE's). An EXECUTE of an
    /// unknown name is `Unknown`.
    pub fn resolve(&mut self, classifier: &Classifier, statements: &[Statement]) -> Vec<Statement> {
        statements
            .iter()
            .map(|statement| self.resolve_one(classifier, statement))
            .collect()
    }

    fn resolve_one(&mut self, classifier: &Classifier, statement: &Statement) -> Statement {
        if statement.action == Action::Unknown || !may_apply(&statement.text) {
            return statement.clone();
        }
        match &*classifier.prepared_op(&statement.text) {
            PreparedOp::None => statement.clone(),
            PreparedOp::Prepare { name, body } => {
                let recorded = match self.prepared.get(name) {
                    Some(earlier) => Some(merge(earlier, body)),
                    None if self.prepared.len() < MAX_PREPARED => Some(body.clone()),
                    None => None,
                };
                if let Some(recorded) = recorded {
                    self.prepared.insert(name.clone(), recorded);
                }
                statement.clone()
            }
            PreparedOp::Execute { name, base } => match self.prepared.get(name) {
                Some(body) => merge_execute(base, body),
                None => Statement {
                    fingerprint: statement.fingerprint.clone(),
                    ..Statement::unknown(
                        statement.text.clone(),
                        format!("prepared statement \"{name}\" is not known in this session"),
                    )
                },
            },
        }
    }

    /// How many prepared statement names the session knows (never shrinks).
    pub fn prepared_count(&self) -> usize {
        self.prepared.len()
    }
}
