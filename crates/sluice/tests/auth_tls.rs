//! TLS on both sides of the real `sluice` binary: a TLS listener serving
//! verify-full clients (and still plaintext on loopback), `client_auth =
//! "password"` over TLS while plaintext keeps SCRAM, and backends behind
//! verified TLS or with a certificate from an untrusted CA.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::auth::{gateway, refused, PW_ENV};
use common::{pg_connect, psql, resource_toml, Gateway};
use sluice_testkit::{make_tls_files, PgOptions, PgServer};
use std::io::{Read, Write};
use std::time::Duration;

#[test]
fn a_tls_listener_serves_verify_full_clients_and_logs_tls() {
    let pg = PgServer::start();
    let gwdir = tempfile::tempdir().unwrap();
    let tls = make_tls_files(gwdir.path());
    let gw = gateway(
        &pg,
        &format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"",
            tls.cert.display(),
            tls.key.display()
        ),
    );
    let key = gw.create_key("agent-1", "agents");
    let base = format!(
        "host=localhost hostaddr=127.0.0.1 port={} dbname=app user=agent-1 password={key}",
        gw.port
    );

    let verify = format!(
        "{base} sslmode=verify-full sslrootcert={}",
        tls.ca.display()
    );
    let (ok, out, err) = psql(&verify, "select current_user");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "scram_user");
    gw.wait_log("tls=true", Duration::from_secs(5));

    let (ok, _, err) = psql(&format!("{base} sslmode=require"), "select 1");
    assert!(ok, "{err}");

    // A CA that did not sign the gateway's certificate is rejected by the client.
    let other = make_tls_files(&gwdir.path().join("other"));
    let (ok, _, err) = psql(
        &format!(
            "{base} sslmode=verify-full sslrootcert={}",
            other.ca.display()
        ),
        "select 1",
    );
    assert!(!ok, "verify-full accepted a certificate from another CA");
    assert!(err.contains("certificate"), "{err}");

    // Plaintext is still accepted on a loopback listener.
    let (ok, _, err) = psql(&gw.conn_str("agent-1", &key, "app"), "select 1");
    assert!(ok, "{err}");
    assert!(gw.log().contains("tls=false"));
}

/// The first authentication request the gateway sends on a plaintext
/// connection (PostgreSQL's AuthenticationRequest code).
fn plaintext_auth_request(port: u16, user: &str) -> i32 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut body = Vec::new();
    body.extend_from_slice(&196_608i32.to_be_bytes());
    for (k, v) in [("user", user), ("database", "app")] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    s.write_all(&packet).unwrap();
    let mut head = [0u8; 9];
    s.read_exact(&mut head).unwrap();
    assert_eq!(head[0], b'R', "expected an authentication request");
    i32::from_be_bytes([head[5], head[6], head[7], head[8]])
}

#[test]
fn password_client_auth_works_over_tls_and_plaintext_loopback_still_uses_scram() {
    let pg = PgServer::start();
    let gwdir = tempfile::tempdir().unwrap();
    let tls = make_tls_files(gwdir.path());
    let gw = gateway(
        &pg,
        &format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\nclient_auth = \"password\"",
            tls.cert.display(),
            tls.key.display()
        ),
    );
    let key = gw.create_key("agent-1", "agents");
    let tls_conn = format!(
        "host=localhost hostaddr=127.0.0.1 port={} dbname=app user=agent-1 password={key} sslmode=verify-full sslrootcert={}",
        gw.port,
        tls.ca.display()
    );
    let (ok, out, err) = psql(&tls_conn, "select current_user");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "scram_user");
    let (ok, _, err) = psql(&tls_conn.replace(&key, "slk_wrong"), "select 1");
    assert!(!ok);
    assert!(
        err.contains("password authentication failed for user \"agent-1\""),
        "{err}"
    );

    // Without TLS the key must not cross the wire: SASL (10), not cleartext (3).
    assert_eq!(plaintext_auth_request(gw.port, "agent-1"), 10);
    let (ok, _, err) = psql(&gw.conn_str("agent-1", &key, "app"), "select 1");
    assert!(ok, "{err}");
}

fn backend_tls_resource(pg: &PgServer, ca: &std::path::Path) -> String {
    resource_toml(
        "app",
        pg,
        "scram_user",
        Some(PW_ENV.0),
        &format!(
            "tls = \"verify-full\"\ntls_ca_file = \"{}\"\ntls_server_name = \"localhost\"",
            ca.display()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_behind_verified_tls_is_reachable() {
    let pg = PgServer::start_with(PgOptions { tls: true });
    let mut gw = Gateway::configure("", &backend_tls_resource(&pg, pg.ca_cert_path().unwrap()));
    gw.start(&[PW_ENV]);
    let key = gw.create_key("agent-1", "agents");
    // scram_user is only allowed over hostssl on this server.
    let (client, _task) = pg_connect(&gw.conn_str("agent-1", &key, "app"))
        .await
        .unwrap();
    let row = client
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(
        row.get::<_, bool>(0),
        "the backend connection is not encrypted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_certificate_from_an_untrusted_ca_fails_with_08006() {
    let pg = PgServer::start_with(PgOptions { tls: true });
    let dir = tempfile::tempdir().unwrap();
    let wrong = make_tls_files(dir.path());
    let mut gw = Gateway::configure("", &backend_tls_resource(&pg, &wrong.ca));
    gw.start(&[PW_ENV]);
    let key = gw.create_key("agent-1", "agents");
    let (code, message) = refused(&gw.conn_str("agent-1", &key, "app")).await;
    assert_eq!(code, "08006");
    assert_eq!(message, "Sluice could not connect to resource \"app\"");
    let log = gw.wait_log("backend connection failed", Duration::from_secs(5));
    assert!(log.contains("backend TLS"), "{log}");
}
