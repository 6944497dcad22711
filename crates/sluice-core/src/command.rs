use serde::{Deserialize, Serialize};

/// How the command reached the gateway. Policy and audit care: the same SQL
/// text sent through the extended protocol carries parameters out of band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandOrigin {
    /// A `Query` message (one string, possibly several statements).
    SimpleQuery,
    /// A `Parse` message of the extended protocol.
    Parse,
    /// A `FunctionCall` message: calls a function by OID, no SQL text at all.
    FunctionCall,
}

/// What the command does. Until SQL classification lands every statement is
/// `Unclassified`; a fast-path function call is opaque and so is always the
/// riskiest kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    Unclassified,
    Unknown,
}

/// One unit that the gateway decides on before anything reaches the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub origin: CommandOrigin,
    pub kind: CommandKind,
    /// The exact text as the client sent it (empty for a function call).
    pub text: String,
}

impl Command {
    pub fn new(origin: CommandOrigin, kind: CommandKind, text: impl Into<String>) -> Self {
        Self { origin, kind, text: text.into() }
    }
}

/// The verdict for a command. `Deny` carries what the client is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny { policy: String, reason: String },
}

impl Decision {
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}
