//! Recording a session in the audit log, on the data path: every command
//! is appended before it is forwarded, and the gate tells the session how
//! long to wait for the record to be durable (a write waits before it is
//! forwarded; a pure read is forwarded at once but its results wait).

use sluice_audit::{encode_param, AuditError, AuditLog, SessionEnd, SessionStart, StatementRecord};
use sluice_core::{Action, Command, Decision, Param, Statement};
use sluice_pg::{Durable, PgErrorReply, SessionInfo};
use std::time::Instant;
use tracing::error;

/// SQLSTATE `io_error`: the audit store could not write.
const IO_ERROR: &str = "58030";

/// One session's writer into the audit log.
pub(crate) struct Recorder {
    log: AuditLog,
    session: String,
    started: Instant,
    statements: u64,
}

fn unrecorded(e: &AuditError) -> PgErrorReply {
    error!(error = %e, "audit log write failed: refusing statements (fail closed)");
    PgErrorReply::error(
        IO_ERROR,
        "Sluice could not record this statement in its audit log, so it was not run",
    )
    .with_hint("The gateway log has the cause; statements run again once the audit log can write.")
}

/// A bound parameter as the audit log writes it.
fn encode(param: &Param) -> Option<String> {
    match param {
        Param::Null => None,
        Param::Text(v) => encode_param(false, Some(v)),
        Param::Binary(v) => encode_param(true, Some(v)),
    }
}

/// A statement that cannot change anything: its record may become durable
/// while it runs, as long as its results wait for it.
pub(crate) fn is_pure_read(statement: &Statement) -> bool {
    matches!(
        statement.action,
        Action::Select | Action::Explain | Action::CopyOut
    ) && !statement.calls_volatile
}

impl Recorder {
    pub(crate) fn start(log: AuditLog, info: &SessionInfo<'_>) -> Recorder {
        let session = sluice_audit::new_session_id();
        let start = SessionStart::new(
            info.identity,
            info.resource.as_str(),
            info.peer.to_string(),
            info.tls,
            info.application_name.map(str::to_owned),
        );
        if let Err(e) = log.append(&session, start) {
            // Every statement of the session will be refused for the same reason.
            error!(error = %e, "audit log: cannot record the session start");
        }
        tracing::Span::current().record("audit_session", session.as_str());
        Recorder {
            log,
            session,
            started: Instant::now(),
            statements: 0,
        }
    }

    /// Appends a command's record (denied ones too); returns its seq.
    pub(crate) fn statement(
        &mut self,
        command: &Command,
        statements: &[Statement],
        decision: &Decision,
    ) -> Result<u64, PgErrorReply> {
        self.statements += 1;
        let record = StatementRecord {
            text: command.text.clone(),
            params: command.params.iter().map(encode).collect(),
            origin: command.origin,
            statements: statements.to_vec(),
            decision: decision.clone(),
            approval: None,
        };
        self.log
            .append(&self.session, record)
            .map_err(|e| unrecorded(&e))
    }

    /// Resolves once record `seq` (and all before it) is durable.
    pub(crate) fn durable(&self, seq: u64) -> Durable {
        let log = self.log.clone();
        Box::pin(async move { log.durable(seq).await.map_err(|e| unrecorded(&e)) })
    }

    /// Blocks until `seq` is durable: only for the rare refusal that lets a
    /// recorded prefix of a batch run.
    pub(crate) fn wait(&self, seq: u64) -> Result<(), PgErrorReply> {
        self.log.wait_durable(seq).map_err(|e| unrecorded(&e))
    }

    pub(crate) fn end(&mut self, reason: &str) {
        let end = SessionEnd {
            reason: reason.to_owned(),
            duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            statements: self.statements,
            rows: 0,
            bytes: 0,
        };
        if let Err(e) = self.log.append(&self.session, end) {
            error!(error = %e, "audit log: cannot record the session end");
        }
    }
}
