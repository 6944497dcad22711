//! `sluice audit replay`: a session as a transcript, or as a SQL script.

use super::approvals::{is_pseudo_session, Stories};
use super::open_read_only;
use anyhow::{bail, Result};
use sluice_audit::{
    AuditLog, Body, Record, ResponseStatus, SessionFilter, SessionSummary, StatementRecord,
    Timestamp,
};
use sluice_core::{CommandOrigin, Outcome};
use std::collections::VecDeque;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

const FOLLOW_PAGE: usize = 2000;
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

/// The full id of a session given its id or a unique prefix of it.
fn resolve_session(log: &AuditLog, given: &str) -> Result<String> {
    if !log.session_records_after(given, 0, 1)?.is_empty() {
        return Ok(given.to_owned());
    }
    let matches: Vec<String> = log
        .sessions(&SessionFilter::default())?
        .into_iter()
        .map(|s| s.id)
        .filter(|id| id.starts_with(given) && !is_pseudo_session(id))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no audit records for session {given:?} (see `sluice audit sessions`)"),
        _ => bail!(
            "session prefix {given:?} is ambiguous: {} sessions match",
            matches.len()
        ),
    }
}

pub(super) fn replay(dir: &Path, given: &str, sql: bool, follow: bool) -> Result<()> {
    let log = open_read_only(dir)?;
    let session = resolve_session(&log, given)?;
    let summary = log
        .sessions(&SessionFilter::default())?
        .into_iter()
        .find(|s| s.id == session);
    let mut out = std::io::stdout().lock();
    let mut printer = Replay::new(&session, summary, sql);
    let mut after = 0;
    let mut ended = false;
    loop {
        let page = log.session_records_after(&session, after, FOLLOW_PAGE)?;
        for record in &page {
            printer.record(&mut out, record, &log)?;
            ended |= matches!(record.body, Body::SessionEnd(_));
        }
        if let Some(last) = page.last() {
            after = last.seq;
        }
        if page.len() == FOLLOW_PAGE {
            continue;
        }
        out.flush()?;
        if !follow || ended {
            break;
        }
        std::thread::sleep(FOLLOW_INTERVAL);
    }
    printer.finish(&mut out)?;
    out.flush()?;
    Ok(())
}

struct Replay {
    session: String,
    summary: Option<SessionSummary>,
    sql: bool,
    /// The session's start time: offsets are relative to it.
    start: Option<Timestamp>,
    header_done: bool,
    /// Statements written to / skipped from a `--sql` script.
    written: u64,
    skipped: u64,
    /// What became of the approval requests statements were held under.
    stories: Stories,
    /// `--sql`: statements not written yet, in order. One recorded before
    /// its approval was decided (held in `wait` mode, or refused in
    /// `deferred` mode) is undecided until the session's own approval event
    /// (it ran) or its response (it did not) comes; those after it wait
    /// behind it.
    queue: VecDeque<Queued>,
}

/// A statement of a `--sql` script waiting to be written.
struct Queued {
    seq: u64,
    /// Its offset from the session start.
    at: String,
    statement: StatementRecord,
    /// Whether it ran, once known.
    ran: Option<bool>,
    /// Who approved it, from the session's approval event (the record was
    /// written before anyone had).
    approved_by: Option<String>,
}

/// A `Outcome`'s name for people.
fn outcome_name(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Allow => "ALLOW".to_owned(),
        Outcome::Deny => "DENY".to_owned(),
        Outcome::Review {
            approver_group,
            quorum,
        } => format!("REVIEW (group {approver_group:?}, quorum {quorum})"),
    }
}

/// Whether a statement was forwarded to the database: allowed, or reviewed
/// and run under a grant. `None`: it waited for an approval that was still
/// undecided when it was recorded (see [`Replay::queue`]).
fn statement_ran(s: &StatementRecord) -> Option<bool> {
    match (&s.decision.outcome, &s.approval) {
        (Outcome::Allow, _) => Some(true),
        (Outcome::Review { .. }, Some(a)) if a.approvers.is_empty() => None,
        (Outcome::Review { .. }, approval) => Some(approval.is_some()),
        (Outcome::Deny, _) => Some(false),
    }
}

fn origin_name(origin: CommandOrigin) -> &'static str {
    match origin {
        CommandOrigin::SimpleQuery => "simple query",
        CommandOrigin::Parse => "extended protocol (parse)",
        CommandOrigin::Execute => "extended protocol",
        CommandOrigin::FunctionCall => "function call",
        CommandOrigin::Http => "http",
    }
}

fn param_literal(p: &Option<String>) -> String {
    match p {
        None => "NULL".to_owned(),
        Some(v) => format!("'{}'", v.replace('\'', "''")),
    }
}

/// `-- ` before every line of `text`.
fn sql_comment(text: &str) -> String {
    text.lines()
        .map(|l| format!("-- {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` terminated by a semicolon that a trailing `--` comment cannot
/// swallow.
fn terminated(text: &str) -> String {
    let t = text.trim_end();
    if t.ends_with(';') {
        return t.to_owned();
    }
    let last_line = t.lines().last().unwrap_or("");
    if last_line.contains("--") {
        format!("{t}\n;")
    } else {
        format!("{t};")
    }
}

impl Replay {
    fn new(session: &str, summary: Option<SessionSummary>, sql: bool) -> Self {
        Replay {
            session: session.to_owned(),
            start: summary.as_ref().map(|s| s.start),
            summary,
            sql,
            header_done: false,
            written: 0,
            skipped: 0,
            stories: Stories::default(),
            queue: VecDeque::new(),
        }
    }

    fn offset(&mut self, t: Timestamp) -> String {
        let start = *self.start.get_or_insert(t);
        let micros = t.unix_micros() - start.unix_micros();
        let sign = if micros < 0 { "-" } else { "+" };
        let micros = micros.unsigned_abs();
        format!(
            "{sign}{}.{:03}s",
            micros / 1_000_000,
            (micros % 1_000_000) / 1000
        )
    }

    fn header(&mut self, out: &mut dyn Write) -> Result<()> {
        if self.header_done {
            return Ok(());
        }
        self.header_done = true;
        if self.sql {
            writeln!(out, "-- Sluice audit replay of session {}", self.session)?;
            if let Some(s) = &self.summary {
                writeln!(
                    out,
                    "-- identity {}, resource {}, client {}, started {}",
                    s.identity, s.resource, s.client_addr, s.start
                )?;
            }
            writeln!(
                out,
                "-- The statements that ran, in order. Denied statements (and reviews never\n\
                 -- approved) did not run and appear only as comments. Statements sent with\n\
                 -- parameters are written as PREPARE / EXECUTE (parameters as literals) /\n\
                 -- DEALLOCATE. Run with: psql -v ON_ERROR_STOP=1 -f <this file>"
            )?;
            writeln!(out, "SET standard_conforming_strings = on;")?;
            writeln!(out)?;
        } else {
            writeln!(out, "session {}", self.session)?;
        }
        Ok(())
    }

    fn record(&mut self, out: &mut dyn Write, r: &Record, log: &AuditLog) -> Result<()> {
        self.header(out)?;
        if self.sql {
            return self.sql_record(out, r);
        }
        let at = self.offset(r.time);
        let lead = format!("{at:>10}  #{:<6}", r.seq);
        let pad = " ".repeat(lead.len() + 2);
        match &r.body {
            Body::SessionStart(s) => {
                writeln!(
                    out,
                    "{lead}  session start  {}  identity {} (groups: {})  resource {}  client {}{}{}",
                    r.time,
                    s.identity,
                    s.groups.join(","),
                    s.resource,
                    s.client_addr,
                    if s.tls { " (TLS)" } else { " (no TLS)" },
                    s.application_name
                        .as_deref()
                        .map(|a| format!("  application {a}"))
                        .unwrap_or_default()
                )?;
                if let Some(policy) = &s.unmasked_by {
                    writeln!(
                        out,
                        "{pad}UNMASKED: policy \"{policy}\" lets this session see raw values"
                    )?;
                }
            }
            Body::SessionEnd(e) => {
                writeln!(
                    out,
                    "{lead}  session end  {}  after {} ms: {} statements, {} rows, {} bytes",
                    e.reason, e.duration_ms, e.statements, e.rows, e.bytes
                )?;
            }
            Body::Statement(s) => {
                let policies: Vec<String> = s
                    .decision
                    .policies
                    .iter()
                    .map(|p| match &p.reason {
                        Some(reason) => format!("{} ({reason})", p.id),
                        None => p.id.clone(),
                    })
                    .collect();
                let actions: Vec<&str> = s.statements.iter().map(|st| st.action.as_str()).collect();
                writeln!(
                    out,
                    "{lead}  statement [{}] {}{}{}",
                    origin_name(s.origin),
                    outcome_name(&s.decision.outcome),
                    if policies.is_empty() {
                        String::new()
                    } else {
                        format!(" by {}", policies.join(", "))
                    },
                    if actions.is_empty() {
                        String::new()
                    } else {
                        format!("  action {}", actions.join(","))
                    },
                )?;
                for line in s.text.lines() {
                    writeln!(out, "{pad}  {line}")?;
                }
                if s.origin == CommandOrigin::Http {
                    if let Some(Some(body)) = s.params.first() {
                        writeln!(out, "{pad}body: {body}")?;
                    }
                } else if !s.params.is_empty() {
                    let params: Vec<String> = s
                        .params
                        .iter()
                        .enumerate()
                        .map(|(i, p)| format!("${}={}", i + 1, param_literal(p)))
                        .collect();
                    writeln!(out, "{pad}params: {}", params.join(" "))?;
                }
                match &s.approval {
                    // Recorded before the request was decided: what became
                    // of it is in the approval events.
                    Some(a) if a.approvers.is_empty() => writeln!(
                        out,
                        "{pad}approval request {}{}",
                        a.request_id,
                        self.stories
                            .describe(log, &a.request_id)?
                            .map(|d| format!(": {d}"))
                            .unwrap_or_default()
                    )?,
                    Some(a) => writeln!(
                        out,
                        "{pad}approved: request {} by {}",
                        a.request_id,
                        a.approvers.join(", ")
                    )?,
                    None => {}
                }
            }
            Body::Response(resp) => {
                let status = match &resp.status {
                    ResponseStatus::CommandTag(tag) => tag.clone(),
                    ResponseStatus::Error { sqlstate, message } => {
                        format!("ERROR {sqlstate} {message}")
                    }
                    ResponseStatus::Empty => "(empty query)".to_owned(),
                    ResponseStatus::Suspended => "(suspended at the row limit)".to_owned(),
                    ResponseStatus::Skipped => {
                        "(not run: an earlier message of the batch failed)".to_owned()
                    }
                    ResponseStatus::Http { status } => format!("HTTP {status}"),
                };
                writeln!(
                    out,
                    "{lead}  response to #{}  {status}  ({} rows, {} bytes, {}.{:03} ms)",
                    resp.statement_seq,
                    resp.rows,
                    resp.bytes,
                    resp.duration_us / 1000,
                    resp.duration_us % 1000
                )?;
                for line in resp.content.lines() {
                    writeln!(out, "{pad}| {line}")?;
                }
                if resp.truncated {
                    writeln!(out, "{pad}| ... (content truncated at the audit cap)")?;
                }
            }
            Body::Stream(st) => {
                let arrow = if st.direction == "in" { ">" } else { "<" };
                writeln!(
                    out,
                    "{lead}  {} {arrow} of #{}  ({} bytes)",
                    st.stream, st.statement_seq, st.bytes
                )?;
                for line in st.data.lines() {
                    writeln!(out, "{pad}{arrow} {line}")?;
                }
                if st.truncated {
                    writeln!(out, "{pad}{arrow} ... (truncated at the audit cap)")?;
                }
            }
            Body::Approval(a) => {
                writeln!(
                    out,
                    "{lead}  approval {} {} by {}{}",
                    a.request_id,
                    a.event,
                    a.actor,
                    a.comment
                        .as_deref()
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default()
                )?;
            }
            Body::Checkpoint(c) => {
                writeln!(out, "{lead}  checkpoint (signs #{})", c.head_seq)?;
            }
        }
        Ok(())
    }

    fn sql_record(&mut self, out: &mut dyn Write, r: &Record) -> Result<()> {
        match &r.body {
            Body::Statement(s) => {
                let at = self.offset(r.time);
                self.queue.push_back(Queued {
                    seq: r.seq,
                    at,
                    ran: statement_ran(s),
                    statement: s.clone(),
                    approved_by: None,
                });
            }
            // Recorded in the session just before a held statement runs.
            Body::Approval(a) if a.event == "approved" => {
                let held = |q: &Queued| {
                    q.statement
                        .approval
                        .as_ref()
                        .is_some_and(|ap| ap.request_id == a.request_id)
                };
                if let Some(q) = self.undecided(held) {
                    q.ran = Some(true);
                    q.approved_by = Some(a.actor.clone());
                }
            }
            // Answered without its approval: it did not run.
            Body::Response(resp) => {
                if let Some(q) = self.undecided(|q| q.seq == resp.statement_seq) {
                    q.ran = Some(false);
                }
            }
            _ => {}
        }
        self.write_settled(out)
    }

    /// The queued statement not yet known to have run or not that `is`.
    fn undecided(&mut self, is: impl Fn(&Queued) -> bool) -> Option<&mut Queued> {
        self.queue.iter_mut().find(|q| q.ran.is_none() && is(q))
    }

    /// Writes the queued statements up to the first undecided one.
    fn write_settled(&mut self, out: &mut dyn Write) -> Result<()> {
        while let Some(ran) = self.queue.front().and_then(|q| q.ran) {
            if let Some(q) = self.queue.pop_front() {
                self.sql_statement(out, &q, ran)?;
            }
        }
        Ok(())
    }

    fn sql_statement(&mut self, out: &mut dyn Write, q: &Queued, ran: bool) -> Result<()> {
        let (seq, at, s) = (q.seq, &q.at, &q.statement);
        if s.origin == CommandOrigin::FunctionCall {
            self.skipped += 1;
            writeln!(
                out,
                "-- #{seq} {at}: fast-path function call ({}), not expressible as SQL: skipped\n",
                outcome_name(&s.decision.outcome)
            )?;
            return Ok(());
        }
        if !ran {
            self.skipped += 1;
            let ids: Vec<&str> = s.decision.policies.iter().map(|p| p.id.as_str()).collect();
            writeln!(
                out,
                "-- #{seq} {at}: {} by {}: did not run, skipped:",
                outcome_name(&s.decision.outcome),
                if ids.is_empty() {
                    "no policy".to_owned()
                } else {
                    ids.join(", ")
                }
            )?;
            writeln!(out, "{}\n", sql_comment(&s.text))?;
            return Ok(());
        }
        self.written += 1;
        match &s.approval {
            Some(a) => writeln!(
                out,
                "-- #{seq} {at}: approved (request {} by {})",
                a.request_id,
                q.approved_by
                    .clone()
                    .unwrap_or_else(|| a.approvers.join(", "))
            )?,
            None => writeln!(out, "-- #{seq} {at}")?,
        }
        if s.params.is_empty() {
            writeln!(out, "{}\n", terminated(&s.text))?;
            return Ok(());
        }
        let name = format!("sluice_replay_{seq}");
        let body = s.text.trim_end().trim_end_matches(';');
        let params: Vec<String> = s.params.iter().map(param_literal).collect();
        if s.params
            .iter()
            .flatten()
            .any(|p| p.starts_with(sluice_audit::BINARY_PARAM_PREFIX))
        {
            writeln!(
                out,
                "-- note: '\\x...' parameters were sent in binary format (or were not UTF-8);\n\
                 -- they are exact for bytea parameters, other types may need converting"
            )?;
        }
        writeln!(out, "{}", terminated(&format!("PREPARE {name} AS {body}")))?;
        writeln!(out, "EXECUTE {name}({});", params.join(", "))?;
        writeln!(out, "DEALLOCATE {name};\n")?;
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Write) -> Result<()> {
        if !self.header_done {
            self.header(out)?;
        }
        if self.sql {
            // Still waiting for an approval when the records end: not run
            // (as far as this log tells).
            for q in &mut self.queue {
                q.ran.get_or_insert(false);
            }
            self.write_settled(out)?;
            writeln!(
                out,
                "-- {} statement(s) written, {} skipped",
                self.written, self.skipped
            )?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- export
