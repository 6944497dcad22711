//! Policy on the data path, with the default policies shipped in
//! `examples/policies`: what is refused never reaches the database, and a
//! refusal behaves exactly like a PostgreSQL error (in a transaction, in a
//! pipeline).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{db_error, pg_connect, psql, py_dir, resource_toml, Gateway};
use sluice_testkit::PgServer;
use std::path::Path;
use std::process::Command;

/// The shipped default policies, as one file.
fn default_policies() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cedar"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A gateway with resources "app" (env = test) and "prod" (env = prod) on
/// one server, under the default policies, and keys for an agent and a DBA.
struct Setup {
    gw: Gateway,
    pg: PgServer,
    agent: String,
    dba: String,
}

impl Setup {
    fn new() -> Setup {
        let pg = PgServer::start();
        let resources = resource_toml("app", &pg, "scram_user", Some("PW"), "")
            + &resource_toml(
                "prod",
                &pg,
                "scram_user",
                Some("PW"),
                "approval_mode = \"deferred\"",
            )
            .replace("env = \"test\"", "env = \"prod\"");
        let mut gw = Gateway::configure_with_policy("", &resources, &default_policies());
        gw.start(&[("PW", "scram_pw")]);
        let agent = gw.create_key("agent-1", "agents");
        let dba = gw.create_key("dana", "dba");
        pg.psql("app", "create table accounts (id int primary key, owner text); insert into accounts values (1, 'ada'), (2, 'bob'); alter table accounts owner to scram_user;");
        Setup { gw, pg, agent, dba }
    }

    fn agent_conn(&self, resource: &str) -> String {
        self.gw.conn_str("agent-1", &self.agent, resource)
    }

    fn count(&self) -> String {
        self.pg
            .psql("app", "select count(*) from accounts")
            .trim()
            .to_owned()
    }
}

#[test]
fn a_denied_drop_never_reaches_the_table_and_psql_shows_the_policy_and_reason() {
    let s = Setup::new();
    let (ok, _, err) = psql(&s.agent_conn("app"), "DROP TABLE accounts");
    assert!(!ok);
    assert!(err.contains("denied by policy \"agents-no-drop\""), "{err}");
    assert!(
        err.contains("agents may not drop database objects"),
        "{err}"
    );
    assert!(err.contains("HINT:"), "{err}");
    assert_eq!(s.count(), "2", "the table is still there with its rows");
    // Evasions are the same statement to the real parser.
    for sql in [
        "/* harmless */ dRoP /**/ TABLE \"accounts\"",
        "select 1; drop table accounts",
        "DO $$ BEGIN EXECUTE 'DROP TABLE accounts'; END $$",
    ] {
        let (ok, _, err) = psql(&s.agent_conn("app"), sql);
        assert!(!ok, "{sql} was allowed");
        assert!(
            err.contains("42501") || err.contains("denied by policy"),
            "{sql}: {err}"
        );
    }
    assert_eq!(s.count(), "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_carries_sqlstate_42501_and_the_session_stays_usable() {
    let s = Setup::new();
    let (client, _task) = pg_connect(&s.agent_conn("app")).await.unwrap();
    let e = client
        .batch_execute("delete from accounts")
        .await
        .unwrap_err();
    let (code, message) = db_error(&e);
    assert_eq!(code, "42501");
    assert!(message.contains("agents-no-unbounded-write"), "{message}");
    // A bounded delete is allowed outside production.
    assert_eq!(
        client
            .execute("delete from accounts where id = $1", &[&2i32])
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.count(), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_statement_in_a_transaction_aborts_it_and_nothing_is_committed() {
    let s = Setup::new();
    let (client, _task) = pg_connect(&s.agent_conn("app")).await.unwrap();
    client
        .batch_execute("begin; insert into accounts values (3, 'cy')")
        .await
        .unwrap();
    let e = client.batch_execute("truncate accounts").await.unwrap_err();
    assert_eq!(db_error(&e).0, "42501");
    // Exactly as after a PostgreSQL error: the transaction is aborted.
    let e = client.batch_execute("select 1").await.unwrap_err();
    assert_eq!(db_error(&e).0, "25P02");
    client.batch_execute("commit").await.unwrap();
    assert_eq!(
        s.count(),
        "2",
        "the insert of the aborted transaction is not committed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_queries_around_a_denied_one_each_get_their_own_result() {
    let s = Setup::new();
    let (client, _task) = pg_connect(&s.agent_conn("app")).await.unwrap();
    let insert = client.execute("insert into accounts values ($1, 'dee')", &[&4i32]);
    let denied = client.execute("update accounts set owner = $1", &[&"mallory"]);
    let select = client.query_one("select 7", &[]);
    let (insert, denied, select) = tokio::join!(insert, denied, select);
    assert_eq!(insert.unwrap(), 1);
    assert_eq!(db_error(&denied.unwrap_err()).0, "42501");
    assert_eq!(select.unwrap().get::<_, i32>(0), 7);
    assert_eq!(s.count(), "3");
    assert_eq!(
        s.pg.psql(
            "app",
            "select count(*) from accounts where owner = 'mallory'"
        )
        .trim(),
        "0"
    );
}

#[test]
fn a_denial_inside_one_extended_batch_behaves_like_an_error_in_a_pipeline() {
    let s = Setup::new();
    let direct = format!(
        "host=127.0.0.1 port={} dbname=app user=scram_user password=scram_pw",
        s.pg.port()
    );
    let out = Command::new("python3")
        .arg(py_dir().join("pipeline_denial.py"))
        .arg(s.agent_conn("app"))
        .arg(direct)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        s.gw.log()
    );
}

#[test]
fn writes_to_production_need_review_and_do_not_run_before_an_approval() {
    let s = Setup::new();
    let (ok, rows, err) = psql(&s.agent_conn("prod"), "select count(*) from accounts");
    assert!(ok, "{err}");
    assert_eq!(rows.trim(), "2");
    let (ok, _, err) = psql(
        &s.agent_conn("prod"),
        "insert into accounts values (9, 'eve')",
    );
    assert!(!ok);
    // The prod resource is in deferred mode: refused at once, with the
    // request to approve (approvals_flow.rs covers the rest).
    assert!(
        err.contains("SL001") || err.contains("requires approval: request apr_"),
        "{err}"
    );
    assert_eq!(s.count(), "2");
}

#[test]
fn unknown_and_admin_statements_are_denied_but_a_dba_may_run_admin() {
    let s = Setup::new();
    for sql in [
        "select * from accounts where",
        "ALTER SYSTEM SET work_mem = '1GB'",
        "SET ROLE postgres",
        "COPY accounts TO PROGRAM 'cat'",
    ] {
        let (ok, _, err) = psql(&s.agent_conn("app"), sql);
        assert!(!ok && err.contains("denied by policy"), "{sql}: {err}");
    }
    let dba = s.gw.conn_str("dana", &s.dba, "app");
    let (ok, _, err) = psql(&dba, "VACUUM accounts");
    assert!(ok, "a DBA may run admin statements: {err}");
    let (ok, _, err) = psql(&dba, "select * from accounts where");
    assert!(
        !ok && err.contains("default-deny"),
        "unknown is denied even for a DBA: {err}"
    );
}

#[test]
fn policy_check_explains_a_decision_and_validate_reports_errors_with_file_and_line() {
    let s = Setup::new();
    let out = s.gw.cli(&[
        "policy",
        "check",
        "--identity",
        "agent-1",
        "--resource",
        "app",
        "--json",
        "DELETE FROM accounts",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["decision"]["outcome"], "deny");
    assert_eq!(report["statements"][0]["action"], "delete");
    assert_eq!(report["statements"][0]["has_where"], false);
    assert_eq!(
        report["decision"]["policies"][0]["id"],
        "agents-no-unbounded-write"
    );
    assert_eq!(
        report["identity"]["groups"][0], "agents",
        "groups come from the identity's keys"
    );

    let out = s.gw.cli(&[
        "policy",
        "check",
        "--identity",
        "agent-1",
        "--resource",
        "app",
        "SELECT * FROM accounts",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("action:     select") && text.contains("decision: allow"),
        "{text}"
    );

    let out = s.gw.cli(&["policy", "validate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        s.gw.dir.path().join("policies.cedar"),
        "@id(\"typo\")\npermit(principal, action == Action::\"dorp\", resource);\n",
    )
    .unwrap();
    let out = s.gw.cli(&["policy", "validate"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("policies.cedar") && err.contains("dorp"),
        "{err}"
    );
}

#[test]
fn sighup_reloads_policies_without_dropping_sessions_and_keeps_the_last_good_set_on_error() {
    let s = Setup::new();
    let conn = s.agent_conn("app");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (client, _task) = rt.block_on(pg_connect(&conn)).unwrap();
    rt.block_on(client.batch_execute("select 1")).unwrap();

    // A broken file is refused; the last good policies stay in force.
    let policy_file = s.gw.dir.path().join("policies.cedar");
    std::fs::write(&policy_file, "permit(principal, action, resource").unwrap();
    s.gw.signal("HUP");
    s.gw.wait_log("policy reload failed", std::time::Duration::from_secs(10));
    rt.block_on(client.batch_execute("select 1")).unwrap();

    // A good file that forbids reads takes effect for the open session.
    std::fs::write(&policy_file, format!("{}\n@id(\"no-reads\")\n@reason(\"reads are paused\")\nforbid(principal, action == Action::\"select\", resource);\n", default_policies())).unwrap();
    s.gw.signal("HUP");
    s.gw.wait_log("policies reloaded", std::time::Duration::from_secs(10));
    let e = rt.block_on(client.batch_execute("select 1")).unwrap_err();
    assert!(db_error(&e).1.contains("reads are paused"), "{e:?}");
}

#[test]
fn the_gateway_refuses_to_start_with_policies_that_have_errors() {
    let pg = PgServer::start();
    let mut gw = Gateway::configure_with_policy(
        "",
        &resource_toml("app", &pg, "scram_user", Some("PW"), ""),
        "@id(\"typo\")\npermit(principal, action == Action::\"selct\", resource);\n",
    );
    let out = std::process::Command::new(common::SLUICE)
        .args(["serve", "--config"])
        .arg(&gw.config)
        .env("PW", "scram_pw")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the gateway started with a broken policy"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("policies.cedar") && err.contains("selct"),
        "{err}"
    );
    // And with no [policy] section at all, nothing is permitted.
    std::fs::write(
        &gw.config,
        std::fs::read_to_string(&gw.config)
            .unwrap()
            .replace("[policy]\nfiles = [\"policies.cedar\"]\n", ""),
    )
    .unwrap();
    gw.start(&[("PW", "scram_pw")]);
    let key = gw.create_key("agent-1", "agents");
    let (ok, _, err) = psql(&gw.conn_str("agent-1", &key, "app"), "select 1");
    assert!(!ok && err.contains("default-deny"), "{err}");
}
