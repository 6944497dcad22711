use crate::clock::Timestamp;
use crate::request::Status;
use std::path::PathBuf;

/// Why an approval operation was refused or failed. Refusals of a vote each
/// have their own variant so the API can tell the approver exactly why.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("approval store {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("approval store: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("approval store row {what} is unreadable: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("invalid approval request: {0}")]
    InvalidRequest(String),
    #[error("no approval request {0}")]
    UnknownRequest(String),
    #[error("approval request {id} is {status}, no longer pending")]
    NotPending { id: String, status: Status },
    #[error("approval request {id} expired at {expires_at}")]
    Expired { id: String, expires_at: Timestamp },
    #[error("{approver} made approval request {id} and cannot decide it")]
    SelfApproval { id: String, approver: String },
    #[error("{approver} is in agent group {group}: agents can never decide approval requests")]
    AgentApprover { approver: String, group: String },
    #[error("{approver} is not in group {group}, which decides approval request {id}")]
    NotInApproverGroup {
        id: String,
        approver: String,
        group: String,
    },
    #[error("{approver} has already voted on approval request {id}")]
    AlreadyVoted { id: String, approver: String },
    #[error("a denial needs a reason")]
    ReasonRequired,
    #[error("approval request {id} is {status}, not approved")]
    NotApproved { id: String, status: Status },
    #[error("the grant of approval request {id} has already been used")]
    AlreadyConsumed { id: String },
    #[error("the grant of approval request {id} expired at {expires_at}")]
    GrantExpired { id: String, expires_at: Timestamp },
    #[error("the grant of approval request {id} is for another statement")]
    FingerprintMismatch { id: String },
    #[error("the grant of approval request {id} belongs to {owner}, not {requester}")]
    RequesterMismatch {
        id: String,
        owner: String,
        requester: String,
    },
    #[error("the grant of approval request {id} is for resource {granted}, not {resource}")]
    ResourceMismatch {
        id: String,
        granted: String,
        resource: String,
    },
    #[error("the grant of approval request {id} fails its signature check: refused")]
    TamperedGrant { id: String },
}
