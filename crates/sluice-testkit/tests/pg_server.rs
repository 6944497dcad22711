#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Real-server tests of sluice-testkit: each test starts its own PostgreSQL.

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use sluice_testkit::{
    free_port, make_tls_files, pg_bin_dir, PgOptions, PgServer, APP_DB, CLEAR_PASSWORD, CLEAR_USER,
    MD5_PASSWORD, MD5_USER, SCRAM_PASSWORD, SCRAM_USER, TRUST_USER,
};

/// Runs `psql` over TCP with the given conninfo and password; Ok(stdout) or Err(stderr).
fn psql_tcp(conninfo: &str, password: Option<&str>, sql: &str) -> Result<String, String> {
    let psql = pg_bin_dir().join("psql");
    let mut cmd = Command::new(if psql.is_file() {
        psql.as_path()
    } else {
        Path::new("psql")
    });
    cmd.args([
        "-XAtq",
        "-v",
        "ON_ERROR_STOP=1",
        "-w",
        "-d",
        conninfo,
        "-c",
        sql,
    ]);
    cmd.env_remove("PGPASSWORD").env_remove("PGSSLMODE");
    if let Some(pw) = password {
        cmd.env("PGPASSWORD", pw);
    }
    let out = cmd.output().expect("run psql");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn tcp_conninfo(pg: &PgServer, user: &str, extra: &str) -> String {
    format!(
        "host={} port={} user={user} dbname={APP_DB} {extra}",
        pg.host(),
        pg.port()
    )
}

#[test]
fn free_port_is_bindable() {
    let port = free_port();
    assert_ne!(port, 0);
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("port from free_port is bindable");
}

#[test]
fn plain_server_roles_and_auth_methods() {
    let pg = PgServer::start();
    assert_eq!(pg.host(), "127.0.0.1");
    assert!(pg.ca_cert_path().is_none());
    assert!(pg.data_dir().join("PG_VERSION").is_file());

    // Superuser over the unix socket.
    assert_eq!(pg.psql("postgres", "SELECT current_user"), "postgres\n");
    assert_eq!(
        pg.psql("postgres", "SHOW password_encryption").trim(),
        "scram-sha-256"
    );
    assert_eq!(pg.psql("postgres", "SHOW ssl").trim(), "off");
    // Several statements (and psql's implicit trailing statement) in one call.
    assert_eq!(pg.psql(APP_DB, "SELECT 1; SELECT 2").trim(), "1\n2");

    let stored = |role: &str| {
        pg.psql(
            "postgres",
            &format!(
                "SELECT CASE WHEN rolpassword IS NULL THEN 'none' \
                 WHEN rolpassword LIKE 'md5%' THEN 'md5' \
                 WHEN rolpassword LIKE 'SCRAM-SHA-256$%' THEN 'scram' ELSE 'other' END \
                 FROM pg_authid WHERE rolname = '{role}'"
            ),
        )
        .trim()
        .to_string()
    };
    assert_eq!(stored(SCRAM_USER), "scram");
    assert_eq!(stored(MD5_USER), "md5");
    assert_eq!(stored(CLEAR_USER), "scram");
    assert_eq!(stored(TRUST_USER), "none");
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT rolpassword LIKE 'md5%' FROM pg_authid WHERE rolname='md5_user'"
        )
        .trim(),
        "t"
    );
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app'"
        )
        .trim(),
        "scram_user"
    );
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT rolcreatedb, rolsuper FROM pg_roles WHERE rolname = 'scram_user'"
        )
        .trim(),
        "t|f"
    );

    // Every role logs in over TCP with its method.
    for (user, pw) in [
        (SCRAM_USER, Some(SCRAM_PASSWORD)),
        (MD5_USER, Some(MD5_PASSWORD)),
        (CLEAR_USER, Some(CLEAR_PASSWORD)),
        (TRUST_USER, None),
    ] {
        let who = psql_tcp(
            &tcp_conninfo(&pg, user, "sslmode=disable"),
            pw,
            "SELECT current_user || ' ' || current_database()",
        )
        .unwrap_or_else(|e| panic!("{user} login failed: {e}\n{}", pg.log()));
        assert_eq!(who, format!("{user} app"));
    }

    // Wrong passwords are refused by each password method.
    for user in [SCRAM_USER, MD5_USER, CLEAR_USER] {
        let err = psql_tcp(
            &tcp_conninfo(&pg, user, "sslmode=disable"),
            Some("wrong"),
            "SELECT 1",
        )
        .expect_err("wrong password must fail");
        assert!(
            err.contains("password authentication failed"),
            "{user}: {err}"
        );
    }

    // The method pg_hba picked for each role, as seen in the server log is not
    // stable across versions; check the hba rules instead.
    let rules = pg.psql(
        "postgres",
        "SELECT type || ' ' || array_to_string(user_name, ',') || ' ' || auth_method \
         FROM pg_hba_file_rules ORDER BY line_number",
    );
    assert_eq!(
        rules.trim(),
        "local all trust\n\
         host trust_user trust\n\
         host clear_user password\n\
         host md5_user md5\n\
         host scram_user scram-sha-256\n\
         host all scram-sha-256"
    );

    // Roles other than the owner can create tables in app.public.
    psql_tcp(
        &tcp_conninfo(&pg, MD5_USER, "sslmode=disable"),
        Some(MD5_PASSWORD),
        "CREATE TABLE md5_t (id int)",
    )
    .expect("md5_user can create a table in app");
}

#[test]
fn tls_server_verify_full_and_mandatory_for_scram_user() {
    let pg = PgServer::start_with(PgOptions { tls: true });
    let ca = pg.ca_cert_path().expect("ca with tls").to_path_buf();
    assert!(ca.is_file());
    assert_eq!(pg.psql("postgres", "SHOW ssl").trim(), "on");

    let ssl_query = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    for host in ["localhost", "127.0.0.1"] {
        let conninfo = format!(
            "sslmode=verify-full sslrootcert={} host={host} port={} user={SCRAM_USER} dbname={APP_DB}",
            ca.display(),
            pg.port()
        );
        let ssl = psql_tcp(&conninfo, Some(SCRAM_PASSWORD), ssl_query)
            .unwrap_or_else(|e| panic!("verify-full via {host} failed: {e}\n{}", pg.log()));
        assert_eq!(ssl, "t");
    }

    // TLS is mandatory for scram_user...
    let err = psql_tcp(
        &tcp_conninfo(&pg, SCRAM_USER, "sslmode=disable"),
        Some(SCRAM_PASSWORD),
        "SELECT 1",
    )
    .expect_err("scram_user without TLS must be rejected");
    assert!(err.contains("no encryption"), "{err}");

    // ...but optional for the others.
    assert_eq!(
        psql_tcp(
            &tcp_conninfo(&pg, MD5_USER, "sslmode=disable"),
            Some(MD5_PASSWORD),
            ssl_query
        )
        .expect("md5_user without TLS"),
        "f"
    );
    assert_eq!(
        psql_tcp(
            &tcp_conninfo(&pg, TRUST_USER, "sslmode=require"),
            None,
            ssl_query
        )
        .expect("trust_user with TLS"),
        "t"
    );

    // A CA that did not sign the server certificate is refused.
    let other = tempfile::tempdir().unwrap();
    let other_tls = make_tls_files(other.path());
    let conninfo = format!(
        "sslmode=verify-full sslrootcert={} host=localhost port={} user={SCRAM_USER} dbname={APP_DB}",
        other_tls.ca.display(),
        pg.port()
    );
    assert!(psql_tcp(&conninfo, Some(SCRAM_PASSWORD), "SELECT 1").is_err());
}

#[test]
fn drop_stops_server_and_removes_dir() {
    let pg = PgServer::start();
    let port = pg.port();
    let data = pg.data_dir().to_path_buf();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    drop(pg);
    assert!(!data.exists(), "data dir still exists: {}", data.display());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "server still listening"
    );
}

#[test]
fn several_servers_in_parallel() {
    let handles: Vec<_> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                let pg = PgServer::start_with(PgOptions { tls: i == 1 });
                let out = pg.psql(
                    APP_DB,
                    &format!("CREATE TABLE t (v int); INSERT INTO t VALUES ({i}); SELECT v FROM t"),
                );
                assert_eq!(out.trim(), i.to_string());
                pg
            })
        })
        .collect();
    let servers: Vec<PgServer> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut ports: Vec<u16> = servers.iter().map(PgServer::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3);
    let mut dirs: Vec<_> = servers.iter().map(|s| s.data_dir().to_path_buf()).collect();
    dirs.sort();
    dirs.dedup();
    assert_eq!(dirs.len(), 3);
}

#[test]
fn tls_files_for_a_listener() {
    let dir = tempfile::tempdir().unwrap();
    let files = make_tls_files(&dir.path().join("tls"));
    for path in [&files.cert, &files.key, &files.ca] {
        assert!(path.is_file(), "{}", path.display());
        std::fs::File::open(path).expect("readable by the current user");
    }
    let cert = std::fs::read_to_string(&files.cert).unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(std::fs::read_to_string(&files.key)
        .unwrap()
        .contains("PRIVATE KEY-----"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&files.key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // If openssl is around, check the chain and SANs too.
    if let Ok(out) = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&files.ca)
        .arg(&files.cert)
        .output()
    {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&files.cert)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("DNS:localhost"), "{text}");
        assert!(text.contains("IP Address:127.0.0.1"), "{text}");
    }
}
