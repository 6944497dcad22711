//! kubectl through Sluice in front of a real kube-apiserver (and etcd):
//! decisions, refusals that never reach the API server (its own audit log
//! is the ground truth), approvals, masking of Secrets in every form
//! kubectl asks for, and the evasions the request-info rules close.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Gateway;
use sluice_testkit::{
    debian_kubectl, free_port, make_tls_files, FakeKubelet, KubeServer, KUBE_SLUICE_TOKEN,
};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const POLICY: &str = r#"
@id("agents-read")
permit (principal in Group::"agents", action in Action::"read", resource);

@id("agents-write-outside-kube-system")
@reason("agents may change anything outside kube-system")
permit (principal in Group::"agents", action in Action::"write", resource)
unless { context has namespace && context.namespace == "kube-system" };

@id("protected-stays")
@reason("the object named protected is never deleted")
forbid (principal, action in [Action::"delete", Action::"deletecollection"], resource)
when { context has name && context.name == "protected" };

@id("dry-only")
@reason("in namespace dry only dry runs delete")
forbid (principal, action in [Action::"delete", Action::"deletecollection"], resource)
when { context has namespace && context.namespace == "dry" }
unless { context has dry_run && context.dry_run };

@id("held-deletes-need-ops")
@reason("deletes in namespace held need an operator")
@review("ops")
permit (principal in Group::"agents", action == Action::"delete", resource)
when { context has namespace && context.namespace == "held" };

@id("no-watch")
@reason("this identity may not watch")
forbid (principal in Group::"nowatch", action == Action::"watch", resource);

@id("agents-connect")
permit (principal in Group::"agents", action in Action::"connect", resource);

@id("no-exec-into-locked")
@reason("nobody runs commands in pod locked")
forbid (principal, action in Action::"connect", resource)
when { context has name && context.name == "locked" };

@id("sre-unmask")
permit (principal in Group::"sre", action == Action::"unmask", resource);
@id("sre-read")
permit (principal in Group::"sre", action in Action::"read", resource);
"#;

struct Fixture {
    /// The fixture is a `static`, never dropped: the gateway is killed
    /// when the test process ends.
    _reaper: sluice_testkit::Reaper,
    kube: KubeServer,
    kubelet: FakeKubelet,
    gw: Gateway,
    port: u16,
    admin_port: u16,
    agent: String,
    nowatch: String,
    sre: String,
    ops: String,
    kubeconfig: PathBuf,
    ca: PathBuf,
    /// The same cluster as resource "kube-deferred" (`approval_mode = "deferred"`).
    deferred_kubeconfig: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let kube = KubeServer::start();
        kube.kubectl_ok(&["create", "clusterrolebinding", "agents-admin", "--clusterrole=cluster-admin", "--group=agents", "--group=sre"]);
        for ns in ["held", "masked", "run", "dry"] {
            kube.kubectl_ok(&["create", "namespace", ns]);
        }
        let kubelet = FakeKubelet::start(kube.dir());
        kube.add_node_and_pod("fake-node", kubelet.port(), "run", "web");
        let port = free_port();
        let deferred_port = free_port();
        let admin_port = free_port();
        let resource = |name: &str, port: u16, extra: &str| {
            format!(
                "[[resource]]\nname = \"{name}\"\nkind = \"kubernetes\"\nlisten = \"127.0.0.1:{port}\"\nurl = \"{}\"\nca_file = \"{}\"\ntoken_env = \"KUBE_TOKEN\"\ntags = {{ env = \"prod\" }}\n{extra}\n",
                kube.url(),
                kube.ca_path().display()
            )
        };
        let resource = resource("kube", port, "")
            + &resource("kube-deferred", deferred_port, "approval_mode = \"deferred\"");
        // kubectl sends no credentials over plain HTTP: the listener
        // serves HTTPS.
        let tls_dir = tempfile::tempdir().unwrap().keep();
        let tls = make_tls_files(&tls_dir);
        let mut gw = Gateway::configure_with_policy(
            &format!(
                "admin_listen = \"127.0.0.1:{admin_port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"",
                tls.cert.display(),
                tls.key.display()
            ),
            &resource,
            POLICY,
        );
        gw.start(&[("KUBE_TOKEN", KUBE_SLUICE_TOKEN)]);
        let _reaper = sluice_testkit::reap_on_exit(gw.pid());
        let agent = gw.create_key("agent-1", "agents");
        let nowatch = gw.create_key("agent-2", "agents,nowatch");
        let sre = gw.create_key("sre-1", "sre");
        let ops = gw.create_key("ops-1", "ops");
        let out = Command::new(common::SLUICE)
            .args(["kubeconfig", "--resource", "kube", "--config"])
            .arg(&gw.config)
            .arg("--ca-file")
            .arg(&tls.ca)
            .env("SLUICE_KEY", &agent)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let kubeconfig = gw.dir.path().join("agent.kubeconfig");
        std::fs::write(&kubeconfig, &out.stdout).unwrap();
        let out = Command::new(common::SLUICE)
            .args(["kubeconfig", "--resource", "kube-deferred", "--config"])
            .arg(&gw.config)
            .arg("--ca-file")
            .arg(&tls.ca)
            .env("SLUICE_KEY", &agent)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let deferred_kubeconfig = gw.dir.path().join("deferred.kubeconfig");
        std::fs::write(&deferred_kubeconfig, &out.stdout).unwrap();
        wait_listening(port);
        wait_listening(deferred_port);
        Fixture { _reaper, kube, kubelet, gw, port, admin_port, agent, nowatch, sre, ops, kubeconfig, ca: tls.ca, deferred_kubeconfig }
    })
}

fn wait_listening(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the Kubernetes listener did not open"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// kubectl through Sluice with the agent's kubeconfig.
fn kubectl(f: &Fixture, args: &[&str]) -> (bool, String, String) {
    kubectl_as(f, &f.agent, args)
}

fn kubectl_as(f: &Fixture, key: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", f.kubeconfig.display()))
        .arg(format!("--token={key}"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(r: (bool, String, String)) -> String {
    assert!(r.0, "kubectl failed: {}", r.2);
    r.1
}

/// One request through curl, which sends the path exactly as given
/// (`--path-as-is`): (status, body).
fn curl(
    f: &Fixture,
    method: &str,
    key: &str,
    target: &str,
    headers: &[&str],
    body: Option<&std::path::Path>,
) -> (u16, String) {
    let out_file = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--http1.1", "--path-as-is", "-X", method, "-o"])
        .arg(out_file.path())
        .args(["-w", "%{http_code}", "--cacert"])
        .arg(&f.ca)
        .arg("-H")
        .arg(format!("Authorization: Bearer {key}"));
    for h in headers {
        cmd.arg("-H").arg(h);
    }
    if let Some(b) = body {
        cmd.arg("--data-binary").arg(format!("@{}", b.display()));
    }
    let out = cmd
        .arg(format!("https://127.0.0.1:{}{target}", f.port))
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("curl {target}: {}", String::from_utf8_lossy(&out.stderr)));
    (
        status,
        std::fs::read_to_string(out_file.path()).unwrap_or_default(),
    )
}

fn get(f: &Fixture, key: &str, target: &str, extra: &str) -> (u16, String) {
    let headers: Vec<&str> = if extra.is_empty() {
        Vec::new()
    } else {
        vec![extra]
    };
    curl(f, "GET", key, target, &headers, None)
}

/// An operator approves request `id` through the approval API.
fn approve_as_ops(f: &Fixture, id: &str) {
    let out = Command::new(common::SLUICE)
        .args(["approvals", "approve", id, "--url"])
        .arg(format!("https://127.0.0.1:{}", f.admin_port))
        .arg("--ca-file")
        .arg(&f.ca)
        .env("SLUICE_KEY", &f.ops)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Audit events of the API server for this request URI fragment.
fn api_server_saw(f: &Fixture, verb: &str, uri_part: &str) -> bool {
    f.kube
        .audit_log()
        .lines()
        .any(|l| l.contains(&format!("\"verb\":\"{verb}\"")) && l.contains(uri_part))
}

#[test]
fn kubectl_reads_and_writes_as_policy_permits_and_the_api_server_sees_the_impersonated_identity() {
    let f = fixture();
    ok(kubectl(
        f,
        &["create", "configmap", "plain", "--from-literal=k=v"],
    ));
    let out = ok(kubectl(
        f,
        &["get", "configmap", "plain", "-o", "jsonpath={.data.k}"],
    ));
    assert_eq!(out, "v");
    let manifest = f.gw.dir.path().join("cm.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: \"1\"\n",
    )
    .unwrap();
    ok(kubectl(f, &["apply", "-f", manifest.to_str().unwrap()]));
    ok(kubectl(
        f,
        &[
            "patch",
            "configmap",
            "applied",
            "--type=merge",
            "-p",
            "{\"data\":{\"a\":\"2\"}}",
        ],
    ));
    assert_eq!(
        f.kube
            .kubectl_ok(&["get", "cm", "applied", "-o", "jsonpath={.data.a}"]),
        "2"
    );
    let tables = ok(kubectl(f, &["get", "configmaps"]));
    assert!(
        tables.contains("applied") && tables.contains("plain"),
        "{tables}"
    );
    ok(kubectl(f, &["delete", "configmap", "applied"]));
    assert!(!f.kube.kubectl(&["get", "cm", "applied"]).0);
    // The API server saw Sluice's credential impersonating the agent.
    let line = f
        .kube
        .audit_log()
        .lines()
        .find(|l| {
            l.contains("\"verb\":\"create\"") && l.contains("/configmaps") && l.contains("agent-1")
        })
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(line.contains("\"username\":\"sluice\""), "{line}");
    assert!(
        line.contains("\"impersonatedUser\":{\"username\":\"agent-1\""),
        "{line}"
    );
}

#[test]
fn a_denied_delete_never_reaches_the_api_server_and_kubectl_prints_the_policy() {
    let f = fixture();
    f.kube
        .kubectl_ok(&["create", "configmap", "protected", "--from-literal=k=v"]);
    let (okay, _, err) = kubectl(f, &["delete", "configmap", "protected"]);
    assert!(!okay);
    assert!(
        err.contains("Forbidden") && err.contains("protected-stays"),
        "{err}"
    );
    assert!(
        f.kube.kubectl(&["get", "cm", "protected"]).0,
        "the object is gone"
    );
    assert!(!api_server_saw(f, "delete", "/configmaps/protected"));
    let (okay, _, err) = kubectl(f, &["-n", "kube-system", "create", "configmap", "nope"]);
    assert!(!okay && err.contains("default-deny"), "{err}");
    assert!(
        !f.kube
            .kubectl(&["-n", "kube-system", "get", "cm", "nope"])
            .0
    );
}

#[test]
fn a_held_delete_runs_once_after_an_operator_approves_it() {
    let f = fixture();
    f.kube.kubectl_ok(&[
        "-n",
        "held",
        "create",
        "configmap",
        "victim",
        "--from-literal=k=v",
    ]);
    let kubeconfig = f.kubeconfig.clone();
    let agent = f.agent.clone();
    let waiting = std::thread::spawn(move || {
        Command::new("kubectl")
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!("--token={agent}"))
            .args(["-n", "held", "delete", "configmap", "victim"])
            .output()
            .unwrap()
    });
    let log =
        f.gw.wait_log("held for approval: request apr_", Duration::from_secs(20));
    let id = log
        .split_whitespace()
        .rev()
        .find_map(|w| {
            w.strip_prefix("apr_").map(|rest| {
                format!(
                    "apr_{}",
                    rest.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                )
            })
        })
        .unwrap();
    assert!(
        f.kube.kubectl(&["-n", "held", "get", "cm", "victim"]).0,
        "deleted before approval"
    );
    approve_as_ops(f, &id);
    let done = waiting.join().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(!f.kube.kubectl(&["-n", "held", "get", "cm", "victim"]).0);
}

#[test]
fn secret_values_are_masked_in_json_yaml_tables_and_watch_but_not_for_an_unmasked_identity() {
    let f = fixture();
    f.kube.kubectl_ok(&[
        "-n",
        "masked",
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=blob=hunter2",
    ]);
    let raw_b64 = "aHVudGVyMg==";
    for format in ["json", "yaml"] {
        let out = ok(kubectl(
            f,
            &["-n", "masked", "get", "secret", "db", "-o", format],
        ));
        assert!(!out.contains(raw_b64) && !out.contains("hunter2"), "{out}");
        assert!(out.contains("PG1hc2tlZD4="), "{out}");
    }
    let list = ok(kubectl(
        f,
        &["-n", "masked", "get", "secrets", "-o", "json"],
    ));
    assert!(!list.contains(raw_b64), "{list}");
    let table = ok(kubectl(f, &["-n", "masked", "get", "secrets"]));
    assert!(table.contains("db"), "{table}");
    let out = Command::new("timeout")
        .args([
            "4",
            "kubectl",
            &format!("--kubeconfig={}", f.kubeconfig.display()),
            "-n",
            "masked",
            "get",
            "secrets",
            "--watch",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    let watched = String::from_utf8_lossy(&out.stdout);
    assert!(
        watched.contains("PG1hc2tlZD4=") && !watched.contains(raw_b64),
        "{watched}"
    );
    let unmasked = ok(kubectl_as(
        f,
        &f.sre,
        &[
            "-n",
            "masked",
            "get",
            "secret",
            "db",
            "-o",
            "jsonpath={.data.blob}",
        ],
    ));
    assert_eq!(unmasked, raw_b64);
}

#[test]
fn watch_is_decided_as_the_api_server_reads_it_by_query_or_prefix() {
    let f = fixture();
    let key = &f.nowatch;
    assert_eq!(
        get(f, key, "/api/v1/namespaces/default/configmaps", "").0,
        200
    );
    assert_eq!(
        get(f, key, "/api/v1/namespaces/default/configmaps?watch=0", "").0,
        200
    );
    for watch in ["?watch=1", "?watch=", "?watch=yes", "?watch"] {
        let (status, body) = get(
            f,
            key,
            &format!("/api/v1/namespaces/default/configmaps{watch}"),
            "",
        );
        assert_eq!(status, 403, "{watch}: {body}");
        assert!(body.contains("no-watch"), "{body}");
    }
    assert_eq!(
        get(f, key, "/api/v1/watch/namespaces/default/configmaps", "").0,
        403
    );
}

#[test]
fn path_and_header_evasions_are_refused() {
    let f = fixture();
    let key = &f.agent;
    for target in [
        "/api/v1/namespaces/default/configmaps/../secrets",
        "/api/v1/namespaces/default/./secrets",
        "/api/v1//namespaces/default/secrets",
        "/api/v1/namespaces/default/secrets%2Fx",
        "/api/v1/namespaces/default/configmaps?watch=1;watch=0",
    ] {
        let (status, body) = get(f, key, target, "");
        assert_eq!(status, 400, "{target}: {body}");
    }
    let (status, body) = get(
        f,
        key,
        "/api/v1/namespaces/default/configmaps",
        "Impersonate-User: admin",
    );
    assert_eq!(status, 403, "{body}");
    let (status, _) = get(
        f,
        key,
        "/api/v1/namespaces/default/configmaps",
        "Connection: authorization",
    );
    assert_eq!(status, 200);
    let (status, _) = get(
        f,
        "slk_nope_nope",
        "/api/v1/namespaces/default/configmaps",
        "",
    );
    assert_eq!(status, 401);
    let (status, _) = get(
        f,
        key,
        "/api/v1/namespaces/default/configmaps",
        "Accept: application/vnd.kubernetes.protobuf",
    );
    assert_eq!(status, 406);
    // The API server's own credential is not a Sluice key.
    let (status, _) = get(
        f,
        KUBE_SLUICE_TOKEN,
        "/api/v1/namespaces/default/configmaps",
        "",
    );
    assert_eq!(status, 401);
}

#[test]
fn bad_input_gets_a_clear_error() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.json");
    std::fs::write(&big, format!("{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"big\"}},\"data\":{{\"k\":\"{}\"}}}}", "x".repeat(9 << 20))).unwrap();
    let json = "Content-Type: application/json";
    let (status, reply) = curl(
        f,
        "POST",
        &f.agent,
        "/api/v1/namespaces/default/configmaps",
        &[json],
        Some(&big),
    );
    assert_eq!(status, 413, "{}", &reply[..reply.len().min(300)]);
    assert!(reply.contains("RequestEntityTooLarge"), "{reply}");
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"kind\":[").unwrap();
    let (status, reply) = curl(
        f,
        "POST",
        &f.agent,
        "/api/v1/namespaces/default/configmaps",
        &[json],
        Some(&broken),
    );
    assert_eq!(status, 400, "{reply}");
    let status: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(status["kind"], "Status", "{reply}");
}

#[test]
fn the_audit_log_replays_the_requests_with_their_decisions_and_verifies() {
    let f = fixture();
    let key = f.gw.create_key("agent-audited", "agents");
    let _ = kubectl_as(f, &key, &["delete", "configmap", "protected"]);
    ok(kubectl_as(f, &key, &["get", "namespaces"]));
    let start = Instant::now();
    let replay = loop {
        let out =
            f.gw.cli(&["audit", "sessions", "--identity", "agent-audited", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sessions: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut replay = String::new();
        for s in sessions.as_array().unwrap() {
            let id = s["id"].as_str().unwrap();
            let out = f.gw.cli(&["audit", "replay", id]);
            replay.push_str(&String::from_utf8_lossy(&out.stdout));
        }
        if replay.contains("HTTP 200") && replay.contains("protected-stays")
            || start.elapsed() > Duration::from_secs(10)
        {
            break replay;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        replay.contains("DELETE /api/v1/namespaces/default/configmaps/protected"),
        "{replay}"
    );
    assert!(replay.contains("protected-stays"), "{replay}");
    assert!(replay.contains("GET /api/v1/namespaces"), "{replay}");
    assert!(replay.contains("HTTP 200"), "{replay}");
    let out = f.gw.cli(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The records of one identity's sessions, replayed, once they hold `needle`.
fn replay_of(f: &Fixture, identity: &str, needle: &str) -> String {
    let start = Instant::now();
    loop {
        let out =
            f.gw.cli(&["audit", "sessions", "--identity", identity, "--json"]);
        let sessions: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut replay = String::new();
        for s in sessions.as_array().unwrap() {
            let out = f.gw.cli(&["audit", "replay", s["id"].as_str().unwrap()]);
            replay.push_str(&String::from_utf8_lossy(&out.stdout));
        }
        if replay.contains(needle) || start.elapsed() > Duration::from_secs(10) {
            return replay;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn kubectl_exec_runs_over_spdy_once_with_its_input_and_masked_output_recorded() {
    let f = fixture();
    let key = f.gw.create_key("agent-exec", "agents");
    let out = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", f.kubeconfig.display()))
        .arg(format!("--token={key}"))
        .args([
            "-n",
            "run",
            "exec",
            "-i",
            "web",
            "-c",
            "c",
            "--",
            "echo",
            "hello world",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"typed input\n")?;
            child.wait_with_output()
        })
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ran: echo hello world"), "{stdout}");
    assert!(stdout.contains("stdin: typed input"), "{stdout}");
    assert!(
        !stdout.contains("alice@example.com"),
        "output not masked: {stdout}"
    );
    // The kubelet saw the WebSocket attempt never (Sluice answered it) and
    // the SPDY one once.
    let seen = f.kubelet.seen();
    assert!(
        seen.iter()
            .any(|l| l.contains("hello") && l.ends_with("101 SPDY/3.1")),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|l| l.contains("websocket")), "{seen:?}");
    let replay = replay_of(f, "agent-exec", "HTTP 101");
    assert_eq!(
        replay.matches("/pods/web/exec?").count(),
        1,
        "one decision, one record: {replay}"
    );
    assert!(replay.contains("> typed input"), "{replay}");
    assert!(replay.contains("< ran: echo hello world"), "{replay}");
    assert!(!replay.contains("alice@example.com"), "{replay}");
}

#[test]
fn a_denied_exec_is_refused_on_both_attempts_and_recorded_once() {
    let f = fixture();
    f.kube
        .add_node_and_pod("fake-node-2", f.kubelet.port(), "run", "locked");
    let key = f.gw.create_key("agent-locked", "agents");
    let before = f.kubelet.seen().len();
    let (okay, _, err) = kubectl_as(
        f,
        &key,
        &["-n", "run", "exec", "locked", "-c", "c", "--", "id"],
    );
    assert!(!okay);
    assert!(err.contains("no-exec-into-locked"), "{err}");
    assert!(
        f.kubelet.seen()[before..]
            .iter()
            .all(|l| !l.contains("/locked/")),
        "{:?}",
        f.kubelet.seen()
    );
    assert!(
        !api_server_saw(f, "create", "/pods/locked/exec")
            && !api_server_saw(f, "get", "/pods/locked/exec")
    );
    let replay = replay_of(f, "agent-locked", "no-exec-into-locked");
    assert_eq!(replay.matches("/pods/locked/exec?").count(), 1, "{replay}");
}

#[test]
fn logs_are_masked_line_by_line() {
    let f = fixture();
    let logs = ok(kubectl(f, &["-n", "run", "logs", "web", "-c", "c"]));
    assert!(
        logs.contains("first line") && logs.contains("last line"),
        "{logs}"
    );
    assert!(!logs.contains("alice@example.com"), "{logs}");
    let raw = ok(kubectl_as(
        f,
        &f.sre,
        &["-n", "run", "logs", "web", "-c", "c"],
    ));
    assert!(raw.contains("alice@example.com"), "{raw}");
}

#[test]
fn masked_secrets_stay_masked_and_body_dry_runs_and_named_collection_deletes_are_read_as_the_api_server_does(
) {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("s.yaml");
    std::fs::write(&manifest, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: applied\n  namespace: masked\nstringData:\n  pw: s3cretApplied99\n").unwrap();
    f.kube
        .kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()]);
    // A JSON patch that would copy the value into an annotation, as a dry run.
    let patch = dir.path().join("patch.json");
    std::fs::write(&patch, r#"[{"op":"add","path":"/metadata/annotations/leak","value":""},{"op":"copy","from":"/data/pw","path":"/metadata/annotations/leak"}]"#).unwrap();
    let (status, body) = curl(
        f,
        "PATCH",
        &f.agent,
        "/api/v1/namespaces/masked/secrets/applied?dryRun=All",
        &["Content-Type: application/json-patch+json"],
        Some(&patch),
    );
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("czNjcmV0QXBwbGllZDk5"), "{body}");
    // The metadata-only forms kubectl get asks for keep the annotation masked.
    for accept in [
        "Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        "Accept: application/json;as=Table;g=meta.k8s.io;v=v1",
    ] {
        let (status, body) = get(
            f,
            &f.agent,
            "/api/v1/namespaces/masked/secrets/applied",
            accept,
        );
        assert_eq!(status, 200, "{body}");
        assert!(!body.contains("s3cretApplied99"), "{accept}: {body}");
    }
    let (_, body) = get(
        f,
        &f.agent,
        "/api/v1/namespaces/masked/secrets",
        "Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    );
    assert!(!body.contains("s3cretApplied99"), "{body}");
    // dryRun=All in the query of a DELETE with a body is not a dry run.
    f.kube.kubectl_ok(&[
        "-n",
        "dry",
        "create",
        "configmap",
        "victim",
        "--from-literal=k=v",
    ]);
    let options = dir.path().join("options.json");
    std::fs::write(&options, r#"{"kind":"DeleteOptions","apiVersion":"v1"}"#).unwrap();
    let (status, body) = curl(
        f,
        "DELETE",
        &f.agent,
        "/api/v1/namespaces/dry/configmaps/victim?dryRun=All",
        &["Content-Type: application/json"],
        Some(&options),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        f.kube.kubectl(&["-n", "dry", "get", "cm", "victim"]).0,
        "deleted"
    );
    let (status, _) = curl(
        f,
        "DELETE",
        &f.agent,
        "/api/v1/namespaces/dry/configmaps/victim?dryRun=All",
        &[],
        None,
    );
    assert_eq!(status, 200);
    assert!(
        f.kube.kubectl(&["-n", "dry", "get", "cm", "victim"]).0,
        "a dry run deleted it"
    );
    // A deletecollection narrowed to the protected object by name is refused.
    f.kube
        .kubectl(&["create", "configmap", "protected", "--from-literal=k=v"]);
    let (status, body) = curl(
        f,
        "DELETE",
        &f.agent,
        "/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Dprotected",
        &[],
        None,
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("protected-stays"), "{body}");
    assert!(f.kube.kubectl(&["get", "cm", "protected"]).0);
}

#[test]
fn a_connection_that_never_sends_a_request_is_closed() {
    let f = fixture();
    let script = format!(
        "import socket, ssl, time\nctx = ssl.create_default_context(cafile='{}')\ns = ctx.wrap_socket(socket.create_connection(('127.0.0.1', {})), server_hostname='127.0.0.1')\ns.settimeout(30)\nstart = time.time()\ndata = s.recv(1)\nprint(round(time.time() - start), repr(data))\n",
        f.ca.display(),
        f.port
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secs: u64 = text.split_whitespace().next().unwrap().parse().unwrap();
    assert!((9..=15).contains(&secs) && text.contains("b''"), "{text}");
    // Headers that start and never end (slowloris): closed too.
    let script = format!(
        "import socket, ssl, time\nctx = ssl.create_default_context(cafile='{}')\ns = ctx.wrap_socket(socket.create_connection(('127.0.0.1', {})), server_hostname='127.0.0.1')\ns.settimeout(30)\ns.sendall(b'GET /api HTTP/1.1\\r\\nHost: x\\r\\n')\nstart = time.time()\ndata = b''\nwhile True:\n    c = s.recv(4096)\n    if not c: break\n    data += c\nprint(round(time.time() - start), repr(data[:12]))\n",
        f.ca.display(),
        f.port
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secs: u64 = text.split_whitespace().next().unwrap().parse().unwrap();
    assert!((9..=15).contains(&secs), "{text}");
}

#[test]
fn the_python_kubernetes_client_works_unchanged_with_the_printed_kubeconfig() {
    let f = fixture();
    f.kube.kubectl(&[
        "-n",
        "masked",
        "create",
        "secret",
        "generic",
        "py",
        "--from-literal=blob=pyhunter2",
    ]);
    let script = format!(
        "from kubernetes import client, config\nconfig.load_kube_config('{}')\nv1 = client.CoreV1Api()\nprint(sorted(n.metadata.name for n in v1.list_namespace().items))\nprint(v1.read_namespaced_secret('py', 'masked').data)\ntry:\n    v1.delete_namespaced_config_map('protected', 'default')\nexcept client.exceptions.ApiException as e:\n    print('refused', e.status)\n",
        f.kubeconfig.display()
    );
    f.kube
        .kubectl(&["create", "configmap", "protected", "--from-literal=k=v"]);
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("'kube-system'"), "{text}");
    assert!(
        text.contains("PG1hc2tlZD4=") && !text.contains("cHlodW50ZXIy"),
        "{text}"
    );
    assert!(text.contains("refused 403"), "{text}");
}

#[test]
fn a_deferred_delete_is_refused_with_its_request_and_runs_once_when_sent_again_after_approval() {
    let f = fixture();
    f.kube.kubectl_ok(&[
        "-n",
        "held",
        "create",
        "configmap",
        "later",
        "--from-literal=k=v",
    ]);
    f.kube.kubectl_ok(&[
        "-n",
        "held",
        "create",
        "configmap",
        "other",
        "--from-literal=k=v",
    ]);
    let deferred = |args: &[&str]| {
        let out = Command::new("kubectl")
            .arg(format!("--kubeconfig={}", f.deferred_kubeconfig.display()))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (okay, err) = deferred(&["-n", "held", "delete", "configmap", "later"]);
    assert!(
        !okay && err.contains("requires approval: request apr_"),
        "{err}"
    );
    let id = err
        .split_whitespace()
        .find(|w| w.starts_with("apr_"))
        .unwrap()
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned();
    assert!(f.kube.kubectl(&["-n", "held", "get", "cm", "later"]).0);
    approve_as_ops(f, &id);
    // The grant is for that request only.
    let (okay, err) = deferred(&["-n", "held", "delete", "configmap", "other"]);
    assert!(!okay && err.contains("requires approval"), "{err}");
    assert!(f.kube.kubectl(&["-n", "held", "get", "cm", "other"]).0);
    let (okay, err) = deferred(&["-n", "held", "delete", "configmap", "later"]);
    assert!(okay, "{err}");
    assert!(!f.kube.kubectl(&["-n", "held", "get", "cm", "later"]).0);
}

#[test]
fn kubectl_attach_streams_through_the_same_relay() {
    let f = fixture();
    let (okay, out, err) = kubectl(f, &["-n", "run", "attach", "web", "-c", "c"]);
    assert!(okay, "{out}{err}");
    assert!(
        out.contains("ran:") && !out.contains("alice@example.com"),
        "{out}"
    );
}

#[test]
fn debian_kubectl_1_20_reads_masked_is_refused_and_execs_over_spdy_as_the_newer_one_does() {
    let f = fixture();
    let kubectl = debian_kubectl().expect("Debian's kubectl 1.20: run scripts/install-kube.sh");
    let run = |args: &[&str]| {
        let out = Command::new(&kubectl)
            .arg(format!("--kubeconfig={}", f.kubeconfig.display()))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    f.kube.kubectl(&[
        "-n",
        "masked",
        "create",
        "secret",
        "generic",
        "old",
        "--from-literal=blob=oldhunter2",
    ]);
    let out = ok(run(&["-n", "masked", "get", "secret", "old", "-o", "json"]));
    assert!(
        out.contains("PG1hc2tlZD4=") && !out.contains("b2xkaHVudGVyMg=="),
        "{out}"
    );
    ok(run(&["get", "namespaces"]));
    f.kube
        .kubectl(&["create", "configmap", "protected", "--from-literal=k=v"]);
    let (okay, _, err) = run(&["delete", "configmap", "protected"]);
    assert!(!okay && err.contains("protected-stays"), "{err}");
    let out = ok(run(&["-n", "run", "exec", "web", "-c", "c", "--", "uname"]));
    assert!(
        out.contains("ran: uname") && !out.contains("alice@example.com"),
        "{out}"
    );
}
