//! `sluice audit`: list sessions and approval events, replay sessions,
//! export, verify and prune the audit log in the data directory.
//!
//! Everything but `prune` opens the log read-only and can run next to a
//! gateway. `prune` takes the writer lock, so it needs the gateway stopped.

use crate::ConfigArg;
use anyhow::{bail, Context, Result};
use clap::{Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_audit::{
    AuditConfig, AuditError, AuditLog, ChainStart, SessionFilter, SessionSummary, Timestamp,
    VerifyReport,
};
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
    /// List approval events (requested, votes, approved, denied, expired,
    /// used, refused attempts), oldest first.
    Approvals {
        #[command(flatten)]
        config: ConfigArg,
        /// Only the events of this request.
        #[arg(long)]
        request: Option<String>,
        /// Only events at or after this time (RFC 3339, a date, or an age
        /// such as 7d).
        #[arg(long, value_parser = parse_time)]
        since: Option<Timestamp>,
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
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
            let mut sessions = log.sessions(&SessionFilter {
                identity,
                resource,
                since,
                limit: None,
            })?;
            // Approval events have a session id of their own but no client
            // session: `sluice audit approvals` lists them.
            sessions.retain(|s| !approvals::is_pseudo_session(&s.id));
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
        } => replay::replay(&data_dir(&config)?, &session, sql, follow),
        AuditCommand::Approvals {
            config,
            request,
            since,
            json,
        } => approvals::list(&data_dir(&config)?, request.as_deref(), since, json),
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
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            vec![
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
    write_table(out, &header, &rows, Some(6), "(no sessions)")
}

/// A table of `rows` under `header`, columns two spaces apart; columns from
/// `numbers_from` on are right-aligned; `empty` is said when there are no
/// rows.
fn write_table(
    out: &mut dyn Write,
    header: &[&str],
    rows: &[Vec<String>],
    numbers_from: Option<usize>,
    empty: &str,
) -> Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| -> String {
        let mut l = String::new();
        for (i, (cell, &w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            if numbers_from.is_some_and(|n| i >= n) {
                l.push_str(&format!("{cell:>w$}"));
            } else {
                l.push_str(&format!("{cell:<w$}"));
            }
        }
        l.trim_end().to_owned()
    };
    writeln!(out, "{}", line(header))?;
    for row in rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        writeln!(out, "{}", line(&cells))?;
    }
    if rows.is_empty() {
        writeln!(out, "{empty}")?;
    }
    Ok(())
}

// ---------------------------------------------------------------- replay

mod approvals;
mod replay;

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

/// Opens the log for writing. A lock held a moment longer than its writer
/// (a process that just stopped, or a child forked while it was open and
/// not yet exec'd) is waited out briefly before giving up.
fn open_for_writing(dir: &Path) -> Result<AuditLog, AuditError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match AuditLog::open(dir, AuditConfig::default()) {
            Err(AuditError::Locked(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn prune(dir: &Path, before: Timestamp) -> Result<()> {
    // Refuse to create a log where there is none.
    drop(open_read_only(dir)?);
    let log = match open_for_writing(dir) {
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
