//! Starts the real `sluice` binary in front of a real PostgreSQL server.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{free_port, PgServer};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// A policy that permits everything: for tests of the data path itself.
pub const ALLOW_ALL: &str = "@id(\"test-allow-all\")\npermit(principal, action, resource);\n";

/// A gateway process with its own config and data directory.
pub struct Gateway {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    pub config: PathBuf,
}

/// The `[[resource]]` table for a test server, logging in as `user`.
pub fn resource_toml(
    name: &str,
    pg: &PgServer,
    user: &str,
    password_env: Option<&str>,
    extra: &str,
) -> String {
    let password = password_env
        .map(|v| format!("password_env = \"{v}\"\n"))
        .unwrap_or_default();
    format!(
        "[[resource]]\nname = \"{name}\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"app\"\nuser = \"{user}\"\n{password}tags = {{ env = \"test\" }}\n{extra}\n",
        pg.port()
    )
}

impl Gateway {
    /// Writes a config with `[server] listen` on a free port plus `server_extra`
    /// lines, and `resources` (TOML tables). Does not start the process.
    pub fn configure(server_extra: &str, resources: &str) -> Gateway {
        Gateway::configure_with_policy(server_extra, resources, ALLOW_ALL)
    }

    /// Like [`Gateway::configure`] with `policy` as the only policy file
    /// (`policies.cedar`).
    pub fn configure_with_policy(server_extra: &str, resources: &str, policy: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("sluice.toml");
        std::fs::write(dir.path().join("policies.cedar"), policy).unwrap();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\n{server_extra}\n\n{resources}\n[policy]\nfiles = [\"policies.cedar\"]\n"
        );
        std::fs::write(&config, text).unwrap();
        Gateway {
            dir,
            port,
            child: None,
            config,
        }
    }

    /// The common case: one resource "app" in front of `pg` as scram_user.
    pub fn start_for(pg: &PgServer) -> Gateway {
        let mut gw = Gateway::configure(
            "",
            &resource_toml("app", pg, "scram_user", Some("SLUICE_TEST_PW"), ""),
        );
        gw.start(&[("SLUICE_TEST_PW", "scram_pw")]);
        gw
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("sluice.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts `sluice serve` and waits until it accepts connections.
    pub fn start(&mut self, env: &[(&str, &str)]) {
        let log = std::fs::File::create(self.log_path()).unwrap();
        let mut cmd = Command::new(SLUICE);
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config)
            .current_dir(self.dir.path());
        cmd.env("SLUICE_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().unwrap());
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "sluice exited with {status} before listening:\n{}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "sluice did not listen:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs a `sluice` subcommand against this gateway's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(SLUICE);
        cmd.args(args)
            .arg("--config")
            .arg(&self.config)
            .current_dir(self.dir.path());
        cmd.output().unwrap()
    }

    /// Creates a key and returns it (the last line of stdout).
    pub fn create_key(&self, identity: &str, groups: &str) -> String {
        let out = self.cli(&["keys", "create", "--identity", identity, "--groups", groups]);
        assert!(
            out.status.success(),
            "keys create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .to_owned()
    }

    /// A libpq connection string through the gateway.
    pub fn conn_str(&self, identity: &str, key: &str, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} dbname={dbname} user={identity} password={key} sslmode=disable",
            self.port
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit, returning its success.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        let child = self.child.as_mut()?;
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return Some(s);
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs psql with a connection string; returns (success, stdout, stderr).
pub fn psql(conn: &str, sql: &str) -> (bool, String, String) {
    let out = Command::new("psql")
        .arg(conn)
        .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The directory of the Python client scripts.
pub fn py_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("py")
}

// --- helpers for auth.rs, bad_input.rs, lifecycle.rs ---

/// The background task driving a tokio-postgres connection; its result says
/// how the session ended (e.g. the FATAL the gateway sent).
pub type ConnTask = tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>;

/// Connects with tokio-postgres (no TLS) and drives the connection in a task.
pub async fn pg_connect(
    conn: &str,
) -> Result<(tokio_postgres::Client, ConnTask), tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conn, tokio_postgres::NoTls).await?;
    Ok((client, tokio::spawn(connection)))
}

/// (SQLSTATE, message) of an error sent by the server side; panics on any
/// other kind of error (I/O, client-side parse ...).
pub fn db_error(e: &tokio_postgres::Error) -> (String, String) {
    let db = e
        .as_db_error()
        .unwrap_or_else(|| panic!("expected an ErrorResponse, got: {e:?}"));
    (db.code().code().to_owned(), db.message().to_owned())
}

impl Gateway {
    /// True while the `sluice serve` process started by [`Gateway::start`] runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Runs `sluice serve` on this config when it is expected to exit by
    /// itself (a bad config); returns its output. Panics if it still runs
    /// after `timeout`.
    pub fn serve_expecting_exit(&self, env: &[(&str, &str)], timeout: Duration) -> Output {
        let mut cmd = Command::new(SLUICE);
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config)
            .current_dir(self.dir.path());
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > timeout {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "sluice serve still running after {timeout:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }

    /// Waits until the gateway log contains `needle` (logs are written
    /// asynchronously); panics with the log after `timeout`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                start.elapsed() < timeout,
                "gateway log never said {needle:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One PostgreSQL server and one gateway in front of it, shared by the tests
/// of a binary that run at the same time. It lives while at least one test
/// holds it, so both processes are stopped by `Drop` when the last test is
/// done (a plain `static` would leak them past the end of the test binary).
pub struct Fixture {
    // Field order matters: the gateway stops before the server.
    pub gw: Gateway,
    pub pg: PgServer,
    pub key: String,
}

/// The shared fixture of this test binary, created on first use with a key
/// for `identity`; `init` runs once on a new fixture.
pub fn shared_fixture(identity: &str, init: impl FnOnce(&Fixture)) -> std::sync::Arc<Fixture> {
    use std::sync::{Arc, Mutex, Weak};
    static SHARED: Mutex<Weak<Fixture>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(f) = slot.upgrade() {
        return f;
    }
    let pg = PgServer::start();
    let gw = Gateway::start_for(&pg);
    let key = gw.create_key(identity, "dev");
    let f = Fixture { gw, pg, key };
    init(&f);
    let f = Arc::new(f);
    *slot = Arc::downgrade(&f);
    f
}

// --- helpers for the split protocol_*.rs and auth_*.rs binaries ---

pub mod auth;
pub mod proto;
pub mod raw;

/// Removes a directory a live writer may still be adding files to (the
/// head marker is rewritten through a temp file): retries until it is gone.
pub fn remove_dir_under_writer(path: &std::path::Path) {
    for _ in 0..100 {
        match std::fs::remove_dir_all(path) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
    panic!("could not remove {}", path.display());
}

/// `accounts(id, balance)` in database `app` with the row (1, 100), owned by
/// `scram_user`: the table the approval tests update.
pub fn accounts_table(pg: &PgServer) {
    pg.psql(
        "app",
        "create table accounts (id int primary key, balance int); \
         insert into accounts values (1, 100); alter table accounts owner to scram_user;",
    );
}
