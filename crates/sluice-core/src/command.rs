use serde::{Deserialize, Serialize};

/// How the command reached the gateway. Policy and audit care: the same SQL
/// text sent through the extended protocol carries parameters out of band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandOrigin {
    /// A `Query` message (one string, possibly several statements).
    SimpleQuery,
    /// A `Parse` message of the extended protocol (decided, so a refused
    /// statement never reaches the backend, but recorded per execution).
    Parse,
    /// An `Execute` of the extended protocol: the text of the statement its
    /// portal was bound to, with the bound parameters.
    Execute,
    /// A `FunctionCall` message: calls a function by OID, no SQL text at all.
    FunctionCall,
    /// An HTTP request (Kubernetes, S3): `text` is its request line,
    /// `METHOD path?query`, and the one parameter, when there is one, its
    /// body as recorded (masked).
    Http,
}

/// A bound parameter as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Param {
    Null,
    /// Text format (in the client encoding).
    Text(Vec<u8>),
    Binary(Vec<u8>),
}

impl Param {
    /// Bytes of the value (0 for NULL).
    pub fn len(&self) -> usize {
        match self {
            Param::Null => 0,
            Param::Text(v) | Param::Binary(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One unit that the gateway decides on before anything reaches the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub origin: CommandOrigin,
    /// The exact text as the client sent it (empty for a function call).
    /// What it does is for the classifier to say (`Statement`).
    pub text: String,
    /// Parameters bound to an `Execute`; empty otherwise.
    pub params: Vec<Param>,
}

impl Command {
    pub fn new(origin: CommandOrigin, text: impl Into<String>) -> Self {
        Self {
            origin,
            text: text.into(),
            params: Vec::new(),
        }
    }
}

/// A policy that took part in a decision, with its `@id` and `@reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRef {
    pub id: String,
    pub reason: Option<String>,
}

/// What happens to a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Allow,
    /// Held until `quorum` distinct members of `approver_group` approve.
    Review {
        approver_group: String,
        quorum: u32,
    },
    Deny,
}

/// The verdict for a command and the policies behind it: for a deny the
/// forbids (or none, when nothing permitted), for a review the permit that
/// asked for it, for an allow the permits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    #[serde(flatten)]
    pub outcome: Outcome,
    pub policies: Vec<PolicyRef>,
}

impl Decision {
    pub fn allow(policies: Vec<PolicyRef>) -> Self {
        Self {
            outcome: Outcome::Allow,
            policies,
        }
    }

    pub fn deny(policies: Vec<PolicyRef>) -> Self {
        Self {
            outcome: Outcome::Deny,
            policies,
        }
    }

    pub fn is_allow(&self) -> bool {
        matches!(self.outcome, Outcome::Allow)
    }

    /// Deny > review > allow: across the statements of one query string the
    /// strictest decision decides the whole string.
    pub fn strictness(&self) -> u8 {
        match self.outcome {
            Outcome::Allow => 0,
            Outcome::Review { .. } => 1,
            Outcome::Deny => 2,
        }
    }

    /// The stricter of two decisions (the first on a tie).
    pub fn stricter(self, other: Decision) -> Decision {
        if other.strictness() > self.strictness() {
            other
        } else {
            self
        }
    }
}
