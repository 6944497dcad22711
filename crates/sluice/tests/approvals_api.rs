//! The approval API (`[server] admin_listen`) and `sluice approvals`,
//! against a real gateway process. Requests are created directly in the
//! gateway's approval store (a second handle on the same SQLite file), so
//! these tests do not depend on the data path that holds statements.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "approvals_api/fixture.rs"]
mod fixture;

use common::{Gateway, SLUICE};
use fixture::{fixture, stderr, stdout, RESOURCE};
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sluice_approvals::Request;
use std::process::Command;

#[test]
fn cli_lists_shows_and_approves_a_pending_request() {
    let f = fixture();
    let r = f.request("DELETE FROM orders WHERE id = $1 -- cli approve", 1);
    let bob = Some(f.key("bob"));

    let out = f.cli(bob, &["list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(table.starts_with("ID "), "{table}");
    for column in [
        "STATUS",
        "REQUESTER",
        "RESOURCE",
        "CREATED",
        "EXPIRES",
        "VOTES/QUORUM",
        "STATEMENT",
    ] {
        assert!(table.contains(column), "{table}");
    }
    let line = table
        .lines()
        .find(|l| l.starts_with(&r.id))
        .expect("listed");
    assert!(
        line.contains("pending") && line.contains("alice") && line.contains("0/1"),
        "{line}"
    );
    assert!(line.contains("DELETE FROM orders"), "{line}");

    let out = f.cli(bob, &["show", &r.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(
        shown.contains("DELETE FROM orders WHERE id = $1 -- cli approve"),
        "{shown}"
    );
    assert!(
        shown.contains("$1 = \"42\"") && shown.contains("$2 = NULL"),
        "{shown}"
    );
    assert!(
        shown.contains("review-deletes") && shown.contains("votes: none"),
        "{shown}"
    );

    let out = f.cli(bob, &["approve", &r.id, "--comment", "looks right"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("is approved (1/1 approvals)"),
        "{}",
        stdout(&out)
    );

    let pending = stdout(&f.cli(bob, &["list"]));
    assert!(
        !pending.contains(&r.id),
        "approved requests leave the default list"
    );
    let approved = stdout(&f.cli(bob, &["list", "--status", "approved"]));
    assert!(approved.contains(&r.id), "{approved}");
    let all = f.cli(bob, &["list", "--all", "--json"]);
    let all: Value = serde_json::from_slice(&all.stdout).unwrap();
    let mine = all["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["id"] == r.id.as_str())
        .unwrap();
    assert_eq!(mine["votes"][0]["approver"], "bob");
    assert_eq!(mine["votes"][0]["comment"], "looks right");

    let shown: Value =
        serde_json::from_slice(&f.cli(bob, &["show", &r.id, "--json"]).stdout).unwrap();
    assert_eq!(shown["status"], "approved");
}

#[test]
fn cli_finds_the_api_from_the_config_file_without_a_url() {
    let f = fixture();
    let r = f.request("DELETE FROM orders WHERE id = 7 -- via config", 1);
    let out = Command::new(SLUICE)
        .args(["approvals", "show", &r.id, "--config"])
        .arg(&f.gw.config)
        .env_remove("SLUICE_URL")
        .env("SLUICE_KEY", f.key("carol"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&r.id));
}

#[test]
fn cli_deny_requires_a_reason_and_records_it() {
    let f = fixture();
    let r = f.request("DELETE FROM orders -- cli deny", 1);
    let out = f.cli(Some(f.key("bob")), &["deny", &r.id]);
    assert_eq!(out.status.code(), Some(2), "clap usage error");
    assert!(stderr(&out).contains("--reason"), "{}", stderr(&out));

    let out = f.cli(
        Some(f.key("bob")),
        &["deny", &r.id, "--reason", "no WHERE clause"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("is denied"), "{}", stdout(&out));
    let got = f.store.get(&r.id).unwrap().unwrap();
    assert_eq!(got.status.as_str(), "denied");
    assert_eq!(
        got.denial().unwrap().comment.as_deref(),
        Some("no WHERE clause")
    );
}

#[test]
fn cli_without_sluice_key_says_to_set_it() {
    let f = fixture();
    let out = f.cli(None, &["list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("set SLUICE_KEY to your approver key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn cli_prints_the_apis_refusal_message_and_exits_1() {
    let f = fixture();
    let r = f.request("DELETE FROM orders -- own request", 1);
    let out = f.cli(Some(f.key("alice")), &["approve", &r.id]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("sluice: alice made approval request"),
        "{err}"
    );
    assert!(err.contains("cannot decide it"), "{err}");
    let out = f.cli(Some("slk_k000000000000_nope"), &["list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("sluice: invalid key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn http_list_show_approve_and_deny_answer_with_the_requests_as_json() {
    let f = fixture();
    let a = f.request("DELETE FROM orders WHERE id = 1 -- http approve", 1);
    let d = f.request("DELETE FROM orders WHERE id = 2 -- http deny", 1);
    let bob = Some(f.key("bob"));

    let (status, body) = f.call("GET", "/v1/approvals?status=pending&limit=1000", bob, None);
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&a.id.as_str()) && ids.contains(&d.id.as_str()));

    let (status, body) = f.call("GET", &format!("/v1/approvals/{}", a.id), bob, None);
    assert_eq!(status, StatusCode::OK);
    let parsed: Request = serde_json::from_value(body).unwrap();
    assert_eq!(parsed, a);

    let (status, body) = f.call(
        "POST",
        &format!("/v1/approvals/{}/approve", a.id),
        bob,
        Some(r#"{"comment":"ok"}"#),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "approved");
    assert_eq!(body["votes"][0]["approver"], "bob");
    assert_eq!(body["votes"][0]["decision"], "approve");

    let (status, body) = f.call(
        "POST",
        &format!("/v1/approvals/{}/deny", d.id),
        bob,
        Some(r#"{"reason":"not today"}"#),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "denied");
    assert_eq!(body["votes"][0]["comment"], "not today");

    let (status, body) = f.call(
        "POST",
        &format!("/v1/approvals/{}/approve", d.id),
        Some(f.key("carol")),
        None,
    );
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "not_pending");

    let (status, body) = f.call("GET", "/v1/approvals/apr_0000000000000000", bob, None);
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "unknown_request");
    let (status, body) = f.call("GET", "/v1/approvals?status=sideways", bob, None);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("sideways"));
    f.gw.wait_log("approval decision", std::time::Duration::from_secs(5));
}

#[test]
fn calls_without_a_valid_key_get_401_with_www_authenticate() {
    let f = fixture();
    let r = f.request("DELETE FROM orders -- unauthenticated", 1);
    let wrong = format!("{}x", f.key("bob"));
    let path = format!("/v1/approvals/{}/approve", r.id);
    for key in [
        None,
        Some("not-a-key"),
        Some(wrong.as_str()),
        Some(f.key("mallory")),
    ] {
        let resp = f.raw("POST", &path, key, None);
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{key:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let body: Value = resp.json().unwrap();
        assert_eq!(body["error"], "unauthenticated");
    }
    let resp = Client::new()
        .get(format!("{}/v1/approvals", f.url))
        .header("authorization", format!("Basic {}", f.key("bob")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(f.store.get(&r.id).unwrap().unwrap().votes.len(), 0);
    f.gw.wait_log(
        "approval API call refused",
        std::time::Duration::from_secs(5),
    );
}

#[test]
fn a_requester_cannot_approve_their_own_request() {
    let f = fixture();
    let r = f.request("DELETE FROM orders -- self approval", 1);
    let (status, body) = f.call(
        "POST",
        &format!("/v1/approvals/{}/approve", r.id),
        Some(f.key("alice")),
        None,
    );
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "self_approval");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("alice") && message.contains("cannot decide"),
        "{message}"
    );
}

#[test]
fn agents_can_never_decide_even_in_the_approver_group() {
    let f = fixture();
    let r = f.request("DELETE FROM orders -- agent approval", 1);
    for (action, body) in [("approve", None), ("deny", Some(r#"{"reason":"x"}"#))] {
        let (status, answer) = f.call(
            "POST",
            &format!("/v1/approvals/{}/{action}", r.id),
            Some(f.key("bot")),
            body,
        );
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        assert_eq!(answer["error"], "agent_approver");
    }
    // Reading is allowed to any identity, agents included.
    let (status, _) = f.call(
        "GET",
        &format!("/v1/approvals/{}", r.id),
        Some(f.key("bot")),
        None,
    );
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn approvers_outside_the_approver_group_are_refused() {
    let f = fixture();
    let r = f.request("DELETE FROM orders -- outsider", 1);
    let (status, body) = f.call(
        "POST",
        &format!("/v1/approvals/{}/approve", r.id),
        Some(f.key("eve")),
        None,
    );
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "not_in_approver_group");
    assert!(body["message"].as_str().unwrap().contains("dba"));
}

#[test]
fn deny_without_a_reason_or_with_a_bad_body_is_a_400() {
    let f = fixture();
    let r = f.request("DELETE FROM orders -- deny 400", 1);
    let path = format!("/v1/approvals/{}/deny", r.id);
    let bob = Some(f.key("bob"));
    for (body, code) in [
        (None, "reason_required"),
        (Some("{}"), "reason_required"),
        (Some(r#"{"reason":"   "}"#), "reason_required"),
        (Some("not json"), "bad_request"),
        (Some(r#"{"reason":"x","extra":1}"#), "bad_request"),
    ] {
        let (status, answer) = f.call("POST", &path, bob, body);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(answer["error"], code, "{body:?}");
    }
    assert_eq!(
        f.store.get(&r.id).unwrap().unwrap().status.as_str(),
        "pending"
    );
}

#[test]
fn bodies_over_64_kib_get_413() {
    let f = fixture();
    let r = f.request("DELETE FROM orders -- big body", 1);
    let big = json!({ "comment": "x".repeat(70 * 1024) }).to_string();
    let (status, body) = f.call(
        "POST",
        &format!("/v1/approvals/{}/approve", r.id),
        Some(f.key("bob")),
        Some(&big),
    );
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"], "payload_too_large");
}

#[test]
fn quorum_of_two_needs_two_distinct_approvers() {
    let f = fixture();
    let r = f.request("DROP TABLE orders -- quorum 2", 2);
    let path = format!("/v1/approvals/{}/approve", r.id);
    let (status, body) = f.call("POST", &path, Some(f.key("bob")), None);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "pending");
    let (status, body) = f.call("POST", &path, Some(f.key("bob")), None);
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "already_voted");
    let out = f.cli(Some(f.key("carol")), &["approve", &r.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("is approved (2/2 approvals)"),
        "{}",
        stdout(&out)
    );
    let got = f.store.get(&r.id).unwrap().unwrap();
    assert_eq!(got.approvers(), ["bob", "carol"]);
}

#[test]
fn openapi_document_and_healthz_need_no_key() {
    let f = fixture();
    let resp = f.raw("GET", "/openapi.json", None, None);
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let doc: Value = resp.json().unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
    for path in [
        "/v1/approvals",
        "/v1/approvals/{id}",
        "/v1/approvals/{id}/approve",
        "/v1/approvals/{id}/deny",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    let resp = f.raw("GET", "/healthz", None, None);
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().unwrap(), "ok");
    let (status, body) = f.call("GET", "/v2/nothing", None, None);
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
}

#[test]
fn the_api_speaks_https_when_the_gateway_has_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let tls = sluice_testkit::make_tls_files(dir.path());
    let admin = sluice_testkit::free_port();
    let server = format!(
        "admin_listen = \"127.0.0.1:{admin}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"",
        tls.cert.display(),
        tls.key.display()
    );
    let mut gw = Gateway::configure(&server, RESOURCE);
    gw.start(&[]);
    let key = gw.create_key("bob", "dba");
    // The URL comes from the config (https, because of tls_cert).
    let out = Command::new(SLUICE)
        .args(["approvals", "list", "--config"])
        .arg(&gw.config)
        .env_remove("SLUICE_URL")
        .env("SLUICE_KEY", &key)
        .env("SLUICE_CA_FILE", &tls.ca)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("no approval requests"),
        "{}",
        stdout(&out)
    );
    let plain = Client::new()
        .get(format!("http://127.0.0.1:{admin}/healthz"))
        .send();
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP must not be served"
    );
}
