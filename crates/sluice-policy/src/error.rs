//! Load errors. A policy set with any error never loads (the gateway refuses
//! to start, a reload keeps the last good set), so every problem is reported
//! at once, each with the file, line and column an operator has to fix.

use std::fmt;
use std::path::PathBuf;
use thiserror::Error;

/// Why a policy set did not load.
#[derive(Debug, Error)]
pub enum PolicyError {
    /// A `files` pattern is not a valid glob.
    #[error("invalid policy file pattern `{pattern}`: {message}")]
    Pattern { pattern: String, message: String },
    /// A pattern matched no file: almost always a typo or a wrong working
    /// directory, and loading zero policies would deny everything silently.
    #[error("policy file pattern `{pattern}` (relative to {base}) matches no file")]
    NoMatch { pattern: String, base: PathBuf },
    /// A matched file (or a directory entry) could not be read.
    #[error("cannot read policy file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The policies were read but are wrong: parse errors, schema violations,
    /// missing or duplicate `@id`, bad `@review` / `@quorum`.
    #[error("{}", Problems(.0))]
    Invalid(Vec<Problem>),
    /// Cedar refused to index the validated policies by action: a Sluice
    /// bug, never the operator's fault.
    #[error("cannot index the policies by action (a Sluice bug): {0}")]
    Index(String),
    /// The schema compiled into Sluice does not parse: a build defect, never
    /// the operator's fault.
    #[error("the shipped Cedar schema is invalid (a Sluice bug): {0}")]
    Schema(String),
}

impl PolicyError {
    /// The individual problems, for `sluice policy validate` and tests.
    pub fn problems(&self) -> &[Problem] {
        match self {
            PolicyError::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

/// What kind of mistake a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// Cedar syntax.
    Parse,
    /// The policy does not type-check against the shipped schema (unknown
    /// action, entity type or attribute; wrong types; unguarded tag access).
    Validation,
    /// The policy has no `@id("...")`.
    MissingId,
    /// Another policy already uses this `@id`.
    DuplicateId,
    /// `@id`, `@review` or `@quorum` has a bad value or is misplaced.
    BadAnnotation,
    /// Templates (`?principal`, `?resource`) are not supported.
    Template,
}

/// One problem in one policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The file as matched by the pattern (or the name given to
    /// [`crate::PolicySet::from_source`]).
    pub file: String,
    /// 1-based; 0 when the location is unknown.
    pub line: usize,
    /// 1-based, in characters; 0 when the location is unknown.
    pub column: usize,
    /// The policy's `@id`, when it has one.
    pub policy_id: Option<String>,
    pub message: String,
    /// Cedar's hint, when it has one ("did you mean ...").
    pub help: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if let Some(id) = &self.policy_id {
            write!(f, "policy `{id}`: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(help) = &self.help {
            write!(f, " (help: {help})")?;
        }
        Ok(())
    }
}

/// Displays a list of problems one per line, so the error message alone is
/// enough to fix the files.
struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "{n} problem{} in the policies",
            if n == 1 { "" } else { "s" }
        )?;
        for p in self.0 {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}
