//! The decision point every statement passes before it is forwarded. The
//! session asks; whoever implements [`Gate`] (policy, audit, approvals in
//! later layers) answers. Keeping it one trait call means the proxy loop
//! never learns what the answer was based on.

use crate::messages::PgErrorReply;
use sluice_core::{Command, CommandOrigin};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// How a session's results are masked.
#[derive(Clone)]
pub struct MaskRules {
    pub masker: Arc<sluice_mask::Masker>,
}

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
    /// Forward now (the unit changes nothing yet: BEGIN, SET, or a data
    /// change inside a transaction block, which the COMMIT will wait for),
    /// and hold only data (rows, COPY data, error and notice texts) until
    /// `Durable` resolves; command tags and protocol acknowledgements may
    /// pass before.
    ForwardHoldingData(Durable),
    /// Tell the client `notice` now, then forward once `until` resolves
    /// (a human approved the statement and its records are durable); its
    /// error is what the client gets instead (denied, timed out). The wait
    /// ends early if the client cancels or goes away ([`Gate::withdraw`]).
    HoldForApproval {
        notice: PgErrorReply,
        until: Durable,
        request: String,
    },
    /// Do not forward command `at` (an index into the commands decided) nor
    /// anything after it in the unit; the client gets `reply` in its place.
    Deny { at: usize, reply: PgErrorReply },
}

/// What the session knows about the moment a unit is decided.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitContext {
    /// The unit runs inside an explicit transaction block: the last
    /// ReadyForQuery said so and nothing sent since can have ended it.
    /// Changes made here reach the target only at COMMIT (a lost
    /// connection rolls them back).
    pub in_transaction: bool,
    /// Certainly outside a transaction block: the last ReadyForQuery said
    /// so and nothing sent since is still running.
    pub outside_transaction: bool,
}

/// What the session waits for before it decides anything more.
pub type Pause = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How a command that ran ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// CommandComplete tags, `; `-joined for a query string of several
    /// statements.
    Tags(String),
    Error {
        sqlstate: String,
        message: String,
    },
    /// EmptyQueryResponse.
    Empty,
    /// PortalSuspended: the row limit of the Execute was reached.
    Suspended,
    /// Never ran: an earlier message of its batch failed.
    Skipped,
}

/// What came back for one command that was forwarded.
#[derive(Debug, Clone)]
pub struct Response {
    pub completion: Completion,
    /// Rows returned or affected.
    pub rows: u64,
    /// Bytes of backend messages the command produced for the client.
    pub bytes: u64,
    /// From the decision to the last message of the response.
    pub duration: Duration,
    /// Result rows and COPY data as the client received them, one line per
    /// row (tab-separated, COPY text escaping, `\N` for NULL, `\x` hex for
    /// values that are not printable text), cut at the gate's cap.
    pub content: String,
    pub truncated: bool,
}

/// Whether a command gets a [`Response`]: everything that runs something
/// (a Parse alone runs nothing).
pub fn answers(command: &Command) -> bool {
    command.origin != CommandOrigin::Parse
}

pub trait Gate: Send {
    /// Decides the commands of one unit the client sent together (a
    /// simple-query string, or an extended-protocol batch up to Sync or
    /// Flush), in order. The first refused command stops the unit there,
    /// as an error would in PostgreSQL.
    fn decide(&mut self, commands: &[Command], unit: &UnitContext) -> Verdict;

    /// How this session's results are masked; `None`: raw values (no
    /// masking configured, or policy lifts it for this identity).
    fn mask_rules(&self) -> Option<MaskRules> {
        None
    }

    /// The resource's catalog, resolved before the session's first
    /// statement: COPY of a table with masked columns is judged by its
    /// names, function calls are proven read-only by its functions.
    fn set_catalog(
        &mut self,
        _catalog: Arc<crate::mask::Catalog>,
        _refresh: crate::mask::CatalogRefresh,
    ) {
    }

    /// Asked before each client message is processed; `settled` when
    /// nothing the session forwarded is still running and no transaction
    /// block is open (what ran is committed). `Some`: nothing more is
    /// decided until the future resolves (the gate's view of the resource
    /// catches up, e.g. its catalog after DDL that can define functions).
    fn pause(&mut self, _settled: bool) -> Option<Pause> {
        None
    }

    /// `Some(cap)` to be told the [`Response`] of every command it let run,
    /// with at most `cap` bytes of content; asked once per session.
    fn responses(&self) -> Option<usize> {
        None
    }

    /// The response of the next command that ran, in the order decided:
    /// one call per [`answers`] command of each unit forwarded (for a
    /// `Deny { at }`, those before `at`), unless the session ends first.
    fn on_response(&mut self, _response: Response) {}

    /// The client cancelled or left while its unit waited for approval: the
    /// request is withdrawn. Not called on gateway shutdown (the request
    /// stays pending and can be re-run after approval).
    fn withdraw(&mut self, _reason: &str) {}

    /// Data of a `ForwardHoldingData` unit is waiting for its record:
    /// make the records appended so far durable without delay.
    fn expedite(&mut self) {}

    /// The session is over (`reason` as in [`crate::session::SessionEnd`]).
    fn on_end(&mut self, _reason: &str) {}
}

/// Who a session is and what it reaches: what a gate judges statements by.
pub struct SessionInfo<'a> {
    /// As every front says it (`client` is `application_name`).
    pub session: sluice_core::SessionInfo<'a>,
    /// The startup parameters forwarded to the backend (they are part of
    /// the session state approvals are bound to).
    pub parameters: &'a [(String, String)],
}

/// Makes the gate of each new session. The gate may keep per-session state
/// (SQL-level prepared statements, say); the factory holds what is shared.
pub trait GateFactory: Send + Sync + 'static {
    type Gate: Gate + 'static;
    fn open(&self, session: &SessionInfo<'_>) -> Self::Gate;
}
