//! Recording a session in the audit log, on the data path: every command
//! is appended before it is forwarded, and the gate tells the session how
//! long to wait for the record to be durable (a write waits before it is
//! forwarded; a pure read is forwarded at once but its results wait).
//! What came back is appended when the response is over.

use super::Pending;
use crate::config::{AuditSettings, ReadDurability};
use sluice_audit::{
    encode_param, ApprovalRef, AuditError, AuditLog, Level, ResponseRecord, ResponseStatus,
    SessionEnd, SessionStart, StatementRecord,
};
use sluice_core::{Action, Command, Decision, Param, Refusal, RefusalKind, Statement};
use std::time::{Duration, Instant};
use tracing::error;

/// One session's writer into the audit log.
pub(crate) struct Recorder {
    log: AuditLog,
    settings: AuditSettings,
    session: String,
    started: Instant,
    statements: u64,
    rows: u64,
    bytes: u64,
    /// The last record appended.
    last_seq: u64,
}

pub(crate) fn unrecorded(e: &AuditError) -> Refusal {
    let reply = Refusal::new(
        RefusalKind::Unrecorded,
        "Sluice could not record this statement in its audit log, so it was not run",
    );
    if let AuditError::RecordTooLarge { bytes, max } = e {
        error!(error = %e, "statement refused: its audit record is too large");
        return reply.with_hint(format!(
            "Its audit record would be {bytes} bytes, over the limit of {max}: send it in smaller statements."
        ));
    }
    error!(error = %e, "audit log write failed: refusing statements (fail closed)");
    reply.with_hint(
        "The gateway log has the cause; statements run again once the audit log can write.",
    )
}

/// A bound parameter as the audit log writes it (and approvers see it).
pub(crate) fn encode_param_value(param: &Param) -> Option<String> {
    match param {
        Param::Null => None,
        Param::Text(v) => encode_param(false, Some(v)),
        Param::Binary(v) => encode_param(true, Some(v)),
    }
}

/// When a statement may be forwarded relative to its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// A pure read: forwarded at once, no byte of its result reaches the
    /// client before its record is durable.
    Read,
    /// Changes nothing on the target (session settings; BEGIN, SAVEPOINT,
    /// ROLLBACK; PREPARE): forwarded at once, data in its results held.
    NoChange,
    /// A data change that reaches the target only when its transaction
    /// commits: inside a transaction block it is forwarded like `NoChange`,
    /// since the COMMIT waits for every record before it (and a lost
    /// connection rolls it back). Outside one it waits.
    Transactional,
    /// Forwarded only once its record is durable.
    Wait,
}

impl Durability {
    /// Changes nothing, so `fail_open_reads` may let it run unrecorded.
    pub(crate) fn is_read_like(self) -> bool {
        matches!(self, Durability::Read | Durability::NoChange)
    }
}

/// Side effects a transaction cannot undo (a volatile function: nextval,
/// dblink) are `Wait` everywhere. Left to the target: triggers and column
/// defaults, which the statement text does not show; inside a transaction
/// block such a side effect (a sequence advanced by a default, say) can
/// happen before the statement's record is durable.
pub(crate) fn durability(statement: &Statement) -> Durability {
    if statement.commits || statement.calls_volatile {
        return Durability::Wait;
    }
    match statement.action {
        Action::Select | Action::Explain | Action::CopyOut => Durability::Read,
        Action::Session | Action::Prepare | Action::Tcl => Durability::NoChange,
        Action::Insert | Action::Update | Action::Delete | Action::Merge => {
            Durability::Transactional
        }
        _ => Durability::Wait,
    }
}

/// When the writer commits a record a unit waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Commit {
    Now,
    Lazy,
}

/// What came back for one command, in the audit log's words: every front
/// turns its protocol's response into this.
pub(crate) struct Answer {
    pub status: ResponseStatus,
    /// Rows (SQL), objects or events (HTTP).
    pub rows: u64,
    pub bytes: u64,
    pub duration: Duration,
    /// As the client received it (masked), cut at the content cap.
    pub content: String,
    pub truncated: bool,
}

impl Recorder {
    pub(crate) fn start(
        log: AuditLog,
        settings: AuditSettings,
        info: &sluice_core::SessionInfo<'_>,
        unmasked_by: Option<String>,
    ) -> Recorder {
        let session = sluice_audit::new_session_id();
        let mut start = SessionStart::new(
            info.identity,
            info.resource,
            info.peer.to_string(),
            info.tls,
            info.client.map(str::to_owned),
        );
        start.unmasked_by = unmasked_by;
        if let Err(e) = log.append(&session, start) {
            // Every statement of the session will be refused for the same reason.
            error!(error = %e, "audit log: cannot record the session start");
        }
        tracing::Span::current().record("audit_session", session.as_str());
        Recorder {
            log,
            settings,
            session,
            started: Instant::now(),
            statements: 0,
            rows: 0,
            bytes: 0,
            last_seq: 0,
        }
    }

    /// Appends a command's record (denied ones too); returns its seq.
    pub(crate) fn statement(
        &mut self,
        command: &Command,
        statements: &[Statement],
        decision: &Decision,
        approval: Option<ApprovalRef>,
    ) -> Result<u64, Refusal> {
        self.statements += 1;
        let record = StatementRecord {
            text: command.text.clone(),
            params: command.params.iter().map(encode_param_value).collect(),
            origin: command.origin,
            statements: statements.to_vec(),
            decision: decision.clone(),
            approval,
        };
        let seq = self
            .log
            .append(&self.session, record)
            .map_err(|e| unrecorded(&e))?;
        self.last_seq = seq;
        Ok(seq)
    }

    /// Resolves once record `seq` (and all before it) survives a power loss
    /// (fsync): what a unit waits for before it is forwarded.
    pub(crate) fn before_forwarding(&self, seq: u64) -> Pending {
        self.reach(seq, Level::Synced, Commit::Now, false)
    }

    /// Resolves once record `seq` (and all before it) may let the unit's
    /// results reach the client: written to the log (it survives a crash
    /// of the gateway), or fsynced under `read_durability = "fsync"`.
    /// `Commit::Now` asks the writer for it at once (a read's results
    /// wait); `Commit::Lazy` does not (a unit whose data the session holds
    /// asks through [`Recorder::expedite`] when data is waiting).
    /// `read_like`: under `fail_open_reads` a record that cannot be made
    /// durable lets the unit through, and says so.
    pub(crate) fn before_results(&self, seq: u64, commit: Commit, read_like: bool) -> Pending {
        self.reach(seq, self.results_level(), commit, read_like)
    }

    fn results_level(&self) -> Level {
        match self.settings.read_durability {
            ReadDurability::Written => Level::Written,
            ReadDurability::Fsync => Level::Synced,
        }
    }

    fn reach(&self, seq: u64, level: Level, commit: Commit, read_like: bool) -> Pending {
        let log = self.log.clone();
        let fail_open = read_like && self.settings.fail_open_reads;
        Box::pin(async move {
            match log.reach(seq, level, commit == Commit::Now).await {
                Err(e) if fail_open => {
                    error!(error = %e, seq, "audit log cannot write: results released UNRECORDED (fail_open_reads)");
                    Ok(())
                }
                other => other.map_err(|e| unrecorded(&e)),
            }
        })
    }

    /// Everything appended so far is needed durable now.
    pub(crate) fn expedite(&self) {
        if self.last_seq > 0 {
            // A failed log fails the pending futures themselves.
            let _ = self.log.demand(self.last_seq, self.results_level());
        }
    }

    /// Whether a read may run when its record cannot be appended.
    pub(crate) fn fail_open_reads(&self) -> bool {
        self.settings.fail_open_reads
    }

    /// The log and this session's id, for records made outside the gate
    /// call (an approval that arrives while the statement waits).
    pub(crate) fn audit_parts(&self) -> (AuditLog, String) {
        (self.log.clone(), self.session.clone())
    }

    /// Most content bytes a response record keeps.
    pub(crate) fn content_cap(&self) -> usize {
        self.settings.response_content_bytes
    }

    /// Appends what came back for statement record `seq`.
    pub(crate) fn response(&mut self, seq: u64, response: Answer) {
        self.rows += response.rows;
        self.bytes += response.bytes;
        let record = ResponseRecord {
            statement_seq: seq,
            status: response.status,
            rows: response.rows,
            bytes: response.bytes,
            duration_us: u64::try_from(response.duration.as_micros()).unwrap_or(u64::MAX),
            content: response.content,
            truncated: response.truncated,
        };
        if let Err(e) = self.log.append(&self.session, record) {
            error!(error = %e, seq, "audit log: cannot record a response");
        }
    }

    /// Appends bytes that passed on a stream of command `seq` (exec's
    /// stdin, stdout...); returns the stream record's seq.
    pub(crate) fn stream(
        &mut self,
        seq: u64,
        stream: &str,
        inbound: bool,
        data: &[u8],
    ) -> Result<u64, Refusal> {
        self.bytes += data.len() as u64;
        let record = sluice_audit::StreamRecord {
            statement_seq: seq,
            stream: stream.to_owned(),
            direction: if inbound { "in" } else { "out" }.to_owned(),
            data: String::from_utf8_lossy(data).into_owned(),
            bytes: data.len() as u64,
            truncated: false,
        };
        self.log
            .append(&self.session, record)
            .map_err(|e| unrecorded(&e))
    }

    /// Blocks until `seq` is durable: only for the rare refusal that lets a
    /// recorded prefix of a batch run.
    pub(crate) fn wait(&self, seq: u64) -> Result<(), Refusal> {
        self.log.wait_durable(seq).map_err(|e| unrecorded(&e))
    }

    pub(crate) fn end(&mut self, reason: &str) {
        let end = SessionEnd {
            reason: reason.to_owned(),
            duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            statements: self.statements,
            rows: self.rows,
            bytes: self.bytes,
        };
        if let Err(e) = self.log.append(&self.session, end) {
            error!(error = %e, "audit log: cannot record the session end");
        }
    }
}
