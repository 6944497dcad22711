#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Test infrastructure for Sluice integration tests.
//!
//! Everything here is blocking (no async runtime needed) and fails loudly:
//! any setup problem panics with enough context (command output, server log)
//! to diagnose it.
//!
//! * [`PgServer`] starts a throwaway PostgreSQL server (own `initdb`, own temp
//!   dir, own port on 127.0.0.1, own unix socket dir) with a fixed set of roles
//!   covering every password authentication method; dropping it stops the
//!   server and deletes everything. Several servers can run at once.
//! * [`KubeServer`] starts a throwaway etcd and kube-apiserver (static
//!   tokens, RBAC, its own audit log).
//! * [`make_tls_files`] writes a throwaway CA and a leaf certificate for a
//!   Sluice listener.
//!
//! Roles created in every server (see the constants below):
//!
//! | role          | password    | stored as | pg_hba method (127.0.0.1)                      |
//! |---------------|-------------|-----------|------------------------------------------------|
//! | `postgres`    | -           | -         | superuser; unix socket only (`trust`)          |
//! | `scram_user`  | `scram_pw`  | SCRAM     | `scram-sha-256` (`hostssl` only with TLS)      |
//! | `md5_user`    | `md5_pw`    | MD5       | `md5`                                          |
//! | `clear_user`  | `clear_pw`  | SCRAM     | `password` (cleartext on the wire)             |
//! | `trust_user`  | -           | -         | `trust`                                        |
//!
//! Database `app` is owned by `scram_user` (which also has `CREATEDB`);
//! `md5_user`, `clear_user` and `trust_user` have all privileges on the
//! database `app` and on its schema `public`.
//!
//! Layout: `pg.rs` holds [`PgServer`] and [`pg_bin_dir`], `tls.rs` the
//! certificate generation, `sys.rs` the process and filesystem helpers both
//! use. Everything public is re-exported from the crate root.

use std::net::TcpListener;

mod kube;
mod kubelet;
mod pg;
mod s3;
mod sys;
mod tls;

pub use kube::{debian_kubectl, kube_bin_dir, KubeServer, KUBE_ADMIN_TOKEN, KUBE_SLUICE_TOKEN};
pub use kubelet::FakeKubelet;
pub use pg::{pg_bin_dir, PgOptions, PgServer};
pub use s3::{garage_bin, s3s_fs_bin, Backend, S3Server};
pub use tls::{make_tls_files, TlsFiles};

/// Host every [`PgServer`] listens on.
pub const PG_HOST: &str = "127.0.0.1";
/// Superuser of every [`PgServer`] (reachable through the unix socket only).
pub const SUPERUSER: &str = "postgres";
/// Database owned by [`SCRAM_USER`].
pub const APP_DB: &str = "app";
/// Role authenticated with `scram-sha-256` (mandatory TLS in the TLS variant).
pub const SCRAM_USER: &str = "scram_user";
/// Password of [`SCRAM_USER`].
pub const SCRAM_PASSWORD: &str = "scram_pw";
/// Role whose password is stored as MD5 and authenticated with `md5`.
pub const MD5_USER: &str = "md5_user";
/// Password of [`MD5_USER`].
pub const MD5_PASSWORD: &str = "md5_pw";
/// Role authenticated with the cleartext `password` method.
pub const CLEAR_USER: &str = "clear_user";
/// Password of [`CLEAR_USER`].
pub const CLEAR_PASSWORD: &str = "clear_pw";
/// Role authenticated with `trust` (no password).
pub const TRUST_USER: &str = "trust_user";

/// Returns a TCP port that was free on 127.0.0.1 a moment ago (bind to port 0,
/// read the port, drop the listener). Racy by nature: callers that bind it
/// later should be ready to retry.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((PG_HOST, 0)).expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("local_addr of 127.0.0.1:0")
        .port()
}

/// Kills process `pid` when this test process ends, however it ends: a
/// `bash` that waits for its stdin to close (the kernel closes it when the
/// test process exits, or when the `Reaper` is dropped), then kills `pid`.
/// For servers held in a `static` fixture, whose `Drop` never runs.
pub struct Reaper {
    _child: std::process::Child,
}

pub fn reap_on_exit(pid: u32) -> Reaper {
    let child = std::process::Command::new("bash")
        .args(["-c", &format!("cat >/dev/null; kill {pid} 2>/dev/null")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn bash");
    Reaper { _child: child }
}
