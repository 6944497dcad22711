//! Who may connect and how the gateway logs in to resources, with the real
//! `sluice` binary in front of a real PostgreSQL: the `keys` CLI (create,
//! list, revoke), wrong, unknown and revoked keys, an unknown resource, the
//! backend authentication methods (md5, cleartext, trust, SCRAM), a wrong
//! backend password or a hung backend, and `sluice serve` refusing bad
//! configs. TLS on both sides is in `auth_tls.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::auth::{gateway, refused, PW_ENV};
use common::{pg_connect, psql, resource_toml, Gateway};
use sluice_testkit::PgServer;
use std::time::Duration;

/// The key id of a key created for `identity` (from `keys list --json`).
fn key_ids(gw: &Gateway, identity: &str) -> Vec<String> {
    let out = gw.cli(&["keys", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    keys.as_array()
        .unwrap()
        .iter()
        .filter(|k| k["identity"] == identity)
        .map(|k| k["key_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn current_user(conn: &str) -> String {
    let (client, _task) = pg_connect(conn)
        .await
        .unwrap_or_else(|e| panic!("connect {conn}: {e:?}"));
    client
        .query_one("select current_user::text", &[])
        .await
        .unwrap()
        .get(0)
}

#[test]
fn keys_create_prints_the_key_alone_on_the_last_line() {
    let gw = Gateway::configure("", "");
    let out = gw.cli(&[
        "keys",
        "create",
        "--identity",
        "agent-1",
        "--groups",
        "agents,readers",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    let key = *lines.last().unwrap();
    assert!(key.starts_with("slk_"), "last line is not a key: {stdout}");
    assert!(
        !key.contains(char::is_whitespace),
        "the key line holds more than the key: {key:?}"
    );
    assert!(
        lines[..lines.len() - 1].iter().all(|l| !l.contains(key)),
        "the key is printed more than once:\n{stdout}"
    );
    let ids = key_ids(&gw, "agent-1");
    assert_eq!(ids.len(), 1);
    assert!(
        key.starts_with(&format!("slk_{}_", ids[0])),
        "key {key} does not carry its id {}",
        ids[0]
    );
}

#[test]
fn keys_list_shows_id_identity_and_groups_and_never_the_secret() {
    let gw = Gateway::configure("", "");
    let key = gw.create_key("agent-1", "agents,readers");
    let id = key_ids(&gw, "agent-1").pop().unwrap();
    let secret = key.strip_prefix(&format!("slk_{id}_")).unwrap();

    let out = gw.cli(&["keys", "list", "--json"]);
    assert!(out.status.success());
    let json = String::from_utf8(out.stdout).unwrap();
    assert!(
        !json.contains(secret),
        "keys list --json leaks the secret:\n{json}"
    );
    let keys: serde_json::Value = serde_json::from_str(&json).unwrap();
    let k = &keys.as_array().unwrap()[0];
    assert_eq!(k["key_id"], id.as_str());
    assert_eq!(k["identity"], "agent-1");
    assert_eq!(k["groups"], serde_json::json!(["agents", "readers"]));
    assert_eq!(k["revoked_at"], serde_json::Value::Null);

    let out = gw.cli(&["keys", "list"]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        !table.contains(secret),
        "keys list leaks the secret:\n{table}"
    );
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    for column in ["KEY ID", "IDENTITY", "GROUPS", "CREATED", "REVOKED"] {
        assert!(header.contains(column), "header lacks {column}: {header}");
    }
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[0], id);
    assert_eq!(row[1], "agent-1");
    assert_eq!(row[2], "agents,readers");
    assert_eq!(
        *row.last().unwrap(),
        "-",
        "an active key shows no revocation time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_key_logs_in_with_psql_and_tokio_postgres() {
    let pg = PgServer::start();
    let gw = gateway(&pg, "");
    let key = gw.create_key("agent-1", "agents");
    let conn = gw.conn_str("agent-1", &key, "app");

    let (ok, out, err) = psql(&conn, "select current_user, current_database()");
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        "scram_user|app",
        "the session runs as the resource's backend user"
    );

    let (client, _task) = pg_connect(&conn).await.unwrap();
    let row = client
        .query_one("select $1::int + 1", &[&41i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    gw.wait_log("identity=agent-1", Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_and_an_unknown_identity_fail_alike_with_28p01() {
    let pg = PgServer::start();
    let gw = gateway(&pg, "");
    let key = gw.create_key("agent-1", "agents");
    let other = gw.create_key("agent-2", "agents");

    let wrong_key = refused(&gw.conn_str("agent-1", &other, "app")).await;
    let unknown = refused(&gw.conn_str("nobody", &key, "app")).await;
    let tampered = refused(&gw.conn_str("agent-1", &format!("{key}x"), "app")).await;

    assert_eq!(wrong_key.0, "28P01");
    assert_eq!(unknown.0, "28P01");
    assert_eq!(tampered.0, "28P01");
    // Same text apart from the user name the client itself sent: nothing says
    // whether the identity exists or the key was wrong.
    assert_eq!(
        wrong_key.1,
        "password authentication failed for user \"agent-1\""
    );
    assert_eq!(unknown.1, wrong_key.1.replace("agent-1", "nobody"));
    assert_eq!(tampered.1, wrong_key.1);

    // psql shows the same FATAL.
    let (ok, _, err) = psql(&gw.conn_str("nobody", &key, "app"), "select 1");
    assert!(!ok);
    assert!(
        err.contains("FATAL:  password authentication failed for user \"nobody\""),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_an_identity_refuses_its_new_connections_at_once_without_a_restart() {
    let pg = PgServer::start();
    let mut gw = gateway(&pg, "");
    let key = gw.create_key("agent-1", "agents");
    let bystander = gw.create_key("agent-2", "agents");
    let conn = gw.conn_str("agent-1", &key, "app");
    assert_eq!(current_user(&conn).await, "scram_user");
    let pid = gw.pid();

    let out = gw.cli(&["keys", "revoke", "--identity", "agent-1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(
        refused(&conn).await,
        (
            "28P01".into(),
            "password authentication failed for user \"agent-1\"".into()
        )
    );
    assert!(gw.is_running());
    assert_eq!(gw.pid(), pid);
    assert_eq!(
        current_user(&gw.conn_str("agent-2", &bystander, "app")).await,
        "scram_user"
    );

    let out = gw.cli(&["keys", "list", "--json"]);
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let revoked = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["identity"] == "agent-1")
        .unwrap();
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_one_key_by_id_refuses_that_key_and_keeps_the_identitys_other_keys() {
    let pg = PgServer::start();
    let mut gw = gateway(&pg, "");
    let first = gw.create_key("agent-1", "agents");
    let second = gw.create_key("agent-1", "agents");
    let id = key_ids(&gw, "agent-1")
        .into_iter()
        .find(|id| first.starts_with(&format!("slk_{id}_")))
        .unwrap();
    assert_eq!(
        current_user(&gw.conn_str("agent-1", &first, "app")).await,
        "scram_user"
    );

    let out = gw.cli(&["keys", "revoke", "--key-id", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(
        refused(&gw.conn_str("agent-1", &first, "app")).await.0,
        "28P01"
    );
    assert_eq!(
        current_user(&gw.conn_str("agent-1", &second, "app")).await,
        "scram_user"
    );
    assert!(gw.is_running());

    let again = gw.cli(&["keys", "revoke", "--key-id", &id]);
    assert!(!again.status.success(), "revoking a revoked key reports it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_resource_is_fatal_3d000_after_authentication() {
    let pg = PgServer::start();
    let gw = gateway(&pg, "");
    let key = gw.create_key("agent-1", "agents");
    let (code, message) = refused(&gw.conn_str("agent-1", &key, "nope")).await;
    assert_eq!(code, "3D000");
    assert_eq!(message, "resource \"nope\" does not exist");
    // Without a valid key the resource names are not revealed.
    let (code, _) = refused(&gw.conn_str("agent-1", "slk_bad", "nope")).await;
    assert_eq!(code, "28P01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_logs_in_to_backends_with_md5_cleartext_trust_and_scram() {
    let pg = PgServer::start();
    let resources = [
        resource_toml("md5", &pg, "md5_user", Some("PW_MD5"), ""),
        resource_toml("clear", &pg, "clear_user", Some("PW_CLEAR"), ""),
        resource_toml("trust", &pg, "trust_user", None, ""),
        resource_toml("scram", &pg, "scram_user", Some("PW_SCRAM"), ""),
    ]
    .concat();
    let mut gw = Gateway::configure("", &resources);
    gw.start(&[
        ("PW_MD5", "md5_pw"),
        ("PW_CLEAR", "clear_pw"),
        ("PW_SCRAM", "scram_pw"),
    ]);
    let key = gw.create_key("agent-1", "agents");
    for (resource, user) in [
        ("md5", "md5_user"),
        ("clear", "clear_user"),
        ("trust", "trust_user"),
        ("scram", "scram_user"),
    ] {
        assert_eq!(
            current_user(&gw.conn_str("agent-1", &key, resource)).await,
            user,
            "resource {resource}"
        );
        let (ok, out, err) = psql(
            &gw.conn_str("agent-1", &key, resource),
            "select current_user",
        );
        assert!(ok && out.trim() == user, "resource {resource}: {out} {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_backend_password_gives_the_client_08006_without_details_and_the_log_says_why() {
    let pg = PgServer::start();
    let backend_pw = "not-the-scram-pw-4711";
    let mut gw = Gateway::configure(
        "",
        &resource_toml("app", &pg, "scram_user", Some("WRONG_PW"), ""),
    );
    gw.start(&[("WRONG_PW", backend_pw)]);
    let key = gw.create_key("agent-1", "agents");

    let Err(err) = pg_connect(&gw.conn_str("agent-1", &key, "app")).await else {
        panic!("the connection must fail");
    };
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code().code(), "08006");
    assert_eq!(db.severity(), "FATAL");
    assert_eq!(db.message(), "Sluice could not connect to resource \"app\"");
    let shown = format!("{} {:?} {:?}", db.message(), db.detail(), db.hint());
    for secret in [
        backend_pw,
        "scram_user",
        "password authentication failed",
        "28P01",
    ] {
        assert!(
            !shown.contains(secret),
            "the client learns {secret:?}: {shown}"
        );
    }

    let log = gw.wait_log("backend connection failed", Duration::from_secs(5));
    assert!(
        log.contains("password authentication failed for user \"scram_user\""),
        "{log}"
    );
    assert!(
        !log.contains(backend_pw),
        "the log holds the backend password:\n{log}"
    );
    assert!(!log.contains(&key), "the log holds the client's key");
}

/// Runs `sluice serve` on `gw`'s config and returns its stderr after checking
/// that it failed without listening.
fn serve_fails(gw: &Gateway, env: &[(&str, &str)]) -> String {
    let out = gw.serve_expecting_exit(env, Duration::from_secs(20));
    assert!(!out.status.success());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", gw.port)).is_err(),
        "a failed start left a listener"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&gw.config.display().to_string()),
        "stderr does not name the file: {stderr}"
    );
    stderr
}

/// A `[[resource]]` for a backend on `port` of 127.0.0.1 (no server needed
/// where the gateway never connects).
fn resource_on_port(port: u16, password_env: &str, extra: &str) -> String {
    format!(
        "[[resource]]\nname = \"app\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = {port}\ndatabase = \"app\"\nuser = \"scram_user\"\npassword_env = \"{password_env}\"\n{extra}\n"
    )
}

#[test]
fn serve_refuses_an_unknown_config_key_and_names_it() {
    let gw = Gateway::configure(
        "max_conections_per_identity = 3",
        &resource_on_port(5432, PW_ENV.0, ""),
    );
    let stderr = serve_fails(&gw, &[PW_ENV]);
    assert!(
        stderr.contains("unknown field `max_conections_per_identity`"),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_a_resource_missing_a_required_field_and_names_it() {
    let resource = resource_on_port(5432, PW_ENV.0, "").replace("user = \"scram_user\"\n", "");
    let gw = Gateway::configure("", &resource);
    let stderr = serve_fails(&gw, &[PW_ENV]);
    assert!(
        stderr.contains("user is required for kind = \"postgres\""),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_an_unset_password_env_and_names_resource_key_and_variable() {
    let gw = Gateway::configure("", &resource_on_port(5432, "SLUICE_TEST_SURELY_UNSET", ""));
    let stderr = serve_fails(&gw, &[]);
    assert!(stderr.contains("\"app\""), "{stderr}");
    assert!(stderr.contains("password_env"), "{stderr}");
    assert!(stderr.contains("SLUICE_TEST_SURELY_UNSET"), "{stderr}");
}

#[test]
fn serve_refuses_a_non_loopback_listener_without_tls_before_binding() {
    let gw = Gateway::configure("", "");
    let text = std::fs::read_to_string(&gw.config).unwrap();
    let open = text.replace(
        &format!("127.0.0.1:{}", gw.port),
        &format!("0.0.0.0:{}", gw.port),
    );
    assert_ne!(open, text);
    std::fs::write(&gw.config, open).unwrap();
    let stderr = serve_fails(&gw, &[]);
    assert!(stderr.contains("listen"), "{stderr}");
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}

#[test]
fn serve_refuses_password_client_auth_without_tls() {
    let gw = Gateway::configure("client_auth = \"password\"", "");
    let stderr = serve_fails(&gw, &[]);
    assert!(
        stderr.contains("client_auth = \"password\" needs tls_cert and tls_key"),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_an_unreadable_tls_certificate_and_names_it() {
    let gw = Gateway::configure(
        "tls_cert = \"missing-cert.pem\"\ntls_key = \"missing-key.pem\"",
        "",
    );
    let stderr = serve_fails(&gw, &[]);
    assert!(
        stderr.contains("tls_cert") && stderr.contains("missing-cert.pem"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_never_answers_fails_the_client_with_08006_after_connect_timeout() {
    // Accepts TCP connections and then says nothing, like a hung server.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hung.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in hung.incoming() {
            held.push(s);
        }
    });
    let mut gw = Gateway::configure(
        "startup_timeout_secs = 30",
        &resource_on_port(port, PW_ENV.0, "connect_timeout_secs = 1"),
    );
    gw.start(&[PW_ENV]);
    let key = gw.create_key("agent-1", "agents");

    let started = std::time::Instant::now();
    let (code, message) = refused(&gw.conn_str("agent-1", &key, "app")).await;
    assert_eq!(code, "08006", "{message}");
    assert_eq!(message, "Sluice could not connect to resource \"app\"");
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "the client waited {waited:?} for a 1 s connect timeout"
    );
    gw.wait_log("backend connection failed", Duration::from_secs(5));
    assert!(gw.is_running());
}
