//! `sluice audit`: list sessions, replay them, export, verify and prune the
//! audit log in the data directory.
//!
//! Everything but `prune` opens the log read-only and can run next to a
//! gateway. `prune` takes the writer lock, so it needs the gateway stopped.

use crate::ConfigArg;
use anyhow::{bail, Context, Result};
use clap::{Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_audit::{
    AuditConfig, AuditError, AuditLog, Body, ChainStart, Record, ResponseStatus, SessionFilter,
    SessionSummary, StatementRecord, Timestamp, VerifyReport,
};
use sluice_core::{CommandOrigin, Outcome};
use sluice_server::Config;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// List recorded sessions, newest first.
    Sessions {
        #[command(flatten)]
        config: ConfigArg,
        /// Only sessions of this identity.
        #[arg(long)]
        identity: Option<String>,
        /// Only sessions on this resource.
        #[arg(long)]
        resource: Option<String>,
        /// Only sessions that started at or after this time (RFC 3339, a
        /// date such as 2024-05-01, or an age such as 7d, 12h, 30m).
        #[arg(long, value_parser = parse_time)]
        since: Option<Timestamp>,
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one session as a transcript, or as a SQL script (--sql).
    Replay {
        #[command(flatten)]
        config: ConfigArg,
        /// The session id (a unique prefix is enough).
        session: String,
        /// Write the statements that ran as a runnable SQL script.
        #[arg(long)]
        sql: bool,
        /// Keep printing new records until the session ends (or Ctrl-C).
        #[arg(long)]
        follow: bool,
    },
    /// Export records, one JSON object per line, hashes included.
    Export {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Only records at or after this time (RFC 3339, a date, or an age
        /// such as 7d).
        #[arg(long, value_parser = parse_time)]
        since: Option<Timestamp>,
        /// Write to this file instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Check the hash chain and signatures of the store, or of an export.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        /// Verify this JSONL export instead of the store.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The gateway's public key (hex, as in audit-signing.pub) to check
        /// signatures against; default: the key file in the data directory.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Delete records older than a time, keeping the chain verifiable.
    /// Needs the writer lock: stop the gateway first.
    Prune {
        #[command(flatten)]
        config: ConfigArg,
        /// Delete records before this time (RFC 3339, a date, or an age such
        /// as 90d). Sessions are never split: the cut moves back to the start
        /// of any session with records after it.
        #[arg(long, value_parser = parse_time)]
        before: Timestamp,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
}

/// RFC 3339, a bare date, or an age (`90d`, `12h`, `30m`, `45s`) before now.
fn parse_time(s: &str) -> Result<Timestamp, String> {
    let t = s.trim();
    if let Some(unit) = t.chars().last().filter(|c| "dhms".contains(*c)) {
        if let Ok(n) = t[..t.len() - 1].parse::<u64>() {
            let secs = match unit {
                'd' => n.saturating_mul(86_400),
                'h' => n.saturating_mul(3_600),
                'm' => n.saturating_mul(60),
                _ => n,
            };
            return Ok(Timestamp::now().minus(Duration::from_secs(secs)));
        }
    }
    t.parse::<Timestamp>().map_err(|e| e.to_string())
}

fn data_dir(config: &ConfigArg) -> Result<PathBuf> {
    Ok(Config::load(&config.config)?.data_dir())
}

fn open_read_only(dir: &Path) -> Result<AuditLog> {
    if !dir.join("audit.db").exists() {
        bail!(
            "no audit log in {} (audit.db is created by the gateway on its first start)",
            dir.display()
        );
    }
    AuditLog::open_read_only(dir)
        .with_context(|| format!("opening the audit log in {}", dir.display()))
}

pub(crate) fn run(command: AuditCommand) -> Result<()> {
    match command {
        AuditCommand::Sessions {
            config,
            identity,
            resource,
            since,
            json,
        } => {
            let log = open_read_only(&data_dir(&config)?)?;
            let sessions = log.sessions(&SessionFilter {
                identity,
                resource,
                since,
                limit: None,
            })?;
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &sessions)?;
                writeln!(out)?;
            } else {
                write_sessions_table(&mut out, &sessions)?;
            }
            out.flush()?;
            Ok(())
        }
        AuditCommand::Replay {
            config,
            session,
            sql,
            follow,
        } => replay(&data_dir(&config)?, &session, sql, follow),
        AuditCommand::Export {
            config,
            format: ExportFormat::Jsonl,
            since,
            output,
        } => export(&data_dir(&config)?, since, output.as_deref()),
        AuditCommand::Verify {
            config,
            file,
            public_key,
        } => verify(&config, file.as_deref(), public_key.as_deref()),
        AuditCommand::Prune { config, before } => prune(&data_dir(&config)?, before),
    }
}

// ---------------------------------------------------------------- progress

/// A progress bar on stderr when it is a terminal, hidden otherwise.
fn progress_bar(message: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>10} [{bar:40}] {human_pos}/{human_len} records ({per_sec}, {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message);
    bar
}

fn progress_fn(bar: &ProgressBar) -> impl Fn(u64, u64) + '_ {
    move |done, total| {
        if bar.length() != Some(total) {
            bar.set_length(total);
        }
        bar.set_position(done);
    }
}

// ---------------------------------------------------------------- sessions

/// `2024-05-01T12:00:00.123456Z` -> `2024-05-01 12:00:00`.
fn short_time(t: Timestamp) -> String {
    let s = t.to_string();
    format!("{} {}", &s[..10], &s[11..19])
}

fn write_sessions_table(out: &mut dyn Write, sessions: &[SessionSummary]) -> Result<()> {
    let header = [
        "SESSION", "IDENTITY", "RESOURCE", "CLIENT", "START", "END", "STMTS", "DENIED", "ERRORS",
        "ROWS",
    ];
    let rows: Vec<[String; 10]> = sessions
        .iter()
        .map(|s| {
            [
                s.id.clone(),
                s.identity.clone(),
                s.resource.clone(),
                s.client_addr.clone(),
                short_time(s.start),
                s.end.map_or_else(|| "open".to_owned(), short_time),
                s.statements.to_string(),
                s.denied.to_string(),
                s.errors.to_string(),
                s.rows.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| -> String {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            if i >= 6 {
                l.push_str(&format!("{cell:>w$}"));
            } else {
                l.push_str(&format!("{cell:<w$}"));
            }
        }
        l.trim_end().to_owned()
    };
    writeln!(out, "{}", line(&header))?;
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        writeln!(out, "{}", line(&cells))?;
    }
    if sessions.is_empty() {
        writeln!(out, "(no sessions)")?;
    }
    Ok(())
}

// ---------------------------------------------------------------- replay

/// Records read per poll in `replay --follow`.
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
        .filter(|id| id.starts_with(given))
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

fn replay(dir: &Path, given: &str, sql: bool, follow: bool) -> Result<()> {
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
            printer.record(&mut out, record)?;
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
/// and approved.
fn statement_ran(s: &StatementRecord) -> bool {
    match s.decision.outcome {
        Outcome::Allow => true,
        Outcome::Review { .. } => s.approval.is_some(),
        Outcome::Deny => false,
    }
}

fn origin_name(origin: CommandOrigin) -> &'static str {
    match origin {
        CommandOrigin::SimpleQuery => "simple query",
        CommandOrigin::Parse => "extended protocol (parse)",
        CommandOrigin::Execute => "extended protocol",
        CommandOrigin::FunctionCall => "function call",
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

    fn record(&mut self, out: &mut dyn Write, r: &Record) -> Result<()> {
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
                if !s.params.is_empty() {
                    let params: Vec<String> = s
                        .params
                        .iter()
                        .enumerate()
                        .map(|(i, p)| format!("${}={}", i + 1, param_literal(p)))
                        .collect();
                    writeln!(out, "{pad}params: {}", params.join(" "))?;
                }
                if let Some(a) = &s.approval {
                    writeln!(
                        out,
                        "{pad}approved: request {} by {}",
                        a.request_id,
                        a.approvers.join(", ")
                    )?;
                }
            }
            Body::Response(resp) => {
                let status = match &resp.status {
                    ResponseStatus::CommandTag(tag) => tag.clone(),
                    ResponseStatus::Error { sqlstate, message } => {
                        format!("ERROR {sqlstate} {message}")
                    }
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
        let Body::Statement(s) = &r.body else {
            return Ok(());
        };
        let at = self.offset(r.time);
        if s.origin == CommandOrigin::FunctionCall {
            self.skipped += 1;
            writeln!(
                out,
                "-- #{} {at}: fast-path function call ({}), not expressible as SQL: skipped\n",
                r.seq,
                outcome_name(&s.decision.outcome)
            )?;
            return Ok(());
        }
        if !statement_ran(s) {
            self.skipped += 1;
            let ids: Vec<&str> = s.decision.policies.iter().map(|p| p.id.as_str()).collect();
            writeln!(
                out,
                "-- #{} {at}: {} by {}: did not run, skipped:",
                r.seq,
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
                "-- #{} {at}: approved (request {} by {})",
                r.seq,
                a.request_id,
                a.approvers.join(", ")
            )?,
            None => writeln!(out, "-- #{} {at}", r.seq)?,
        }
        if s.params.is_empty() {
            writeln!(out, "{}\n", terminated(&s.text))?;
            return Ok(());
        }
        let name = format!("sluice_replay_{}", r.seq);
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

fn export(dir: &Path, since: Option<Timestamp>, output: Option<&Path>) -> Result<()> {
    let log = open_read_only(dir)?;
    let file = match output {
        Some(path) => Some(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None => None,
    };
    let bar = progress_bar("export");
    let progress = progress_fn(&bar);
    let result = match file {
        Some(file) => {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
            log.export_jsonl(&mut w, since, &progress)
                .map_err(anyhow::Error::from)
                .and_then(|n| {
                    let file = w.into_inner().map_err(|e| e.into_error())?;
                    file.sync_all()?;
                    Ok(n)
                })
        }
        None => {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            log.export_jsonl(&mut w, since, &progress)
                .map_err(anyhow::Error::from)
        }
    };
    bar.finish_and_clear();
    match output {
        Some(path) => {
            let written = result.with_context(|| format!("exporting to {}", path.display()))?;
            eprintln!("exported {written} records to {}", path.display());
        }
        None => {
            let written = result?;
            if std::io::stderr().is_terminal() {
                eprintln!("exported {written} records");
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- verify

fn verify(config: &ConfigArg, file: Option<&Path>, public_key: Option<&str>) -> Result<()> {
    let (what, key_source, report) = match file {
        Some(path) => {
            // An export is checked against --public-key, else the key of the
            // configured data directory when there is one, else the export's
            // own (which proves consistency, not origin).
            let (key, source) = match public_key {
                Some(k) => (Some(k.to_owned()), KeySource::Given),
                None if config.config.exists() => (
                    sluice_audit::keys::read_public_key(&data_dir(config)?)?,
                    KeySource::DataDir,
                ),
                None => (None, KeySource::DataDir),
            };
            let bar = progress_bar("verify");
            let report = sluice_audit::verify_export(path, key.as_deref(), &progress_fn(&bar))
                .with_context(|| format!("verifying {}", path.display()));
            bar.finish_and_clear();
            (path.display().to_string(), source, report?)
        }
        None => {
            let dir = data_dir(config)?;
            let log = open_read_only(&dir)?;
            let bar = progress_bar("verify");
            let progress = progress_fn(&bar);
            let report = match public_key {
                Some(k) => log.verify_with_key(Some(k), &progress),
                None => log.verify(&progress),
            };
            bar.finish_and_clear();
            let source = match public_key {
                Some(_) => KeySource::Given,
                None => KeySource::DataDir,
            };
            (format!("audit log in {}", dir.display()), source, report?)
        }
    };
    let summary = describe(&report);
    match &report.problem {
        None => {
            println!("OK: {what}: {summary}");
            for note in notes(&report, key_source) {
                println!("note: {note}");
            }
            Ok(())
        }
        Some(problem) => {
            bail!("verification FAILED for {what}: {problem} (checked {summary})")
        }
    }
}

#[derive(Clone, Copy)]
enum KeySource {
    Given,
    DataDir,
}

fn describe(r: &VerifyReport) -> String {
    let range = match (r.first_seq, r.last_seq) {
        (Some(a), Some(b)) => format!(" (seq {a} to {b})"),
        _ => String::new(),
    };
    let start = match &r.start {
        ChainStart::Empty => "empty".to_owned(),
        ChainStart::Genesis => "from genesis".to_owned(),
        ChainStart::Pruned {
            checkpoint_seq,
            first_seq,
        } => format!("from seq {first_seq}, pruned as signed by checkpoint {checkpoint_seq}"),
        ChainStart::Unanchored { first_seq } => {
            format!("from seq {first_seq} (partial export: earlier records not included)")
        }
    };
    let signed = r.signed_through.map_or_else(
        || "nothing signed".to_owned(),
        |s| format!("signed through seq {s}"),
    );
    format!(
        "{} records{range}, {} checkpoints, {signed}, chain {start}",
        r.records, r.checkpoints
    )
}

fn notes(r: &VerifyReport, key_source: KeySource) -> Vec<String> {
    let mut notes = Vec::new();
    let tail = r.unsigned_tail();
    if tail > 0 {
        notes.push(format!(
            "the last {tail} record(s) are after the last signature: the hash chain covers them, a signature does not yet"
        ));
    }
    match (&r.public_key, r.key_trusted, key_source) {
        (Some(k), true, KeySource::Given) => notes.push(format!(
            "signatures checked against the key given with --public-key, {k}"
        )),
        (Some(k), true, KeySource::DataDir) => notes.push(format!(
            "signatures checked against key {k} (audit-signing.pub of the data directory): \
             to prove origin, pass --public-key with a copy of the key kept off this machine"
        )),
        (Some(k), false, _) => notes.push(format!(
            "signatures checked against the log's own key {k}: pass --public-key to prove origin"
        )),
        (None, ..) => {}
    }
    notes
}

// ---------------------------------------------------------------- prune

fn prune(dir: &Path, before: Timestamp) -> Result<()> {
    // Refuse to create a log where there is none.
    drop(open_read_only(dir)?);
    let log = match AuditLog::open(dir, AuditConfig::default()) {
        Ok(log) => log,
        Err(AuditError::Locked(path)) => bail!(
            "cannot prune: the audit log {} is open for writing by another process, \
             most likely a running gateway. Prune takes the writer lock: stop the gateway, \
             prune, and start it again",
            path.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("opening the audit log in {}", dir.display()))
        }
    };
    let bar = progress_bar("prune");
    let progress = progress_fn(&bar);
    let result = log.prune(before, &progress);
    bar.finish_and_clear();
    let closed = log.close();
    let report = result?;
    closed.context("closing the audit log")?;
    match (report.checkpoint_seq, report.first_retained_seq) {
        (Some(cp), Some(first)) => println!(
            "pruned {} records before {before}: the chain now starts at seq {first} \
             (signed prune checkpoint at seq {cp})",
            report.deleted
        ),
        (_, first) => println!(
            "nothing to prune before {before}{}",
            first.map_or_else(String::new, |f| format!(
                " (the log starts at seq {f}; sessions are never split)"
            ))
        ),
    }
    Ok(())
}
