//! pgbench through the gateway: initialization (DDL, COPY, VACUUM) and
//! concurrent TPC-B and select-only runs in each query protocol mode
//! (simple, extended, prepared) finish with no failed transaction.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{shared_fixture, Fixture};
use std::process::{Command, Output};
use std::sync::Arc;

const IDENTITY: &str = "bench-tester";

/// A server with `pgbench -i -s 1` done through the gateway, shared by the
/// tests running at the same time and stopped when the last one is done.
fn fixture() -> Arc<Fixture> {
    shared_fixture(IDENTITY, |f| {
        let out = pgbench(f, &["-i", "-s", "1"]);
        assert!(
            out.status.success(),
            "pgbench -i failed\n{}",
            describe(f, &out)
        );
        assert_eq!(
            f.pg.psql("app", "select count(*) from pgbench_accounts"),
            "100000\n"
        );
        assert_eq!(
            f.pg.psql("app", "select count(*) from pgbench_branches"),
            "1\n"
        );
    })
}

fn pgbench(f: &Fixture, args: &[&str]) -> Output {
    let mut cmd = Command::new("pgbench");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &f.gw.port.to_string(),
        "-U",
        IDENTITY,
    ])
    .args(args)
    .arg("app")
    .env("PGPASSWORD", &f.key)
    .env("PGSSLMODE", "disable");
    for var in [
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGSERVICE",
        "PGOPTIONS",
    ] {
        cmd.env_remove(var);
    }
    cmd.output().unwrap()
}

fn describe(f: &Fixture, out: &Output) -> String {
    let log = f.gw.log();
    let lines: Vec<&str> = log.lines().collect();
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}\ngateway log tail:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        lines[lines.len().saturating_sub(30)..].join("\n")
    )
}

/// The number after `prefix` on the line that starts with it.
fn stat(stdout: &str, prefix: &str) -> Option<u64> {
    let line = stdout.lines().find(|l| l.starts_with(prefix))?;
    line[prefix.len()..].split_whitespace().next()?.parse().ok()
}

/// Runs 8 clients on 2 threads for 3 s; asserts a clean run and returns
/// the number of transactions processed.
fn bench(mode: &str, select_only: bool) -> u64 {
    let f = fixture();
    let history_before: u64 =
        f.pg.psql("app", "select count(*) from pgbench_history")
            .trim()
            .parse()
            .unwrap();
    // -n: no VACUUM/TRUNCATE of pgbench_history before the run (the
    // initialization did the vacuum), so concurrent runs can be checked
    // against the history table.
    let mut args = vec!["-n", "-c", "8", "-j", "2", "-T", "3", "-M", mode];
    if select_only {
        args.push("-S");
    }
    let out = pgbench(&f, &args);
    let ctx = describe(&f, &out);
    assert!(out.status.success(), "pgbench {args:?} failed\n{ctx}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains(&format!("query mode: {mode}")), "{ctx}");
    assert_eq!(
        stat(&stdout, "number of failed transactions:"),
        Some(0),
        "{ctx}"
    );
    assert_eq!(stat(&stdout, "number of clients:"), Some(8), "{ctx}");
    assert!(!stderr.contains("error"), "pgbench reported errors\n{ctx}");
    let processed =
        stat(&stdout, "number of transactions actually processed:").expect("processed count");
    assert!(processed > 0, "{ctx}");

    let history_after: u64 =
        f.pg.psql("app", "select count(*) from pgbench_history")
            .trim()
            .parse()
            .unwrap();
    if select_only {
        // Select-only transactions write nothing (another test may, concurrently).
        println!("pgbench -S -M {mode}: {processed} transactions");
    } else {
        // Each TPC-B transaction inserts one history row, and all of them
        // committed (other TPC-B runs may add rows concurrently).
        assert!(
            history_after - history_before >= processed,
            "{processed} transactions but {} history rows\n{ctx}",
            history_after - history_before
        );
        println!("pgbench TPC-B -M {mode}: {processed} transactions");
    }
    processed
}

#[test]
fn pgbench_tpcb_with_simple_protocol_completes_without_failures() {
    bench("simple", false);
}

#[test]
fn pgbench_tpcb_with_extended_protocol_completes_without_failures() {
    bench("extended", false);
}

#[test]
fn pgbench_tpcb_with_prepared_statements_completes_without_failures() {
    bench("prepared", false);
}

#[test]
fn pgbench_select_only_with_simple_protocol_completes_without_failures() {
    bench("simple", true);
}

#[test]
fn pgbench_select_only_with_extended_protocol_completes_without_failures() {
    bench("extended", true);
}

#[test]
fn pgbench_select_only_with_prepared_statements_completes_without_failures() {
    bench("prepared", true);
}
