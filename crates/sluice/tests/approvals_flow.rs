//! Statements policy sends to review, end to end against PostgreSQL: held
//! until a human approves (`wait`), or refused with a request id and run
//! exactly once when re-sent after approval (`deferred`); denied, timed out,
//! withdrawn ones never reach the database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{db_error, pg_connect, psql, resource_toml, Gateway};
use sluice_approvals::{Approvals, ApprovalsConfig, ListFilter, Request, Status};
use sluice_core::Identity;
use sluice_testkit::PgServer;
use std::time::{Duration, Instant};

/// Everything but updates runs; updates of `accounts` need `quorum`
/// approvals from group dba.
fn policy(quorum: u32) -> String {
    format!(
        "@id(\"allow-rest\")\npermit(principal, action, resource) unless {{ action == Action::\"update\" }};\n\
         @id(\"updates-need-a-dba\")\n@reason(\"updates need a DBA\")\n@review(\"dba\")\n@quorum(\"{quorum}\")\n\
         permit(principal, action == Action::\"update\", resource);\n"
    )
}

struct Setup {
    pg: PgServer,
    gw: Gateway,
    agent: String,
}

/// A gateway in front of a table `accounts(id, balance)` with one row.
fn setup(quorum: u32, approvals: &str, resource_extra: &str) -> Setup {
    let pg = PgServer::start();
    common::accounts_table(&pg);
    let resources = format!(
        "[approvals]\n{approvals}\n\n{}",
        resource_toml("app", &pg, "scram_user", Some("PW"), resource_extra)
    );
    let mut gw =
        Gateway::configure_with_policy("shutdown_grace_secs = 1", &resources, &policy(quorum));
    gw.start(&[("PW", "scram_pw")]);
    let agent = gw.create_key("agent-1", "agents");
    Setup { pg, gw, agent }
}

impl Setup {
    fn conn(&self) -> String {
        self.gw.conn_str("agent-1", &self.agent, "app")
    }

    fn balance(&self) -> String {
        self.pg
            .psql("app", "select balance from accounts where id = 1")
            .trim()
            .to_owned()
    }

    /// The approval store, as a second handle on the gateway's file.
    fn store(&self) -> Approvals {
        let dir = self.gw.dir.path().join("data");
        let key = sluice_audit::keys::Signer::load_or_create(&dir).unwrap();
        Approvals::open(
            &dir,
            key.signing_key().clone(),
            ApprovalsConfig {
                agent_groups: vec!["agents".into()],
                ..ApprovalsConfig::default()
            },
        )
        .unwrap()
    }

    fn requests(&self, status: Status) -> Vec<Request> {
        self.store()
            .list(ListFilter {
                status: Some(status),
                limit: 100,
            })
            .unwrap()
    }

    /// Waits for exactly one pending request and returns it.
    fn pending(&self) -> Request {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut pending = self.requests(Status::Pending);
            if pending.len() == 1 {
                return pending.remove(0);
            }
            assert!(pending.len() < 2, "{pending:#?}");
            assert!(Instant::now() < deadline, "no request became pending");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn status_of(&self, id: &str) -> Status {
        self.store().get(id).unwrap().unwrap().status
    }
}

fn dba(name: &str) -> Identity {
    Identity::new(name, vec!["dba".into()])
}

const UPDATE: &str = "update accounts set balance = balance + 1 where id = 1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_update_runs_only_after_approval_and_the_replay_names_the_approver() {
    let s = setup(1, "", "");
    let (client, _task) = pg_connect(&s.conn()).await.unwrap();
    let held = tokio::spawn(async move { client.execute(UPDATE, &[]).await.map(|n| (n, client)) });
    let request = s.pending();
    assert_eq!(request.text, UPDATE);
    assert_eq!(request.requester.name, "agent-1");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!held.is_finished(), "the statement waits");
    assert_eq!(s.balance(), "100", "the backend has not seen it");

    s.store()
        .approve(&request.id, &dba("alice"), Some("ok".into()))
        .unwrap();
    let (updated, client) = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .expect("runs after approval")
        .unwrap()
        .unwrap();
    assert_eq!(updated, 1);
    assert_eq!(s.balance(), "101");
    assert_eq!(s.status_of(&request.id), Status::Consumed);
    drop(client);

    let mut gw = s.gw;
    gw.signal("TERM");
    gw.wait_exit(Duration::from_secs(10))
        .expect("gateway exits");
    let log = sluice_audit::AuditLog::open_read_only(&gw.dir.path().join("data")).unwrap();
    let session = log.sessions(&Default::default()).unwrap()[0].id.clone();
    let out = gw.cli(&["audit", "replay", &session]);
    let replay = String::from_utf8_lossy(&out.stdout);
    assert!(replay.contains(UPDATE), "{replay}");
    assert!(
        replay.contains(&format!("approval {}", request.id)) && replay.contains("alice"),
        "the replay shows who approved: {replay}"
    );
}

#[test]
fn a_denied_statement_never_reaches_the_backend_and_the_client_gets_the_reason() {
    let s = setup(1, "", "");
    let conn = s.conn();
    let held = std::thread::spawn(move || psql(&conn, UPDATE));
    let request = s.pending();
    s.store()
        .deny(
            &request.id,
            &dba("alice"),
            "not during business hours".into(),
        )
        .unwrap();
    let (ok, _, err) = held.join().unwrap();
    assert!(!ok);
    assert!(
        err.contains("denied by alice") && err.contains("not during business hours"),
        "{err}"
    );
    assert_eq!(s.balance(), "100");
    assert_eq!(s.status_of(&request.id), Status::Denied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_nobody_approves_times_out_without_running() {
    let s = setup(1, "wait_timeout_secs = 1", "");
    let (client, _task) = pg_connect(&s.conn()).await.unwrap();
    let started = Instant::now();
    let e = client.execute(UPDATE, &[]).await.unwrap_err();
    let (code, message) = db_error(&e);
    assert_eq!(code, "57014", "{message}");
    assert!(message.contains("timed out"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(s.balance(), "100");
    // The session goes on.
    client.simple_query("select 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_of_two_needs_two_distinct_approvers() {
    let s = setup(2, "", "");
    let (client, _task) = pg_connect(&s.conn()).await.unwrap();
    let held = tokio::spawn(async move { client.execute(UPDATE, &[]).await });
    let request = s.pending();
    let store = s.store();
    store.approve(&request.id, &dba("alice"), None).unwrap();
    assert!(
        store.approve(&request.id, &dba("alice"), None).is_err(),
        "the same approver twice"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished());
    assert_eq!(s.balance(), "100");
    store.approve(&request.id, &dba("bob"), None).unwrap();
    let updated = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(updated, 1);
    assert_eq!(s.balance(), "101");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_while_waiting_withdraws_the_request() {
    let s = setup(1, "", "");
    let (client, _task) = pg_connect(&s.conn()).await.unwrap();
    let token = client.cancel_token();
    let held = tokio::spawn(async move { client.execute(UPDATE, &[]).await });
    let request = s.pending();
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(db_error(&e).0, "57014");
    assert_eq!(s.status_of(&request.id), Status::Withdrawn);
    assert_eq!(s.balance(), "100");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_while_waiting_withdraws_the_request() {
    let s = setup(1, "", "");
    let (client, task) = pg_connect(&s.conn()).await.unwrap();
    let held = tokio::spawn(async move { client.execute(UPDATE, &[]).await });
    let request = s.pending();
    held.abort();
    task.abort();
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.status_of(&request.id) != Status::Withdrawn {
        assert!(Instant::now() < deadline, "the request stays pending");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Approving it now is refused, and nothing runs.
    assert!(s.store().approve(&request.id, &dba("alice"), None).is_err());
    assert_eq!(s.balance(), "100");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_mode_refuses_at_once_and_runs_the_approved_statement_exactly_once() {
    let s = setup(1, "", "approval_mode = \"deferred\"");
    let (client, _task) = pg_connect(&s.conn()).await.unwrap();
    let e = client.execute(UPDATE, &[]).await.unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "SL001");
    let request = s.pending();
    assert!(db.message().contains(&request.id), "{}", db.message());
    assert!(db.hint().unwrap().contains(&request.id));
    // Re-sent before approval: the same request, not a new one.
    assert!(client.execute(UPDATE, &[]).await.is_err());
    assert_eq!(s.requests(Status::Pending).len(), 1);
    assert_eq!(s.balance(), "100");

    s.store().approve(&request.id, &dba("alice"), None).unwrap();
    // Two sessions race for the one approval: exactly one runs it.
    let (other, _task2) = pg_connect(&s.conn()).await.unwrap();
    let (a, b) = tokio::join!(client.execute(UPDATE, &[]), other.execute(UPDATE, &[]));
    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{a:?} {b:?}"
    );
    assert_eq!(s.balance(), "101");
    assert_eq!(s.status_of(&request.id), Status::Consumed);
    // And once more: a new request, nothing runs.
    let e = client.execute(UPDATE, &[]).await.unwrap_err();
    assert_eq!(e.as_db_error().unwrap().code().code(), "SL001");
    assert_eq!(s.balance(), "101");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_is_bound_to_the_parameters_and_the_identity() {
    let s = setup(1, "", "approval_mode = \"deferred\"");
    let other_key = s.gw.create_key("agent-2", "agents");
    let (client, _task) = pg_connect(&s.conn()).await.unwrap();
    let add = "update accounts set balance = balance + $1 where id = 1";
    let stmt = client.prepare(add).await.unwrap();
    assert!(client.execute(&stmt, &[&5i32]).await.is_err());
    let request = s.pending();
    // tokio-postgres binds in binary: approvers see the exact bytes.
    assert_eq!(request.params, vec![Some("\\x00000005".to_owned())]);
    s.store().approve(&request.id, &dba("alice"), None).unwrap();

    // Other parameters: not this approval.
    let e = client.execute(&stmt, &[&500i32]).await.unwrap_err();
    assert_eq!(e.as_db_error().unwrap().code().code(), "SL001");
    // Another identity, same statement: not this approval.
    let (other, _t) = pg_connect(&s.gw.conn_str("agent-2", &other_key, "app"))
        .await
        .unwrap();
    let stmt2 = other.prepare(add).await.unwrap();
    let e = other.execute(&stmt2, &[&5i32]).await.unwrap_err();
    assert_eq!(e.as_db_error().unwrap().code().code(), "SL001");
    assert_eq!(s.balance(), "100");
    // The approved one runs.
    assert_eq!(client.execute(&stmt, &[&5i32]).await.unwrap(), 1);
    assert_eq!(s.balance(), "105");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_approval_is_refused_and_the_statement_does_not_run() {
    let s = setup(1, "", "approval_mode = \"deferred\"");
    let (client, _task) = pg_connect(&s.conn()).await.unwrap();
    assert!(client.execute(UPDATE, &[]).await.is_err());
    let request = s.pending();
    s.store().approve(&request.id, &dba("alice"), None).unwrap();
    let db = rusqlite::Connection::open(s.gw.dir.path().join("data/approvals.db")).unwrap();
    let changed = db
        .execute("update grants set approvers = '[\"mallory\"]'", [])
        .unwrap();
    assert_eq!(changed, 1);
    let e = client.execute(UPDATE, &[]).await.unwrap_err();
    let (code, message) = db_error(&e);
    assert_eq!(code, "42501");
    assert!(message.contains("cannot be used"), "{message}");
    assert_eq!(s.balance(), "100");
    wait_for_event(&s.gw, "refused_grant agent-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_client_is_told_at_shutdown_and_reruns_after_approval_on_the_new_process() {
    let mut s = setup(1, "", "");
    let (client, task) = pg_connect(&s.conn()).await.unwrap();
    let held = tokio::spawn(async move { client.execute(UPDATE, &[]).await });
    let request = s.pending();
    s.gw.signal("TERM");
    s.gw.wait_exit(Duration::from_secs(10))
        .expect("gateway exits");
    let e = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    let ended = task.await.unwrap();
    let said = format!("{e:?} {ended:?}");
    assert!(
        said.contains(&request.id) && said.contains("stays pending"),
        "{said}"
    );
    assert_eq!(s.balance(), "100");

    s.gw.start(&[("PW", "scram_pw")]);
    assert_eq!(
        s.status_of(&request.id),
        Status::Pending,
        "it survives the restart"
    );
    s.store().approve(&request.id, &dba("alice"), None).unwrap();
    let (client, _task) = pg_connect(&s.conn()).await.unwrap();
    assert_eq!(client.execute(UPDATE, &[]).await.unwrap(), 1);
    assert_eq!(s.balance(), "101");
    assert_eq!(s.status_of(&request.id), Status::Consumed);
}

/// The audit log's approval events, as `event actor` lines.
fn approval_events(gw: &Gateway) -> Vec<String> {
    let log = sluice_audit::AuditLog::open_read_only(&gw.dir.path().join("data")).unwrap();
    log.session_records("approvals")
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.body {
            sluice_audit::Body::Approval(a) => Some(format!(
                "{} {} {}",
                a.event,
                a.actor,
                a.comment.unwrap_or_default()
            )),
            _ => None,
        })
        .collect()
}

fn wait_for_event(gw: &Gateway, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = approval_events(gw);
        if events.iter().any(|e| e.contains(needle)) {
            return events;
        }
        assert!(Instant::now() < deadline, "no {needle:?} in {events:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_approval_attempts_are_recorded_in_the_audit_log() {
    let admin = sluice_testkit::free_port();
    let pg = PgServer::start();
    common::accounts_table(&pg);
    let resources = resource_toml(
        "app",
        &pg,
        "scram_user",
        Some("PW"),
        "approval_mode = \"deferred\"",
    );
    let mut gw = Gateway::configure_with_policy(
        &format!("admin_listen = \"127.0.0.1:{admin}\""),
        &resources,
        &policy(1),
    );
    gw.start(&[("PW", "scram_pw")]);
    let agent = gw.create_key("agent-1", "agents");
    let (client, _task) = pg_connect(&gw.conn_str("agent-1", &agent, "app"))
        .await
        .unwrap();
    let e = client.execute(UPDATE, &[]).await.unwrap_err();
    let message = e.as_db_error().unwrap().message().to_owned();
    let id = message
        .split_whitespace()
        .find(|w| w.starts_with("apr_"))
        .unwrap()
        .to_owned();
    // The agent tries to approve its own request through the CLI.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "approvals",
            "approve",
            &id,
            "--url",
            &format!("http://127.0.0.1:{admin}"),
        ])
        .env("SLUICE_KEY", &agent)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot decide"), "{err}");
    let events = wait_for_event(&gw, "refused_approve agent-1");
    assert!(
        events.iter().any(|e| e.starts_with("requested agent-1")),
        "{events:#?}"
    );
    // Without a key at all: refused, and recorded too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "approvals",
            "approve",
            &id,
            "--url",
            &format!("http://127.0.0.1:{admin}"),
        ])
        .env("SLUICE_KEY", "slk_nope_nope")
        .output()
        .unwrap();
    assert!(!out.status.success());
    wait_for_event(&gw, "refused_approve (unauthenticated)");
    assert_eq!(
        pg.psql("app", "select balance from accounts where id = 1")
            .trim(),
        "100"
    );
}

#[test]
fn a_held_statement_does_not_run_when_a_later_one_in_its_batch_is_refused() {
    use common::raw::{bind, execute, parse, sync, Raw};
    let pg = PgServer::start();
    common::accounts_table(&pg);
    let resources = resource_toml("app", &pg, "scram_user", Some("PW"), "");
    let policy = format!(
        "{}@id(\"no-drop\")\nforbid(principal, action == Action::\"drop\", resource);\n",
        policy(1)
    );
    let mut gw = Gateway::configure_with_policy("", &resources, &policy);
    gw.start(&[("PW", "scram_pw")]);
    let key = gw.create_key("agent-1", "agents");
    let mut raw = Raw::connect(gw.port, "agent-1", &key);
    let mut batch = parse(UPDATE);
    batch.extend(bind());
    batch.extend(execute());
    batch.extend(parse("drop table accounts"));
    batch.extend(sync());
    raw.send(&batch);
    let replies = raw.replies(1).join("\n");
    assert!(replies.contains("E 42501"), "{replies}");
    assert_eq!(
        pg.psql("app", "select balance from accounts where id = 1")
            .trim(),
        "100",
        "the held UPDATE must not run: {replies}"
    );
}

#[test]
fn a_statement_name_the_backend_refused_to_prepare_again_keeps_its_first_text() {
    use common::raw::{cstr, msg, sync, Raw};
    let s = setup(1, "", "approval_mode = \"deferred\"");
    let mut raw = Raw::connect(s.gw.port, "agent-1", &s.agent);
    let named_parse =
        |name: &str, sql: &str| msg(b'P', &[cstr(name), cstr(sql), vec![0, 0]].concat());
    // s1 holds the UPDATE (a Parse alone runs nothing).
    raw.send(&[named_parse("s1", UPDATE), sync()].concat());
    raw.replies(1);
    // Preparing s1 again fails in PostgreSQL (42P05): it still holds the UPDATE.
    raw.send(&[named_parse("s1", "select 1"), sync()].concat());
    let replies = raw.replies(1).join("\n");
    assert!(replies.contains("E 42P05"), "{replies}");
    let bind_s1 = msg(
        b'B',
        &[cstr(""), cstr("s1"), vec![0, 0, 0, 0, 0, 0]].concat(),
    );
    let execute = msg(b'E', &[0, 0, 0, 0, 0]);
    raw.send(&[bind_s1, execute, sync()].concat());
    let replies = raw.replies(1).join("\n");
    assert!(
        replies.contains("E SL001"),
        "judged as the UPDATE it runs: {replies}"
    );
    assert_eq!(s.balance(), "100");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_is_bound_to_the_search_path_it_was_approved_under() {
    let s = setup(1, "", "approval_mode = \"deferred\"");
    s.pg.psql(
        "app",
        "create schema other authorization scram_user; \
         create table other.accounts (id int primary key, balance int); \
         insert into other.accounts values (1, 500); alter table other.accounts owner to scram_user;",
    );
    let other_balance = || {
        s.pg.psql("app", "select balance from other.accounts where id = 1")
            .trim()
            .to_owned()
    };
    let (client, _task) = pg_connect(&s.conn()).await.unwrap();
    client
        .batch_execute("set search_path to other, public")
        .await
        .unwrap();
    let e = client.execute(UPDATE, &[]).await.unwrap_err();
    assert_eq!(e.as_db_error().unwrap().code().code(), "SL001");
    let request = s.pending();
    assert_eq!(
        request.session_state, r#"search_path = ["other","public"]"#,
        "the approver is shown the settings"
    );
    s.store().approve(&request.id, &dba("alice"), None).unwrap();

    // Another search_path: the same text means public.accounts here.
    client
        .batch_execute("set search_path to public")
        .await
        .unwrap();
    let e = client.execute(UPDATE, &[]).await.unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "SL001", "{}", db.message());
    let detail = db.detail().unwrap_or_default();
    assert!(
        detail.contains(&request.id) && detail.contains("other session settings"),
        "{detail}"
    );
    assert_eq!(
        (s.balance().as_str(), other_balance().as_str()),
        ("100", "500")
    );
    assert_eq!(s.status_of(&request.id), Status::Approved);
    wait_for_event(&s.gw, "refused_session_state");

    // A new session with the same settings: runs once, on other.accounts.
    let (again, _task2) = pg_connect(&s.conn()).await.unwrap();
    again
        .batch_execute("set search_path to other, public")
        .await
        .unwrap();
    assert_eq!(again.execute(UPDATE, &[]).await.unwrap(), 1);
    assert_eq!(
        (s.balance().as_str(), other_balance().as_str()),
        ("100", "501")
    );
    assert_eq!(s.status_of(&request.id), Status::Consumed);
    assert!(again.execute(UPDATE, &[]).await.is_err());
    assert_eq!(other_balance(), "501");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setting_changed_inside_a_transaction_never_matches_an_approval() {
    let s = setup(1, "", "approval_mode = \"deferred\"");
    let (client, _task) = pg_connect(&s.conn()).await.unwrap();
    client
        .batch_execute("begin; set search_path to public; commit")
        .await
        .unwrap();
    assert!(client.execute(UPDATE, &[]).await.is_err());
    let request = s.pending();
    assert!(
        request.session_state.contains("unknown"),
        "{}",
        request.session_state
    );
    s.store().approve(&request.id, &dba("alice"), None).unwrap();
    // The same steps in another session give another state: not usable.
    let (other, _task2) = pg_connect(&s.conn()).await.unwrap();
    other
        .batch_execute("begin; set search_path to public; commit")
        .await
        .unwrap();
    assert!(other.execute(UPDATE, &[]).await.is_err());
    assert_eq!(s.balance(), "100");
    // The session it was approved in still can, once.
    assert_eq!(client.execute(UPDATE, &[]).await.unwrap(), 1);
    assert_eq!(s.balance(), "101");
}
