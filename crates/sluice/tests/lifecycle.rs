//! Connection limits and shutdown: what clients see when the gateway is
//! full, and when it is asked to stop.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{db_error, pg_connect, psql, resource_toml, ConnTask, Gateway};
use sluice_testkit::PgServer;
use std::time::{Duration, Instant};

const PW: (&str, &str) = ("PW", "scram_pw");

fn gateway(pg: &PgServer, server_extra: &str, resource_extra: &str) -> Gateway {
    let mut gw = Gateway::configure(
        server_extra,
        &resource_toml("app", pg, "scram_user", Some(PW.0), resource_extra),
    );
    gw.start(&[PW]);
    gw
}

/// How the gateway ended a session: the SQLSTATE of the FATAL it sent.
async fn ended_with(gw: &Gateway, task: ConnTask, within: Duration) -> String {
    let result = tokio::time::timeout(within, task)
        .await
        .unwrap_or_else(|_| panic!("the session was not closed in time:\n{}", gw.log()))
        .unwrap();
    match result {
        Err(e) => match e.as_db_error() {
            Some(db) => db.code().code().to_owned(),
            None => panic!(
                "the session ended without an ErrorResponse: {e:?}\n{}",
                gw.log()
            ),
        },
        Ok(()) => panic!("the session ended without an error"),
    }
}

/// The error a connection attempt that must fail ends with.
async fn connect_error(conn: &str, why: &str) -> tokio_postgres::Error {
    match pg_connect(conn).await {
        Ok(_) => panic!("{why}: the connection succeeded"),
        Err(e) => e,
    }
}

/// Retries a connection until it succeeds (a closed session's slot is
/// released when the gateway has finished closing it).
async fn connect_eventually(conn: &str) -> (tokio_postgres::Client, ConnTask) {
    let start = Instant::now();
    loop {
        match pg_connect(conn).await {
            Ok(c) => return c,
            Err(e) if start.elapsed() < Duration::from_secs(5) => {
                assert_eq!(db_error(&e).0, "53300");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("still refused: {e:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_at_max_connections_refuses_the_next_with_53300_until_one_closes() {
    let pg = PgServer::start();
    let gw = gateway(&pg, "", "max_connections = 2");
    let key = gw.create_key("agent-1", "agents");
    let other = gw.create_key("agent-2", "agents");
    let conn = gw.conn_str("agent-1", &key, "app");

    let (first, first_task) = pg_connect(&conn).await.unwrap();
    let (second, _second_task) = pg_connect(&conn).await.unwrap();
    let err = connect_error(&conn, "a third connection must be refused").await;
    assert_eq!(
        db_error(&err),
        (
            "53300".into(),
            "too many connections to resource \"app\"".into()
        )
    );
    // The limit is per resource, whoever asks.
    let err = connect_error(&gw.conn_str("agent-2", &other, "app"), "refused").await;
    assert_eq!(db_error(&err).0, "53300");
    // The open sessions are unaffected.
    second.simple_query("select 1").await.unwrap();

    drop(first);
    tokio::time::timeout(Duration::from_secs(5), first_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let (third, _t) = connect_eventually(&conn).await;
    third.simple_query("select 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_per_identity_refuses_that_identity_only() {
    let pg = PgServer::start();
    let gw = gateway(&pg, "max_connections_per_identity = 1", "");
    let alice = gw.create_key("alice", "agents");
    let bob = gw.create_key("bob", "agents");
    let alice_conn = gw.conn_str("alice", &alice, "app");

    let (a1, a1_task) = pg_connect(&alice_conn).await.unwrap();
    let err = connect_error(&alice_conn, "a second session of alice must be refused").await;
    assert_eq!(
        db_error(&err),
        (
            "53300".into(),
            "too many connections for identity \"alice\"".into()
        )
    );
    let (ok, _, stderr) = psql(&alice_conn, "select 1");
    assert!(
        !ok && stderr.contains("too many connections for identity \"alice\""),
        "{stderr}"
    );

    let (b1, _b1_task) = pg_connect(&gw.conn_str("bob", &bob, "app")).await.unwrap();
    b1.simple_query("select 1").await.unwrap();
    a1.simple_query("select 1").await.unwrap();

    drop(a1);
    tokio::time::timeout(Duration::from_secs(5), a1_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let (a2, _t) = connect_eventually(&alice_conn).await;
    a2.simple_query("select 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_idle_sessions_lets_open_transactions_commit_and_exits_0() {
    let pg = PgServer::start();
    let mut gw = gateway(&pg, "shutdown_grace_secs = 20", "");
    let key = gw.create_key("agent-1", "agents");
    let conn = gw.conn_str("agent-1", &key, "app");
    let (ok, _, err) = psql(&conn, "create table t (id int primary key)");
    assert!(ok, "{err}");

    let (idle, idle_task) = pg_connect(&conn).await.unwrap();
    idle.simple_query("select 1").await.unwrap();
    let (busy, busy_task) = pg_connect(&conn).await.unwrap();
    busy.batch_execute("begin; insert into t values (1)")
        .await
        .unwrap();

    gw.signal("TERM");

    // The idle session is told the gateway is going away.
    assert_eq!(
        ended_with(&gw, idle_task, Duration::from_secs(5)).await,
        "57P01"
    );
    // New connections are refused while the transaction drains.
    match pg_connect(&conn).await {
        Ok(_) => panic!("a new connection was accepted during shutdown"),
        Err(e) => {
            if let Some(db) = e.as_db_error() {
                assert_eq!(db.code().code(), "57P03", "{db:?}");
            }
        }
    }
    assert!(
        gw.is_running(),
        "the gateway exited with a transaction still open"
    );

    // The transaction finishes normally, then its session is closed.
    busy.batch_execute("insert into t values (2); commit")
        .await
        .unwrap();
    assert_eq!(
        ended_with(&gw, busy_task, Duration::from_secs(5)).await,
        "57P01"
    );
    let status = gw
        .wait_exit(Duration::from_secs(10))
        .expect("the gateway did not exit after draining");
    assert!(status.success(), "exit status {status}\n{}", gw.log());
    assert_eq!(
        pg.psql("app", "select count(*) from t").trim(),
        "2",
        "the committed rows are persisted"
    );
    let log = gw.log();
    assert!(
        log.contains("SIGTERM") && log.contains("draining") && log.contains("stopped"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_left_open_past_the_grace_period_is_closed_and_the_gateway_exits() {
    let pg = PgServer::start();
    let mut gw = gateway(&pg, "shutdown_grace_secs = 1", "");
    let key = gw.create_key("agent-1", "agents");
    let conn = gw.conn_str("agent-1", &key, "app");
    let (ok, _, err) = psql(&conn, "create table t (id int primary key)");
    assert!(ok, "{err}");
    let (stuck, stuck_task) = pg_connect(&conn).await.unwrap();
    stuck
        .batch_execute("begin; insert into t values (1)")
        .await
        .unwrap();

    let signalled = Instant::now();
    gw.signal("TERM");
    assert_eq!(
        ended_with(&gw, stuck_task, Duration::from_secs(8)).await,
        "57P01"
    );
    let closed_after = signalled.elapsed();
    assert!(
        closed_after >= Duration::from_millis(900),
        "closed before the grace period was over: {closed_after:?}"
    );
    let status = gw
        .wait_exit(Duration::from_secs(8))
        .expect("the gateway did not exit after the grace period");
    assert!(status.success(), "exit status {status}\n{}", gw.log());
    assert!(gw.log().contains("grace period over"));

    // The backend rolled the unfinished transaction back.
    let start = Instant::now();
    while pg
        .psql(
            "app",
            "select count(*) from pg_stat_activity where usename = 'scram_user'",
        )
        .trim()
        != "0"
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the backend session outlived the gateway"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(pg.psql("app", "select count(*) from t").trim(), "0");
}

#[test]
fn a_client_stalled_in_startup_gets_57p03_and_does_not_delay_shutdown() {
    use std::io::{Read, Write};
    let pg = PgServer::start();
    let mut gw = gateway(
        &pg,
        "shutdown_grace_secs = 20\nstartup_timeout_secs = 30",
        "",
    );
    let key = gw.create_key("agent-1", "agents");
    let (ok, _, err) = psql(&gw.conn_str("agent-1", &key, "app"), "select 1");
    assert!(ok, "{err}");
    // One client says nothing; another sends a startup packet and never answers the SASL request.
    let silent = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    let params = b"user\0agent-1\0database\0app\0\0";
    let mut startup = ((8 + params.len()) as i32).to_be_bytes().to_vec();
    startup.extend_from_slice(&196_608i32.to_be_bytes());
    startup.extend_from_slice(params);
    stalled.write_all(&startup).unwrap();
    let mut sasl = [0u8; 9];
    stalled.read_exact(&mut sasl).unwrap();
    assert_eq!(sasl[0], b'R');

    let signalled = Instant::now();
    gw.signal("TERM");
    for (name, mut client) in [
        ("silent", silent.try_clone().unwrap()),
        ("stalled", stalled.try_clone().unwrap()),
    ] {
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut answer = Vec::new();
        let _ = client.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.contains("57P03") && text.contains("shutting down"),
            "{name} client got {text:?}"
        );
    }
    let status = gw
        .wait_exit(Duration::from_secs(5))
        .expect("clients in startup held up the shutdown");
    assert!(status.success(), "{status}");
    assert!(signalled.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_running_at_sigint_delivers_its_result_before_the_session_closes() {
    let pg = PgServer::start();
    let mut gw = gateway(&pg, "shutdown_grace_secs = 20", "");
    let key = gw.create_key("agent-1", "agents");
    let (client, task) = pg_connect(&gw.conn_str("agent-1", &key, "app"))
        .await
        .unwrap();
    // A simple query: an extended-protocol one would have tokio-postgres
    // send a Close for its statement right after, racing the gateway's FATAL.
    let query = tokio::spawn(async move {
        let messages = client.simple_query("select pg_sleep(1.5), 42").await;
        (client, messages)
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    gw.signal("INT");
    let (_client, messages) = query.await.unwrap();
    let row = messages
        .unwrap()
        .into_iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .expect("the query's row");
    assert_eq!(row.get(1), Some("42"));
    assert_eq!(ended_with(&gw, task, Duration::from_secs(5)).await, "57P01");
    let status = gw
        .wait_exit(Duration::from_secs(10))
        .expect("the gateway did not exit");
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_backend_logins_give_their_connection_slot_back() {
    let pg = PgServer::start();
    let mut gw = Gateway::configure(
        "max_connections_per_identity = 1",
        &resource_toml(
            "app",
            &pg,
            "scram_user",
            Some("WRONG"),
            "max_connections = 1",
        ),
    );
    gw.start(&[("WRONG", "not-the-password")]);
    let key = gw.create_key("agent-1", "agents");
    for _ in 0..3 {
        let err = connect_error(&gw.conn_str("agent-1", &key, "app"), "must fail").await;
        assert_eq!(db_error(&err).0, "08006", "a slot leaked: {err:?}");
    }
}

/// libpq and tokio-postgres send a Sync right behind the Execute of
/// `COPY FROM STDIN`, which the backend swallows during copy-in, and another
/// after CopyDone. The session must still count as idle afterwards, or
/// SIGTERM would hold it open until the grace deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_idle_after_an_extended_protocol_copy_closes_at_once_on_sigterm() {
    use futures_util::SinkExt;
    let pg = PgServer::start();
    let mut gw = gateway(&pg, "shutdown_grace_secs = 30", "");
    let key = gw.create_key("copier", "agents");
    let conn = gw.conn_str("copier", &key, "app");
    let (ok, _, err) = psql(&conn, "create table copied (id int)");
    assert!(ok, "{err}");

    let (client, task) = pg_connect(&conn).await.unwrap();
    let sink = client.copy_in("COPY copied FROM STDIN").await.unwrap();
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"1\n2\n3\n"))
        .await
        .unwrap();
    assert_eq!(sink.as_mut().finish().await.unwrap(), 3);
    assert_eq!(
        client
            .query_one("select count(*) from copied", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        3
    );

    gw.signal("TERM");
    assert_eq!(ended_with(&gw, task, Duration::from_secs(5)).await, "57P01");
    let status = gw
        .wait_exit(Duration::from_secs(10))
        .expect("the gateway did not exit");
    assert!(status.success(), "exit status {status}\n{}", gw.log());
}
