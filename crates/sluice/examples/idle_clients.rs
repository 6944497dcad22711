//! Opens many client sessions through a PostgreSQL endpoint and holds them
//! idle, for `bench/run.sh`'s idle-connection measurement:
//!
//!     idle_clients <count> <concurrency>   # libpq-style env: PGHOST, PGPORT, ...
//!
//! Each session logs in and runs `SELECT 1` once (so it is fully set up on
//! every hop), then stays open. When all are open it prints one JSON line
//! (`opened`, `failed`, `seconds`, `first_error`) and holds them until its
//! stdin closes. A real client (tokio-postgres), not a socket that never
//! finishes its login.
#![allow(clippy::print_stdout)]

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn conn_str() -> String {
    format!(
        "host={} port={} user={} password={} dbname={} connect_timeout=30",
        env("PGHOST", "127.0.0.1"),
        env("PGPORT", "5432"),
        env("PGUSER", "postgres"),
        env("PGPASSWORD", ""),
        env("PGDATABASE", "postgres"),
    )
}

/// Logs in and runs `SELECT 1`, within 60 s (a proxy out of descriptors
/// accepts the socket and never answers).
async fn open(conn: Arc<String>) -> Result<tokio_postgres::Client, String> {
    let login = async {
        let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        client.simple_query("SELECT 1").await?;
        Ok::<_, tokio_postgres::Error>(client)
    };
    match tokio::time::timeout(Duration::from_secs(60), login).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(format!("{e:?}")),
        Err(_) => Err("no answer within 60 s".to_owned()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: usize = args
        .next()
        .ok_or("usage: idle_clients <count> <concurrency>")?
        .parse()?;
    let concurrency: usize = args.next().map_or(Ok(64), |c| c.parse())?;
    let conn = Arc::new(conn_str());
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..count {
        let permit = gate.clone().acquire_owned().await?;
        let conn = conn.clone();
        tasks.spawn(async move {
            let client = open(conn).await;
            drop(permit);
            client
        });
    }
    let mut clients = Vec::with_capacity(count);
    let mut first_error = None::<String>;
    let mut failed = 0usize;
    while let Some(joined) = tasks.join_next().await {
        match joined? {
            Ok(client) => clients.push(client),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "opened": clients.len(),
            "failed": failed,
            "seconds": seconds,
            "first_error": first_error,
        })
    );
    // Hold them until told to go (stdin closes), on a thread: the runtime
    // keeps driving the connections meanwhile.
    let hold = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    });
    hold.await?;
    drop(clients);
    Ok(())
}
