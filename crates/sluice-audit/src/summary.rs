//! Session summaries (the `sluice audit sessions` table), kept by the writer.
//!
//! Updating a summary row for every record would cost as much as the record
//! itself (one scattered B-tree page per active session per commit), so the
//! writer accumulates counters in memory and writes them with the records'
//! transaction: a session's start and end at once, counters at most every
//! `SUMMARY_INTERVAL` and on flush. The records stay the source of truth;
//! a summary may lag by that interval, and after a crash the counters of
//! sessions open at the time may miss their last interval.

use crate::record::{Body, ResponseStatus, SessionStart};
use crate::store::{SessionStartInfo, SessionUpdate};
use crate::time::Timestamp;
use sluice_core::Outcome;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub(crate) const SUMMARY_INTERVAL: Duration = Duration::from_secs(1);

/// What a record changes in its session's summary, extracted at append so
/// the writer does not need the typed body.
#[derive(Debug)]
pub(crate) enum SessionEffect {
    None,
    Start(SessionStart),
    Statement { denied: bool, reviewed: bool },
    Response { error: bool, rows: u64, bytes: u64 },
    End { reason: String },
}

impl SessionEffect {
    pub(crate) fn of(body: &Body) -> SessionEffect {
        match body {
            Body::SessionStart(s) => SessionEffect::Start(s.clone()),
            Body::Statement(s) => SessionEffect::Statement {
                denied: matches!(s.decision.outcome, Outcome::Deny),
                reviewed: matches!(s.decision.outcome, Outcome::Review { .. }),
            },
            Body::Response(r) => SessionEffect::Response {
                error: matches!(r.status, ResponseStatus::Error { .. }),
                rows: r.rows,
                bytes: r.bytes,
            },
            Body::SessionEnd(e) => SessionEffect::End {
                reason: e.reason.clone(),
            },
            Body::Approval(_) | Body::Checkpoint(_) | Body::Stream(_) => SessionEffect::None,
        }
    }
}

/// Summary changes not yet written.
pub(crate) struct Summaries {
    pending: HashMap<String, SessionUpdate>,
    last_flush: Instant,
}

impl Summaries {
    pub(crate) fn new() -> Summaries {
        Summaries {
            pending: HashMap::new(),
            last_flush: Instant::now(),
        }
    }

    pub(crate) fn record(
        &mut self,
        session: &str,
        seq: u64,
        time: Timestamp,
        effect: SessionEffect,
    ) {
        if session.is_empty() {
            return;
        }
        let u = match self.pending.get_mut(session) {
            Some(u) => u,
            None => self
                .pending
                .entry(session.to_owned())
                .or_insert_with(|| SessionUpdate {
                    id: session.to_owned(),
                    first_seq: seq,
                    ..SessionUpdate::default()
                }),
        };
        u.last_seq = seq;
        match effect {
            SessionEffect::None => {}
            SessionEffect::Start(body) => u.start = Some(SessionStartInfo { time, body }),
            SessionEffect::Statement { denied, reviewed } => {
                u.statements += 1;
                u.denied += u64::from(denied);
                u.reviewed += u64::from(reviewed);
            }
            SessionEffect::Response { error, rows, bytes } => {
                u.errors += u64::from(error);
                u.rows += rows;
                u.bytes += bytes;
            }
            SessionEffect::End { reason } => u.end = Some((time, reason)),
        }
    }

    /// When the next time-based write is due, if anything is pending.
    pub(crate) fn due_at(&self) -> Option<Instant> {
        (!self.pending.is_empty()).then_some(self.last_flush + SUMMARY_INTERVAL)
    }

    /// The updates to write now: starts and ends always, everything when
    /// `force`d or when the interval has passed.
    pub(crate) fn take_due(&mut self, force: bool) -> Vec<SessionUpdate> {
        let now = Instant::now();
        if force || now >= self.last_flush + SUMMARY_INTERVAL {
            self.last_flush = now;
            return self.pending.drain().map(|(_, u)| u).collect();
        }
        let keys: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, u)| u.start.is_some() || u.end.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().filter_map(|k| self.pending.remove(k)).collect()
    }
}
