//! What a masked identity reads, what waits for an operator, what the
//! audit log replays.

use crate::{
    approve, aws, aws_at, bucket, file, fixture, ok, pending_request, py, session_replay, Keys,
};

#[test]
fn csv_json_and_listings_are_masked_for_agents_and_raw_for_an_unmasked_identity() {
    let f = fixture();
    let b = bucket(f, "masking");
    let csv = "name,ssn,contact\nann,123-45-6789,ann@example.com\n";
    assert_eq!(
        py(
            f,
            &f.agent.id,
            &f.agent.secret,
            &["put", &b, "r/people.csv", csv, "text/csv"]
        )["status"],
        200
    );
    let json = r#"{"user":{"email":"bob@example.org","password":"hunter22"}}"#;
    assert_eq!(
        py(
            f,
            &f.agent.id,
            &f.agent.secret,
            &["put", &b, "r/u.json", json, "application/json"]
        )["status"],
        200
    );
    assert_eq!(
        py(
            f,
            &f.agent.id,
            &f.agent.secret,
            &["put", &b, "users/carol@example.net.txt", "x", "text/plain"]
        )["status"],
        200
    );
    let got = py(
        f,
        &f.agent.id,
        &f.agent.secret,
        &["get", &b, "r/people.csv"],
    );
    let body = got["body"].as_str().unwrap();
    assert!(body.starts_with("name,ssn,contact\nann,"), "{body}");
    assert!(
        !body.contains("123-45-6789") && !body.contains("ann@example.com"),
        "{body}"
    );
    let body = py(f, &f.agent.id, &f.agent.secret, &["get", &b, "r/u.json"])["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !body.contains("bob@example.org") && !body.contains("hunter22"),
        "{body}"
    );
    let listing = ok(aws(
        f,
        &f.agent,
        &["s3api", "list-objects-v2", "--bucket", &b],
    ));
    assert!(
        !listing.contains("carol@example.net") && listing.contains("users/"),
        "{listing}"
    );
    let listing = ok(aws(
        f,
        &f.agent,
        &[
            "s3api",
            "list-objects-v2",
            "--bucket",
            &b,
            "--prefix",
            "users/",
            "--max-keys",
            "1",
            "--start-after",
            "users/a",
        ],
    ));
    assert!(
        !listing.contains("carol@example.net"),
        "markers too: {listing}"
    );
    let raw = py(f, &f.sre.id, &f.sre.secret, &["get", &b, "r/people.csv"]);
    assert_eq!(raw["body"], csv);
    let r = aws(
        f,
        &f.agent,
        &[
            "s3api",
            "get-object",
            "--bucket",
            &b,
            "--key",
            "r/people.csv",
            "--range",
            "bytes=0-3",
            "/dev/null",
        ],
    );
    assert!(!r.0 && r.2.contains("Range"), "{}", r.2);
}

#[test]
fn a_held_delete_runs_once_approved_and_a_deferred_one_runs_once_when_sent_again() {
    let f = fixture();
    let b = bucket(f, "held");
    let p = file(f, "h.txt", b"h");
    for key in ["held/a", "held/b"] {
        ok(aws(
            f,
            &f.agent,
            &["s3", "cp", p.to_str().unwrap(), &format!("s3://{b}/{key}")],
        ));
    }
    // wait: the client is held until an operator approves.
    let agent = Keys {
        id: f.agent.id.clone(),
        secret: f.agent.secret.clone(),
    };
    let port = f.port;
    let target = format!("s3://{b}/held/a");
    let waiting = std::thread::spawn(move || aws_at(port, &agent, &["s3", "rm", &target]));
    let id = pending_request(f);
    assert!(f.s3.has(&b, "held/a"), "deleted before approval");
    approve(f, &id);
    ok(waiting.join().unwrap());
    assert!(!f.s3.has(&b, "held/a"));
    // deferred: refused at once with the request id; the same request
    // runs once after approval.
    let r = aws_at(
        f.deferred_port,
        &f.agent,
        &["s3", "rm", &format!("s3://{b}/held/b")],
    );
    assert!(!r.0 && r.2.contains("AccessDenied"), "{}", r.2);
    let id = pending_request(f);
    assert!(r.2.contains(&id), "the reply names request {id}: {}", r.2);
    approve(f, &id);
    ok(aws_at(
        f.deferred_port,
        &f.agent,
        &["s3", "rm", &format!("s3://{b}/held/b")],
    ));
    assert!(!f.s3.has(&b, "held/b"));
    let replay = session_replay(f, "DeleteObject s3://held/held/a");
    assert!(replay.contains("HTTP 204"), "{replay}");
}

#[test]
fn the_audit_log_replays_an_s3_session_and_verifies() {
    let f = fixture();
    let b = bucket(f, "replayed");
    let p = file(f, "r.txt", b"replay me\n");
    ok(aws(
        f,
        &f.agent,
        &["s3", "cp", p.to_str().unwrap(), &format!("s3://{b}/r.txt")],
    ));
    let replay = session_replay(f, "PutObject s3://replayed/r.txt");
    assert!(replay.contains("ALLOW by agents-write"), "{replay}");
    assert!(replay.contains("uploaded 10 bytes, sha256"), "{replay}");
    let out = f.gw.cli(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
