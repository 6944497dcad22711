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

/// A gateway of its own (its audit log is read after it stops) in front of
/// a new server, and a raw session through it.
fn audited() -> (PgServer, Gateway, Raw) {
    let pg = PgServer::start();
    let mut gw = Gateway::configure_with_policy(
        "",
        &resource_toml("app", &pg, "scram_user", Some("PW"), ""),
        ALLOW_ALL,
    );
    gw.start(&[("PW", "scram_pw")]);
    let key = gw.create_key("agent-1", "agents");
    let raw = Raw::connect(gw.port, "agent-1", &key);
    (pg, gw, raw)
}

/// On SIGTERM the gateway closes a session at its first idle moment: at
/// once for `raw`, if the gateway counts no reply still to come. Then the
/// gateway exits.
fn assert_closed_at_once_on_shutdown(gw: &mut Gateway, raw: &mut Raw) {
    gw.signal("TERM");
    let started = Instant::now();
    let replies = raw.replies(1);
    assert_eq!(
        replies,
        ["E 57P01", "<timeout>"],
        "closed as idle, not at the end of the grace period\n{}",
        tail(&gw.log(), 20)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    gw.wait_exit(Duration::from_secs(10))
        .expect("gateway exits");
}

/// Each statement's text with the status and content recorded for what
/// came back, in the order the statements were recorded.
fn responses(gw: &Gateway) -> Vec<(String, ResponseStatus, String)> {
    let log = AuditLog::open_read_only(&gw.dir.path().join("data")).unwrap();
    let mut records: Vec<Record> = Vec::new();
    for s in log.sessions(&Default::default()).unwrap() {
        records.extend(log.session_records(&s.id).unwrap());
    }
    let text = |seq| {
        records.iter().find_map(|r| match &r.body {
            Body::Statement(s) if r.seq == seq => Some(s.text.clone()),
            _ => None,
        })
    };
    records
        .iter()
        .filter_map(|r| match &r.body {
            Body::Response(resp) => Some((
                text(resp.statement_seq)?,
                resp.status.clone(),
                resp.content.clone(),
            )),
            _ => None,
        })
        .collect()
}

fn tag(t: &str) -> ResponseStatus {
    ResponseStatus::CommandTag(t.into())
}

fn error(sqlstate: &str) -> impl Fn(&ResponseStatus) -> bool + '_ {
    move |s| matches!(s, ResponseStatus::Error { sqlstate: c, .. } if c == sqlstate)
}

#[test]
fn a_query_after_a_failed_flushed_batch_is_skipped_by_the_server_and_later_responses_stay_in_step()
{
    let (_pg, mut gw, mut raw) = audited();
    raw.send(&query("begin"));
    assert_eq!(raw.replies(1), ["C BEGIN", "Z T"]);
    raw.send(&[parse("selec 'bad'"), flush()].concat());
    let (tag_e, _) = raw.next().expect("the Parse error, on Flush");
    assert_eq!(tag_e, b'E');
    // The server discards this Query: after an error in the extended
    // protocol it skips every message until Sync.
    raw.send(&[query("select 'discarded'"), sync()].concat());
    assert_eq!(
        raw.replies(1),
        ["Z E"],
        "no reply to the Query, then Sync's"
    );
    raw.send(&query("rollback"));
    assert_eq!(raw.replies(1), ["C ROLLBACK", "Z I"]);
    raw.send(&query("select 'next'"));
    assert_eq!(raw.replies(1), ["T", "D next", "C SELECT 1", "Z I"]);

    assert_closed_at_once_on_shutdown(&mut gw, &mut raw);
    let got = responses(&gw);
    let of = |text: &str| {
        got.iter()
            .find(|(t, ..)| t == text)
            .unwrap_or_else(|| panic!("no response for {text:?}: {got:#?}"))
    };
    assert_eq!(of("select 'discarded'").1, ResponseStatus::Skipped);
    assert_eq!(of("rollback").1, tag("ROLLBACK"));
    let next = of("select 'next'");
    assert_eq!(
        (&next.1, next.2.as_str()),
        (&tag("SELECT 1"), "?column?\nnext\n")
    );
}

#[test]
fn a_failed_extended_copy_in_discards_until_sync_and_later_responses_stay_in_step() {
    let (pg, mut gw, mut raw) = audited();
    pg.psql(
        "app",
        "create table copied (v int); grant all on copied to scram_user;",
    );
    // All in one write, before the COPY has started: the Sync behind the
    // Execute is read (and ignored) by the COPY, a bad row fails it, and
    // the server discards the rest until the second Sync.
    raw.send(
        &[
            parse("copy copied from stdin"),
            bind(),
            execute(),
            sync(),
            msg(b'd', b"1\n"),
            msg(b'd', b"x\n"),
            msg(b'c', &[]),
            parse("select 'lost'"),
            bind(),
            execute(),
            sync(),
        ]
        .concat(),
    );
    assert_eq!(raw.replies(1), ["1", "2", "G copy", "E 22P02", "Z I"]);
    // CopyFail, with a Sync on each side of it: one ReadyForQuery.
    raw.send(
        &[
            parse("copy copied from stdin"),
            bind(),
            execute(),
            sync(),
            msg(b'f', &common::raw::cstr("client gave up")),
            sync(),
        ]
        .concat(),
    );
    assert_eq!(raw.replies(1), ["1", "2", "G copy", "E 57014", "Z I"]);
    raw.send(&query("select 'next'"));
    assert_eq!(raw.replies(1), ["T", "D next", "C SELECT 1", "Z I"]);
    assert_eq!(pg.psql("app", "select count(*) from copied"), "0\n");

    assert_closed_at_once_on_shutdown(&mut gw, &mut raw);
    let got = responses(&gw);
    let texts: Vec<&str> = got.iter().map(|(t, ..)| t.as_str()).collect();
    assert_eq!(
        texts,
        [
            "copy copied from stdin",
            "select 'lost'",
            "copy copied from stdin",
            "select 'next'"
        ],
        "{got:#?}"
    );
    assert!(error("22P02")(&got[0].1), "{got:#?}");
    assert_eq!(got[1].1, ResponseStatus::Skipped);
    assert!(error("57014")(&got[2].1), "{got:#?}");
    assert_eq!(
        (&got[3].1, got[3].2.as_str()),
        (&tag("SELECT 1"), "?column?\nnext\n")
    );
}

/// libpq's pipeline mode may send statements with neither Sync nor Flush
/// and wait: PostgreSQL runs each message as it arrives and flushes an
/// error at once. Through Sluice the client must see that error too,
/// rather than both sides waiting for each other forever.
#[test]
fn an_error_in_a_pipeline_with_neither_sync_nor_flush_reaches_the_client() {
    let (_pg, _gw, mut raw) = audited();
    raw.send(&query(
        "begin; create temp table uniq(id int primary key) on commit drop",
    ));
    assert_eq!(raw.replies(1), ["C BEGIN", "C CREATE TABLE", "Z T"]);
    let insert = |id: u32| {
        [
            parse(&format!("insert into uniq values ({id}) returning id")),
            bind(),
            execute(),
        ]
        .concat()
    };
    raw.send(&[insert(1), insert(1), insert(2)].concat());
    let mut seen = Vec::new();
    while let Some((tag, body)) = raw.next() {
        seen.push(tag as char);
        if tag == b'E' {
            let text = String::from_utf8_lossy(&body).into_owned();
            assert!(text.contains("C23505"), "{text}");
            break;
        }
    }
    assert_eq!(
        seen,
        ['1', '2', 'D', 'C', '1', '2', 'E'],
        "the first insert's results, then the second's error, before any Sync"
    );
    raw.send(&sync());
    assert_eq!(raw.replies(1), ["Z E"], "the third insert was skipped");
    raw.send(&query("rollback"));
    assert_eq!(raw.replies(1), ["C ROLLBACK", "Z I"]);
}
