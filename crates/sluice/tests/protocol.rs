//! Real clients (psql, tokio-postgres, psycopg) talk to a real PostgreSQL
//! through the `sluice` binary and get exactly what PostgreSQL would give
//! them: results, errors with their SQLSTATE, notices, ParameterStatus,
//! COPY in both directions, LISTEN/NOTIFY, pipelines and cancellation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{shared_fixture, Fixture};
use futures_util::{future, StreamExt, TryStreamExt};
use std::io::{Cursor, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, NoTls, SimpleQueryMessage};

const IDENTITY: &str = "proto-tester";

impl Fixture {
    fn conn_str(&self) -> String {
        self.gw.conn_str(IDENTITY, &self.key, "app")
    }

    /// Runs SQL directly on the server as superuser (not through the gateway).
    fn direct(&self, sql: &str) -> String {
        self.pg.psql("app", sql)
    }
}

fn fixture() -> Arc<Fixture> {
    shared_fixture(IDENTITY, |_| {})
}

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

async fn connect(f: &Fixture) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&f.conn_str(), NoTls).await.unwrap();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("connection error: {e}");
        }
    });
    client
}

fn code(e: &tokio_postgres::Error) -> Option<&SqlState> {
    e.as_db_error().map(|d| d.code())
}

// ---------------------------------------------------------------- psql

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

// ---------------------------------------------------------- tokio-postgres

#[tokio::test]
async fn prepared_statement_with_parameters_is_reused_by_name() {
    let f = fixture();
    let client = connect(&f).await;
    let stmt = client
        .prepare("select $1::int4 * 2, $2::text || '!'")
        .await
        .unwrap();
    for i in 0..20 {
        let row = client
            .query_one(&stmt, &[&i, &format!("n{i}")])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), i * 2);
        assert_eq!(row.get::<_, String>(1), format!("n{i}!"));
    }
    // The named statement exists on the backend the gateway holds for us.
    let n: i64 = client
        .query_one("select count(*) from pg_prepared_statements where statement like 'select $1::int4 * 2%'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn binary_results_decode_to_the_right_values() {
    let f = fixture();
    let client = connect(&f).await;
    let row = client
        .query_one(
            "select 7::int2, 2147483647::int4, 9007199254740993::int8, 1.5::float8, true, \
             '\\xdeadbeef'::bytea, array['a', 'b', null]::text[], null::int4, $1::bytea",
            &[&vec![0u8, 1, 2, 255]],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i16>(0), 7);
    assert_eq!(row.get::<_, i32>(1), i32::MAX);
    assert_eq!(row.get::<_, i64>(2), 9_007_199_254_740_993);
    assert_eq!(row.get::<_, f64>(3), 1.5);
    assert!(row.get::<_, bool>(4));
    assert_eq!(row.get::<_, Vec<u8>>(5), vec![0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(
        row.get::<_, Vec<Option<String>>>(6),
        vec![Some("a".into()), Some("b".into()), None]
    );
    assert_eq!(row.get::<_, Option<i32>>(7), None);
    assert_eq!(row.get::<_, Vec<u8>>(8), vec![0, 1, 2, 255]);
}

#[tokio::test]
async fn pipelined_queries_on_one_connection_each_get_their_own_result() {
    let f = fixture();
    let client = connect(&f).await;
    let stmt = client
        .prepare("select $1::int8 + 1000, pg_backend_pid()")
        .await
        .unwrap();
    let futures = (0..50i64).map(|i| {
        let client = &client;
        let stmt = &stmt;
        async move {
            client
                .query_one(stmt, &[&i])
                .await
                .map(|r| (i, r.get::<_, i64>(0), r.get::<_, i32>(1)))
        }
    });
    let results = future::try_join_all(futures).await.unwrap();
    assert_eq!(results.len(), 50);
    let pid = results[0].2;
    for (i, v, p) in results {
        assert_eq!(v, i + 1000);
        assert_eq!(p, pid, "one backend serves the whole pipeline");
    }
}

#[tokio::test]
async fn an_error_in_a_pipeline_fails_only_its_own_query() {
    let f = fixture();
    let client = connect(&f).await;
    let (a, b, c) = tokio::join!(
        client.query_one("select 1::int4", &[]),
        client.query_one("select 1/0", &[]),
        client.query_one("select 3::int4", &[]),
    );
    assert_eq!(a.unwrap().get::<_, i32>(0), 1);
    assert_eq!(code(&b.unwrap_err()), Some(&SqlState::DIVISION_BY_ZERO));
    assert_eq!(c.unwrap().get::<_, i32>(0), 3);
}

#[tokio::test]
async fn errors_keep_their_sqlstate_and_fields_and_the_connection_stays_usable() {
    let f = fixture();
    let client = connect(&f).await;
    client
        .batch_execute("create table tp_errors (id int primary key)")
        .await
        .unwrap();
    client
        .execute("insert into tp_errors values (1)", &[])
        .await
        .unwrap();

    let e = client
        .execute("insert into tp_errors values (1)", &[])
        .await
        .unwrap_err();
    let db = e.as_db_error().expect("a database error");
    assert_eq!(db.code(), &SqlState::UNIQUE_VIOLATION);
    assert_eq!(db.table(), Some("tp_errors"));
    assert_eq!(db.constraint(), Some("tp_errors_pkey"));
    assert!(
        db.detail().unwrap_or_default().contains("(id)=(1)"),
        "{db:?}"
    );

    let e = client
        .query("select * from no_such_table", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(&SqlState::UNDEFINED_TABLE));
    let e = client.simple_query("selec 1").await.unwrap_err();
    assert_eq!(code(&e), Some(&SqlState::SYNTAX_ERROR));
    let e = client.prepare("select $1::int4 + nope").await.unwrap_err();
    assert_eq!(code(&e), Some(&SqlState::UNDEFINED_COLUMN));

    let n: i64 = client
        .query_one("select count(*) from tp_errors", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn simple_query_protocol_returns_every_statements_rows() {
    let f = fixture();
    let client = connect(&f).await;
    let msgs = client
        .simple_query("select 'a' as x; select 'b' union all select 'c'")
        .await
        .unwrap();
    let rows: Vec<String> = msgs
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(rows, ["a", "b", "c"]);
    let completes = msgs
        .iter()
        .filter(|m| matches!(m, SimpleQueryMessage::CommandComplete(_)))
        .count();
    assert_eq!(completes, 2);
}

#[tokio::test]
async fn transactions_roll_back_and_commit() {
    let f = fixture();
    let mut client = connect(&f).await;
    client
        .batch_execute("create table tp_tx (v int)")
        .await
        .unwrap();

    let tx = client.transaction().await.unwrap();
    tx.execute("insert into tp_tx values (1)", &[])
        .await
        .unwrap();
    let inside: i64 = tx
        .query_one("select count(*) from tp_tx", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(inside, 1);
    tx.rollback().await.unwrap();

    let tx = client.transaction().await.unwrap();
    tx.execute("insert into tp_tx values (2)", &[])
        .await
        .unwrap();
    // An error aborts the transaction; the rest of it is refused until rollback.
    let e = tx
        .execute("insert into tp_tx values ('x')", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(&SqlState::INVALID_TEXT_REPRESENTATION));
    let e = tx
        .execute("insert into tp_tx values (3)", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    tx.rollback().await.unwrap();

    let tx = client.transaction().await.unwrap();
    tx.execute("insert into tp_tx values (4)", &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let values: Vec<i32> = client
        .query("select v from tp_tx", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(values, [4]);
    assert_eq!(f.direct("select array_agg(v) from tp_tx"), "{4}\n");
}

#[tokio::test]
async fn copy_in_loads_every_row_and_copy_out_streams_them_back() {
    let f = fixture();
    let client = connect(&f).await;
    client
        .batch_execute("create table tp_copy (id int, name text)")
        .await
        .unwrap();

    let mut data = Vec::new();
    for i in 0..20_000 {
        writeln!(data, "{i}\tname-{i}").unwrap();
    }
    let sink = client.copy_in("copy tp_copy from stdin").await.unwrap();
    let mut sink = std::pin::pin!(sink);
    // Several CopyData messages of uneven size.
    for chunk in data.chunks(7_777) {
        futures_util::SinkExt::send(&mut sink, Cursor::new(chunk.to_vec()))
            .await
            .unwrap();
    }
    let n = sink.finish().await.unwrap();
    assert_eq!(n, 20_000);

    let stream = client
        .copy_out("copy (select * from tp_copy order by id) to stdout")
        .await
        .unwrap();
    let out = stream
        .try_fold(Vec::new(), |mut acc, chunk| async move {
            acc.extend_from_slice(&chunk);
            Ok(acc)
        })
        .await
        .unwrap();
    assert!(
        out == data,
        "COPY out returned {} bytes, expected {}",
        out.len(),
        data.len()
    );
}

#[tokio::test]
async fn a_failed_copy_in_reports_the_error_and_the_connection_stays_usable() {
    let f = fixture();
    let client = connect(&f).await;
    client
        .batch_execute("create table tp_copy_bad (id int)")
        .await
        .unwrap();
    let sink = client.copy_in("copy tp_copy_bad from stdin").await.unwrap();
    let mut sink = std::pin::pin!(sink);
    futures_util::SinkExt::send(&mut sink, Cursor::new(b"1\nnope\n".to_vec()))
        .await
        .unwrap();
    let e = sink.finish().await.unwrap_err();
    assert_eq!(
        code(&e),
        Some(&SqlState::INVALID_TEXT_REPRESENTATION),
        "{e:?}"
    );
    let n: i64 = client
        .query_one("select count(*) from tp_copy_bad", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn listen_notify_delivers_the_notification_with_its_payload() {
    let f = fixture();
    let (listener, mut connection) = tokio_postgres::connect(&f.conn_str(), NoTls).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = tx.send((
                        n.channel().to_owned(),
                        n.payload().to_owned(),
                        n.process_id(),
                    ));
                }
                Ok(_) => {}
                Err(e) => panic!("listener connection failed: {e}"),
            }
        }
    });
    listener
        .batch_execute("listen sluice_events")
        .await
        .unwrap();

    let notifier = connect(&f).await;
    notifier
        .execute("select pg_notify('sluice_events', $1)", &[&"payload one"])
        .await
        .unwrap();
    notifier
        .batch_execute("notify sluice_events, 'payload two'")
        .await
        .unwrap();
    notifier
        .batch_execute("notify other_channel, 'not for us'")
        .await
        .unwrap();

    let mut got = Vec::new();
    for _ in 0..2 {
        let n = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("notification in time")
            .unwrap();
        got.push(n);
    }
    assert_eq!(got[0].0, "sluice_events");
    assert_eq!(got[0].1, "payload one");
    assert_eq!(got[1].1, "payload two");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err(),
        "no notification on a channel we did not listen to"
    );
}

#[tokio::test]
async fn a_large_result_streams_every_row_through_the_gateway() {
    let f = fixture();
    let client = connect(&f).await;
    let rows = client
        .query_raw(
            "select i, repeat('x', 1000) from generate_series(1, 50000) i",
            std::iter::empty::<i32>(),
        )
        .await
        .unwrap();
    let mut rows = std::pin::pin!(rows);
    let (mut count, mut sum, mut bytes) = (0u64, 0i64, 0usize);
    while let Some(row) = rows.try_next().await.unwrap() {
        count += 1;
        sum += i64::from(row.get::<_, i32>(0));
        let s: &str = row.get(1);
        bytes += s.len();
    }
    assert_eq!(count, 50_000);
    assert_eq!(sum, 50_000 * 50_001 / 2);
    assert_eq!(bytes, 50_000 * 1000);
    // The connection is in a clean state afterwards.
    let one: i32 = client.query_one("select 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}

#[tokio::test]
async fn cancel_request_stops_a_running_query_and_the_connection_stays_usable() {
    let f = fixture();
    let client = connect(&f).await;
    let token = client.cancel_token();
    let started = Instant::now();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        token.cancel_query(NoTls).await
    });
    let e = client.query("select pg_sleep(30)", &[]).await.unwrap_err();
    assert_eq!(code(&e), Some(&SqlState::QUERY_CANCELED), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cancel took {:?}",
        started.elapsed()
    );
    canceller.await.unwrap().unwrap();
    let v: i32 = client.query_one("select 5", &[]).await.unwrap().get(0);
    assert_eq!(v, 5);
}

#[tokio::test]
async fn a_cancel_key_of_another_session_cannot_cancel_this_one() {
    let f = fixture();
    let victim = connect(&f).await;
    let other = connect(&f).await;
    // The other session is idle: cancelling it must not touch the victim.
    let token = other.cancel_token();
    let q = victim.query_one("select pg_sleep(1.5), 'finished'", &[]);
    let cancel = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await.unwrap();
    };
    let (row, ()) = tokio::join!(q, cancel);
    assert_eq!(row.unwrap().get::<_, &str>(1), "finished");
}

#[tokio::test]
async fn large_single_values_pass_both_ways() {
    let f = fixture();
    let client = connect(&f).await;
    // One 8 MB Bind message in, one 8 MB DataRow out (twice: echoed and generated).
    let big: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let row = client
        .query_one(
            "select $1::bytea, length($1::bytea), repeat('y', 8000000)",
            &[&big],
        )
        .await
        .unwrap();
    assert!(
        row.get::<_, Vec<u8>>(0) == big,
        "the 8 MB value came back changed"
    );
    assert_eq!(row.get::<_, i32>(1), big.len() as i32);
    assert_eq!(row.get::<_, &str>(2).len(), 8_000_000);
}

#[tokio::test]
async fn a_backend_terminated_by_the_server_ends_the_client_session_with_57p01() {
    let f = fixture();
    let client = connect(&f).await;
    let pid: i32 = client
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let victim = connect(&f).await;
    let victim_pid: i32 = victim
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(pid, victim_pid, "each client session has its own backend");
    // The victim terminates its own backend: PostgreSQL sends FATAL 57P01
    // and closes; the gateway passes the FATAL on and closes the client.
    let e = victim
        .simple_query("select pg_terminate_backend(pg_backend_pid())")
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(&SqlState::ADMIN_SHUTDOWN), "{e:?}");
    let start = Instant::now();
    while !victim.is_closed() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the gateway did not close the client"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Other sessions are unaffected.
    let v: i32 = client.query_one("select 9", &[]).await.unwrap().get(0);
    assert_eq!(v, 9);
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

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ------------------------------------------------ raw protocol, differential
//
// The same byte sequences sent straight to PostgreSQL and through the
// gateway must produce the same replies: the gateway may hold an extended
// batch for a decision, but must never reorder what the client sent.

/// A blocking raw-protocol client (SCRAM login, then whatever bytes a test writes).
struct Raw {
    s: std::net::TcpStream,
    buf: Vec<u8>,
}

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn parse(sql: &str) -> Vec<u8> {
    msg(b'P', &[cstr(""), cstr(sql), vec![0, 0]].concat())
}
/// Bind of the unnamed statement to the unnamed portal, no parameters, text results.
fn bind() -> Vec<u8> {
    msg(b'B', &[0, 0, 0, 0, 0, 0, 0, 0])
}
fn describe_portal() -> Vec<u8> {
    msg(b'D', b"P\0")
}
fn execute() -> Vec<u8> {
    msg(b'E', &[0, 0, 0, 0, 0])
}
fn sync() -> Vec<u8> {
    msg(b'S', &[])
}
fn flush() -> Vec<u8> {
    msg(b'H', &[])
}
fn query(sql: &str) -> Vec<u8> {
    msg(b'Q', &cstr(sql))
}

impl Raw {
    fn connect(port: u16, user: &str, password: &str) -> Raw {
        use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut raw = Raw { s, buf: Vec::new() };
        let mut body = 196_608i32.to_be_bytes().to_vec();
        for (k, v) in [("user", user), ("database", "app")] {
            body.extend(cstr(k));
            body.extend(cstr(v));
        }
        body.push(0);
        let mut startup = (body.len() as i32 + 4).to_be_bytes().to_vec();
        startup.extend(body);
        raw.send(&startup);
        let mut scram: Option<ScramSha256> = None;
        loop {
            let (tag, body) = raw.next().expect("startup reply");
            match tag {
                b'R' => {
                    let code = i32::from_be_bytes(body[..4].try_into().unwrap());
                    match code {
                        0 => {}
                        10 => {
                            let s = ScramSha256::new(
                                password.as_bytes(),
                                ChannelBinding::unsupported(),
                            );
                            let mut b = cstr("SCRAM-SHA-256");
                            b.extend((s.message().len() as i32).to_be_bytes());
                            b.extend_from_slice(s.message());
                            raw.send(&msg(b'p', &b));
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram.as_mut().unwrap();
                            s.update(&body[4..]).unwrap();
                            let m = msg(b'p', s.message());
                            raw.send(&m);
                        }
                        12 => scram.take().unwrap().finish(&body[4..]).unwrap(),
                        other => panic!("unexpected auth request {other}"),
                    }
                }
                b'E' => panic!("login failed: {}", String::from_utf8_lossy(&body)),
                b'Z' => return raw,
                _ => {}
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    /// The next message, or None on timeout/EOF.
    fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        use std::io::Read;
        loop {
            if self.buf.len() >= 5 {
                let len = i32::from_be_bytes(self.buf[1..5].try_into().unwrap()) as usize;
                if self.buf.len() > len {
                    let frame: Vec<u8> = self.buf.drain(..=len).collect();
                    return Some((frame[0], frame[5..].to_vec()));
                }
            }
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads until `zs` ReadyForQuery (or a timeout), summarizing each message:
    /// tag plus the part that matters (row data, command tag, SQLSTATE, status).
    fn replies(&mut self, zs: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = 0;
        while seen < zs {
            let Some((tag, body)) = self.next() else {
                out.push("<timeout>".into());
                break;
            };
            let text = |b: &[u8]| String::from_utf8_lossy(b).trim_end_matches('\0').to_owned();
            let line = match tag {
                b'D' => format!("D {}", data_row(&body).join("|")),
                b'C' => format!("C {}", text(&body)),
                b'E' => {
                    let code = body
                        .split(|&b| b == 0)
                        .find(|f| f.first() == Some(&b'C'))
                        .map(|f| text(&f[1..]));
                    format!("E {}", code.unwrap_or_default())
                }
                b'Z' => {
                    seen += 1;
                    format!("Z {}", body[0] as char)
                }
                b'G' | b'H' => format!("{} copy", tag as char),
                // Notices, ParameterStatus: not what these tests compare.
                b'N' | b'S' => continue,
                t => (t as char).to_string(),
            };
            out.push(line);
        }
        out
    }
}

/// The text values of a DataRow (NULL as `NULL`).
fn data_row(body: &[u8]) -> Vec<String> {
    let n = i16::from_be_bytes([body[0], body[1]]);
    let mut at = 2;
    (0..n)
        .map(|_| {
            let len = i32::from_be_bytes(body[at..at + 4].try_into().unwrap());
            at += 4;
            if len < 0 {
                return "NULL".to_owned();
            }
            let v = String::from_utf8_lossy(&body[at..at + len as usize]).into_owned();
            at += len as usize;
            v
        })
        .collect()
}

/// Sends `bytes` (in one write) directly and through the gateway; asserts
/// both sides reply the same and returns the replies.
fn same_replies_direct_and_through_gateway(
    f: &Fixture,
    setup: &str,
    bytes: &[u8],
    zs: usize,
) -> Vec<String> {
    let mut results = Vec::new();
    for (port, user, pw) in [
        (f.pg.port(), "scram_user", "scram_pw"),
        (f.gw.port, IDENTITY, f.key.as_str()),
    ] {
        if !setup.is_empty() {
            f.direct(setup);
        }
        let mut raw = Raw::connect(port, user, pw);
        raw.send(bytes);
        results.push(raw.replies(zs));
    }
    assert_eq!(
        results[1],
        results[0],
        "through the gateway (left) vs direct (right)\nlog:\n{}",
        tail(&f.gw.log(), 20)
    );
    results.pop().unwrap()
}

#[test]
fn an_extended_batch_ended_by_flush_is_answered_before_sync() {
    let f = fixture();
    let mut raw = Raw::connect(f.gw.port, IDENTITY, &f.key);
    raw.send(
        &[
            parse("select 'flushed'"),
            bind(),
            describe_portal(),
            execute(),
            flush(),
        ]
        .concat(),
    );
    let mut got = Vec::new();
    while got.len() < 5 {
        let Some((tag, _)) = raw.next() else { break };
        got.push(tag as char);
    }
    assert_eq!(
        got,
        ['1', '2', 'T', 'D', 'C'],
        "results arrive on Flush, with no Sync sent"
    );
    raw.send(&sync());
    assert_eq!(raw.replies(1), ["Z I"]);
}

#[test]
fn a_simple_query_after_unsynced_extended_messages_keeps_its_place() {
    let f = fixture();
    let bytes = [
        parse("select 'first'"),
        bind(),
        execute(),
        query("select 'second'"),
        sync(),
    ]
    .concat();
    let got = same_replies_direct_and_through_gateway(&f, "", &bytes, 2);
    assert_eq!(
        got,
        [
            "1",
            "2",
            "D first",
            "C SELECT 1",
            "T",
            "D second",
            "C SELECT 1",
            "Z I",
            "Z I"
        ]
    );
}

#[test]
fn extended_copy_from_stdin_with_data_sent_before_sync_loads_the_rows() {
    let f = fixture();
    let bytes = [
        parse("copy raw_copy from stdin"),
        bind(),
        execute(),
        msg(b'd', b"1\n2\n"),
        msg(b'd', b"3\n"),
        msg(b'c', &[]),
        sync(),
    ]
    .concat();
    let setup = "drop table if exists raw_copy; create table raw_copy (v int); grant all on raw_copy to scram_user;";
    let got = same_replies_direct_and_through_gateway(&f, setup, &bytes, 1);
    assert_eq!(got, ["1", "2", "G copy", "C COPY 3", "Z I"]);
    assert_eq!(f.direct("select sum(v) from raw_copy"), "6\n");
}

#[test]
fn an_error_in_an_extended_batch_skips_to_sync_like_postgres() {
    let f = fixture();
    let bytes = [
        parse("select 1/0"),
        bind(),
        execute(),
        parse("select 'skipped'"),
        bind(),
        execute(),
        sync(),
        parse("select 'next'"),
        bind(),
        execute(),
        sync(),
    ]
    .concat();
    let got = same_replies_direct_and_through_gateway(&f, "", &bytes, 2);
    // 1/0 is folded while planning, which for the unnamed statement is at Bind.
    assert_eq!(
        got,
        [
            "1",
            "E 22012",
            "Z I",
            "1",
            "2",
            "D next",
            "C SELECT 1",
            "Z I"
        ]
    );
}

#[test]
fn an_empty_query_gets_an_empty_query_response() {
    let f = fixture();
    let got = same_replies_direct_and_through_gateway(&f, "", &[query(""), query(";")].concat(), 2);
    assert_eq!(got, ["I", "Z I", "I", "Z I"]);
}
