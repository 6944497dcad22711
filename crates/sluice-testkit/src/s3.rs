//! A real S3 server that checks SigV4 signatures, on free loopback ports
//! over a temporary directory: s3s-fs by default (built by
//! `scripts/install-deps.sh` into `~/.cache/sluice/s3s-fs`, or named by
//! `SLUICE_S3S_FS`), or Garage when `SLUICE_S3_BACKEND=garage` (built by
//! `scripts/test-s3-garage.sh` into `~/.cache/sluice/garage`, or named by
//! `SLUICE_GARAGE`).

use crate::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// s3s-fs's key pair (Sluice holds it; clients never do).
const S3S_FS_KEYS: (&str, &str) = ("BACKENDACCESSKEY0001", "backend-secret-key-for-tests-0001");
/// Garage's: its key ids are `GK` and 24 hex digits, its secrets 64.
const GARAGE_KEYS: (&str, &str) = (
    "GK5eedbacc0de5eedbacc0de01",
    "5eedbacc0de5eedbacc0de015eedbacc0de5eedbacc0de015eedbacc0de5eed0",
);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Backend {
    S3sFs,
    Garage,
}

impl Backend {
    /// `SLUICE_S3_BACKEND`: `s3s-fs` (the default) or `garage`.
    pub fn from_env() -> Backend {
        match std::env::var("SLUICE_S3_BACKEND").as_deref() {
            Ok("garage") => Backend::Garage,
            Ok("s3s-fs") | Ok("") | Err(_) => Backend::S3sFs,
            Ok(other) => panic!("SLUICE_S3_BACKEND={other}: expected s3s-fs or garage"),
        }
    }
}

pub struct S3Server {
    backend: Backend,
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

fn cache_dir() -> PathBuf {
    std::env::var("SLUICE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
            PathBuf::from(home).join(".cache/sluice")
        })
}

/// Where the s3s-fs binary is.
pub fn s3s_fs_bin() -> PathBuf {
    match std::env::var("SLUICE_S3S_FS") {
        Ok(p) => PathBuf::from(p),
        Err(_) => cache_dir().join("s3s-fs/bin/s3s-fs"),
    }
}

/// Where the Garage binary is.
pub fn garage_bin() -> PathBuf {
    match std::env::var("SLUICE_GARAGE") {
        Ok(p) => PathBuf::from(p),
        Err(_) => cache_dir().join("garage/bin/garage"),
    }
}

fn wait_for_port(port: u16, what: &str, log: &Path) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl S3Server {
    /// The backend `SLUICE_S3_BACKEND` names.
    pub fn start() -> S3Server {
        match Backend::from_env() {
            Backend::S3sFs => Self::start_s3s_fs(),
            Backend::Garage => Self::start_garage(),
        }
    }

    fn start_s3s_fs() -> S3Server {
        let bin = s3s_fs_bin();
        assert!(
            bin.exists(),
            "{} is missing: run scripts/install-deps.sh (cargo install s3s-fs --version 0.14.1 --features binary)",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log_path = dir.path().join("s3.log");
        let log = std::fs::File::create(&log_path).unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3S_FS_KEYS.0])
            .args(["--secret-key", S3S_FS_KEYS.1])
            .arg(dir.path().join("data"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, "s3s-fs", &log_path);
        S3Server {
            backend: Backend::S3sFs,
            child,
            port,
            dir,
        }
    }

    /// One Garage node: a layout of one zone, the key imported and allowed
    /// to create buckets.
    fn start_garage() -> S3Server {
        let bin = garage_bin();
        assert!(
            bin.exists(),
            "{} is missing: run scripts/test-s3-garage.sh (cargo install garage --version 2.5.0)",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let (port, rpc) = (free_port(), free_port());
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_secret = \"{secret}\"\n\n[s3_api]\ns3_region = \"us-east-1\"\n\
                 api_bind_addr = \"127.0.0.1:{port}\"\n",
                d = dir.path().display(),
                secret = "0".repeat(62) + "42",
            ),
        )
        .unwrap();
        let log_path = dir.path().join("s3.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .env("RUST_LOG", "garage=info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let server = S3Server {
            backend: Backend::Garage,
            child,
            port,
            dir,
        };
        wait_for_port(port, "garage", &log_path);
        let garage = |args: &[&str]| -> String {
            let start = Instant::now();
            loop {
                let out = Command::new(&bin)
                    .arg("-c")
                    .arg(&config)
                    .args(args)
                    .output()
                    .unwrap();
                if out.status.success() {
                    return String::from_utf8_lossy(&out.stdout).into_owned();
                }
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "garage {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        };
        let node = garage(&["node", "id", "-q"]);
        let node = node.trim().split('@').next().unwrap_or_default().to_owned();
        garage(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        garage(&["layout", "apply", "--version", "1"]);
        garage(&[
            "key",
            "import",
            "--yes",
            "-n",
            "sluice-tests",
            GARAGE_KEYS.0,
            GARAGE_KEYS.1,
        ]);
        garage(&["key", "allow", "--create-bucket", GARAGE_KEYS.0]);
        server
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The backend's own key pair.
    pub fn access_key(&self) -> String {
        self.keys().0.to_owned()
    }

    pub fn secret_key(&self) -> String {
        self.keys().1.to_owned()
    }

    fn keys(&self) -> (&'static str, &'static str) {
        match self.backend {
            Backend::S3sFs => S3S_FS_KEYS,
            Backend::Garage => GARAGE_KEYS,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("s3.log")).unwrap_or_default()
    }

    /// Whether object `key` of `bucket` is stored: s3s-fs's data directory
    /// (`<bucket>/<key>`), or a HeadObject straight to Garage with its own
    /// key (Garage stores blocks, not files).
    pub fn has(&self, bucket: &str, key: &str) -> bool {
        match self.backend {
            Backend::S3sFs => self
                .dir
                .path()
                .join("data")
                .join(bucket)
                .join(key)
                .is_file(),
            Backend::Garage => {
                let out = Command::new("aws")
                    .args(["--endpoint-url", &self.endpoint()])
                    .args(["s3api", "head-object", "--bucket", bucket, "--key", key])
                    .env("AWS_ACCESS_KEY_ID", GARAGE_KEYS.0)
                    .env("AWS_SECRET_ACCESS_KEY", GARAGE_KEYS.1)
                    .env("AWS_DEFAULT_REGION", "us-east-1")
                    .env("AWS_CONFIG_FILE", "/dev/null")
                    .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
                    .output()
                    .unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(
                    out.status.success() || stderr.contains("404"),
                    "head-object {bucket}/{key} straight to Garage: {stderr}"
                );
                out.status.success()
            }
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
