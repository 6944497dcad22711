//! Masking end to end: realistic fake personal data and secrets in a real
//! PostgreSQL; no raw value reaches psql, tokio-postgres (binary format),
//! psycopg, COPY in any format, an error's detail, a notification, or the
//! audit log; rows with nothing sensitive are byte-identical to a direct
//! connection; an identity that policy lets `unmask` sees raw values, and
//! the audit log says so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{pg_connect, psql, resource_toml, Gateway};
use sluice_testkit::PgServer;
use std::time::Duration;

const EMAIL: &str = "ann.lovelace@example.com";
const CARD: &str = "4111 1111 1111 1111";
const CARD_DIGITS: i64 = 5_500_005_555_555_559;
const SSN: &str = "123-45-6789";
const PASSWORD: &str = "hunter2-very-secret";
const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----";

/// Every raw value that must never reach a masked client.
fn secrets() -> Vec<String> {
    vec![
        EMAIL.into(),
        CARD.into(),
        CARD_DIGITS.to_string(),
        SSN.into(),
        PASSWORD.into(),
        AWS_KEY.into(),
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7".into(),
        "Grace Hopper".into(), // a column rule (public.people.name)
    ]
}

fn assert_clean(what: &str, text: &str) {
    for s in secrets() {
        assert!(!text.contains(&s), "{what} leaks {s:?}:\n{text}");
    }
}

const POLICY: &str = "@id(\"allow-all\")\npermit(principal, action, resource);\n\
    @id(\"dbas-unmask\")\n@reason(\"DBAs see raw values\")\n\
    permit(principal in Group::\"dba\", action == Action::\"unmask\", resource);\n";

struct Setup {
    pg: PgServer,
    gw: Gateway,
    agent: String,
}

fn setup() -> Setup {
    let pg = PgServer::start();
    pg.psql(
        "app",
        &format!(
            "create table people (id int primary key, name text, email text unique, card text, ssn text, \
               notes jsonb, card_num bigint, key text);
             insert into people values (1, 'Grace Hopper', '{EMAIL}', '{CARD}', '{SSN}', \
               '{{\"user\": \"ann\", \"password\": \"{PASSWORD}\", \"aws\": \"{AWS_KEY}\"}}', {CARD_DIGITS}, '{PEM}');
             create table orders (id int primary key, ref text, placed timestamptz, tracking uuid, total numeric, note text);
             insert into orders values
               (1, 'ORD-2024-000123', '2024-05-01 12:00:00+00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 1234.50, 'left at the door'),
               (2, 'ORD-2024-000124', '2024-05-02 08:30:00+00', 'b1ffcd88-8d1a-4ef8-bb6d-6bb9bd380a12', 99.99, 'order 4111 2222 3333');
             create table contacts (id int, email text, card text, ssn text, note text);
             insert into contacts values (1, '{EMAIL}', '{CARD}', '{SSN}', 'key {AWS_KEY}');
             alter table people owner to scram_user; alter table orders owner to scram_user;
             alter table contacts owner to scram_user;"
        ),
    );
    let resources = format!(
        "[masking]\ncolumns = [\"public.people.name\"]\n\n{}",
        resource_toml("app", &pg, "scram_user", Some("PW"), "")
    );
    let mut gw = Gateway::configure_with_policy("", &resources, POLICY);
    gw.start(&[("PW", "scram_pw")]);
    let agent = gw.create_key("agent-1", "agents");
    Setup { pg, gw, agent }
}

impl Setup {
    fn conn(&self) -> String {
        self.gw.conn_str("agent-1", &self.agent, "app")
    }
}

#[test]
fn psql_sees_no_raw_value_and_copy_in_text_and_csv_is_masked() {
    let s = setup();
    let (ok, out, err) = psql(&s.conn(), "select * from people");
    assert!(ok, "{err}");
    assert_clean("psql", &out);
    assert!(out.contains("[REDACTED:email]"), "{out}");
    // COPY has no column names to apply column rules to: refused for a
    // table with a masked column, masked by content for the others.
    let (ok, out, err) = psql(&s.conn(), "copy people to stdout");
    assert!(
        !ok && err.contains("is refused") && err.contains("name"),
        "{out}{err}"
    );
    for format in ["text", "csv"] {
        let (ok, out, err) = psql(
            &s.conn(),
            &format!("copy contacts to stdout (format {format})"),
        );
        assert!(ok, "{err}");
        assert_clean(&format!("COPY {format}"), &out);
        assert!(out.contains("[REDACTED"), "{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_in_binary_format_gets_masked_values() {
    let s = setup();
    let (client, _task) = pg_connect(&s.conn()).await.unwrap();
    let row = client
        .query_one(
            "select name, email, ssn, card_num, key from people where id = $1",
            &[&1i32],
        )
        .await
        .unwrap();
    let name: Option<String> = row.get(0);
    let email: Option<String> = row.get(1);
    let ssn: Option<String> = row.get(2);
    let card_num: Option<i64> = row.get(3);
    let key: Option<String> = row.get(4);
    let all = format!("{name:?} {email:?} {ssn:?} {card_num:?} {key:?}");
    assert_clean("tokio-postgres", &all);
    assert_eq!(email.as_deref(), Some("[REDACTED:email]"));
    assert_eq!(card_num, None, "a number that is a card becomes NULL");
    // JSON keeps its shape: only the secret values go.
    let notes = client
        .simple_query("select notes from people where id = 1")
        .await
        .unwrap();
    let text = format!(
        "{:?}",
        notes.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
    );
    assert_clean("jsonb", &text);
    assert!(text.contains("ann"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_with_nothing_sensitive_are_byte_identical_to_a_direct_connection() {
    let s = setup();
    let (through, _t1) = pg_connect(&s.conn()).await.unwrap();
    let (direct, _t2) = pg_connect(&format!(
        "host={} port={} dbname=app user=scram_user password=scram_pw sslmode=disable",
        s.pg.host(),
        s.pg.port()
    ))
    .await
    .unwrap();
    let sql = "select * from orders where id = 1";
    let render = |rows: Vec<tokio_postgres::SimpleQueryMessage>| {
        rows.into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                    (0..r.len())
                        .map(|i| r.get(i).map(str::to_owned))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let a = render(through.simple_query(sql).await.unwrap());
    let b = render(direct.simple_query(sql).await.unwrap());
    assert_eq!(a, b);
    // Binary format too.
    let q = "select id, ref, placed, tracking::text, total::text from orders order by id";
    let a: Vec<String> = through
        .query(q, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{r:?}"))
        .collect();
    let b: Vec<String> = direct
        .query(q, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{r:?}"))
        .collect();
    assert_eq!(a.len(), b.len());
    // The values themselves, received in binary format.
    let q = "select id, ref, tracking::text, total::text, note from orders order by id";
    let values = |rows: Vec<tokio_postgres::Row>| {
        rows.iter()
            .map(|r| {
                let id: i32 = r.get(0);
                let rest: Vec<Option<String>> = (1..r.len()).map(|i| r.get(i)).collect();
                (id, rest)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        values(through.query(q, &[]).await.unwrap()),
        values(direct.query(q, &[]).await.unwrap())
    );
    let (ok, out, _) = psql(&s.conn(), "select ref, note from orders where id = 2");
    assert!(ok);
    assert!(
        out.contains("order 4111 2222 3333"),
        "not a card (Luhn): {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_detail_and_a_notification_payload_are_masked() {
    let s = setup();
    let (client, _task) = pg_connect(&s.conn()).await.unwrap();
    let e = client
        .execute(
            &format!("insert into people (id, email) values (2, '{EMAIL}')"),
            &[],
        )
        .await
        .unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "23505");
    let detail = db.detail().unwrap_or_default().to_owned();
    assert_clean("error detail", &format!("{} {detail}", db.message()));
    assert!(detail.contains("[REDACTED:email]"), "{detail}");

    let conn = s.conn();
    let listener = std::thread::spawn(move || psql(&conn, "listen hints; select pg_sleep(1.5);"));
    std::thread::sleep(Duration::from_millis(700));
    let (ok, _, err) = psql(&s.conn(), &format!("notify hints, 'reach me at {EMAIL}'"));
    assert!(ok, "{err}");
    let (_, out, err) = listener.join().unwrap();
    let all = format!("{out}{err}");
    assert_clean("notification", &all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_copy_hides_what_it_finds() {
    use futures_util::StreamExt;
    let s = setup();
    let (client, _task) = pg_connect(&s.conn()).await.unwrap();
    let stream = client
        .copy_out("copy contacts to stdout (format binary)")
        .await
        .unwrap();
    let chunks: Vec<_> = stream.collect().await;
    let bytes: Vec<u8> = chunks
        .into_iter()
        .flat_map(|c| c.unwrap().to_vec())
        .collect();
    assert_clean("binary COPY", &String::from_utf8_lossy(&bytes));
    assert!(bytes.starts_with(b"PGCOPY\n\xff\r\n\0"));
}

#[test]
fn the_audit_log_holds_only_masked_content_and_an_unmask_identity_sees_raw_values() {
    let mut s = setup();
    let (ok, out, err) = psql(&s.conn(), "select email, notes from people");
    assert!(ok, "{err}");
    assert_clean("psql", &out);

    let dba = s.gw.create_key("dana", "dba");
    let (ok, raw, err) = psql(
        &s.gw.conn_str("dana", &dba, "app"),
        "select email from people",
    );
    assert!(ok, "{err}");
    assert!(raw.contains(EMAIL), "unmask permitted: {raw}");

    s.gw.signal("TERM");
    s.gw.wait_exit(Duration::from_secs(10))
        .expect("gateway exits");
    let log = sluice_audit::AuditLog::open_read_only(&s.gw.dir.path().join("data")).unwrap();
    let sessions = log.sessions(&Default::default()).unwrap();
    let mut replays = Vec::new();
    for session in &sessions {
        let out = s.gw.cli(&["audit", "replay", &session.id]);
        replays.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let agent = replays.iter().find(|r| r.contains("agent-1")).unwrap();
    assert_clean("the agent's audit replay", agent);
    assert!(agent.contains("[REDACTED:email]"), "{agent}");
    let dana = replays
        .iter()
        .find(|r| r.contains("identity dana"))
        .unwrap();
    assert!(
        dana.contains("UNMASKED") && dana.contains("dbas-unmask"),
        "{dana}"
    );
}

#[test]
fn psycopg_sees_masked_values() {
    let s = setup();
    let script = "import psycopg, sys\n\
         with psycopg.connect(sys.argv[1]) as c:\n\
         \x20   rows = c.execute('select * from people').fetchall()\n\
         \x20   print(repr(rows))\n";
    let dsn = s.conn();
    let out = std::process::Command::new("python3")
        .args(["-c", script, &dsn])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_clean("psycopg", &text);
    assert!(text.contains("[REDACTED:email]"), "{text}");
}

#[test]
fn rows_whose_columns_the_client_never_described_are_still_masked_per_column() {
    use common::raw::{bind, execute, parse, sync, Raw};
    let s = setup();
    let mut raw = Raw::connect(s.gw.port, "agent-1", &s.agent);
    // Parse/Bind/Execute without a Describe: Sluice describes the portal
    // itself (unseen by the client) so the column rule on name applies.
    let mut batch = parse("select name, email from people");
    batch.extend(bind());
    batch.extend(execute());
    batch.extend(sync());
    raw.send(&batch);
    let replies = raw.replies(1);
    assert_clean("an undescribed row", &replies.join("\n"));
    assert_eq!(
        replies,
        vec![
            "1",
            "2",
            "D [REDACTED]|[REDACTED:email]",
            "C SELECT 1",
            "Z I"
        ],
        "no RowDescription the client did not ask for"
    );
}

#[test]
fn copy_of_a_returning_clause_is_judged_like_copy_of_its_tables() {
    let s = setup();
    let (ok, out, err) = psql(
        &s.conn(),
        "copy (update people set id = id where id > 0 returning *) to stdout",
    );
    assert!(!ok && err.contains("is refused"), "{out}{err}");
    assert_clean("COPY of RETURNING", &out);
}
