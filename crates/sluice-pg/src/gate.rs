//! The decision point every statement passes before it is forwarded. The
//! session asks; whoever implements [`Gate`] (policy, audit, approvals in
//! later layers) answers. Keeping it one trait call means the proxy loop
//! never learns what the answer was based on.

use crate::messages::PgErrorReply;
use sluice_core::{Command, Identity, ResourceId};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

/// Resolves once the unit's record is durable; an error is what the client
/// is told instead (the record could not be made durable).
pub type Durable = Pin<Box<dyn Future<Output = Result<(), PgErrorReply>> + Send>>;

pub enum Verdict {
    /// Forward now.
    Forward,
    /// Forward only once `Durable` resolves: a unit that can change
    /// something reaches the target only after its record is durable.
    ForwardWhenDurable(Durable),
    /// Forward now (a pure read overlaps the record's fsync), but let no
    /// byte of what the backend sends from here on reach the client until
    /// `Durable` resolves.
    ForwardHoldingResults(Durable),
    /// Do not forward command `at` (an index into the commands decided) nor
    /// anything after it in the unit; the client gets `reply` in its place.
    Deny { at: usize, reply: PgErrorReply },
}

pub trait Gate: Send {
    /// Decides the commands of one unit the client sent together (a
    /// simple-query string, or an extended-protocol batch up to Sync or
    /// Flush), in order. The first refused command stops the unit there,
    /// as an error would in PostgreSQL.
    fn decide(&mut self, commands: &[Command]) -> Verdict;

    /// The session is over (`reason` as in [`crate::session::SessionEnd`]).
    fn on_end(&mut self, _reason: &str) {}
}

/// Who a session is and what it reaches: what a gate judges statements by.
pub struct SessionInfo<'a> {
    pub identity: &'a Identity,
    pub resource: &'a ResourceId,
    pub peer: SocketAddr,
    pub tls: bool,
    pub application_name: Option<&'a str>,
}

/// Makes the gate of each new session. The gate may keep per-session state
/// (SQL-level prepared statements, say); the factory holds what is shared.
pub trait GateFactory: Send + Sync + 'static {
    type Gate: Gate + 'static;
    fn open(&self, session: &SessionInfo<'_>) -> Self::Gate;
}
