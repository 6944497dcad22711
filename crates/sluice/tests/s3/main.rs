//! aws-cli and boto3 through Sluice in front of a real S3 server that
//! checks signatures (s3s-fs): decisions per object, refusals that leave
//! the backend untouched (its data directory is the ground truth),
//! signatures verified as S3 verifies them, approvals, masking, replay.
//!
//! The backend is s3s-fs; `SLUICE_S3_BACKEND=garage` runs the same tests
//! against Garage (`scripts/test-s3-garage.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;
mod masking_and_approvals;
mod objects;
mod signatures;

use common::Gateway;
use sluice_testkit::{free_port, S3Server};
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
    _reapers: [sluice_testkit::Reaper; 2],
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
            ("STORE_ACCESS_KEY", s3.access_key().as_str()),
            ("STORE_SECRET_KEY", s3.secret_key().as_str()),
        ]);
        let _reapers = [
            sluice_testkit::reap_on_exit(gw.pid()),
            sluice_testkit::reap_on_exit(s3.pid()),
        ];
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
        Fixture { _reapers, s3, gw, port, deferred_port, admin_port, agent, sre, ops_key }
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
