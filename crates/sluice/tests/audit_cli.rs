//! `sluice audit ...` end to end: a real audit store written with
//! `sluice_audit::AuditLog`, read by the real `sluice` binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_audit::{
    ApprovalRef, AuditConfig, AuditLog, ResponseRecord, ResponseStatus, SessionEnd, SessionStart,
    StatementRecord,
};
use sluice_core::{Action, CommandOrigin, Decision, Identity, Outcome, PolicyRef, Statement};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

struct Env {
    _tmp: tempfile::TempDir,
    config: PathBuf,
    data: PathBuf,
    alice: String,
    bob: String,
    /// Seqs of alice's statements, in order.
    alice_statements: Vec<u64>,
}

fn classified(action: Action, text: &str) -> Statement {
    Statement {
        action,
        text: text.into(),
        tables: vec![],
        has_where: true,
        functions: vec![],
        calls_volatile: false,
        fingerprint: "f".into(),
        error: None,
        commits: false,
        copies_out: false,
        locks_rows: false,
        defines_code: false,
        unproven: None,
        field_names: Vec::new(),
        kubernetes: None,
        s3: None,
    }
}

fn policy(id: &str, reason: &str) -> Vec<PolicyRef> {
    vec![PolicyRef {
        id: id.into(),
        reason: Some(reason.into()),
    }]
}

fn stmt(
    origin: CommandOrigin,
    action: Action,
    text: &str,
    params: Vec<Option<String>>,
    decision: Decision,
    approval: Option<ApprovalRef>,
) -> StatementRecord {
    StatementRecord {
        text: text.into(),
        params,
        origin,
        statements: vec![classified(action, text)],
        decision,
        approval,
    }
}

fn ok(seq: u64, tag: &str, rows: u64, content: &str) -> ResponseRecord {
    ResponseRecord {
        statement_seq: seq,
        status: ResponseStatus::CommandTag(tag.into()),
        rows,
        bytes: content.len() as u64,
        duration_us: 1234,
        content: content.into(),
        truncated: false,
    }
}

fn start(identity: &str) -> SessionStart {
    SessionStart::new(
        &Identity::new(identity, vec!["agents".into()]),
        "app",
        "127.0.0.1:40000",
        false,
        Some("psql".into()),
    )
}

/// The statements alice runs, in order: (text, allowed to run).
const ALICE_ALLOWED: [&str; 4] = [
    "CREATE TABLE accounts (id int PRIMARY KEY, name text)",
    "INSERT INTO accounts VALUES ($1, $2)",
    "SELECT name FROM accounts WHERE id = 1",
    "DELETE FROM accounts WHERE id = 2",
];
const ALICE_DENIED: &str = "DROP TABLE accounts";

fn setup() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("sluice.toml");
    std::fs::write(&config, "[server]\ndata_dir = \"data\"\n").unwrap();
    let data = tmp.path().join("data");
    let log = AuditLog::open(&data, AuditConfig::default()).unwrap();

    let alice = "s-alice-0001".to_owned();
    let bob = "s-bob-0002".to_owned();
    log.append(&alice, start("alice")).unwrap();
    log.append(&bob, start("bob")).unwrap();
    let allow = || Decision::allow(policy("agents-read", "agents may read"));
    let mut seqs = Vec::new();

    let s = log
        .append(
            &alice,
            stmt(
                CommandOrigin::SimpleQuery,
                Action::Ddl,
                ALICE_ALLOWED[0],
                vec![],
                allow(),
                None,
            ),
        )
        .unwrap();
    seqs.push(s);
    log.append(&alice, ok(s, "CREATE TABLE", 0, "")).unwrap();

    let s = log
        .append(
            &alice,
            stmt(
                CommandOrigin::Parse,
                Action::Insert,
                ALICE_ALLOWED[1],
                vec![Some("1".into()), Some("O'Brien".into())],
                allow(),
                None,
            ),
        )
        .unwrap();
    seqs.push(s);
    log.append(&alice, ok(s, "INSERT 0 1", 1, "")).unwrap();
    let s = log
        .append(
            &alice,
            stmt(
                CommandOrigin::Parse,
                Action::Insert,
                ALICE_ALLOWED[1],
                vec![Some("2".into()), None],
                allow(),
                None,
            ),
        )
        .unwrap();
    seqs.push(s);
    log.append(&alice, ok(s, "INSERT 0 1", 1, "")).unwrap();

    // bob interleaves
    let b = log
        .append(
            &bob,
            stmt(
                CommandOrigin::SimpleQuery,
                Action::Select,
                "SELECT 42",
                vec![],
                allow(),
                None,
            ),
        )
        .unwrap();
    log.append(&bob, ok(b, "SELECT 1", 1, "?column?\n42"))
        .unwrap();

    let s = log
        .append(
            &alice,
            stmt(
                CommandOrigin::SimpleQuery,
                Action::Drop,
                ALICE_DENIED,
                vec![],
                Decision::deny(policy("no-drop", "agents never drop")),
                None,
            ),
        )
        .unwrap();
    seqs.push(s);
    log.append(
        &alice,
        ResponseRecord {
            statement_seq: s,
            status: ResponseStatus::Error {
                sqlstate: "42501".into(),
                message: "denied by policy \"no-drop\": agents never drop".into(),
            },
            rows: 0,
            bytes: 0,
            duration_us: 10,
            content: String::new(),
            truncated: false,
        },
    )
    .unwrap();

    let s = log
        .append(
            &alice,
            stmt(
                CommandOrigin::SimpleQuery,
                Action::Select,
                ALICE_ALLOWED[2],
                vec![],
                allow(),
                None,
            ),
        )
        .unwrap();
    seqs.push(s);
    log.append(&alice, ok(s, "SELECT 1", 1, "name\n***"))
        .unwrap();

    let s = log
        .append(
            &alice,
            stmt(
                CommandOrigin::SimpleQuery,
                Action::Delete,
                ALICE_ALLOWED[3],
                vec![],
                Decision {
                    outcome: Outcome::Review {
                        approver_group: "dba".into(),
                        quorum: 1,
                    },
                    policies: policy("prod-writes", "writes need review"),
                },
                Some(ApprovalRef {
                    request_id: "req-77".into(),
                    approvers: vec!["carol".into()],
                }),
            ),
        )
        .unwrap();
    seqs.push(s);
    log.append(&alice, ok(s, "DELETE 1", 1, "")).unwrap();

    log.append(
        &alice,
        SessionEnd {
            reason: "client_terminate".into(),
            duration_ms: 20,
            statements: 6,
            rows: 4,
            bytes: 12,
        },
    )
    .unwrap();
    log.append(
        &bob,
        SessionEnd {
            reason: "client_disconnect".into(),
            duration_ms: 30,
            statements: 1,
            rows: 1,
            bytes: 11,
        },
    )
    .unwrap();
    log.close().unwrap();
    Env {
        _tmp: tmp,
        config,
        data,
        alice,
        bob,
        alice_statements: seqs,
    }
}

fn sluice(env: &Env, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("audit")
        .args(args)
        .arg("--config")
        .arg(&env.config)
        .env_remove("SLUICE_CONFIG")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs and expects success; returns stdout.
fn ok_run(env: &Env, args: &[&str]) -> String {
    let out = sluice(env, args);
    assert!(
        out.status.success(),
        "sluice audit {args:?} failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

#[test]
fn sessions_lists_and_filters() {
    let env = setup();
    let table = ok_run(&env, &["sessions"]);
    assert!(table.starts_with("SESSION"), "{table}");
    assert!(
        table.contains(&env.alice) && table.contains(&env.bob),
        "{table}"
    );
    let alice_row = table.lines().find(|l| l.contains(&env.alice)).unwrap();
    assert!(
        alice_row.contains("alice") && alice_row.contains("app"),
        "{alice_row}"
    );
    assert!(alice_row.contains("127.0.0.1:40000"), "{alice_row}");

    let only_bob = ok_run(&env, &["sessions", "--identity", "bob"]);
    assert!(
        only_bob.contains(&env.bob) && !only_bob.contains(&env.alice),
        "{only_bob}"
    );

    let json: serde_json::Value = serde_json::from_str(&ok_run(
        &env,
        &["sessions", "--json", "--identity", "alice"],
    ))
    .unwrap();
    let arr = json.as_array().unwrap();
    assert_eq!(arr.len(), 1);
    assert_eq!(arr[0]["id"], env.alice.as_str());
    assert_eq!(arr[0]["statements"], 6);
    assert_eq!(arr[0]["denied"], 1);

    let none = ok_run(&env, &["sessions", "--resource", "other"]);
    assert!(
        !none.contains(&env.alice) && !none.contains(&env.bob),
        "{none}"
    );
    let future = ok_run(&env, &["sessions", "--since", "2999-01-01", "--json"]);
    assert_eq!(future.trim(), "[]");

    let bad = sluice(&env, &["sessions", "--since", "yesterday"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("invalid time"), "{}", stderr(&bad));
}

#[test]
fn replay_shows_the_transcript_in_order() {
    let env = setup();
    let text = ok_run(&env, &["replay", &env.alice]);
    assert!(text.contains("+0.000s"), "{text}");
    assert!(
        !text.contains("SELECT 42"),
        "bob's statement leaked:\n{text}"
    );
    // Every statement in order, each followed by its response.
    let mut at = 0;
    for needle in [
        "session start",
        ALICE_ALLOWED[0],
        "CREATE TABLE  (0 rows",
        ALICE_ALLOWED[1],
        "$1='1' $2='O''Brien'",
        ALICE_ALLOWED[1],
        "$1='2' $2=NULL",
        "DENY by no-drop (agents never drop)",
        ALICE_DENIED,
        "ERROR 42501",
        ALICE_ALLOWED[2],
        "| name",
        "| ***",
        "REVIEW (group \"dba\", quorum 1) by prod-writes",
        ALICE_ALLOWED[3],
        "approved: request req-77 by carol",
        "DELETE 1",
        "session end  client_terminate",
    ] {
        let found = text[at..]
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not found in order after byte {at}:\n{text}"));
        at += found + needle.len();
    }
    assert!(
        text.contains("ALLOW by agents-read (agents may read)"),
        "{text}"
    );

    // A unique prefix works too; --follow on an ended session ends.
    let prefix = ok_run(&env, &["replay", "s-ali", "--follow"]);
    assert_eq!(prefix, text);

    let missing = sluice(&env, &["replay", "s-nobody"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no audit records"),
        "{}",
        stderr(&missing)
    );
}

/// The non-comment, non-blank lines of a script.
fn code_lines(script: &str) -> Vec<&str> {
    script
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("--"))
        .collect()
}

#[test]
fn replay_sql_is_exactly_the_statements_that_ran() {
    let env = setup();
    let script = ok_run(&env, &["replay", &env.alice, "--sql"]);
    let p1 = format!("sluice_replay_{}", env.alice_statements[1]);
    let p2 = format!("sluice_replay_{}", env.alice_statements[2]);
    let expected = vec![
        "SET standard_conforming_strings = on;".to_owned(),
        format!("{};", ALICE_ALLOWED[0]),
        format!("PREPARE {p1} AS {};", ALICE_ALLOWED[1]),
        format!("EXECUTE {p1}('1', 'O''Brien');"),
        format!("DEALLOCATE {p1};"),
        format!("PREPARE {p2} AS {};", ALICE_ALLOWED[1]),
        format!("EXECUTE {p2}('2', NULL);"),
        format!("DEALLOCATE {p2};"),
        format!("{};", ALICE_ALLOWED[2]),
        format!("{};", ALICE_ALLOWED[3]),
    ];
    assert_eq!(code_lines(&script), expected, "{script}");
    // The denied statement is named in a comment only.
    let denied = format!("-- #{}", env.alice_statements[3]);
    assert!(script.contains(&denied), "{script}");
    assert!(script.contains(&format!("-- {ALICE_DENIED}")), "{script}");
    assert!(
        script.contains("5 statement(s) written, 1 skipped"),
        "{script}"
    );

    // It runs as is on a (restored) database.
    if std::env::var_os("SLUICE_SKIP_PG").is_some() {
        return;
    }
    let pg = sluice_testkit::PgServer::start();
    pg.psql("app", "CREATE SCHEMA replay; SET search_path = replay;");
    pg.psql("app", &format!("SET search_path = replay;\n{script}"));
    let rows = pg.psql(
        "app",
        "SELECT id, coalesce(name, '<null>') FROM replay.accounts ORDER BY id",
    );
    assert_eq!(rows.trim(), "1|O'Brien");
}

#[test]
fn export_then_verify_file_and_detect_an_edited_line() {
    let env = setup();
    let export = env.data.parent().unwrap().join("export.jsonl");
    let export_s = export.to_str().unwrap();
    let out = sluice(&env, &["export", "--format", "jsonl", "--output", export_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&export).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        19,
        "18 records and the closing checkpoint:\n{text}"
    );
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["hash"].as_str().unwrap().len() == 64 && v["prev_hash"].is_string());
    }
    // stdout export is the same bytes.
    let to_stdout = ok_run(&env, &["export", "--format", "jsonl"]);
    assert_eq!(to_stdout, text);
    // --since in the future exports nothing.
    assert_eq!(
        ok_run(
            &env,
            &["export", "--format", "jsonl", "--since", "2999-01-01"]
        ),
        ""
    );

    let verified = ok_run(&env, &["verify", "--file", export_s]);
    assert!(verified.starts_with("OK"), "{verified}");
    // With the key given explicitly, too.
    let key = std::fs::read_to_string(env.data.join("audit-signing.pub")).unwrap();
    let verified = ok_run(
        &env,
        &["verify", "--file", export_s, "--public-key", key.trim()],
    );
    assert!(verified.starts_with("OK"), "{verified}");

    // Edit the text of the DELETE statement.
    let seq = env.alice_statements[5];
    let edited: Vec<String> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            if v["seq"] == seq {
                assert!(l.contains("WHERE id = 2"));
                l.replace("WHERE id = 2", "WHERE id = 3")
            } else {
                (*l).to_owned()
            }
        })
        .collect();
    let tampered = env.data.parent().unwrap().join("tampered.jsonl");
    std::fs::write(&tampered, edited.join("\n") + "\n").unwrap();
    let out = sluice(&env, &["verify", "--file", tampered.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("record {seq} was edited")), "{err}");
}

#[test]
fn verify_store_detects_a_db_edit_naming_the_seq() {
    let env = setup();
    let out = ok_run(&env, &["verify"]);
    assert!(out.starts_with("OK"), "{out}");
    assert!(out.contains("from genesis"), "{out}");

    let seq = env.alice_statements[0];
    let db = rusqlite::Connection::open(env.data.join("audit.db")).unwrap();
    let body: String = db
        .query_row("SELECT body FROM records WHERE seq = ?1", [seq], |r| {
            r.get(0)
        })
        .unwrap();
    let forged = body.replace("CREATE TABLE accounts", "CREATE TABLE innocent");
    assert_ne!(forged, body);
    db.execute(
        "UPDATE records SET body = ?1 WHERE seq = ?2",
        rusqlite::params![forged, seq],
    )
    .unwrap();
    drop(db);

    let out = sluice(&env, &["verify"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("record {seq} was edited")), "{err}");
}

#[test]
fn prune_keeps_the_log_verifiable() {
    let env = setup();
    // Nothing before the records: nothing removed.
    let out = ok_run(&env, &["prune", "--before", "2000-01-01"]);
    assert!(out.contains("nothing to prune"), "{out}");

    let out = ok_run(&env, &["prune", "--before", "2999-01-01T00:00:00Z"]);
    assert!(
        out.contains("pruned ") && out.contains("chain now starts at seq"),
        "{out}"
    );
    let verified = ok_run(&env, &["verify"]);
    assert!(verified.starts_with("OK"), "{verified}");
    assert!(
        verified.contains("pruned as signed by checkpoint"),
        "{verified}"
    );
    let sessions = ok_run(&env, &["sessions", "--json"]);
    assert_eq!(sessions.trim(), "[]");
    // The export after a prune verifies too.
    let export = env.data.parent().unwrap().join("after-prune.jsonl");
    ok_run(
        &env,
        &[
            "export",
            "--format",
            "jsonl",
            "--output",
            export.to_str().unwrap(),
        ],
    );
    let verified = ok_run(&env, &["verify", "--file", export.to_str().unwrap()]);
    assert!(verified.starts_with("OK"), "{verified}");
}

#[test]
fn prune_refuses_while_a_writer_holds_the_log() {
    let env = setup();
    // A child another test forks may briefly share the lock of setup's
    // (closed) writer until it execs.
    let writer = (0..40)
        .find_map(
            |_| match AuditLog::open(&env.data, AuditConfig::default()) {
                Ok(w) => Some(w),
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(50));
                    None
                }
            },
        )
        .expect("the writer lock becomes free");
    let out = sluice(&env, &["prune", "--before", "2999-01-01"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("running gateway") && err.contains("stop the gateway"),
        "{err}"
    );
    // Reading works next to the writer.
    ok_run(&env, &["verify"]);
    writer.close().unwrap();
}

#[test]
fn piped_output_has_no_progress_bar() {
    let env = setup();
    let out = sluice(&env, &["verify"]);
    assert!(out.status.success());
    assert_eq!(stderr(&out), "");
    let out = sluice(&env, &["export", "--format", "jsonl"]);
    assert!(out.status.success());
    assert_eq!(stderr(&out), "");
}
