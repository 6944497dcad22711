//! The words every Sluice crate shares. Protocol crates turn wire bytes into
//! these types; policy, audit, masking and approvals only ever see these, so a
//! new protocol reuses all of them.

mod command;
mod identity;
mod kube;
mod refusal;
pub mod routines;
mod s3;
mod session;
mod statement;

pub use command::{Command, CommandOrigin, Decision, Outcome, Param, PolicyRef};
pub use identity::{Identity, ResourceId};
pub use kube::{ConnectRequest, KubeRequest};
pub use refusal::{Refusal, RefusalKind};
pub use s3::S3Request;
pub use session::SessionInfo;
pub use statement::{Action, Statement, Unproven};

/// Cuts `s` to at most `max` bytes without splitting a character; true
/// when something was cut.
pub fn truncate_at_char_boundary(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    true
}
