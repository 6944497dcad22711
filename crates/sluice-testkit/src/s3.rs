//! A real S3 server that checks SigV4 signatures: s3s-fs, built by
//! `scripts/install-deps.sh` into `~/.cache/sluice/s3s-fs` (or named by
//! `SLUICE_S3S_FS`), on a free loopback port over a temporary directory.

use crate::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The backend's own key pair (Sluice holds it; clients never do).
pub const S3_BACKEND_ACCESS_KEY: &str = "BACKENDACCESSKEY0001";
pub const S3_BACKEND_SECRET_KEY: &str = "backend-secret-key-for-tests-0001";

pub struct S3Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// Where the s3s-fs binary is.
pub fn s3s_fs_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SLUICE_S3S_FS") {
        return PathBuf::from(p);
    }
    let cache = std::env::var("SLUICE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
            PathBuf::from(home).join(".cache/sluice")
        });
    cache.join("s3s-fs/bin/s3s-fs")
}

impl S3Server {
    pub fn start() -> S3Server {
        let bin = s3s_fs_bin();
        assert!(
            bin.exists(),
            "{} is missing: run scripts/install-deps.sh (cargo install s3s-fs --version 0.14.1 --features binary)",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("s3s-fs.log")).unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3_BACKEND_ACCESS_KEY])
            .args(["--secret-key", S3_BACKEND_SECRET_KEY])
            .arg(dir.path().join("data"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "s3s-fs did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        S3Server { child, port, dir }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory s3s-fs stores objects in (`<bucket>/<key>`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("s3s-fs.log")).unwrap_or_default()
    }

    /// Whether object `key` of `bucket` is stored.
    pub fn has(&self, bucket: &str, key: &str) -> bool {
        Path::new(&self.data_dir()).join(bucket).join(key).is_file()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
