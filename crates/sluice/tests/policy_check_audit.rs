//! `sluice policy check` says what the gateway decides: for a query string
//! the gateway ran, its decision (outcome and the policies named) is the one
//! the audit record holds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{psql, resource_toml, Gateway};
use serde_json::Value;
use sluice_audit::{AuditLog, Body, SessionFilter};
use sluice_testkit::PgServer;
use std::time::Duration;

const POLICY: &str = "@id(\"reads\")\npermit(principal, action in Action::\"read\", resource);\n\
                      @id(\"session-settings\")\npermit(principal, action == Action::\"session\", resource);\n";

/// The `decision` the audit log recorded for the statement sent as `text`.
fn recorded_decision(log: &AuditLog, text: &str) -> Value {
    for session in log.sessions(&SessionFilter::default()).unwrap() {
        for record in log.session_records(&session.id).unwrap() {
            if let Body::Statement(s) = record.body {
                if s.text == text {
                    return serde_json::to_value(&s.decision).unwrap();
                }
            }
        }
    }
    panic!("no statement record for {text:?}");
}

#[test]
fn policy_check_names_the_permit_that_allowed_a_query_as_its_audit_record_does() {
    let pg = PgServer::start();
    let mut gw = Gateway::configure_with_policy(
        "shutdown_grace_secs = 1",
        &resource_toml("app", &pg, "scram_user", Some("PW"), ""),
        POLICY,
    );
    gw.start(&[("PW", "scram_pw")]);
    let key = gw.create_key("agent-1", "agents");
    let queries = ["select 1", "select 1; set application_name = 'checked'"];
    for sql in queries {
        let (ok, _, err) = psql(&gw.conn_str("agent-1", &key, "app"), sql);
        assert!(ok, "{sql}: {err}");
    }
    gw.signal("TERM");
    gw.wait_exit(Duration::from_secs(10))
        .expect("gateway exits");
    let log = AuditLog::open_read_only(&gw.dir.path().join("data")).unwrap();

    for sql in queries {
        let recorded = recorded_decision(&log, sql);
        assert_eq!(recorded["policies"][0]["id"], "reads", "{recorded}");
        let out = gw.cli(&[
            "policy",
            "check",
            "--identity",
            "agent-1",
            "--resource",
            "app",
            "--json",
            sql,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            report["decision"], recorded,
            "`policy check` decides {sql:?} as the gateway recorded it"
        );
    }
}
