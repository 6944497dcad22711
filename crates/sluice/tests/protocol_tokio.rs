//! tokio-postgres talks to a real PostgreSQL through the `sluice` binary and
//! gets exactly what PostgreSQL would give it: prepared statements, binary
//! results, pipelines, errors with their SQLSTATE and fields, simple-query
//! batches, transactions, COPY in both directions, LISTEN/NOTIFY, large
//! results and values, cancellation and backend termination. One server and
//! gateway serve the whole binary (`common::proto::fixture`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::proto::{fixture, ProtocolFixture};
use common::Fixture;
use futures_util::{future, StreamExt, TryStreamExt};
use std::io::{Cursor, Write};
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, NoTls, SimpleQueryMessage};

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
