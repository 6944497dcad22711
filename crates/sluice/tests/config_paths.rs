//! `--config sluice.toml`, a bare file name as the README writes it: every
//! relative path in the config (policy files, data directory, TLS files,
//! secret files) resolves against the current directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{psql, resource_toml, Gateway};
use sluice_testkit::{make_tls_files, PgServer};
use std::path::PathBuf;

#[test]
fn a_bare_config_file_name_resolves_every_relative_path_against_the_current_directory() {
    let pg = PgServer::start();
    let password_file = "secrets/pw.txt";
    let resources = resource_toml(
        "app",
        &pg,
        "scram_user",
        None,
        &format!("password_file = \"{password_file}\""),
    );
    let mut gw = Gateway::configure(
        "tls_cert = \"tls/cert.pem\"\ntls_key = \"tls/key.pem\"",
        &resources,
    );
    make_tls_files(&gw.dir.path().join("tls"));
    std::fs::create_dir_all(gw.dir.path().join("secrets")).unwrap();
    std::fs::write(gw.dir.path().join(password_file), "scram_pw\n").unwrap();
    // Every command below runs in the gateway's directory with
    // `--config sluice.toml`.
    gw.config = PathBuf::from("sluice.toml");

    let out = gw.cli(&["policy", "validate"]);
    assert!(
        out.status.success(),
        "policy validate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("test-allow-all"));

    let key = gw.create_key("agent-1", "agents");
    assert!(
        gw.dir.path().join("data").is_dir(),
        "the data directory is ./data"
    );

    gw.start(&[]);
    let (ok, out, err) = psql(
        &format!(
            "{} sslmode=require",
            gw.conn_str("agent-1", &key, "app")
                .replace(" sslmode=disable", "")
        ),
        "select current_user",
    );
    assert!(ok, "{err}\n{}", gw.log());
    assert_eq!(out.trim(), "scram_user");

    let out = gw.cli(&["audit", "sessions"]);
    assert!(
        out.status.success(),
        "audit sessions: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("agent-1"));
}
