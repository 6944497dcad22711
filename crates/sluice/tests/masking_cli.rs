//! `sluice policy check` shows what masking does to the identity's session:
//! the content detectors on for the resource, the column rules that could
//! apply to the statement's tables, or the policy that lifts masking. No
//! gateway and no database connection are needed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{resource_toml, Gateway};
use serde_json::Value;
use sluice_testkit::PgServer;

const POLICY: &str = "@id(\"allow-all\")\npermit(principal, action, resource);\n\
    @id(\"dbas-unmask\")\n@reason(\"DBAs see raw values\")\n\
    permit(principal in Group::\"dba\", action == Action::\"unmask\", resource);\n";

const MASKING: &str = "[masking]\nstyle = \"partial\"\n\
    columns = [\"public.people.name\", { pattern = \"orders.note\", style = \"full\" }, \"email\", \"type:inet\"]\n";

/// A config with `masking` and resource "app" (with `resource_extra`).
fn configure(pg: &PgServer, masking: &str, resource_extra: &str) -> Gateway {
    let resources = format!(
        "{masking}\n{}",
        resource_toml("app", pg, "scram_user", Some("PW"), resource_extra)
    );
    Gateway::configure_with_policy("", &resources, POLICY)
}

fn check(gw: &Gateway, identity: &str, groups: &str, json: bool, sql: &str) -> String {
    let mut args = vec![
        "policy",
        "check",
        "--identity",
        identity,
        "--groups",
        groups,
        "--resource",
        "app",
    ];
    if json {
        args.push("--json");
    }
    args.push(sql);
    let out = gw.cli(&args);
    assert!(
        out.status.success(),
        "policy check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn check_json(gw: &Gateway, identity: &str, groups: &str, sql: &str) -> Value {
    serde_json::from_str(&check(gw, identity, groups, true, sql)).unwrap()
}

fn detectors(report: &Value) -> Vec<&str> {
    report["masking"]["detectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect()
}

fn rules(report: &Value) -> Vec<(String, String, String)> {
    report["masking"]["column_rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap().to_string(),
                r["style"].as_str().unwrap().to_string(),
                r["applies_to"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn an_agent_sees_the_detectors_and_the_rules_for_the_tables_it_touches() {
    let pg = PgServer::start();
    let gw = configure(&pg, MASKING, "");
    let report = check_json(&gw, "agent-1", "agents", "SELECT name, email FROM people");

    // Every existing key is still there, unchanged.
    assert_eq!(report["identity"]["name"], "agent-1");
    assert_eq!(report["identity"]["groups"][0], "agents");
    assert_eq!(report["resource"], "app");
    assert_eq!(report["decision"]["outcome"], "allow");
    let st = &report["statements"][0];
    for key in [
        "action",
        "text",
        "tables",
        "has_where",
        "functions",
        "calls_volatile",
        "fingerprint",
        "error",
        "decision",
    ] {
        assert!(st.get(key).is_some(), "statements[0].{key} missing: {st}");
    }
    assert_eq!(st["action"], "select");
    assert_eq!(st["tables"][0], "people");
    assert_eq!(st["decision"]["policies"][0]["id"], "allow-all");

    let m = &report["masking"];
    assert!(m.get("unmasked_by").is_none(), "{m}");
    let on = detectors(&report);
    for d in [
        "email",
        "card",
        "ssn",
        "phone",
        "aws_access_key",
        "private_key",
    ] {
        assert!(on.contains(&d), "{d} is on by default: {on:?}");
    }
    assert_eq!(m["style"], "partial");
    assert_eq!(m["key_named_columns"], true);
    let listed = rules(&report);
    let any = |r: &str, style: &str| (r.to_string(), style.to_string(), "any table".to_string());
    assert_eq!(
        listed,
        vec![
            (
                "public.people.name".to_string(),
                "full".to_string(),
                "people".to_string()
            ),
            any("email", "full"),
            any("type:inet", "full"),
        ],
        "the rule for orders does not apply to a statement on people"
    );

    // The rule for orders applies once the statement touches orders too.
    let report = check_json(
        &gw,
        "agent-1",
        "agents",
        "SELECT * FROM people; SELECT note FROM public.orders",
    );
    assert!(
        rules(&report).contains(&(
            "orders.note".to_string(),
            "full".to_string(),
            "public.orders".to_string()
        )),
        "{:?}",
        rules(&report)
    );

    // The text form says the same.
    let text = check(&gw, "agent-1", "agents", false, "SELECT name FROM people");
    assert!(text.contains("decision: allow"), "{text}");
    assert!(text.contains("masking: on"), "{text}");
    assert!(text.contains("detectors:  email, card"), "{text}");
    assert!(text.contains("public.people.name"), "{text}");
    assert!(text.contains("any table (by result column name)"), "{text}");
    assert!(!text.contains("orders.note"), "{text}");
    assert!(
        text.contains("1 rule for other tables not listed"),
        "{text}"
    );
    assert!(
        text.contains("matched against result column names at run time"),
        "{text}"
    );
}

#[test]
fn a_dba_with_an_unmask_permit_is_unmasked_and_says_by_which_policy() {
    let pg = PgServer::start();
    let gw = configure(&pg, MASKING, "");
    let report = check_json(&gw, "dana", "dba", "SELECT name FROM people");
    assert_eq!(
        report["masking"],
        serde_json::json!({"unmasked_by": {"id": "dbas-unmask", "reason": "DBAs see raw values"}})
    );
    assert_eq!(report["decision"]["outcome"], "allow");
    let text = check(&gw, "dana", "dba", false, "SELECT name FROM people");
    assert!(
        text.contains("masking: unmasked by policy \"dbas-unmask\" (DBAs see raw values)"),
        "{text}"
    );
}

#[test]
fn detectors_off_for_a_resource_are_not_listed_and_disabled_masking_says_so() {
    let pg = PgServer::start();
    let gw = configure(
        &pg,
        MASKING,
        "masking_detectors_off = [\"phone\", \"iban\"]",
    );
    let report = check_json(&gw, "agent-1", "agents", "SELECT 1");
    let on = detectors(&report);
    assert!(
        !on.contains(&"phone") && !on.contains(&"iban"),
        "turned off for the resource: {on:?}"
    );
    assert!(on.contains(&"email"), "{on:?}");
    assert!(
        rules(&report).iter().all(|(_, _, to)| to == "any table"),
        "no table touched: only rules for any table: {:?}",
        rules(&report)
    );

    let gw = configure(&pg, "[masking]\nenabled = false\n", "");
    let report = check_json(&gw, "agent-1", "agents", "SELECT * FROM people");
    assert_eq!(report["masking"], serde_json::json!({"enabled": false}));
    assert_eq!(report["statements"][0]["action"], "select");
    let text = check(&gw, "agent-1", "agents", false, "SELECT * FROM people");
    assert!(text.contains("masking: disabled"), "{text}");
}
