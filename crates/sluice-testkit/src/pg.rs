//! [`PgServer`]: a throwaway PostgreSQL server (`initdb`, configuration,
//! `pg_ctl start`, roles and the `app` database; stopped and deleted on
//! drop), and [`pg_bin_dir`] to find the server binaries.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::sys::{
    describe_output, give_to_postgres, make_dir, make_temp_root, pg_command, pg_program,
    pg_program_args, psql_binary, run, run_with_stdin, write_file,
};
use crate::tls::generate_tls;
use crate::{free_port, APP_DB, PG_HOST, SUPERUSER};

const START_ATTEMPTS: usize = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Directory holding the PostgreSQL server binaries (`initdb`, `pg_ctl`,
/// `postgres`): `$SLUICE_PG_BIN` if set, else `/usr/lib/postgresql/15/bin`,
/// else `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`.
pub fn pg_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SLUICE_PG_BIN").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let debian15 = Path::new("/usr/lib/postgresql/15/bin");
    if debian15.join("initdb").is_file() {
        return debian15.to_path_buf();
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if dir.join("initdb").is_file() {
                return dir;
            }
        }
    }
    let newest = fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let version: u32 = e.file_name().to_str()?.parse().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("initdb").is_file().then_some((version, bin))
                })
                .max_by_key(|(version, _)| *version)
                .map(|(_, bin)| bin)
        });
    newest.unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries not found: set SLUICE_PG_BIN to the directory holding \
             initdb/pg_ctl/postgres (or run scripts/install-deps.sh)"
        )
    })
}

/// Options for [`PgServer::start_with`].
#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    /// Enable TLS (`ssl = on`) with a certificate signed by a throwaway CA
    /// (see [`PgServer::ca_cert_path`]); `scram_user` must then use TLS.
    pub tls: bool,
}

/// A throwaway PostgreSQL server. Dropping it stops the server
/// (`pg_ctl stop -m immediate`) and removes its temp dir.
#[derive(Debug)]
pub struct PgServer {
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_path: PathBuf,
    port: u16,
    ca_cert: Option<PathBuf>,
    running: bool,
    // Dropped (removed) after `Drop::drop` has stopped the server.
    tmp: TempDir,
}

impl PgServer {
    /// Starts a server with [`PgOptions::default`] (no TLS).
    pub fn start() -> PgServer {
        Self::start_with(PgOptions::default())
    }

    /// Starts a server: `initdb`, configuration, `pg_ctl start`, wait for
    /// readiness, create the roles and the `app` database. Panics (with the
    /// server log) on any failure.
    pub fn start_with(opts: PgOptions) -> PgServer {
        let bin = pg_bin_dir();
        let tmp = make_temp_root();
        let root = tmp.path().to_path_buf();
        let data_dir = root.join("data");
        let socket_dir = root.join("sock");
        let log_path = root.join("postgres.log");

        make_dir(&data_dir, 0o700);
        make_dir(&socket_dir, 0o755);
        write_file(&log_path, b"", 0o600);
        for p in [&data_dir, &socket_dir, &log_path] {
            give_to_postgres(p);
        }

        // From here on the struct exists, so a panic stops the server (if it
        // got started) and removes the temp dir while unwinding.
        let mut server = PgServer {
            data_dir,
            socket_dir,
            log_path,
            port: 0,
            ca_cert: None,
            running: false,
            tmp,
        };

        let initdb = run(pg_command(&bin, "initdb", &root)
            .arg("-D")
            .arg(&server.data_dir)
            .args([
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]));
        if !initdb.status.success() {
            panic!("initdb failed:\n{}", describe_output(&initdb));
        }

        let tls_conf = if opts.tls {
            let tls_dir = root.join("tls");
            make_dir(&tls_dir, 0o755);
            let material = generate_tls();
            let ca = tls_dir.join("ca.crt");
            let cert = tls_dir.join("server.crt");
            let key = tls_dir.join("server.key");
            write_file(&ca, material.ca_pem.as_bytes(), 0o644);
            write_file(&cert, material.cert_pem.as_bytes(), 0o644);
            write_file(&key, material.key_pem.as_bytes(), 0o600);
            give_to_postgres(&cert);
            give_to_postgres(&key);
            server.ca_cert = Some(ca);
            format!(
                "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                conf_escape(&cert),
                conf_escape(&key)
            )
        } else {
            "ssl = off\n".to_string()
        };

        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(server.data_dir.join("postgresql.conf"))
            .expect("open postgresql.conf");
        conf.write_all(b"\n# sluice-testkit\ninclude 'sluice.conf'\n")
            .expect("append to postgresql.conf");
        drop(conf);

        let hba = hba_conf(opts.tls);
        write_file(&server.data_dir.join("pg_hba.conf"), hba.as_bytes(), 0o600);
        give_to_postgres(&server.data_dir.join("pg_hba.conf"));

        // free_port() is racy when several servers (or other tests) start at
        // once: retry with a new port when the bind fails.
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let sluice_conf = format!(
                "listen_addresses = '{PG_HOST}'\n\
                 port = {port}\n\
                 unix_socket_directories = '{sock}'\n\
                 unix_socket_permissions = 0777\n\
                 max_connections = 100\n\
                 shared_buffers = 16MB\n\
                 fsync = off\n\
                 synchronous_commit = off\n\
                 full_page_writes = off\n\
                 password_encryption = 'scram-sha-256'\n\
                 logging_collector = off\n\
                 lc_messages = 'C'\n\
                 {tls_conf}",
                sock = conf_escape(&server.socket_dir),
            );
            let conf_path = server.data_dir.join("sluice.conf");
            write_file(&conf_path, sluice_conf.as_bytes(), 0o600);
            give_to_postgres(&conf_path);

            let out = run(pg_command(&bin, "pg_ctl", &root)
                .arg("-D")
                .arg(&server.data_dir)
                .arg("-l")
                .arg(&server.log_path)
                .args(["-w", "-t", "60", "start"]));
            if out.status.success() {
                server.port = port;
                server.running = true;
                break;
            }
            let log = server.log();
            last_failure = format!("{}\n--- server log ---\n{log}", describe_output(&out));
            let port_taken = log.contains("could not bind")
                || log.contains("Address already in use")
                || log.contains("could not create any TCP/IP sockets")
                || log.contains("could not create lock file");
            if !port_taken {
                panic!("pg_ctl start failed:\n{last_failure}");
            }
            // Start the next attempt with a fresh log.
            write_file(&server.log_path, b"", 0o600);
        }
        if !server.running {
            panic!("pg_ctl start failed {START_ATTEMPTS} times (port races):\n{last_failure}");
        }

        server.wait_ready(&bin);
        server.psql("postgres", SETUP_SQL);
        server.psql(APP_DB, SETUP_APP_SQL);
        server
    }

    /// TCP port the server listens on (on [`PgServer::host`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Host the server listens on: `"127.0.0.1"`.
    pub fn host(&self) -> &str {
        PG_HOST
    }

    /// Runs SQL as the superuser through `psql -XAtq -v ON_ERROR_STOP=1` over
    /// the unix socket in the server's socket dir (SQL fed on stdin, so
    /// several statements, `CREATE DATABASE` and psql meta-commands work).
    /// Returns psql's stdout; panics with stderr on error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let mut cmd = Command::new(psql_binary());
        cmd.args(["-XAtq", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", SUPERUSER, "-d", db, "-f", "-"]);
        for var in [
            "PGPASSWORD",
            "PGSERVICE",
            "PGSSLMODE",
            "PGOPTIONS",
            "PGTARGETSESSIONATTRS",
        ] {
            cmd.env_remove(var);
        }
        let out = run_with_stdin(&mut cmd, sql);
        if !out.status.success() {
            panic!(
                "psql on {db} (port {}) failed for SQL:\n{sql}\n{}",
                self.port,
                describe_output(&out)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// With TLS: path of the CA certificate (PEM) that signed the server
    /// certificate (SAN `localhost` and IP `127.0.0.1`). `None` without TLS.
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.ca_cert.as_deref()
    }

    /// The server's data directory (`PGDATA`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server's unix socket directory (`psql -h <this>`).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// Path of the server log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Current contents of the server log (empty string if unreadable).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn wait_ready(&self, bin: &Path) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let isready = {
            let candidate = bin.join("pg_isready");
            if candidate.is_file() {
                candidate
            } else {
                PathBuf::from("pg_isready")
            }
        };
        loop {
            let tcp = Command::new(&isready)
                .args(["-q", "-t", "2", "-h", PG_HOST, "-p"])
                .arg(self.port.to_string())
                .stdin(Stdio::null())
                .output();
            let sock = Command::new(&isready)
                .args(["-q", "-t", "2", "-h"])
                .arg(&self.socket_dir)
                .arg("-p")
                .arg(self.port.to_string())
                .stdin(Stdio::null())
                .output();
            let ok = |r: &std::io::Result<Output>| r.as_ref().is_ok_and(|o| o.status.success());
            if ok(&tcp) && ok(&sock) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "PostgreSQL on port {} not ready after {:?}\n--- server log ---\n{}",
                    self.port,
                    READY_TIMEOUT,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let bin = pg_bin_dir();
        let stopped = Command::new(pg_program(&bin, "pg_ctl"))
            .args(pg_program_args(&bin, "pg_ctl"))
            .current_dir(self.tmp.path())
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-w", "-t", "30", "-m", "immediate", "stop"])
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success());
        if !stopped {
            // Last resort: kill the postmaster we started, by its pid.
            if let Ok(pidfile) = fs::read_to_string(self.data_dir.join("postmaster.pid")) {
                if let Some(pid) = pidfile.lines().next().map(str::trim) {
                    if pid.parse::<u32>().is_ok() {
                        let _ = Command::new("kill").args(["-KILL", pid]).output();
                    }
                }
            }
        }
    }
}

const SETUP_SQL: &str = "\
SET password_encryption = 'scram-sha-256';
CREATE ROLE scram_user LOGIN CREATEDB PASSWORD 'scram_pw';
CREATE ROLE clear_user LOGIN PASSWORD 'clear_pw';
CREATE ROLE trust_user LOGIN;
SET password_encryption = 'md5';
CREATE ROLE md5_user LOGIN PASSWORD 'md5_pw';
RESET password_encryption;
CREATE DATABASE app OWNER scram_user;
GRANT ALL PRIVILEGES ON DATABASE app TO md5_user, clear_user, trust_user;
";

const SETUP_APP_SQL: &str = "\
GRANT ALL ON SCHEMA public TO md5_user, clear_user, trust_user;
";

fn hba_conf(tls: bool) -> String {
    let scram_user_lines = if tls {
        "hostnossl all scram_user 127.0.0.1/32 reject\n\
         hostssl   all scram_user 127.0.0.1/32 scram-sha-256\n"
    } else {
        "host      all scram_user 127.0.0.1/32 scram-sha-256\n"
    };
    format!(
        "# Written by sluice-testkit.\n\
         # TYPE    DATABASE USER ADDRESS METHOD\n\
         local     all all trust\n\
         host      all trust_user 127.0.0.1/32 trust\n\
         host      all clear_user 127.0.0.1/32 password\n\
         host      all md5_user 127.0.0.1/32 md5\n\
         {scram_user_lines}\
         host      all all 127.0.0.1/32 scram-sha-256\n"
    )
}

/// Quote a path for a single-quoted postgresql.conf value.
fn conf_escape(path: &Path) -> String {
    path.display().to_string().replace('\'', "''")
}
