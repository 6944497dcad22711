//! What happened to a request, for the audit log and for notifications.

use crate::request::Request;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A request was created and waits for approvers.
    Requested,
    /// An approval that did not (yet) reach the quorum.
    Vote,
    /// The quorum was reached; a grant exists.
    Approved,
    Denied,
    Expired,
    Withdrawn,
    /// The grant was used: the statement ran.
    Consumed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Requested => "requested",
            EventKind::Vote => "vote",
            EventKind::Approved => "approved",
            EventKind::Denied => "denied",
            EventKind::Expired => "expired",
            EventKind::Withdrawn => "withdrawn",
            EventKind::Consumed => "consumed",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalEvent {
    pub request_id: String,
    pub event: EventKind,
    /// Who caused it: the requester, the voter, or `None` for expiry.
    pub actor: Option<String>,
    /// The vote's comment, the denial or withdrawal reason.
    pub comment: Option<String>,
    /// The request as it is right after the event.
    pub request: Request,
}

/// Called synchronously, after the store has committed and without any lock
/// held, so a sink may call back into the store; it should hand work off
/// (e.g. [`crate::notify::NotifierHandle::notify`]) rather than block.
pub type EventSink = Arc<dyn Fn(&ApprovalEvent) + Send + Sync>;
