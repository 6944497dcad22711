#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use rusqlite::Connection;
use sluice_audit::chain::record_hash;
use sluice_audit::*;
use sluice_core::{Action, CommandOrigin, Decision, Identity, PolicyRef, Statement};
use std::path::Path;
use std::time::Duration;

pub fn config() -> AuditConfig {
    AuditConfig {
        checkpoint_every: 10,
        ..AuditConfig::default()
    }
}

pub fn statement(text: &str, allow: bool) -> StatementRecord {
    let policies = vec![PolicyRef {
        id: "p1".into(),
        reason: Some("test".into()),
    }];
    StatementRecord {
        text: text.into(),
        params: vec![Some("42".into()), None, encode_param(true, Some(&[1, 2]))],
        origin: CommandOrigin::Parse,
        statements: vec![Statement {
            action: Action::Select,
            text: text.into(),
            tables: vec!["public.accounts".into()],
            has_where: true,
            functions: vec![],
            calls_volatile: false,
            fingerprint: "ab12".into(),
            error: None,
            commits: false,
            copies_out: false,
            locks_rows: false,
            defines_code: false,
            unproven: None,
            field_names: Vec::new(),
            kubernetes: None,
            s3: None,
        }],
        decision: if allow {
            Decision::allow(policies)
        } else {
            Decision::deny(policies)
        },
        approval: None,
    }
}

pub fn response(statement_seq: u64) -> ResponseRecord {
    ResponseRecord {
        statement_seq,
        status: ResponseStatus::CommandTag("SELECT 1".into()),
        rows: 1,
        bytes: 20,
        duration_us: 150,
        content: "id|email\n1|***@***".into(),
        truncated: false,
    }
}

pub fn start(identity: &str) -> SessionStart {
    SessionStart::new(
        &Identity::new(identity, vec!["devs".into()]),
        "prod",
        "127.0.0.1:5555",
        true,
        Some("psql".into()),
    )
}

pub fn end(statements: u64) -> SessionEnd {
    SessionEnd {
        reason: "client_terminate".into(),
        duration_ms: 5,
        statements,
        rows: statements,
        bytes: 20 * statements,
    }
}

/// One complete session: start, `n` statement/response pairs (every third
/// denied), end. Returns the session id.
pub fn session(log: &AuditLog, identity: &str, n: u64) -> String {
    let id = new_session_id();
    log.append(&id, start(identity)).unwrap();
    for i in 0..n {
        let seq = log
            .append(
                &id,
                statement(
                    &format!("SELECT * FROM accounts WHERE id = {i}"),
                    i % 3 != 2,
                ),
            )
            .unwrap();
        log.append(&id, response(seq)).unwrap();
    }
    log.append(&id, end(n)).unwrap();
    id
}

/// A closed log with a few sessions (and checkpoints every 10 records).
pub fn filled(dir: &Path) -> Vec<String> {
    let log = AuditLog::open(dir, config()).unwrap();
    let ids = (0..4)
        .map(|i| session(&log, &format!("user{i}"), 8))
        .collect();
    log.close().unwrap();
    ids
}

pub fn db(dir: &Path) -> Connection {
    Connection::open(dir.join("audit.db")).unwrap()
}

pub fn verify(dir: &Path) -> VerifyReport {
    AuditLog::open_read_only(dir)
        .unwrap()
        .verify(&|_, _| {})
        .unwrap()
}

pub fn problem(dir: &Path) -> Problem {
    let report = verify(dir);
    report
        .problem
        .clone()
        .unwrap_or_else(|| panic!("tampering not detected: {report:?}"))
}

pub fn seq_of(conn: &Connection, kind: &str, nth: u64) -> u64 {
    conn.query_row(
        "SELECT seq FROM records WHERE kind = ?1 ORDER BY seq LIMIT 1 OFFSET ?2",
        rusqlite::params![kind, nth],
        |r| r.get::<_, i64>(0),
    )
    .unwrap() as u64
}

pub fn max_seq(conn: &Connection) -> u64 {
    conn.query_row("SELECT max(seq) FROM records", [], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

pub fn hash_of(conn: &Connection, seq: u64) -> String {
    conn.query_row(
        "SELECT hash FROM records WHERE seq = ?1",
        [seq as i64],
        |r| r.get(0),
    )
    .unwrap()
}

/// What a careful attacker does after an edit: recompute the hash of every
/// record from `seq` on so the chain links again.
pub fn rechain_from(conn: &Connection, seq: u64) {
    let mut prev: String = conn
        .query_row(
            "SELECT hash FROM records WHERE seq < ?1 ORDER BY seq DESC LIMIT 1",
            [seq as i64],
            |r| r.get(0),
        )
        .unwrap_or_else(|_| sluice_audit::chain::ZERO_HASH.to_owned());
    let rows: Vec<(i64, String, String, String, String)> = conn
        .prepare("SELECT seq, time, session, kind, body FROM records WHERE seq >= ?1 ORDER BY seq")
        .unwrap()
        .query_map([seq as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (s, time, session, kind, body) in rows {
        let hash = record_hash(s as u64, &time, &session, &kind, &body, &prev);
        conn.execute(
            "UPDATE records SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
            rusqlite::params![prev, hash, s],
        )
        .unwrap();
        prev = hash;
    }
}

pub fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}
