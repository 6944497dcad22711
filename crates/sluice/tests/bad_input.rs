//! Hostile and broken clients, spoken to in raw bytes: each gets a precise
//! FATAL (or is dropped), and the gateway keeps serving everyone else.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{psql, resource_toml, Gateway};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use sluice_testkit::PgServer;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

const PROTOCOL_3_0: i32 = 196_608;
const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;

/// A PostgreSQL client that writes whatever bytes a test wants.
struct Raw {
    s: TcpStream,
}

/// The fields of an ErrorResponse, by field code.
struct PgErr(HashMap<u8, String>);

impl PgErr {
    fn code(&self) -> &str {
        &self.0[&b'C']
    }
    fn severity(&self) -> &str {
        &self.0[&b'S']
    }
    fn message(&self) -> &str {
        &self.0[&b'M']
    }
}

impl std::fmt::Debug for PgErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fields: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{}={v}", *k as char))
            .collect();
        write!(f, "ErrorResponse({})", fields.join(", "))
    }
}

fn startup_packet(version: i32, params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn query_message(sql: &str) -> Vec<u8> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    message(b'Q', &body)
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw { s }
    }

    /// Writes bytes; the gateway may already have closed, which is fine.
    fn send(&mut self, bytes: &[u8]) {
        let _ = self.s.write_all(bytes);
    }

    fn read_byte(&mut self) -> u8 {
        let mut b = [0u8; 1];
        self.s.read_exact(&mut b).unwrap();
        b[0]
    }

    /// The next message, or `None` once the gateway has closed.
    fn read_message(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut head = [0u8; 5];
        match self.s.read_exact(&mut head) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
                ) =>
            {
                return None
            }
            Err(e) => panic!("reading from the gateway: {e}"),
        }
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        assert!(
            (4..1 << 20).contains(&len),
            "implausible message length {len}"
        );
        let mut body = vec![0u8; len as usize - 4];
        self.s.read_exact(&mut body).unwrap();
        Some((head[0], body))
    }

    /// Reads until an ErrorResponse and returns it.
    fn expect_error(&mut self) -> PgErr {
        loop {
            match self.read_message() {
                Some((b'E', body)) => return parse_error(&body),
                Some(_) => continue,
                None => panic!("connection closed without an ErrorResponse"),
            }
        }
    }

    /// Reads a FATAL and then the end of the connection.
    fn expect_fatal_and_close(&mut self) -> PgErr {
        let err = self.expect_error();
        assert_eq!(err.severity(), "FATAL", "{err:?}");
        self.expect_closed();
        err
    }

    fn expect_closed(&mut self) {
        if let Some((tag, _)) = self.read_message() {
            panic!(
                "expected the gateway to close, got message '{}'",
                tag as char
            );
        }
    }

    /// Authentication request code of the next message ('R').
    fn expect_auth(&mut self) -> (i32, Vec<u8>) {
        match self.read_message() {
            Some((b'R', body)) => (
                i32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                body[4..].to_vec(),
            ),
            Some((b'E', body)) => panic!("authentication refused: {:?}", parse_error(&body)),
            other => panic!(
                "expected an authentication request, got {:?}",
                other.map(|(t, _)| t as char)
            ),
        }
    }

    /// Sends a startup packet and completes SCRAM-SHA-256 with `key`, up to
    /// the first ReadyForQuery.
    fn login_after_hello(&mut self, user: &str, key: &str) {
        self.send(&startup_packet(
            PROTOCOL_3_0,
            &[("user", user), ("database", "app")],
        ));
        let (code, mechanisms) = self.expect_auth();
        assert_eq!(code, 10, "expected AuthenticationSASL");
        assert!(mechanisms.starts_with(b"SCRAM-SHA-256\0"));
        let mut scram = ScramSha256::new(key.as_bytes(), ChannelBinding::unsupported());
        let mut body = b"SCRAM-SHA-256\0".to_vec();
        body.extend_from_slice(&(scram.message().len() as i32).to_be_bytes());
        body.extend_from_slice(scram.message());
        self.send(&message(b'p', &body));
        let (code, data) = self.expect_auth();
        assert_eq!(code, 11, "expected AuthenticationSASLContinue");
        scram.update(&data).unwrap();
        self.send(&message(b'p', scram.message()));
        let (code, data) = self.expect_auth();
        assert_eq!(code, 12, "expected AuthenticationSASLFinal");
        scram.finish(&data).unwrap();
        let (code, _) = self.expect_auth();
        assert_eq!(code, 0, "expected AuthenticationOk");
        while let Some((tag, _)) = self.read_message() {
            if tag == b'Z' {
                return;
            }
        }
        panic!("connection closed before ReadyForQuery");
    }

    fn login(port: u16, user: &str, key: &str) -> Raw {
        let mut raw = Raw::connect(port);
        raw.login_after_hello(user, key);
        raw
    }

    /// Runs a simple query; returns the first column of each row.
    fn query(&mut self, sql: &str) -> Vec<String> {
        self.send(&query_message(sql));
        let mut rows = Vec::new();
        loop {
            match self.read_message() {
                Some((b'D', body)) => {
                    let len = i32::from_be_bytes([body[2], body[3], body[4], body[5]]) as usize;
                    rows.push(String::from_utf8(body[6..6 + len].to_vec()).unwrap());
                }
                Some((b'E', body)) => panic!("query failed: {:?}", parse_error(&body)),
                Some((b'Z', _)) => return rows,
                Some(_) => {}
                None => panic!("connection closed during a query"),
            }
        }
    }
}

fn parse_error(body: &[u8]) -> PgErr {
    let mut fields = HashMap::new();
    let mut rest = body;
    while let Some((&field, tail)) = rest.split_first() {
        if field == 0 {
            break;
        }
        let end = tail.iter().position(|&b| b == 0).unwrap();
        fields.insert(field, String::from_utf8_lossy(&tail[..end]).into_owned());
        rest = &tail[end + 1..];
    }
    PgErr(fields)
}

/// A gateway in front of its own PostgreSQL, with one key.
struct Setup {
    _pg: PgServer,
    gw: Gateway,
    key: String,
}

impl Setup {
    fn new(server_extra: &str) -> Setup {
        let pg = PgServer::start();
        let mut gw = Gateway::configure(
            server_extra,
            &resource_toml("app", &pg, "scram_user", Some("PW"), ""),
        );
        gw.start(&[("PW", "scram_pw")]);
        let key = gw.create_key("agent-1", "agents");
        Setup { _pg: pg, gw, key }
    }

    fn port(&self) -> u16 {
        self.gw.port
    }

    /// The gateway is alive and still serves an ordinary client.
    fn assert_still_serving(&mut self) {
        assert!(self.gw.is_running(), "the gateway died:\n{}", self.gw.log());
        let (ok, out, err) = psql(
            &self.gw.conn_str("agent-1", &self.key, "app"),
            "select 'still here'",
        );
        assert!(
            ok,
            "psql through the gateway failed: {err}\n{}",
            self.gw.log()
        );
        assert_eq!(out.trim(), "still here");
    }
}

#[test]
fn a_message_over_max_message_bytes_is_fatal_54000_and_closes_the_connection() {
    let mut t = Setup::new("max_message_bytes = 65536");
    let mut bystander = Raw::login(t.port(), "agent-1", &t.key);

    // Just under the limit is served.
    let mut c = Raw::login(t.port(), "agent-1", &t.key);
    let fits = format!("select length('{}')", "x".repeat(60_000));
    assert_eq!(c.query(&fits), ["60000"]);

    let big = format!("select length('{}')", "x".repeat(100_000));
    c.send(&query_message(&big));
    let err = c.expect_fatal_and_close();
    assert_eq!(err.code(), "54000", "{err:?}");
    assert!(
        err.message().contains("exceeds the limit of 65536 bytes"),
        "{err:?}"
    );

    assert_eq!(bystander.query("select 1"), ["1"]);
    t.assert_still_serving();
}

#[test]
fn an_unknown_message_type_after_login_is_fatal_08p01() {
    let mut t = Setup::new("");
    let mut c = Raw::login(t.port(), "agent-1", &t.key);
    c.send(&message(b'@', b""));
    let err = c.expect_fatal_and_close();
    assert_eq!(err.code(), "08P01", "{err:?}");
    assert!(
        err.message().contains("unknown message type 0x40"),
        "{err:?}"
    );
    t.assert_still_serving();
}

#[test]
fn a_message_length_below_four_after_login_is_fatal_08p01() {
    let mut t = Setup::new("");
    let mut c = Raw::login(t.port(), "agent-1", &t.key);
    c.send(&[b'Q', 0, 0, 0, 2]);
    let err = c.expect_fatal_and_close();
    assert_eq!(err.code(), "08P01", "{err:?}");
    t.assert_still_serving();
}

#[test]
fn a_truncated_startup_packet_is_logged_and_others_are_still_served() {
    let mut t = Setup::new("");
    let mut c = Raw::connect(t.port());
    c.send(&100i32.to_be_bytes());
    c.send(&[0u8; 10]);
    c.s.shutdown(Shutdown::Write).unwrap();
    c.expect_closed();
    t.gw.wait_log("incomplete startup packet", Duration::from_secs(5));
    t.assert_still_serving();
}

#[test]
fn protocol_version_2_is_fatal_0a000() {
    let mut t = Setup::new("");
    let mut c = Raw::connect(t.port());
    c.send(&startup_packet(
        131_072,
        &[("user", "agent-1"), ("database", "app")],
    ));
    let err = c.expect_fatal_and_close();
    assert_eq!(err.code(), "0A000", "{err:?}");
    assert!(
        err.message().contains("unsupported frontend protocol 2.0"),
        "{err:?}"
    );
    t.assert_still_serving();
}

#[test]
fn an_oversized_startup_length_is_fatal_08p01_before_reading_it() {
    let mut t = Setup::new("");
    let mut c = Raw::connect(t.port());
    let mut packet = 100_000i32.to_be_bytes().to_vec();
    packet.extend_from_slice(&PROTOCOL_3_0.to_be_bytes());
    c.send(&packet);
    let err = c.expect_fatal_and_close();
    assert_eq!(err.code(), "08P01", "{err:?}");
    assert_eq!(
        err.message(),
        "invalid length of startup packet: 100000 bytes"
    );
    t.assert_still_serving();
}

#[test]
fn a_silent_client_is_closed_with_a_fatal_after_startup_timeout() {
    let mut t = Setup::new("startup_timeout_secs = 1");
    let started = Instant::now();
    let mut c = Raw::connect(t.port());
    let err = c.expect_fatal_and_close();
    let waited = started.elapsed();
    assert_eq!(err.code(), "08P01", "{err:?}");
    assert!(err.message().contains("timeout"), "{err:?}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
    t.gw.wait_log("did not complete startup", Duration::from_secs(5));
    t.assert_still_serving();
}

#[test]
fn a_client_that_stalls_during_authentication_is_closed_at_the_startup_deadline() {
    let mut t = Setup::new("startup_timeout_secs = 1");
    let started = Instant::now();
    let mut c = Raw::connect(t.port());
    c.send(&startup_packet(
        PROTOCOL_3_0,
        &[("user", "agent-1"), ("database", "app")],
    ));
    assert_eq!(c.expect_auth().0, 10);
    // ...and never answers the SASL request.
    let err = c.expect_fatal_and_close();
    assert_eq!(err.code(), "08P01", "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    t.assert_still_serving();
}

#[test]
fn a_gssenc_request_is_declined_and_startup_then_works() {
    let mut t = Setup::new("");
    let mut c = Raw::connect(t.port());
    let mut req = 8i32.to_be_bytes().to_vec();
    req.extend_from_slice(&GSSENC_REQUEST.to_be_bytes());
    c.send(&req);
    assert_eq!(c.read_byte(), b'N');
    c.login_after_hello("agent-1", &t.key);
    assert_eq!(c.query("select current_user"), ["scram_user"]);
    t.assert_still_serving();
}

#[test]
fn an_ssl_request_without_tls_configured_is_declined_and_startup_then_works() {
    let mut t = Setup::new("");
    let mut c = Raw::connect(t.port());
    let mut req = 8i32.to_be_bytes().to_vec();
    req.extend_from_slice(&SSL_REQUEST.to_be_bytes());
    c.send(&req);
    assert_eq!(c.read_byte(), b'N');
    c.login_after_hello("agent-1", &t.key);
    assert_eq!(c.query("select 2"), ["2"]);
    // libpq's sslmode=prefer goes the same way.
    let (ok, _, err) = psql(
        &t.gw
            .conn_str("agent-1", &t.key, "app")
            .replace("sslmode=disable", "sslmode=prefer"),
        "select 1",
    );
    assert!(ok, "{err}");
    t.assert_still_serving();
}

#[test]
fn garbage_instead_of_a_startup_packet_is_fatal_08p01() {
    let mut t = Setup::new("");
    // An HTTP request: its first four bytes read as a huge length.
    let mut c = Raw::connect(t.port());
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(c.expect_fatal_and_close().code(), "08P01");
    // A negative length.
    let mut c = Raw::connect(t.port());
    c.send(&[0xff; 64]);
    assert_eq!(c.expect_fatal_and_close().code(), "08P01");
    // A plausible length with a parameter list that never ends.
    let mut c = Raw::connect(t.port());
    let mut p = 20i32.to_be_bytes().to_vec();
    p.extend_from_slice(&PROTOCOL_3_0.to_be_bytes());
    p.extend_from_slice(b"userxxxxxxxx");
    c.send(&p);
    assert_eq!(c.expect_fatal_and_close().code(), "08P01");
    t.assert_still_serving();
}

#[test]
fn a_startup_option_setting_the_role_is_fatal_0a000() {
    let mut t = Setup::new("");
    let mut c = Raw::connect(t.port());
    c.send(&startup_packet(
        PROTOCOL_3_0,
        &[
            ("user", "agent-1"),
            ("database", "app"),
            ("options", "-c role=postgres"),
        ],
    ));
    let err = c.expect_fatal_and_close();
    assert_eq!(err.code(), "0A000", "{err:?}");
    assert_eq!(
        err.message(),
        "startup parameter \"options\" is not allowed through Sluice"
    );

    // The same through libpq.
    let conn = format!(
        "{} options='-c role=postgres'",
        t.gw.conn_str("agent-1", &t.key, "app")
    );
    let (ok, _, err) = psql(&conn, "select current_user");
    assert!(!ok);
    assert!(
        err.contains("startup parameter \"options\" is not allowed"),
        "{err}"
    );
    t.assert_still_serving();
}

#[test]
fn a_newer_protocol_minor_version_is_negotiated_down_to_3_0() {
    let mut t = Setup::new("");
    let mut c = Raw::connect(t.port());
    c.send(&startup_packet(
        PROTOCOL_3_0 + 2,
        &[
            ("user", "agent-1"),
            ("database", "app"),
            ("_pq_.something", "on"),
        ],
    ));
    let (tag, body) = c.read_message().unwrap();
    assert_eq!(tag, b'v', "expected NegotiateProtocolVersion");
    assert_eq!(
        &body[..8],
        &[0, 0, 0, 0, 0, 0, 0, 1],
        "newest minor 0, one unsupported option"
    );
    assert_eq!(&body[8..], b"_pq_.something\0");
    let (code, _) = c.expect_auth();
    assert_eq!(code, 10, "authentication then proceeds as usual");
    t.assert_still_serving();
}

#[test]
fn a_cancel_request_with_an_unknown_key_is_ignored_and_a_malformed_one_is_fatal_08p01() {
    let mut t = Setup::new("");
    let mut busy = Raw::login(t.port(), "agent-1", &t.key);

    let mut c = Raw::connect(t.port());
    let mut cancel = 16i32.to_be_bytes().to_vec();
    cancel.extend_from_slice(&80_877_102i32.to_be_bytes());
    cancel.extend_from_slice(&1234i32.to_be_bytes());
    cancel.extend_from_slice(&5678i32.to_be_bytes());
    c.send(&cancel);
    c.expect_closed();
    t.gw.wait_log(
        "cancel request with an unknown key ignored",
        Duration::from_secs(5),
    );

    let mut c = Raw::connect(t.port());
    let mut short = 12i32.to_be_bytes().to_vec();
    short.extend_from_slice(&80_877_102i32.to_be_bytes());
    short.extend_from_slice(&1234i32.to_be_bytes());
    c.send(&short);
    assert_eq!(c.expect_fatal_and_close().code(), "08P01");

    assert_eq!(busy.query("select 'not cancelled'"), ["not cancelled"]);
    t.assert_still_serving();
}
