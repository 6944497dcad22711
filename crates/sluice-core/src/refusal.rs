use std::fmt;

/// Why a command does not run, in words every protocol front can render:
/// PostgreSQL as an ErrorResponse with a SQLSTATE, HTTP fronts as a status
/// code with the protocol's own error body. The enforcement pipeline says
/// only this; the fronts decide the wire form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// Policy denies it (or wants a review nobody can give here).
    Denied,
    /// It needs an approval that is pending: re-run once approved.
    ApprovalRequired,
    /// An approver denied it, or its approval cannot be used.
    ApprovalRefused,
    /// The wait for approval ended without one (timed out, withdrawn).
    ApprovalEnded,
    /// The audit log could not record it, so it was not run.
    Unrecorded,
    /// The request is well formed but Sluice does not let it through in
    /// this form.
    Unsupported,
    /// A defect in Sluice.
    Internal,
}

/// What the client is told instead of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl Refusal {
    pub fn new(kind: RefusalKind, message: impl Into<String>) -> Self {
        Refusal {
            kind,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Refusal {
    /// Message, detail and hint on one line: for fronts whose error has a
    /// single text field (a Kubernetes `Status` message).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        if let Some(h) = &self.hint {
            write!(f, ". {h}")?;
        }
        Ok(())
    }
}
