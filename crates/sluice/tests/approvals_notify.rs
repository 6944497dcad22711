//! Approval notifications end to end: a gateway with `[[approvals.webhook]]`
//! pointing at a small HTTP receiver run by the test, statements sent to
//! review through the data path, approvals through the HTTP API. Also a
//! psycopg client meeting deferred approval.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{pg_connect, py_dir, resource_toml, Gateway};
use serde_json::Value;
use sluice_approvals::notify::verify_webhook;
use sluice_testkit::PgServer;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const SECRET: &str = "hook-secret-4f2a";

/// Everything but updates runs; updates need one approval from group dba.
const POLICY: &str = "@id(\"allow-rest\")\npermit(principal, action, resource) unless { action == Action::\"update\" };\n\
     @id(\"updates-need-a-dba\")\n@reason(\"updates need a DBA\")\n@review(\"dba\")\n@quorum(\"1\")\n\
     permit(principal, action == Action::\"update\", resource);\n";

const UPDATE: &str = "update accounts set balance = balance + 1 where id = 1";

// --- the webhook receiver ---

/// One POST as the receiver got it (header names lowercased).
#[derive(Debug)]
struct Delivery {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
    /// The status the receiver answered, or `None` if it never answered.
    answered: Option<u16>,
}

impl Delivery {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {name} header in {self:?}"))
    }

    fn event(&self) -> &str {
        self.header("x-sluice-event")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Whether the signature verifies with `secret`.
    fn verifies_with(&self, secret: &[u8]) -> bool {
        verify_webhook(
            secret,
            self.header("x-sluice-timestamp"),
            &self.body,
            self.header("x-sluice-signature"),
        )
    }
}

/// How the receiver answers.
#[derive(Clone, Copy)]
enum Behaviour {
    /// `500` for the first `n` requests, `200` after.
    FailFirst(usize),
    /// Reads the request and never answers (keeps the socket open).
    Hang,
}

struct Receiver {
    url: String,
    rx: mpsc::UnboundedReceiver<Delivery>,
}

impl Receiver {
    /// A plain HTTP/1.1 server on 127.0.0.1 in a thread; every request it
    /// reads is sent over the channel.
    fn start(behaviour: Behaviour) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        let seen = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (tx, seen) = (tx.clone(), Arc::clone(&seen));
                std::thread::spawn(move || serve(stream, behaviour, &seen, &tx));
            }
        });
        Receiver { url, rx }
    }

    /// The next delivery; panics after `within`.
    async fn next(&mut self, within: Duration) -> Delivery {
        tokio::time::timeout(within, self.rx.recv())
            .await
            .expect("a webhook delivery in time")
            .expect("receiver running")
    }

    /// The next delivery of event `kind`, skipping others.
    async fn next_event(&mut self, kind: &str, within: Duration) -> Delivery {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let d = self.next(left).await;
            if d.event() == kind {
                return d;
            }
        }
    }
}

/// Reads one request, answers it (or not) and closes the connection.
fn serve(
    stream: TcpStream,
    behaviour: Behaviour,
    seen: &AtomicUsize,
    tx: &mpsc::UnboundedSender<Delivery>,
) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let n = seen.fetch_add(1, Ordering::SeqCst);
    let status = match behaviour {
        Behaviour::Hang => None,
        Behaviour::FailFirst(fails) if n < fails => Some(500),
        Behaviour::FailFirst(_) => Some(200),
    };
    let _ = tx.send(Delivery {
        path,
        headers,
        body,
        answered: status,
    });
    let Some(status) = status else {
        // Never answer; hold the connection open.
        std::thread::sleep(Duration::from_secs(3600));
        return;
    };
    let reason = if status == 200 {
        "OK"
    } else {
        "Internal Server Error"
    };
    let response =
        format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = writer.write_all(response.as_bytes());
    let _ = writer.flush();
}

// --- the gateway ---

struct Setup {
    pg: PgServer,
    gw: Gateway,
    agent: String,
    /// An approver: alice, group dba.
    approver: String,
    api: String,
}

/// A gateway with the approval API and a webhook to `hook_url`, in front of
/// `accounts(id, balance)` with one row, resource `app` in `mode`.
fn setup(hook_url: &str, mode: &str) -> Setup {
    let pg = PgServer::start();
    common::accounts_table(&pg);
    let admin = sluice_testkit::free_port();
    let resources = format!(
        "[approvals]\n\n[[approvals.webhook]]\nurl = \"{hook_url}\"\nsecret_env = \"HOOK_SECRET\"\n\n{}",
        resource_toml(
            "app",
            &pg,
            "scram_user",
            Some("PW"),
            &format!("approval_mode = \"{mode}\"")
        )
    );
    let mut gw = Gateway::configure_with_policy(
        &format!("shutdown_grace_secs = 1\nadmin_listen = \"127.0.0.1:{admin}\""),
        &resources,
        POLICY,
    );
    gw.start(&[("PW", "scram_pw"), ("HOOK_SECRET", SECRET)]);
    let agent = gw.create_key("agent-1", "agents");
    let approver = gw.create_key("alice", "dba");
    Setup {
        pg,
        gw,
        agent,
        approver,
        api: format!("http://127.0.0.1:{admin}"),
    }
}

impl Setup {
    fn conn(&self) -> String {
        self.gw.conn_str("agent-1", &self.agent, "app")
    }

    fn balance(&self) -> String {
        self.pg
            .psql("app", "select balance from accounts where id = 1")
            .trim()
            .to_owned()
    }

    fn approve_url(&self, id: &str) -> String {
        format!("{}/v1/approvals/{id}/approve", self.api)
    }
}

/// The `apr_…` id in a message.
fn request_id(message: &str) -> String {
    let start = message
        .find("apr_")
        .unwrap_or_else(|| panic!("no request id in {message:?}"));
    message[start..]
        .chars()
        .take_while(|c| *c == '_' || c.is_ascii_alphanumeric())
        .collect()
}

/// Sends `sql` in deferred mode; returns the request id of the SL001 error.
async fn refused(client: &tokio_postgres::Client, sql: &str) -> String {
    let e = client.execute(sql, &[]).await.unwrap_err();
    let db = e.as_db_error().unwrap_or_else(|| panic!("{e:?}"));
    assert_eq!(db.code().code(), "SL001", "{}", db.message());
    request_id(db.message())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_sends_a_signed_requested_event_naming_request_statement_requester_and_resource() {
    let mut hook = Receiver::start(Behaviour::FailFirst(0));
    let s = setup(&hook.url, "deferred");
    let (client, _task) = pg_connect(&s.conn()).await.unwrap();
    let id = refused(&client, UPDATE).await;

    let d = hook.next_event("requested", Duration::from_secs(10)).await;
    assert_eq!(d.path, "/hook");
    assert_eq!(d.answered, Some(200));
    assert!(d.verifies_with(SECRET.as_bytes()), "{d:?}");
    assert!(!d.verifies_with(b"not-the-secret"), "{d:?}");
    assert!(d.header("x-sluice-signature").starts_with("sha256="));
    let ts: u64 = d.header("x-sluice-timestamp").parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(ts.abs_diff(now) < 60, "timestamp {ts}, now {now}");
    let mut tampered = d.body.clone();
    tampered.extend_from_slice(b" ");
    assert!(!verify_webhook(
        SECRET.as_bytes(),
        d.header("x-sluice-timestamp"),
        &tampered,
        d.header("x-sluice-signature"),
    ));

    let body = d.json();
    assert_eq!(body["event"], "requested", "{body}");
    assert_eq!(body["request_id"], id.as_str(), "{body}");
    assert_eq!(body["request"]["id"], id.as_str(), "{body}");
    assert_eq!(body["request"]["text"], UPDATE, "{body}");
    assert_eq!(body["request"]["requester"]["name"], "agent-1", "{body}");
    assert_eq!(body["request"]["resource"], "app", "{body}");
    assert_eq!(body["request"]["status"], "pending", "{body}");
    assert_eq!(s.balance(), "100");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_through_the_api_sends_a_signed_approved_event() {
    let mut hook = Receiver::start(Behaviour::FailFirst(0));
    let s = setup(&hook.url, "deferred");
    let (client, _task) = pg_connect(&s.conn()).await.unwrap();
    let id = refused(&client, UPDATE).await;
    hook.next_event("requested", Duration::from_secs(10)).await;

    let response = reqwest::Client::new()
        .post(s.approve_url(&id))
        .bearer_auth(&s.approver)
        .json(&serde_json::json!({"comment": "fine"}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
    let approved: Value = response.json().await.unwrap();
    assert_eq!(approved["status"], "approved", "{approved}");

    let d = hook.next_event("approved", Duration::from_secs(10)).await;
    assert!(d.verifies_with(SECRET.as_bytes()), "{d:?}");
    assert!(!d.verifies_with(b"not-the-secret"));
    let body = d.json();
    assert_eq!(body["request_id"], id.as_str(), "{body}");
    assert_eq!(body["actor"], "alice", "{body}");
    assert_eq!(body["request"]["status"], "approved", "{body}");
    assert_eq!(body["request"]["votes"][0]["approver"], "alice", "{body}");
    assert_eq!(body["request"]["votes"][0]["comment"], "fine", "{body}");

    // The re-sent statement runs and the use is announced too.
    assert_eq!(client.execute(UPDATE, &[]).await.unwrap(), 1);
    assert_eq!(s.balance(), "101");
    let d = hook.next_event("consumed", Duration::from_secs(10)).await;
    assert_eq!(d.json()["request_id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_fails_twice_still_gets_the_event_on_the_third_attempt() {
    let mut hook = Receiver::start(Behaviour::FailFirst(2));
    let s = setup(&hook.url, "deferred");
    let (client, _task) = pg_connect(&s.conn()).await.unwrap();
    let id = refused(&client, UPDATE).await;

    let mut attempts = Vec::new();
    for _ in 0..3 {
        // Backoff 0.5 s then 1 s with the default settings.
        attempts.push(hook.next(Duration::from_secs(15)).await);
    }
    let answers: Vec<_> = attempts.iter().map(|d| d.answered).collect();
    assert_eq!(answers, [Some(500), Some(500), Some(200)]);
    for d in &attempts {
        assert_eq!(d.event(), "requested");
        // Each attempt is signed anew.
        assert!(d.verifies_with(SECRET.as_bytes()), "{d:?}");
        assert_eq!(d.json()["request_id"], id.as_str());
    }
    assert_eq!(attempts[0].body, attempts[2].body, "the same event");
    // Delivered: no fourth attempt.
    assert!(
        tokio::time::timeout(Duration::from_secs(3), hook.rx.recv())
            .await
            .is_err(),
        "a delivered event is not sent again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_never_answers_does_not_delay_the_clients_refusal() {
    let mut hook = Receiver::start(Behaviour::Hang);
    let s = setup(&hook.url, "deferred");
    let (client, _task) = pg_connect(&s.conn()).await.unwrap();

    let started = Instant::now();
    let first = refused(&client, UPDATE).await;
    let first_took = started.elapsed();
    // The gateway did try: the receiver holds that delivery unanswered.
    let d = hook.next(Duration::from_secs(10)).await;
    assert_eq!(d.answered, None);
    assert_eq!(d.json()["request_id"], first.as_str());

    // With the delivery hanging, another statement is refused as promptly.
    let started = Instant::now();
    let second = refused(
        &client,
        "update accounts set balance = balance + 2 where id = 1",
    )
    .await;
    let second_took = started.elapsed();
    assert_ne!(first, second);
    assert!(
        first_took < Duration::from_secs(5) && second_took < Duration::from_secs(5),
        "refusals took {first_took:?} and {second_took:?}"
    );
    client.simple_query("select 1").await.unwrap();
    assert_eq!(s.balance(), "100");
}

// --- psycopg ---

#[test]
fn psycopg_gets_sl001_then_runs_the_approved_update_exactly_once() {
    let hook = Receiver::start(Behaviour::FailFirst(0));
    let s = setup(&hook.url, "deferred");
    let mut script = Command::new("python3")
        .arg(py_dir().join("approval_deferred.py"))
        .arg(s.conn())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = script.stdin.take().unwrap();
    let mut stdout = BufReader::new(script.stdout.take().unwrap());
    let mut said = String::new();
    let id = loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let out = script.wait_with_output().unwrap();
            panic!(
                "the script ended without a request id:\n{said}\n{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                s.gw.log()
            );
        }
        said.push_str(&line);
        if let Some(id) = line.trim().strip_prefix("request ") {
            break id.to_owned();
        }
    };
    assert!(id.starts_with("apr_"), "{id}");
    assert_eq!(s.balance(), "100", "not run before the approval");

    let response = reqwest::blocking::Client::new()
        .post(s.approve_url(&id))
        .bearer_auth(&s.approver)
        .send()
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
    writeln!(stdin, "approved").unwrap();
    drop(stdin);

    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    said.push_str(&rest);
    let out = script.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{said}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.gw.log()
    );
    assert!(said.contains("rerun rowcount 1"), "{said}");
    let third = said
        .lines()
        .find_map(|l| l.strip_prefix("third request "))
        .unwrap_or_else(|| panic!("{said}"));
    assert_ne!(third, id, "the third run is a new request");
    assert_eq!(s.balance(), "105", "changed exactly once");
}
