//! A throwaway Kubernetes API server: a real `etcd` and a real
//! `kube-apiserver` (built by `scripts/install-kube.sh`) on free loopback
//! ports, with static tokens, RBAC, and its own audit log as the ground
//! truth of what reached it.

use crate::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Token of `admin` (group `system:masters`): the tests' direct access.
pub const KUBE_ADMIN_TOKEN: &str = "admin-token-for-tests";
/// Token of `sluice` (group `system:masters`, so it may impersonate).
pub const KUBE_SLUICE_TOKEN: &str = "sluice-token-for-tests";

/// Where `kube-apiserver` is: `$SLUICE_KUBE_BIN`, or the install script's
/// cache.
pub fn kube_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SLUICE_KUBE_BIN") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var("SLUICE_CACHE").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/sluice"),
        PathBuf::from,
    );
    cache.join("kube/bin")
}

/// Debian's kubectl 1.20, unpacked by `scripts/install-kube.sh` next to
/// kube-apiserver, if it is there.
pub fn debian_kubectl() -> Option<PathBuf> {
    let path = kube_bin_dir().join("kubectl-1.20");
    path.exists().then_some(path)
}

pub struct KubeServer {
    dir: TempDir,
    etcd: Child,
    apiserver: Child,
    port: u16,
    _reapers: [crate::Reaper; 2],
}

impl KubeServer {
    /// Starts etcd and kube-apiserver and waits until the API server
    /// answers `/readyz` (about 10 s).
    pub fn start() -> KubeServer {
        let bin = kube_bin_dir().join("kube-apiserver");
        assert!(
            bin.exists(),
            "{} not found: run scripts/install-kube.sh (it builds kube-apiserver from Debian's source package)",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (client, peer, port) = (free_port(), free_port(), free_port());
        let etcd_log = std::fs::File::create(d.join("etcd.log")).unwrap();
        let etcd = Command::new("etcd")
            .args(["--data-dir", &d.join("etcd").display().to_string()])
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{client}"),
            ])
            .args([
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{client}"),
            ])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
            ])
            .args([
                "--initial-cluster",
                &format!("default=http://127.0.0.1:{peer}"),
            ])
            .env("ETCD_UNSUPPORTED_ARCH", "arm64")
            .stdout(Stdio::null())
            .stderr(etcd_log)
            .spawn()
            .expect("start etcd (apt-get install etcd-server, or scripts/install-kube.sh)");
        std::fs::write(
            d.join("tokens.csv"),
            format!(
                "{KUBE_ADMIN_TOKEN},admin,1,\"system:masters\"\n{KUBE_SLUICE_TOKEN},sluice,2,\"system:masters\"\n"
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("audit-policy.yaml"),
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n",
        )
        .unwrap();
        let sa_key = d.join("sa.key");
        let out = Command::new("openssl")
            .args([
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
            ])
            .arg(&sa_key)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = std::fs::File::create(d.join("apiserver.log")).unwrap();
        let apiserver = Command::new(&bin)
            .args(["--etcd-servers", &format!("http://127.0.0.1:{client}")])
            .args([
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                &port.to_string(),
            ])
            .args(["--cert-dir", &d.join("certs").display().to_string()])
            .args([
                "--token-auth-file",
                &d.join("tokens.csv").display().to_string(),
            ])
            .args(["--authorization-mode", "RBAC"])
            .args(["--service-account-issuer", "https://kubernetes.default.svc"])
            .args(["--service-account-key-file", &sa_key.display().to_string()])
            .args([
                "--service-account-signing-key-file",
                &sa_key.display().to_string(),
            ])
            .args(["--service-cluster-ip-range", "10.0.0.0/24"])
            .args(["--disable-admission-plugins", "ServiceAccount"])
            .args([
                "--audit-policy-file",
                &d.join("audit-policy.yaml").display().to_string(),
            ])
            .args([
                "--audit-log-path",
                &d.join("audit.log").display().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let _reapers = [
            crate::reap_on_exit(etcd.id()),
            crate::reap_on_exit(apiserver.id()),
        ];
        let mut server = KubeServer {
            dir,
            etcd,
            apiserver,
            port,
            _reapers,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.apiserver.try_wait().unwrap() {
                panic!("kube-apiserver exited with {status}:\n{}", self.log());
            }
            if self.ca_path().exists() {
                let out = self.kubectl(&["get", "--raw", "/readyz"]);
                if out.0 && out.1.trim() == "ok" {
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "kube-apiserver not ready:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The API server's self-signed serving certificate (its own CA).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("certs/apiserver.crt")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("apiserver.log")).unwrap_or_default()
    }

    /// The API server's audit log (one JSON event per line).
    pub fn audit_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default()
    }

    /// Runs kubectl directly against the API server as `admin`:
    /// (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new("kubectl")
            .arg(format!("--server={}", self.url()))
            .arg(format!(
                "--certificate-authority={}",
                self.ca_path().display()
            ))
            .arg(format!("--token={KUBE_ADMIN_TOKEN}"))
            .args(args)
            .env("KUBECONFIG", "/dev/null")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Like [`KubeServer::kubectl`], panicking on failure; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl(args);
        assert!(ok, "kubectl {args:?} failed: {err}");
        out
    }
}

impl KubeServer {
    /// Registers Node `name` whose kubelet is at 127.0.0.1:`kubelet_port`
    /// (a [`crate::FakeKubelet`]), and Pod `pod` (container `c`) in
    /// namespace `ns` bound to it: what exec, attach and logs need.
    pub fn add_node_and_pod(&self, name: &str, kubelet_port: u16, ns: &str, pod: &str) {
        let node = format!(r#"{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"{name}"}}}}"#);
        self.apply_json(&node);
        let status = format!(
            r#"{{"status":{{"addresses":[{{"type":"InternalIP","address":"127.0.0.1"}}],"daemonEndpoints":{{"kubeletEndpoint":{{"Port":{kubelet_port}}}}},"conditions":[{{"type":"Ready","status":"True","reason":"Fake","message":"fake kubelet"}}]}}}}"#
        );
        let out = Command::new("curl")
            .args(["-sS", "--fail", "-X", "PATCH", "--cacert"])
            .arg(self.ca_path())
            .args(["-H", &format!("Authorization: Bearer {KUBE_ADMIN_TOKEN}")])
            .args(["-H", "Content-Type: application/merge-patch+json"])
            .args(["--data", &status])
            .arg(format!("{}/api/v1/nodes/{name}/status", self.url()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "node status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pod = format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{pod}","namespace":"{ns}"}},"spec":{{"nodeName":"{name}","containers":[{{"name":"c","image":"none"}}]}}}}"#
        );
        self.apply_json(&pod);
    }

    fn apply_json(&self, json: &str) {
        let file = self
            .dir
            .path()
            .join(format!("obj-{}.json", crate::free_port()));
        std::fs::write(&file, json).unwrap();
        self.kubectl_ok(&["create", "-f", &file.display().to_string()]);
    }
}

impl Drop for KubeServer {
    fn drop(&mut self) {
        let _ = self.apiserver.kill();
        let _ = self.apiserver.wait();
        let _ = self.etcd.kill();
        let _ = self.etcd.wait();
    }
}
