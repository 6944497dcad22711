//! The audit log on the data path: every command is recorded before it
//! reaches the database, denied ones too, in order; a crash loses no record
//! of anything that ran; a store that cannot write stops statements.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{pg_connect, psql, remove_dir_under_writer, resource_toml, Gateway, ALLOW_ALL};
use sluice_audit::{AuditLog, Body, Record};
use sluice_testkit::PgServer;
use std::time::Duration;

const GUARD: &str = "@id(\"no-drop\")\n@reason(\"no drops in tests\")\nforbid(principal, action == Action::\"drop\", resource);\n";

fn gateway(pg: &PgServer) -> Gateway {
    let mut gw = Gateway::configure_with_policy(
        "",
        &resource_toml("app", pg, "scram_user", Some("PW"), ""),
        &format!("{ALLOW_ALL}{GUARD}"),
    );
    gw.start(&[("PW", "scram_pw")]);
    gw
}

/// The statement texts of one session, in order, with their outcome.
fn statements(records: &[Record]) -> Vec<(String, String)> {
    records
        .iter()
        .filter_map(|r| match &r.body {
            Body::Statement(s) => {
                let outcome = serde_json::to_value(&s.decision).unwrap()["outcome"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                Some((s.text.clone(), outcome))
            }
            _ => None,
        })
        .collect()
}

fn open_log(gw: &Gateway) -> AuditLog {
    AuditLog::open_read_only(&gw.dir.path().join("data")).unwrap()
}

/// A gateway, and a connection string for identity `writer` that owns a
/// new table (`definition`: name and columns).
fn writer_gateway(pg: &PgServer, definition: &str) -> (Gateway, String) {
    let gw = gateway(pg);
    let key = gw.create_key("writer", "agents");
    let conn = gw.conn_str("writer", &key, "app");
    let table = definition.split(' ').next().unwrap();
    pg.psql(
        "app",
        &format!("create table {definition}; alter table {table} owner to scram_user;"),
    );
    (gw, conn)
}

/// The gateway's log, after checking it verifies.
fn verified_log(gw: &Gateway) -> AuditLog {
    let log = open_log(gw);
    let report = log.verify(&|_, _| {}).unwrap();
    assert!(
        report.problem.is_none(),
        "the log does not verify after SIGKILL: {report:?}"
    );
    log
}

fn all_records(log: &AuditLog) -> Vec<Record> {
    let mut all = Vec::new();
    loop {
        let page = log
            .records_after(all.last().map_or(0, |r: &Record| r.seq), 10_000)
            .unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

#[test]
fn a_session_is_recorded_in_order_with_denied_statements_and_its_end() {
    let pg = PgServer::start();
    let mut gw = gateway(&pg);
    let key = gw.create_key("agent-1", "agents");
    let conn = gw.conn_str("agent-1", &key, "app");
    let script = "create table audited (id int); insert into audited values (1)";
    let (ok, _, err) = psql(&conn, script);
    assert!(ok, "{err}");
    let (ok, _, err) = psql(&conn, "drop table audited");
    assert!(!ok && err.contains("no drops in tests"), "{err}");
    let (ok, out, err) = psql(&conn, "select count(*) from audited");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "1");
    gw.signal("TERM");
    gw.wait_exit(Duration::from_secs(10))
        .expect("gateway exits");

    let log = open_log(&gw);
    let sessions = log.sessions(&Default::default()).unwrap();
    assert_eq!(sessions.len(), 3, "{sessions:?}");
    let mut all = Vec::new();
    for s in sessions.iter().rev() {
        let records = log.session_records(&s.id).unwrap();
        assert!(matches!(
            records.first().unwrap().body,
            Body::SessionStart(_)
        ));
        assert!(
            matches!(records.last().unwrap().body, Body::SessionEnd(_)),
            "{records:?}"
        );
        all.extend(statements(&records));
    }
    assert_eq!(
        all,
        vec![
            (script.to_owned(), "allow".to_owned()),
            ("drop table audited".to_owned(), "deny".to_owned()),
            (
                "select count(*) from audited".to_owned(),
                "allow".to_owned()
            ),
        ],
        "every command in order, the denied one too"
    );
    let report = log.verify(&|_, _| {}).unwrap();
    assert!(report.problem.is_none(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_execution_of_a_prepared_statement_is_recorded_with_its_parameters() {
    let pg = PgServer::start();
    let mut gw = gateway(&pg);
    let key = gw.create_key("agent-1", "agents");
    pg.psql(
        "app",
        "create table executed (id int, note text); alter table executed owner to scram_user;",
    );
    let (client, task) = pg_connect(&gw.conn_str("agent-1", &key, "app"))
        .await
        .unwrap();
    let insert = client
        .prepare("insert into executed values ($1, $2)")
        .await
        .unwrap();
    for (id, note) in [(1i32, Some("one")), (2, None), (3, Some("it's"))] {
        client.execute(&insert, &[&id, &note]).await.unwrap();
    }
    drop(client);
    let _ = task.await;
    gw.signal("TERM");
    gw.wait_exit(Duration::from_secs(10))
        .expect("gateway exits");

    let log = open_log(&gw);
    let session = &log.sessions(&Default::default()).unwrap()[0];
    let executions: Vec<(sluice_core::CommandOrigin, String, Vec<Option<String>>)> = log
        .session_records(&session.id)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.body {
            Body::Statement(s) => Some((s.origin, s.text, s.params)),
            _ => None,
        })
        .collect();
    let text = "insert into executed values ($1, $2)".to_owned();
    let binary = |id: u8| Some(format!("\\x000000{id:02x}"));
    assert_eq!(
        executions,
        vec![
            (sluice_core::CommandOrigin::Execute, text.clone(), vec![binary(1), Some("\\x6f6e65".into())]),
            (sluice_core::CommandOrigin::Execute, text.clone(), vec![binary(2), None]),
            (sluice_core::CommandOrigin::Execute, text, vec![binary(3), Some("\\x69742773".into())]),
        ],
        "one record per execution, with the bound values (tokio-postgres binds every value in binary: recorded as hex)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sigkill_every_row_that_reached_the_database_has_its_record() {
    let pg = PgServer::start();
    let (mut gw, conn) = writer_gateway(&pg, "crash_rows (id int primary key)");

    // Four clients insert as fast as they can; the gateway dies mid-stream.
    let mut writers = Vec::new();
    for w in 0..4i32 {
        let conn = conn.clone();
        writers.push(tokio::spawn(async move {
            let Ok((client, _task)) = pg_connect(&conn).await else {
                return;
            };
            for i in 0..100_000i32 {
                let sql = format!("insert into crash_rows values ({})", w * 1_000_000 + i);
                if client.batch_execute(&sql).await.is_err() {
                    return;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    gw.signal("KILL");
    for w in writers {
        let _ = w.await;
    }
    let _ = gw.wait_exit(Duration::from_secs(5));

    let rows: Vec<i64> = pg
        .psql("app", "select id from crash_rows order by id")
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert!(
        rows.len() > 10,
        "the writers made too little progress: {}",
        rows.len()
    );
    let log = verified_log(&gw);
    let mut recorded = std::collections::HashSet::new();
    for r in all_records(&log) {
        if let Body::Statement(s) = &r.body {
            if let Some(id) = s
                .text
                .strip_prefix("insert into crash_rows values (")
                .and_then(|t| t.strip_suffix(')'))
            {
                recorded.insert(id.parse::<i64>().unwrap());
            }
        }
    }
    let missing: Vec<_> = rows.iter().filter(|id| !recorded.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} rows reached the database without a record, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

/// Transactions of two inserts and a read each, as fast as one client can;
/// returns the reads whose results it received (each text is unique).
async fn transactions(conn: String, w: i32) -> Vec<String> {
    let mut seen = Vec::new();
    let Ok((client, _task)) = pg_connect(&conn).await else {
        return seen;
    };
    for i in 0..100_000i32 {
        let id = w * 1_000_000 + i * 2;
        let read = format!("select count(*) as c{w}_{i} from crash_tx where w = {w}");
        let steps = [
            "begin".to_owned(),
            format!("insert into crash_tx values ({id}, {w})"),
            format!("insert into crash_tx values ({}, {w})", id + 1),
        ];
        for step in &steps {
            if client.batch_execute(step).await.is_err() {
                return seen;
            }
        }
        if client.simple_query(&read).await.is_err() {
            return seen;
        }
        seen.push(read);
        if client.batch_execute("commit").await.is_err() {
            return seen;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sigkill_mid_transaction_every_row_and_every_result_a_client_saw_has_its_record() {
    let pg = PgServer::start();
    let (mut gw, conn) = writer_gateway(&pg, "crash_tx (id int primary key, w int)");
    let clients: Vec<_> = (0..4)
        .map(|w| tokio::spawn(transactions(conn.clone(), w)))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    gw.signal("KILL");
    let mut results = Vec::new();
    for c in clients {
        results.extend(c.await.unwrap());
    }
    let _ = gw.wait_exit(Duration::from_secs(5));

    let rows: Vec<i64> = pg
        .psql("app", "select id from crash_tx order by id")
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert!(
        rows.len() > 10 && results.len() > 5,
        "the clients made too little progress: {} rows, {} results",
        rows.len(),
        results.len()
    );
    let log = verified_log(&gw);
    // Per row: its insert's session and seq; per session: its COMMITs.
    let mut inserts = std::collections::HashMap::new();
    let mut commits: std::collections::HashMap<String, Vec<u64>> = Default::default();
    let mut texts = std::collections::HashSet::new();
    for r in all_records(&log) {
        let Body::Statement(s) = &r.body else {
            continue;
        };
        if let Some(id) = s
            .text
            .strip_prefix("insert into crash_tx values (")
            .and_then(|t| t.split(',').next())
        {
            inserts.insert(id.parse::<i64>().unwrap(), (r.session.clone(), r.seq));
        } else if s.text == "commit" {
            commits.entry(r.session.clone()).or_default().push(r.seq);
        }
        texts.insert(s.text.clone());
    }
    for id in &rows {
        let (session, seq) = inserts
            .get(id)
            .unwrap_or_else(|| panic!("row {id} is in the table without its insert's record"));
        assert!(
            commits
                .get(session)
                .is_some_and(|c| c.iter().any(|c| c > seq)),
            "row {id} was committed without its COMMIT's record"
        );
    }
    let unrecorded: Vec<_> = results.iter().filter(|r| !texts.contains(*r)).collect();
    assert!(
        unrecorded.is_empty(),
        "{} results reached a client without their statement's record, e.g. {:?}",
        unrecorded.len(),
        &unrecorded[..unrecorded.len().min(3)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_audit_store_cannot_write_statements_are_refused_and_never_run() {
    let pg = PgServer::start();
    let gw = gateway(&pg);
    let key = gw.create_key("agent-1", "agents");
    pg.psql(
        "app",
        "create table unrecorded (id int); alter table unrecorded owner to scram_user;",
    );
    let (client, _task) = pg_connect(&gw.conn_str("agent-1", &key, "app"))
        .await
        .unwrap();
    client
        .batch_execute("insert into unrecorded values (1)")
        .await
        .unwrap();

    // The store's file disappears under the running gateway.
    remove_dir_under_writer(&gw.dir.path().join("data"));
    let e = client
        .batch_execute("insert into unrecorded values (2)")
        .await
        .unwrap_err();
    assert_eq!(
        e.as_db_error().map(|d| d.code().code()),
        Some("58030"),
        "{e:?}"
    );
    assert_eq!(
        pg.psql("app", "select count(*) from unrecorded").trim(),
        "1",
        "the unrecorded insert must not run"
    );
}
