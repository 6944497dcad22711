//! aws-cli and boto3 through Sluice in front of a real S3 server that
//! checks signatures (s3s-fs): decisions per object, refusals that leave
//! the backend untouched (its data directory is the ground truth),
//! signatures verified as S3 verifies them, approvals, masking, replay.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Gateway;
use sluice_testkit::{free_port, S3Server, S3_BACKEND_ACCESS_KEY, S3_BACKEND_SECRET_KEY};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const POLICY: &str = r#"
@id("agents-read")
permit (principal in Group::"agents", action in Action::"read", resource);
@id("agents-write")
permit (principal in Group::"agents", action in [Action::"write", Action::"schema"], resource);
@id("no-pii")
@reason("nothing under pii/ is read")
forbid (principal, action in Action::"read", resource)
when { context has key && context.key like "pii/*" };
@id("keep-stays")
@reason("objects under keep/ are never deleted")
forbid (principal, action == Action::"DeleteObject", resource)
when { context has key && context.key like "keep/*" };
@id("held-deletes-need-ops")
@reason("deletes under held/ need an operator")
@review("ops")
permit (principal in Group::"agents", action == Action::"DeleteObject", resource)
when { context has key && context.key like "held/*" };
@id("sre-unmask")
permit (principal in Group::"sre", action == Action::"unmask", resource);
@id("sre-all")
permit (principal in Group::"sre", action in [Action::"read", Action::"write", Action::"schema"], resource);
"#;

struct Keys {
    id: String,
    secret: String,
}

struct Fixture {
    _reaper: sluice_testkit::Reaper,
    s3: S3Server,
    gw: Gateway,
    port: u16,
    deferred_port: u16,
    admin_port: u16,
    agent: Keys,
    sre: Keys,
    ops_key: String,
}

fn s3_keys(gw: &Gateway, identity: &str, groups: &str) -> Keys {
    let out = gw.cli(&[
        "keys",
        "create",
        "--identity",
        identity,
        "--groups",
        groups,
        "--s3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let [.., id, secret] = lines[..] else {
        panic!("{text}")
    };
    Keys {
        id: id.strip_prefix("AWS_ACCESS_KEY_ID=").unwrap().to_owned(),
        secret: secret
            .strip_prefix("AWS_SECRET_ACCESS_KEY=")
            .unwrap()
            .to_owned(),
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let s3 = S3Server::start();
        let (port, deferred_port, admin_port) = (free_port(), free_port(), free_port());
        let resource = |name: &str, port: u16, extra: &str| {
            format!(
                "[[resource]]\nname = \"{name}\"\nkind = \"s3\"\nlisten = \"127.0.0.1:{port}\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\naccess_key_env = \"STORE_ACCESS_KEY\"\nsecret_key_env = \"STORE_SECRET_KEY\"\ntags = {{ env = \"prod\" }}\n{extra}\n",
                s3.endpoint()
            )
        };
        let resources = resource("store", port, "")
            + &resource("store-deferred", deferred_port, "approval_mode = \"deferred\"")
            + "[masking]\ncolumns = [\"ssn\"]\n";
        let mut gw = Gateway::configure_with_policy(
            &format!("admin_listen = \"127.0.0.1:{admin_port}\""),
            &resources,
            POLICY,
        );
        gw.start(&[
            ("STORE_ACCESS_KEY", S3_BACKEND_ACCESS_KEY),
            ("STORE_SECRET_KEY", S3_BACKEND_SECRET_KEY),
        ]);
        let _reaper = sluice_testkit::reap_on_exit(gw.pid());
        let agent = s3_keys(&gw, "agent-1", "agents");
        let sre = s3_keys(&gw, "sre-1", "sre");
        let ops_key = gw.create_key("ops-1", "ops");
        for p in [port, deferred_port] {
            let start = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
                assert!(start.elapsed() < Duration::from_secs(10), "S3 listener did not open");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Fixture { _reaper, s3, gw, port, deferred_port, admin_port, agent, sre, ops_key }
    })
}

/// aws-cli through Sluice as `who`: (ok, stdout, stderr).
fn aws_at(port: u16, who: &Keys, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("aws")
        .arg("--endpoint-url")
        .arg(format!("http://127.0.0.1:{port}"))
        .args(args)
        .env("AWS_ACCESS_KEY_ID", &who.id)
        .env("AWS_SECRET_ACCESS_KEY", &who.secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn aws(f: &Fixture, who: &Keys, args: &[&str]) -> (bool, String, String) {
    aws_at(f.port, who, args)
}

fn ok(r: (bool, String, String)) -> String {
    assert!(r.0, "aws failed: {}", r.2);
    r.1
}

/// boto3 / botocore (tests/py/s3_client.py) as `key`/`secret`.
fn py(f: &Fixture, key: &str, secret: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(common::py_dir().join("s3_client.py"))
        .arg(format!("http://127.0.0.1:{}", f.port))
        .args([key, secret])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn bucket(f: &Fixture, name: &str) -> String {
    ok(aws(f, &f.sre, &["s3", "mb", &format!("s3://{name}")]));
    name.to_owned()
}

fn file(f: &Fixture, name: &str, content: &[u8]) -> std::path::PathBuf {
    let p = f.gw.dir.path().join(name);
    std::fs::write(&p, content).unwrap();
    p
}

#[test]
fn aws_cli_puts_gets_lists_copies_uploads_in_parts_and_deletes_as_policy_permits() {
    let f = fixture();
    let b = bucket(f, "flow");
    let small = file(f, "small.txt", b"hello\n");
    let small = small.to_str().unwrap();
    ok(aws(
        f,
        &f.agent,
        &["s3", "cp", small, &format!("s3://{b}/data/a.txt")],
    ));
    assert!(f.s3.has(&b, "data/a.txt"));
    let listed = ok(aws(f, &f.agent, &["s3", "ls", &format!("s3://{b}/data/")]));
    assert!(listed.contains("a.txt"), "{listed}");
    assert_eq!(
        ok(aws(
            f,
            &f.agent,
            &["s3", "cp", &format!("s3://{b}/data/a.txt"), "-"]
        )),
        "hello\n"
    );
    ok(aws(
        f,
        &f.agent,
        &[
            "s3",
            "cp",
            &format!("s3://{b}/data/a.txt"),
            &format!("s3://{b}/data/b.txt"),
        ],
    ));
    assert!(f.s3.has(&b, "data/b.txt"));
    // 20 MB: aws-cli uploads it in parts (CreateMultipartUpload, parts,
    // CompleteMultipartUpload), decided once at creation.
    let big: Vec<u8> = (0..20_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let big_path = file(f, "big.bin", &big);
    ok(aws(
        f,
        &f.agent,
        &[
            "s3",
            "cp",
            big_path.to_str().unwrap(),
            &format!("s3://{b}/data/big.bin"),
        ],
    ));
    let back = f.gw.dir.path().join("big.back");
    // Binary data is not released to a masked identity; sre is unmasked.
    let refused = aws(
        f,
        &f.agent,
        &[
            "s3",
            "cp",
            &format!("s3://{b}/data/big.bin"),
            back.to_str().unwrap(),
        ],
    );
    assert!(
        !refused.0 && refused.2.contains("cannot inspect"),
        "{}",
        refused.2
    );
    ok(aws(
        f,
        &f.sre,
        &[
            "s3",
            "cp",
            &format!("s3://{b}/data/big.bin"),
            back.to_str().unwrap(),
        ],
    ));
    assert!(
        std::fs::read(&back).unwrap() == big,
        "the 20 MB object came back changed"
    );
    ok(aws(
        f,
        &f.agent,
        &["s3", "rm", &format!("s3://{b}/data/b.txt")],
    ));
    assert!(!f.s3.has(&b, "data/b.txt"));
    let log = f.gw.log();
    assert!(
        log.contains("listening for S3 clients over PLAIN HTTP"),
        "{log}"
    );
}

#[test]
fn a_denied_delete_leaves_the_object_and_a_batch_hiding_a_denied_key_deletes_nothing() {
    let f = fixture();
    let b = bucket(f, "deletes");
    let p = file(f, "d.txt", b"x");
    for key in ["keep/a", "tmp/a", "tmp/b"] {
        ok(aws(
            f,
            &f.agent,
            &["s3", "cp", p.to_str().unwrap(), &format!("s3://{b}/{key}")],
        ));
    }
    let r = aws(f, &f.agent, &["s3", "rm", &format!("s3://{b}/keep/a")]);
    assert!(
        !r.0 && r.2.contains("AccessDenied") && r.2.contains("keep-stays"),
        "{}",
        r.2
    );
    assert!(f.s3.has(&b, "keep/a"));
    // The denied key last, after keys that alone would be allowed.
    let batch = r#"{"Objects":[{"Key":"tmp/a"},{"Key":"tmp/b"},{"Key":"keep/a"}]}"#;
    let r = aws(
        f,
        &f.agent,
        &["s3api", "delete-objects", "--bucket", &b, "--delete", batch],
    );
    assert!(
        !r.0 && r.2.contains("s3://deletes/keep/a"),
        "the reply names the key: {}",
        r.2
    );
    for key in ["keep/a", "tmp/a", "tmp/b"] {
        assert!(f.s3.has(&b, key), "{key} was deleted");
    }
    let batch = r#"{"Objects":[{"Key":"tmp/a"},{"Key":"tmp/b"}]}"#;
    ok(aws(
        f,
        &f.agent,
        &["s3api", "delete-objects", "--bucket", &b, "--delete", batch],
    ));
    assert!(!f.s3.has(&b, "tmp/a") && !f.s3.has(&b, "tmp/b"));
}

#[test]
fn a_copy_out_of_a_denied_prefix_is_refused_and_an_encoded_slash_is_decided_as_the_backend_reads_it(
) {
    let f = fixture();
    let b = bucket(f, "copies");
    let p = file(f, "c.csv", b"a\n1\n");
    ok(aws(
        f,
        &f.sre,
        &[
            "s3",
            "cp",
            p.to_str().unwrap(),
            &format!("s3://{b}/pii/c.csv"),
        ],
    ));
    let r = aws(
        f,
        &f.agent,
        &[
            "s3api",
            "copy-object",
            "--bucket",
            &b,
            "--key",
            "out/c.csv",
            "--copy-source",
            &format!("{b}/pii/c.csv"),
        ],
    );
    assert!(!r.0 && r.2.contains("no-pii"), "{}", r.2);
    assert!(!f.s3.has(&b, "out/c.csv"));
    // `pii%2Fc.csv` decodes to the key `pii/c.csv`, the one the backend
    // would read: s3s checks the signature over the decoded key (as S3
    // does), so a client that signed the encoded form is refused before
    // policy; one that signed the decoded form is denied by policy.
    let r = py(
        f,
        &f.agent.id,
        &f.agent.secret,
        &["raw", "GET", &format!("/{b}/pii%2Fc.csv")],
    );
    assert_eq!(r["status"], 403, "{r}");
    assert!(!r["body"].as_str().unwrap().contains("a\n1"), "{r}");
    let r = py(
        f,
        &f.agent.id,
        &f.agent.secret,
        &["raw", "GET", &format!("/{b}/pii/c.csv")],
    );
    assert!(r["body"].as_str().unwrap().contains("no-pii"), "{r}");
    // A parameter Sluice does not know is not forwarded (the backend
    // would ignore it and serve the object), whatever policy says.
    let r = py(
        f,
        &f.sre.id,
        &f.sre.secret,
        &["raw", "GET", &format!("/{b}/pii/c.csv?foo=1")],
    );
    assert_eq!(r["code"], "NotImplemented", "{r}");
    // Dot segments are refused, not guessed.
    let r = py(
        f,
        &f.agent.id,
        &f.agent.secret,
        &["raw", "GET", &format!("/{b}/x/../pii/c.csv")],
    );
    assert_eq!(r["status"], 400, "{r}");
}

#[test]
fn presigned_urls_expire_and_are_bound_to_method_bucket_and_key_and_sigv2_is_refused() {
    let f = fixture();
    let b = bucket(f, "presign");
    let p = file(f, "p.txt", b"presigned\n");
    ok(aws(
        f,
        &f.agent,
        &["s3", "cp", p.to_str().unwrap(), &format!("s3://{b}/k.txt")],
    ));
    let url = py(
        f,
        &f.agent.id,
        &f.agent.secret,
        &["presign", "GET", &b, "k.txt", "8"],
    )["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = py(f, "", "", &["fetch", "GET", &url]);
    assert_eq!(
        (r["status"].as_i64(), r["body"].as_str()),
        (Some(200), Some("presigned\n")),
        "{r}"
    );
    let r = py(f, "", "", &["fetch", "DELETE", &url]);
    assert_eq!(r["status"], 403, "another method: {r}");
    assert!(f.s3.has(&b, "k.txt"));
    let r = py(
        f,
        "",
        "",
        &["fetch", "GET", &url.replace("/k.txt", "/other.txt")],
    );
    assert_eq!(r["code"], "SignatureDoesNotMatch", "another key: {r}");
    std::thread::sleep(Duration::from_secs(9));
    let r = py(f, "", "", &["fetch", "GET", &url]);
    assert_eq!(r["status"], 403, "expired: {r}");
    assert!(r["body"].as_str().unwrap().contains("expired"), "{r}");
    let v2 = format!(
        "http://127.0.0.1:{}/{b}/k.txt?AWSAccessKeyId={}&Signature=x&Expires=9999999999",
        f.port, f.agent.id
    );
    let r = py(f, "", "", &["fetch", "GET", &v2]);
    assert!(
        r["body"]
            .as_str()
            .unwrap()
            .contains("Signature Version 4 only"),
        "{r}"
    );
}

#[test]
fn wrong_secrets_backend_keys_revoked_keys_and_skewed_clocks_get_s3_errors() {
    let f = fixture();
    let b = bucket(f, "signatures");
    let r = py(f, &f.agent.id, "wrong-secret", &["get", &b, "x"]);
    assert_eq!(r["code"], "SignatureDoesNotMatch", "{r}");
    let r = py(
        f,
        S3_BACKEND_ACCESS_KEY,
        S3_BACKEND_SECRET_KEY,
        &["get", &b, "x"],
    );
    assert_eq!(
        r["code"], "InvalidAccessKeyId",
        "the backend's own keys: {r}"
    );
    let r = py(
        f,
        &f.agent.id,
        &f.agent.secret,
        &["signed", "GET", &format!("/{b}/x"), "-1800"],
    );
    assert_eq!(r["status"], 403, "a clock 30 min behind: {r}");
    let revoked = s3_keys(&f.gw, "agent-9", "agents");
    assert_eq!(
        py(
            f,
            &revoked.id,
            &revoked.secret,
            &["put", &b, "r.txt", "x", "text/plain"]
        )["status"],
        200
    );
    let out = f.gw.cli(&["keys", "revoke", "--key-id", &revoked.id]);
    assert!(out.status.success());
    let r = py(
        f,
        &revoked.id,
        &revoked.secret,
        &["put", &b, "r2.txt", "x", "text/plain"],
    );
    assert_eq!(r["code"], "InvalidAccessKeyId", "revoked: {r}");
    assert!(!f.s3.has(&b, "r2.txt"));
}

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

/// The replay of the session holding `command`.
fn session_replay(f: &Fixture, command: &str) -> String {
    let out = f.gw.cli(&["audit", "export", "--format", "jsonl"]);
    let export = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = export
        .lines()
        .find(|l| l.contains(command))
        .unwrap_or_else(|| panic!("no record of {command}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let session = v["session"].as_str().unwrap().to_owned();
    let out = f.gw.cli(&["audit", "replay", &session]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The one pending approval request (waits for it to appear).
fn pending_request(f: &Fixture) -> String {
    let start = Instant::now();
    loop {
        let out = Command::new(common::SLUICE)
            .args(["approvals", "list", "--json", "--url"])
            .arg(format!("http://127.0.0.1:{}", f.admin_port))
            .env("SLUICE_KEY", &f.ops_key)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(id) = v["requests"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|r| r["id"].as_str())
        {
            return id.to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no pending request: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn approve(f: &Fixture, id: &str) {
    let out = Command::new(common::SLUICE)
        .args(["approvals", "approve", id, "--url"])
        .arg(format!("http://127.0.0.1:{}", f.admin_port))
        .env("SLUICE_KEY", &f.ops_key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
