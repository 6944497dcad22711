//! Results stream through the gateway: a 1 GB result passes with a bounded
//! gateway footprint, however fast the backend produces it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Gateway;
use futures_util::{pin_mut, TryStreamExt};
use sluice_testkit::PgServer;

/// Peak resident set of a process, in bytes (Linux `VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

const ROWS: i64 = 1_000_000;
const ROW_BYTES: i64 = 1_000;
/// Generous against the 64 MB target for a release build: a debug build's
/// allocator and buffers are the same, only slower.
const RSS_LIMIT: u64 = 64 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_gigabyte_result_streams_with_bounded_gateway_memory() {
    let pg = PgServer::start();
    let gw = Gateway::start_for(&pg);
    let key = gw.create_key("streamer", "agents");
    let (client, conn) =
        tokio_postgres::connect(&gw.conn_str("streamer", &key, "app"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);

    let before = peak_rss(gw.pid());
    let sql = format!("SELECT repeat('x', {ROW_BYTES}) FROM generate_series(1, {ROWS})");
    let rows = client
        .query_raw(sql.as_str(), Vec::<String>::new())
        .await
        .unwrap();
    pin_mut!(rows);
    let (mut count, mut bytes) = (0i64, 0i64);
    while let Some(row) = rows.try_next().await.unwrap() {
        let v: &str = row.get(0);
        count += 1;
        bytes += v.len() as i64;
    }
    assert_eq!(count, ROWS);
    assert_eq!(bytes, ROWS * ROW_BYTES);

    let peak = peak_rss(gw.pid());
    assert!(
        peak < RSS_LIMIT,
        "gateway peak RSS {} MB after streaming 1 GB (was {} MB before)",
        peak >> 20,
        before >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_stdout_of_a_large_table_streams_with_bounded_gateway_memory() {
    let pg = PgServer::start();
    let gw = Gateway::start_for(&pg);
    let key = gw.create_key("copier", "agents");
    let (client, conn) =
        tokio_postgres::connect(&gw.conn_str("copier", &key, "app"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);

    let sql = format!(
        "COPY (SELECT repeat('y', {ROW_BYTES}) FROM generate_series(1, {})) TO STDOUT",
        ROWS / 2
    );
    let stream = client.copy_out(sql.as_str()).await.unwrap();
    pin_mut!(stream);
    let mut bytes = 0usize;
    while let Some(chunk) = stream.try_next().await.unwrap() {
        bytes += chunk.len();
    }
    // Each line is the value plus a newline.
    assert_eq!(bytes as i64, (ROWS / 2) * (ROW_BYTES + 1));
    let peak = peak_rss(gw.pid());
    assert!(
        peak < RSS_LIMIT,
        "gateway peak RSS {} MB after a 500 MB COPY",
        peak >> 20
    );
}
