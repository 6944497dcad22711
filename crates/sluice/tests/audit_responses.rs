//! What came back for each statement is in the audit log: status, rows,
//! bytes, duration and the content as the client received it, cut at the
//! configured cap; and the durability rule inside transactions and with
//! `fail_open_reads`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::raw::{bind, execute, parse, sync, Raw};
use common::{pg_connect, psql, remove_dir_under_writer, resource_toml, Gateway, ALLOW_ALL};
use sluice_audit::{AuditLog, Body, Record, ResponseRecord, ResponseStatus};
use sluice_testkit::PgServer;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn gateway(pg: &PgServer, audit: &str) -> Gateway {
    let resources = format!(
        "[audit]\n{audit}\n\n{}",
        resource_toml("app", pg, "scram_user", Some("PW"), "")
    );
    let mut gw = Gateway::configure_with_policy("", &resources, ALLOW_ALL);
    gw.start(&[("PW", "scram_pw")]);
    gw
}

/// Stops the gateway (so every record is written) and reads all sessions'
/// records, oldest session first.
fn stop_and_read(gw: &mut Gateway) -> Vec<Record> {
    gw.signal("TERM");
    gw.wait_exit(Duration::from_secs(10))
        .expect("gateway exits");
    let log = AuditLog::open_read_only(&gw.dir.path().join("data")).unwrap();
    let mut sessions = log.sessions(&Default::default()).unwrap();
    sessions.reverse();
    sessions
        .iter()
        .flat_map(|s| log.session_records(&s.id).unwrap())
        .collect()
}

/// Each statement text with the response recorded for it.
fn answered(records: &[Record]) -> Vec<(String, ResponseRecord)> {
    records
        .iter()
        .filter_map(|r| match &r.body {
            Body::Response(resp) => {
                let statement = records.iter().find(|s| s.seq == resp.statement_seq)?;
                match &statement.body {
                    Body::Statement(s) => Some((s.text.clone(), resp.clone())),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}

fn response_to<'a>(all: &'a [(String, ResponseRecord)], text: &str) -> &'a ResponseRecord {
    &all.iter()
        .find(|(t, _)| t == text)
        .unwrap_or_else(|| panic!("no response recorded for {text:?} in {all:#?}"))
        .1
}

#[test]
fn each_response_is_recorded_with_status_rows_and_the_content_the_client_saw() {
    let pg = PgServer::start();
    let mut gw = gateway(&pg, "");
    let key = gw.create_key("agent-1", "agents");
    let conn = gw.conn_str("agent-1", &key, "app");
    let setup = "create table people (id int, name text)";
    let insert = "insert into people values (1, 'ann'), (2, NULL), (3, 'tab\there')";
    let select = "select id, name from people order by id";
    let failing = "select * from no_such_table";
    let several = "select 1 as one; update people set name = 'bo' where id = 2";
    for sql in [setup, insert, select, several] {
        let (ok, _, err) = psql(&conn, sql);
        assert!(ok, "{sql}: {err}");
    }
    let (ok, _, err) = psql(&conn, failing);
    assert!(!ok && err.contains("no_such_table"), "{err}");

    let records = stop_and_read(&mut gw);
    let all = answered(&records);
    let r = response_to(&all, insert);
    assert_eq!(r.status, ResponseStatus::CommandTag("INSERT 0 3".into()));
    assert_eq!(r.rows, 3);

    let r = response_to(&all, select);
    assert_eq!(r.status, ResponseStatus::CommandTag("SELECT 3".into()));
    assert_eq!(r.rows, 3);
    assert_eq!(r.content, "id\tname\n1\tann\n2\t\\N\n3\ttab\\there\n");
    assert!(!r.truncated);
    assert!(r.bytes > r.content.len() as u64, "{r:?}");

    let r = response_to(&all, failing);
    assert_eq!(
        r.status,
        ResponseStatus::Error {
            sqlstate: "42P01".into(),
            message: "relation \"no_such_table\" does not exist".into()
        }
    );

    let r = response_to(&all, several);
    assert_eq!(
        r.status,
        ResponseStatus::CommandTag("SELECT 1; UPDATE 1".into())
    );
    assert_eq!(r.rows, 2);
    assert_eq!(r.content, "one\n1\n");

    // The session's end carries the totals.
    let end = records
        .iter()
        .find_map(|r| match &r.body {
            Body::SessionEnd(e) if e.statements == 1 && e.rows == 3 => Some(e),
            _ => None,
        })
        .expect("the select's session end with its rows");
    assert!(end.bytes > 0);
}

#[test]
fn an_execute_after_a_failed_one_in_its_batch_is_recorded_as_skipped() {
    let pg = PgServer::start();
    let mut gw = gateway(&pg, "");
    let key = gw.create_key("agent-1", "agents");
    let mut raw = Raw::connect(gw.port, "agent-1", &key);
    let mut batch = Vec::new();
    for sql in ["select 1/0", "select 'after'"] {
        batch.extend(parse(sql));
        batch.extend(bind());
        batch.extend(execute());
    }
    batch.extend(sync());
    raw.send(&batch);
    let replies = raw.replies(1);
    assert!(
        replies.iter().any(|r| r.contains("22012")),
        "division by zero reaches the client: {replies:?}"
    );
    drop(raw);

    let all = answered(&stop_and_read(&mut gw));
    let r = response_to(&all, "select 1/0");
    assert!(
        matches!(&r.status, ResponseStatus::Error { sqlstate, .. } if sqlstate == "22012"),
        "{r:?}"
    );
    assert_eq!(
        response_to(&all, "select 'after'").status,
        ResponseStatus::Skipped
    );
}

#[test]
fn content_beyond_the_cap_is_cut_and_marked_truncated() {
    let pg = PgServer::start();
    let mut gw = gateway(&pg, "response_content_bytes = 64");
    let key = gw.create_key("agent-1", "agents");
    let sql = "select g, repeat('x', 20) from generate_series(1, 1000) g";
    let (ok, out, err) = psql(&gw.conn_str("agent-1", &key, "app"), sql);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 1000, "the client gets every row");

    let all = answered(&stop_and_read(&mut gw));
    let r = response_to(&all, sql);
    assert_eq!(r.rows, 1000);
    assert!(r.truncated);
    assert!(r.content.len() <= 64, "{}", r.content.len());
    assert!(r.content.starts_with("g\trepeat\n1\txxxx"), "{}", r.content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_in_a_transaction_never_commits_when_its_record_cannot_be_made_durable() {
    let pg = PgServer::start();
    let gw = gateway(&pg, "");
    let key = gw.create_key("agent-1", "agents");
    pg.psql(
        "app",
        "create table ledger (id int); alter table ledger owner to scram_user; insert into ledger values (0);",
    );
    let (client, _task) = pg_connect(&gw.conn_str("agent-1", &key, "app"))
        .await
        .unwrap();
    client.batch_execute("begin").await.unwrap();
    client
        .batch_execute("insert into ledger values (1)")
        .await
        .unwrap();
    // The store's files disappear under the running gateway.
    remove_dir_under_writer(&gw.dir.path().join("data"));
    // Inside the transaction the insert runs at once (its record need not
    // be durable until COMMIT), or is refused if the writer already failed.
    let _ = client.batch_execute("insert into ledger values (2)").await;
    // The COMMIT needs every record of the transaction durable: it is
    // refused, or the session ends, and nothing commits.
    let e = client.batch_execute("commit").await.unwrap_err();
    assert!(
        e.as_db_error().map(|d| d.code().code()) == Some("58030") || e.is_closed(),
        "{e:?}"
    );
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(10);
    let open = "select count(*) from pg_stat_activity where usename = 'scram_user'";
    while pg.psql("postgres", open).trim() != "0" {
        assert!(Instant::now() < deadline, "the backend session stays open");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        pg.psql(
            "app",
            "select string_agg(id::text, ',' order by id) from ledger"
        )
        .trim(),
        "0",
        "nothing of the transaction committed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_reads_lets_reads_run_unrecorded_and_still_refuses_writes() {
    let pg = PgServer::start();
    let gw = gateway(&pg, "fail_open_reads = true");
    assert!(gw
        .wait_log("fail_open_reads = true", Duration::from_secs(5))
        .contains("UNRECORDED"));
    let key = gw.create_key("agent-1", "agents");
    pg.psql(
        "app",
        "create table notes (id int); alter table notes owner to scram_user; insert into notes values (7);",
    );
    let (client, _task) = pg_connect(&gw.conn_str("agent-1", &key, "app"))
        .await
        .unwrap();
    client.batch_execute("select 1").await.unwrap();
    remove_dir_under_writer(&gw.dir.path().join("data"));
    // The writer notices at its next commit; reads keep working throughout.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = client.query_one("select id from notes", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 7);
        match client.batch_execute("insert into notes values (8)").await {
            Err(e) => {
                assert_eq!(
                    e.as_db_error().map(|d| d.code().code()),
                    Some("58030"),
                    "{e:?}"
                );
                break;
            }
            Ok(()) => {
                assert!(Instant::now() < deadline, "writes keep running unrecorded");
                remove_dir_under_writer(&gw.dir.path().join("data"));
            }
        }
    }
    let row = client
        .query_one("select count(*) from notes", &[])
        .await
        .unwrap();
    assert!(row.get::<_, i64>(0) >= 1);
    assert!(gw.log().contains("UNRECORDED"), "the log says so loudly");
}

#[test]
fn replay_follow_streams_a_live_session_until_it_ends() {
    let pg = PgServer::start();
    let gw = gateway(&pg, "");
    let key = gw.create_key("agent-1", "agents");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (client, task) = rt
        .block_on(pg_connect(&gw.conn_str("agent-1", &key, "app")))
        .unwrap();
    rt.block_on(client.batch_execute("select 'first'")).unwrap();
    let log = AuditLog::open_read_only(&gw.dir.path().join("data")).unwrap();
    let session = log.sessions(&Default::default()).unwrap()[0].id.clone();

    let mut follow = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["audit", "replay", &session, "--follow", "--config"])
        .arg(&gw.config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(line) => seen.push(line),
                Err(_) => panic!("{needle:?} never streamed; got {seen:#?}"),
            }
        }
    };
    wait_for("select 'first'");
    rt.block_on(client.batch_execute("select 'second'"))
        .unwrap();
    wait_for("select 'second'");
    drop(client);
    rt.block_on(task).ok();
    wait_for("session end");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = follow.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "--follow exits when the session ends"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
