//! Process and filesystem helpers: running the PostgreSQL binaries (as the
//! `postgres` OS user when root), psql, temp dirs and files with modes.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use tempfile::TempDir;

use crate::pg::pg_bin_dir;

fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| match fs::metadata("/proc/self") {
        Ok(meta) => meta.uid() == 0,
        Err(_) => Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0"),
    })
}

/// (uid, gid) of the `postgres` OS user; only needed when running as root.
fn postgres_ids() -> (u32, u32) {
    static IDS: OnceLock<(u32, u32)> = OnceLock::new();
    *IDS.get_or_init(|| {
        let id = |flag: &str| -> u32 {
            let out = Command::new("id")
                .args([flag, "postgres"])
                .output()
                .expect("run `id`");
            assert!(
                out.status.success(),
                "running as root needs a `postgres` OS user to run initdb/pg_ctl as \
                 (run scripts/install-deps.sh): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("numeric id")
        };
        (id("-u"), id("-g"))
    })
}

pub(crate) fn give_to_postgres(path: &Path) {
    if is_root() {
        let (uid, gid) = postgres_ids();
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown postgres {}: {e}", path.display()));
    }
}

/// Program to run for a PostgreSQL server binary: through `runuser -u
/// postgres --` when root (initdb refuses to run as root), directly otherwise.
pub(crate) fn pg_program(bin: &Path, name: &str) -> PathBuf {
    if is_root() {
        PathBuf::from("runuser")
    } else {
        bin.join(name)
    }
}

pub(crate) fn pg_program_args(bin: &Path, name: &str) -> Vec<std::ffi::OsString> {
    if is_root() {
        vec![
            "-u".into(),
            "postgres".into(),
            "--".into(),
            bin.join(name).into_os_string(),
        ]
    } else {
        Vec::new()
    }
}

pub(crate) fn pg_command(bin: &Path, name: &str, cwd: &Path) -> Command {
    let mut cmd = Command::new(pg_program(bin, name));
    cmd.args(pg_program_args(bin, name))
        // The test's cwd may not be accessible to the postgres user.
        .current_dir(cwd)
        .env("LC_ALL", "C")
        .env_remove("PGDATA")
        .env_remove("PGPORT")
        .env_remove("PGHOST")
        .stdin(Stdio::null());
    cmd
}

pub(crate) fn psql_binary() -> PathBuf {
    let candidate = pg_bin_dir().join("psql");
    if candidate.is_file() {
        candidate
    } else {
        PathBuf::from("psql")
    }
}

pub(crate) fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("failed to run {cmd:?}: {e}"))
}

pub(crate) fn run_with_stdin(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to run {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("child stdin");
    let input = input.to_owned();
    // Write from a thread so a large output cannot deadlock against a large input.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("failed to wait for {cmd:?}: {e}"));
    let _ = writer.join();
    out
}

pub(crate) fn describe_output(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub(crate) fn make_temp_root() -> TempDir {
    // As root the postgres user must traverse the temp root, so use /tmp
    // rather than a $TMPDIR that may sit under /root. Keep the path short
    // either way: unix socket paths are limited to ~107 bytes.
    let env_tmp = std::env::temp_dir();
    let base = if is_root() || env_tmp.as_os_str().len() > 60 {
        PathBuf::from("/tmp")
    } else {
        env_tmp
    };
    let tmp = tempfile::Builder::new()
        .prefix("sluice-pg-")
        .tempdir_in(&base)
        .unwrap_or_else(|e| panic!("create temp dir in {}: {e}", base.display()));
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", tmp.path().display()));
    tmp
}

pub(crate) fn make_dir(path: &Path, mode: u32) {
    fs::create_dir(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

pub(crate) fn write_file(path: &Path, contents: &[u8], mode: u32) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}
