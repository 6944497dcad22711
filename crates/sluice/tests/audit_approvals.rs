//! Approvals in `sluice audit`, end to end: a statement approved through the
//! approval API is replayed with the names of its approvers, a refused
//! attempt is not written to a `--sql` script as if it ran, the audit log's
//! `approvals` pseudo-session is not listed as a session, and
//! `sluice audit approvals` lists the approval events.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{pg_connect, resource_toml, Gateway, SLUICE};
use serde_json::Value;
use sluice_testkit::PgServer;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Everything but updates runs; updates need one approval from group dba.
const POLICY: &str = "@id(\"allow-rest\")\npermit(principal, action, resource) unless { action == Action::\"update\" };\n\
                      @id(\"updates-need-a-dba\")\n@review(\"dba\")\n\
                      permit(principal, action == Action::\"update\", resource);\n";

const UPDATE: &str = "update accounts set balance = balance + 1 where id = 1";

/// A gateway with the approval API in front of `accounts(id, balance)`:
/// resource "app" holds statements (wait), "later" refuses them until
/// approved (deferred). Keys: agent-1 (agents), alice (dba).
struct Setup {
    pg: PgServer,
    gw: Gateway,
    url: String,
    agent: String,
    alice: String,
}

fn setup() -> Setup {
    let pg = PgServer::start();
    common::accounts_table(&pg);
    let admin = sluice_testkit::free_port();
    let resources = resource_toml("app", &pg, "scram_user", Some("PW"), "")
        + &resource_toml(
            "later",
            &pg,
            "scram_user",
            Some("PW"),
            "approval_mode = \"deferred\"",
        );
    let mut gw = Gateway::configure_with_policy(
        &format!("admin_listen = \"127.0.0.1:{admin}\"\nshutdown_grace_secs = 1"),
        &resources,
        POLICY,
    );
    gw.start(&[("PW", "scram_pw")]);
    let agent = gw.create_key("agent-1", "agents");
    let alice = gw.create_key("alice", "dba");
    Setup {
        pg,
        gw,
        url: format!("http://127.0.0.1:{admin}"),
        agent,
        alice,
    }
}

impl Setup {
    /// `sluice approvals <args>` as alice, through the gateway's API.
    fn approvals(&self, args: &[&str]) -> Output {
        let out = Command::new(SLUICE)
            .arg("approvals")
            .args(args)
            .args(["--url", &self.url])
            .env("SLUICE_KEY", &self.alice)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        out
    }

    /// The id of the one pending request, once there is one.
    fn pending_id(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let listed = stdout(&self.approvals(&["list", "--json"]));
            if let Some(id) = listed.split('"').find(|w| w.starts_with("apr_")) {
                return id.to_owned();
            }
            assert!(Instant::now() < deadline, "no pending request: {listed}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn audit(&self, args: &[&str]) -> String {
        let mut all = vec!["audit"];
        all.extend_from_slice(args);
        let out = self.gw.cli(&all);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    }

    /// The id of the session of `resource` (one each in these tests).
    fn session_of(&self, resource: &str) -> String {
        let sessions: Value = serde_json::from_str(&self.audit(&["sessions", "--json"])).unwrap();
        sessions
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["resource"] == resource)
            .unwrap_or_else(|| panic!("no session on {resource}: {sessions}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A replay line that promises names and gives none.
fn nameless_by(replay: &str) -> Option<&str> {
    replay.lines().find(|l| l.trim_end().ends_with(" by"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_statements_replay_with_their_approvers_and_approvals_are_not_a_session() {
    let mut s = setup();

    // Wait mode: the update is held until alice approves it.
    let (client, _task) = pg_connect(&s.gw.conn_str("agent-1", &s.agent, "app"))
        .await
        .unwrap();
    let held = tokio::spawn(async move { client.execute(UPDATE, &[]).await.map(|n| (n, client)) });
    let waited = s.pending_id();
    s.approvals(&["approve", &waited, "--comment", "fine"]);
    let (updated, client) = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .expect("runs after approval")
        .unwrap()
        .unwrap();
    assert_eq!(updated, 1);
    drop(client);

    // Deferred mode: refused with a request id, run when re-sent after approval.
    let (client, _task) = pg_connect(&s.gw.conn_str("agent-1", &s.agent, "later"))
        .await
        .unwrap();
    let refused = client.execute(UPDATE, &[]).await.unwrap_err();
    let deferred = refused
        .as_db_error()
        .unwrap()
        .message()
        .split_whitespace()
        .find(|w| w.starts_with("apr_"))
        .unwrap()
        .to_owned();
    s.approvals(&["approve", &deferred]);
    assert_eq!(client.execute(UPDATE, &[]).await.unwrap(), 1);
    drop(client);
    assert_eq!(
        s.pg.psql("app", "select balance from accounts").trim(),
        "102"
    );

    s.gw.signal("TERM");
    s.gw.wait_exit(Duration::from_secs(10))
        .expect("gateway exits");

    let replay = s.audit(&["replay", &s.session_of("app")]);
    assert!(
        replay.contains(&format!("approval request {waited}: approved by alice")),
        "the held statement names its approver: {replay}"
    );
    assert_eq!(nameless_by(&replay), None, "{replay}");

    let replay = s.audit(&["replay", &s.session_of("later")]);
    assert!(
        replay.contains(&format!("approval request {deferred}: approved by alice"))
            && replay.contains(&format!("approved: request {deferred} by alice")),
        "the refused attempt names the request's approver, the run its grant's: {replay}"
    );
    assert_eq!(nameless_by(&replay), None, "{replay}");
    let script = s.audit(&["replay", "--sql", &s.session_of("later")]);
    assert_eq!(
        script.matches(&format!("{UPDATE};")).count(),
        1,
        "the update ran once, so the script runs it once: {script}"
    );
    assert!(
        script.contains("1 statement(s) written, 1 skipped"),
        "{script}"
    );
    let script = s.audit(&["replay", "--sql", &s.session_of("app")]);
    assert!(
        script.contains(&format!("approved (request {waited} by alice)"))
            && script.contains(&format!("{UPDATE};")),
        "{script}"
    );

    let table = s.audit(&["sessions"]);
    assert!(
        !table.contains("approvals") && !table.contains("1970"),
        "the approvals pseudo-session is not a session: {table}"
    );
    let sessions: Value = serde_json::from_str(&s.audit(&["sessions", "--json"])).unwrap();
    assert_eq!(sessions.as_array().unwrap().len(), 2, "{sessions}");

    let events = s.audit(&["approvals"]);
    assert!(events.starts_with("TIME "), "{events}");
    for row in [
        [waited.as_str(), "requested", "agent-1"],
        [waited.as_str(), "approved", "alice"],
        [deferred.as_str(), "consumed", "agent-1"],
    ] {
        assert!(
            events.lines().any(|l| {
                let cells: Vec<&str> = l.split_whitespace().collect();
                cells.windows(3).any(|w| w == row)
            }),
            "{row:?} in: {events}"
        );
    }
    assert!(events.contains("fine"), "the vote's comment: {events}");
    let one: Value =
        serde_json::from_str(&s.audit(&["approvals", "--request", &deferred, "--json"])).unwrap();
    let one = one.as_array().unwrap();
    assert!(!one.is_empty());
    assert!(
        one.iter().all(|e| e["request_id"] == deferred.as_str()),
        "{one:?}"
    );
    assert!(one
        .iter()
        .any(|e| e["event"] == "approved" && e["actor"] == "alice"));
}
