//! Approval events in the audit log. They happen outside any client session
//! (an approver's API call, an expiry), so the gateway records them under the
//! pseudo-session `approvals`: `sluice audit approvals` lists them, and a
//! replay joins them to the statements they decided.

use super::{open_read_only, short_time, write_table};
use anyhow::Result;
use serde::Serialize;
use sluice_audit::{ApprovalEvent, AuditLog, Body, Timestamp};
use sluice_server::approvals::AUDIT_SESSION;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// Records read per query of the pseudo-session.
const PAGE: usize = 2000;

/// Calls `f` with each approval event recorded after seq `*after`, in
/// order, and moves `*after` to the last record read.
fn each_event_after(
    log: &AuditLog,
    after: &mut u64,
    mut f: impl FnMut(u64, Timestamp, ApprovalEvent),
) -> Result<()> {
    loop {
        let page = log.session_records_after(AUDIT_SESSION, *after, PAGE)?;
        let full = page.len() == PAGE;
        for r in page {
            *after = r.seq;
            if let Body::Approval(e) = r.body {
                f(r.seq, r.time, e);
            }
        }
        if !full {
            return Ok(());
        }
    }
}

/// Whether `session` is the approvals pseudo-session rather than a client's.
pub(super) fn is_pseudo_session(session: &str) -> bool {
    session == AUDIT_SESSION
}

/// What the approval events say about one request.
#[derive(Default)]
struct Story {
    /// Who voted to approve, distinct, in vote order.
    approvers: Vec<String>,
    /// How it ended, once it did: `approved`, `denied by bob: reason`, ...
    end: Option<String>,
}

impl Story {
    fn add(&mut self, e: &ApprovalEvent) {
        let comment = e.comment.as_deref().map(|c| format!(": {c}"));
        match e.event.as_str() {
            "vote" | "approved" => {
                if !self.approvers.contains(&e.actor) {
                    self.approvers.push(e.actor.clone());
                }
                if e.event == "approved" {
                    self.end = Some("approved".to_owned());
                }
            }
            "denied" => {
                self.end = Some(format!(
                    "denied by {}{}",
                    e.actor,
                    comment.unwrap_or_default()
                ));
            }
            "expired" | "withdrawn" => {
                self.end = Some(format!("{}{}", e.event, comment.unwrap_or_default()));
            }
            // `requested`, `consumed` (the grant was used) and refused
            // attempts change neither the approvers nor the outcome.
            _ => {}
        }
    }

    fn describe(&self) -> String {
        let by = self.approvers.join(", ");
        match (&self.end, by.is_empty()) {
            (Some(end), _) if end == "approved" => format!("approved by {by}"),
            (Some(end), _) => end.clone(),
            (None, true) => "pending".to_owned(),
            (None, false) => format!("pending (approved so far by {by})"),
        }
    }
}

/// The requests' stories, read from the pseudo-session as far as needed.
#[derive(Default)]
pub(super) struct Stories {
    by_request: HashMap<String, Story>,
    /// The last pseudo-session record read.
    after: u64,
}

impl Stories {
    /// What became of `request` as the log tells it now (`None`: no events
    /// recorded for it).
    pub(super) fn describe(&mut self, log: &AuditLog, request: &str) -> Result<Option<String>> {
        let by_request = &mut self.by_request;
        each_event_after(log, &mut self.after, |_, _, e| {
            by_request.entry(e.request_id.clone()).or_default().add(&e);
        })?;
        Ok(self.by_request.get(request).map(Story::describe))
    }
}

/// One row of `sluice audit approvals --json`.
#[derive(Serialize)]
struct EventRow {
    seq: u64,
    time: Timestamp,
    #[serde(flatten)]
    event: ApprovalEvent,
}

/// `sluice audit approvals`: the approval events, oldest first.
pub(super) fn list(
    dir: &Path,
    request: Option<&str>,
    since: Option<Timestamp>,
    json: bool,
) -> Result<()> {
    let log = open_read_only(dir)?;
    let mut rows = Vec::new();
    each_event_after(&log, &mut 0, |seq, time, event| {
        if request.is_none_or(|id| event.request_id == id) && since.is_none_or(|s| time >= s) {
            rows.push(EventRow { seq, time, event });
        }
    })?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
    } else {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    short_time(r.time),
                    r.event.request_id.clone(),
                    r.event.event.clone(),
                    r.event.actor.clone(),
                    r.event.comment.clone().unwrap_or_default(),
                ]
            })
            .collect();
        write_table(
            &mut out,
            &["TIME", "REQUEST", "EVENT", "ACTOR", "COMMENT"],
            &cells,
            None,
            "(no approval events)",
        )?;
    }
    out.flush()?;
    Ok(())
}
