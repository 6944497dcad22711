//! psql and psycopg, run as processes, talk to a real PostgreSQL through the
//! `sluice` binary and get exactly what PostgreSQL would give them: results,
//! errors with their SQLSTATE, notices, ParameterStatus, transactions, COPY
//! in both directions (including psql's `\copy`) and cancellation by SIGINT.
//! The psycopg suite is `tests/py/clients.py`. One server and gateway serve
//! the whole binary (`common::proto::fixture`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::proto::{fixture, tail, ProtocolFixture};
use common::Fixture;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs psql with `args`, feeding `stdin`; returns (success, stdout, stderr).
fn psql_with(conn: &str, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new("psql")
        .arg(conn)
        .args(["-X", "-A", "-t", "-q"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// psql with `-c sql` that must succeed; returns stdout.
fn psql_ok(f: &Fixture, sql: &str) -> String {
    let (ok, out, err) = common::psql(&f.conn_str(), sql);
    assert!(
        ok,
        "psql failed for {sql:?}\nstdout: {out}\nstderr: {err}\ngateway log:\n{}",
        f.gw.log()
    );
    out
}

#[test]
fn psql_simple_query_returns_the_row() {
    let f = fixture();
    assert_eq!(
        psql_ok(&f, "select 40 + 2, 'through the gateway'"),
        "42|through the gateway\n"
    );
}

#[test]
fn psql_multi_statement_string_returns_every_result() {
    let f = fixture();
    assert_eq!(
        psql_ok(&f, "select 1; select 2; select 'three'"),
        "1\n2\nthree\n"
    );
}

#[test]
fn psql_error_keeps_its_sqlstate_and_the_session_stays_usable() {
    let f = fixture();
    let (ok, out, err) = psql_with(
        &f.conn_str(),
        &["-v", "VERBOSITY=verbose"],
        "select 1/0;\nselect 'still alive';\n",
    );
    assert!(ok, "without ON_ERROR_STOP psql exits 0: {err}");
    assert!(
        err.contains("ERROR:  22012: division by zero"),
        "stderr: {err}"
    );
    assert_eq!(
        out, "still alive\n",
        "the statement after the error ran in the same session"
    );
}

#[test]
fn psql_error_in_multi_statement_string_stops_the_rest() {
    let f = fixture();
    f.direct("create table if not exists psql_multi_err (v int); grant all on psql_multi_err to scram_user;");
    let (ok, _out, err) = common::psql(
        &f.conn_str(),
        "insert into psql_multi_err values (1); select 1/0; insert into psql_multi_err values (2)",
    );
    assert!(!ok);
    assert!(err.contains("division by zero"), "stderr: {err}");
    // A multi-statement Query is one implicit transaction: nothing persists.
    assert_eq!(f.direct("select count(*) from psql_multi_err"), "0\n");
}

#[test]
fn psql_notice_reaches_stderr() {
    let f = fixture();
    let (ok, out, err) = common::psql(
        &f.conn_str(),
        "do $$ begin raise notice 'hi from plpgsql'; end $$; select 'after'",
    );
    assert!(ok, "stderr: {err}");
    assert!(err.contains("NOTICE:  hi from plpgsql"), "stderr: {err}");
    assert_eq!(out, "after\n");
}

#[test]
fn psql_rollback_leaves_nothing_and_commit_persists() {
    let f = fixture();
    psql_ok(&f, "create table psql_tx (v int)");
    let script =
        "begin;\ninsert into psql_tx values (1);\nselect count(*) from psql_tx;\nrollback;\n\
                  begin;\ninsert into psql_tx values (2);\ncommit;\nselect v from psql_tx;\n";
    let (ok, out, err) = psql_with(&f.conn_str(), &["-v", "ON_ERROR_STOP=1"], script);
    assert!(ok, "stderr: {err}");
    assert_eq!(
        out, "1\n2\n",
        "the insert is visible inside its transaction, only the committed one stays"
    );
    assert_eq!(f.direct("select array_agg(v) from psql_tx"), "{2}\n");
}

#[test]
fn psql_sees_parameter_status_from_startup_and_after_set() {
    let f = fixture();
    let direct_version = f.direct("show server_version_num");
    let script = "\\echo :SERVER_VERSION_NUM\n\
                  set application_name = 'sluice_psql_test';\nshow application_name;\n\
                  set client_encoding = 'LATIN1';\n\\encoding\n";
    let (ok, out, err) = psql_with(&f.conn_str(), &["-v", "ON_ERROR_STOP=1"], script);
    assert!(ok, "stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    // SERVER_VERSION_NUM comes from the server_version ParameterStatus at startup.
    assert_eq!(lines[0], direct_version.trim(), "output: {out}");
    assert_eq!(lines[1], "sluice_psql_test");
    // \encoding prints what libpq learnt from the client_encoding ParameterStatus.
    assert_eq!(lines[2], "LATIN1", "output: {out}");
}

#[test]
fn psql_copy_from_stdin_loads_every_row() {
    let f = fixture();
    psql_ok(&f, "create table psql_copy_in (id int, name text)");
    let mut script = String::from("copy psql_copy_in from stdin;\n");
    for i in 1..=1000 {
        script.push_str(&format!("{i}\tname {i}\n"));
    }
    script.push_str("\\.\nselect count(*), sum(id), max(name) from psql_copy_in;\n");
    let (ok, out, err) = psql_with(&f.conn_str(), &["-v", "ON_ERROR_STOP=1"], &script);
    assert!(ok, "stderr: {err}");
    assert_eq!(out, "1000|500500|name 999\n");
    assert_eq!(f.direct("select count(*) from psql_copy_in"), "1000\n");
}

#[test]
fn psql_backslash_copy_from_a_file_loads_every_row() {
    let f = fixture();
    psql_ok(&f, "create table psql_bcopy (id int, name text)");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rows.csv");
    let body: String = (1..=500).map(|i| format!("{i},\"row, {i}\"\n")).collect();
    std::fs::write(&file, body).unwrap();
    psql_ok(
        &f,
        &format!(
            "\\copy psql_bcopy from '{}' with (format csv)",
            file.display()
        ),
    );
    assert_eq!(
        f.direct("select count(*), sum(id), min(name) from psql_bcopy"),
        "500|125250|row, 1\n"
    );
}

#[test]
fn psql_copy_from_stdin_error_is_reported_and_loads_nothing() {
    let f = fixture();
    psql_ok(&f, "create table psql_copy_bad (id int)");
    let (ok, out, err) = psql_with(
        &f.conn_str(),
        &[],
        "copy psql_copy_bad from stdin;\n1\nnot a number\n\\.\nselect count(*) from psql_copy_bad;\n",
    );
    assert!(ok, "stderr: {err}");
    assert!(
        err.contains("invalid input syntax for type integer"),
        "stderr: {err}"
    );
    assert_eq!(
        out, "0\n",
        "the failed COPY loaded nothing and the session went on"
    );
}

#[test]
fn psql_copy_to_stdout_streams_every_row() {
    let f = fixture();
    let out = psql_ok(
        &f,
        "copy (select i, 'v' || i from generate_series(1, 5000) i) to stdout with (format csv)",
    );
    let expected: String = (1..=5000).map(|i| format!("{i},v{i}\n")).collect();
    assert_eq!(out.len(), expected.len());
    assert!(
        out == expected,
        "COPY output differs from what was generated"
    );
}

#[test]
fn psql_cancel_with_sigint_cancels_the_running_statement() {
    let f = fixture();
    let child = Command::new("psql")
        .arg(f.conn_str())
        .args([
            "-X",
            "-A",
            "-t",
            "-c",
            "select pg_sleep(30) /* psql_cancel */",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_active(&f, "psql_cancel");
    let started = Instant::now();
    let ok = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(ok.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cancel took {:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains("canceling statement due to user request"),
        "stderr: {stderr}\nlog:\n{}",
        f.gw.log()
    );
    assert!(!out.status.success());
}

/// Waits until a statement containing `tag` is running on the server.
fn wait_for_active(f: &Fixture, tag: &str) {
    let start = Instant::now();
    let sql = format!(
        "select count(*) from pg_stat_activity where state = 'active' and query like '%{tag}%' and query not like '%pg_stat_activity%'"
    );
    while f.direct(&sql).trim() != "1" {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "statement {tag} never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------- psycopg

#[test]
fn psycopg_client_suite_passes_through_the_gateway() {
    let f = fixture();
    let script = common::py_dir().join("clients.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(f.conn_str())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "clients.py failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}\ngateway log tail:\n{}",
        out.status,
        tail(&f.gw.log(), 40)
    );
    assert!(
        stdout.contains("all psycopg checks passed"),
        "stdout:\n{stdout}"
    );
    println!("{stdout}");
}
