//! The decision point every statement passes before it is forwarded. The
//! session asks; whoever implements [`Gate`] (policy, audit, approvals in
//! later layers) answers. Keeping it one trait call means the proxy loop
//! never learns what the answer was based on.

use crate::messages::PgErrorReply;
use sluice_core::Command;

pub enum Verdict {
    Forward,
    /// Do not forward; the client gets this error in the statement's place.
    Deny(PgErrorReply),
}

pub trait Gate: Send {
    /// Decides for all commands of one unit the client sent together (a
    /// simple-query string, or an extended-protocol batch up to Sync or
    /// Flush): one denial blocks the whole unit.
    fn decide(&mut self, commands: &[Command]) -> Verdict;
}

/// Until policy exists every authenticated identity may run anything.
pub struct AllowAll;

impl Gate for AllowAll {
    fn decide(&mut self, _commands: &[Command]) -> Verdict {
        Verdict::Forward
    }
}
