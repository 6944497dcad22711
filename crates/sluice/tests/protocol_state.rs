//! What the gateway believes about a session must match what the server
//! does: the backend pid and cancel key the client is given, the startup
//! parameters that reach the backend, and, after an error in the extended
//! protocol (the server then discards every message until Sync), which
//! messages will ever be answered. Raw wire bytes against a real server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::proto::{fixture, tail, ProtocolFixture, IDENTITY};
use common::raw::{bind, execute, flush, msg, parse, query, sync, Raw};
use common::{psql, resource_toml, Gateway, ALLOW_ALL};
use sluice_audit::{AuditLog, Body, Record, ResponseStatus};
use sluice_testkit::PgServer;
use std::io::Write;
use std::time::{Duration, Instant};

/// Sends a CancelRequest for (`pid`, `secret`) to `port`.
fn cancel(port: u16, pid: i32, secret: i32) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut packet = 16i32.to_be_bytes().to_vec();
    for n in [80_877_102, pid, secret] {
        packet.extend_from_slice(&n.to_be_bytes());
    }
    s.write_all(&packet).unwrap();
}

/// The one value of a one-row simple query.
fn value(raw: &mut Raw, sql: &str) -> String {
    raw.send(&query(sql));
    let replies = raw.replies(1);
    replies
        .iter()
        .find_map(|r| r.strip_prefix("D "))
        .unwrap_or_else(|| panic!("{sql}: {replies:?}"))
        .to_owned()
}

#[test]
fn backend_key_data_carries_the_real_backend_pid() {
    let f = fixture();
    let mut raw = Raw::connect(f.gw.port, IDENTITY, &f.key);
    let (pid, _) = raw.key.expect("BackendKeyData at login");
    assert_eq!(value(&mut raw, "select pg_backend_pid()"), pid.to_string());
}

#[test]
fn a_cancel_with_the_real_pid_and_a_wrong_secret_cancels_nothing() {
    let f = fixture();
    let mut raw = Raw::connect(f.gw.port, IDENTITY, &f.key);
    let (pid, secret) = raw.key.unwrap();
    raw.send(&query("select pg_sleep(1.5), 'finished'"));
    std::thread::sleep(Duration::from_millis(300));
    cancel(f.gw.port, pid, secret.wrapping_add(1));
    let replies = raw.replies(1);
    assert!(
        replies.iter().any(|r| r == "D |finished"),
        "the statement ran to its end: {replies:?}"
    );
    f.gw.wait_log(
        "cancel request with an unknown key ignored",
        Duration::from_secs(5),
    );

    // The right pair still cancels.
    raw.send(&query("select pg_sleep(30)"));
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    cancel(f.gw.port, pid, secret);
    assert_eq!(raw.replies(1), ["T", "E 57014", "Z I"]);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn planner_settings_libpq_takes_from_the_environment_reach_the_backend() {
    let f = fixture();
    let out = std::process::Command::new("psql")
        .arg(f.conn_str())
        .args(["-X", "-A", "-t", "-c", "show geqo", "-c", "show datestyle"])
        .env("PGGEQO", "off")
        .env("PGDATESTYLE", "SQL, DMY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{}", tail(&f.gw.log(), 10));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "off\nSQL, DMY\n");
}

#[test]
fn a_startup_search_path_or_options_is_refused_with_0a000_naming_it() {
    let f = fixture();
    let err = Raw::connect_with(f.gw.port, IDENTITY, &f.key, &[("search_path", "evil")])
        .err()
        .expect("refused");
    assert!(err.contains("C0A000"), "{err}");
    assert!(
        err.contains("startup parameter \"search_path\" is not allowed through Sluice"),
        "{err}"
    );
    let conn = format!("{} options='-c search_path=evil'", f.conn_str());
    let (ok, _, err) = psql(&conn, "select 1");
    assert!(!ok && err.contains("\"options\" is not allowed"), "{err}");
}
