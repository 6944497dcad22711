//! A blocking raw PostgreSQL wire-protocol client for tests that compare
//! replies byte by byte: SCRAM login, then whatever frontend messages a test
//! writes ([`msg`] and the builders below), with replies summarized by
//! [`Raw::replies`]. Used by `protocol_raw.rs`.

use std::io::Write;
use std::time::Duration;

/// A blocking raw-protocol client (SCRAM login, then whatever bytes a test writes).
pub struct Raw {
    s: std::net::TcpStream,
    buf: Vec<u8>,
    /// The (process id, secret key) of the BackendKeyData at login.
    pub key: Option<(i32, i32)>,
}

pub fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

pub fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

pub fn parse(sql: &str) -> Vec<u8> {
    msg(b'P', &[cstr(""), cstr(sql), vec![0, 0]].concat())
}
/// Bind of the unnamed statement to the unnamed portal, no parameters, text results.
pub fn bind() -> Vec<u8> {
    msg(b'B', &[0, 0, 0, 0, 0, 0, 0, 0])
}
pub fn describe_portal() -> Vec<u8> {
    msg(b'D', b"P\0")
}
pub fn execute() -> Vec<u8> {
    msg(b'E', &[0, 0, 0, 0, 0])
}
pub fn sync() -> Vec<u8> {
    msg(b'S', &[])
}
pub fn flush() -> Vec<u8> {
    msg(b'H', &[])
}
pub fn query(sql: &str) -> Vec<u8> {
    msg(b'Q', &cstr(sql))
}

impl Raw {
    pub fn connect(port: u16, user: &str, password: &str) -> Raw {
        Raw::connect_with(port, user, password, &[]).unwrap_or_else(|e| panic!("login failed: {e}"))
    }

    /// Logs in with `params` added to the startup packet; `Err` holds the
    /// ErrorResponse body (fields as text) if login is refused.
    pub fn connect_with(
        port: u16,
        user: &str,
        password: &str,
        params: &[(&str, &str)],
    ) -> Result<Raw, String> {
        use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut raw = Raw {
            s,
            buf: Vec::new(),
            key: None,
        };
        let mut body = 196_608i32.to_be_bytes().to_vec();
        let login = [("user", user), ("database", "app")];
        for (k, v) in login.iter().chain(params) {
            body.extend(cstr(k));
            body.extend(cstr(v));
        }
        body.push(0);
        let mut startup = (body.len() as i32 + 4).to_be_bytes().to_vec();
        startup.extend(body);
        raw.send(&startup);
        let mut scram: Option<ScramSha256> = None;
        loop {
            let (tag, body) = raw.next().expect("startup reply");
            match tag {
                b'R' => {
                    let code = i32::from_be_bytes(body[..4].try_into().unwrap());
                    match code {
                        0 => {}
                        10 => {
                            let s = ScramSha256::new(
                                password.as_bytes(),
                                ChannelBinding::unsupported(),
                            );
                            let mut b = cstr("SCRAM-SHA-256");
                            b.extend((s.message().len() as i32).to_be_bytes());
                            b.extend_from_slice(s.message());
                            raw.send(&msg(b'p', &b));
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram.as_mut().unwrap();
                            s.update(&body[4..]).unwrap();
                            let m = msg(b'p', s.message());
                            raw.send(&m);
                        }
                        12 => scram.take().unwrap().finish(&body[4..]).unwrap(),
                        other => panic!("unexpected auth request {other}"),
                    }
                }
                b'E' => return Err(String::from_utf8_lossy(&body).into_owned()),
                b'K' => {
                    let int = |at: usize| i32::from_be_bytes(body[at..at + 4].try_into().unwrap());
                    raw.key = Some((int(0), int(4)));
                }
                b'Z' => return Ok(raw),
                _ => {}
            }
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    /// The next message, or None on timeout/EOF.
    pub fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        use std::io::Read;
        loop {
            if self.buf.len() >= 5 {
                let len = i32::from_be_bytes(self.buf[1..5].try_into().unwrap()) as usize;
                if self.buf.len() > len {
                    let frame: Vec<u8> = self.buf.drain(..=len).collect();
                    return Some((frame[0], frame[5..].to_vec()));
                }
            }
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads until `zs` ReadyForQuery (or a timeout), summarizing each message:
    /// tag plus the part that matters (row data, command tag, SQLSTATE, status).
    pub fn replies(&mut self, zs: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = 0;
        while seen < zs {
            let Some((tag, body)) = self.next() else {
                out.push("<timeout>".into());
                break;
            };
            let text = |b: &[u8]| String::from_utf8_lossy(b).trim_end_matches('\0').to_owned();
            let line = match tag {
                b'D' => format!("D {}", data_row(&body).join("|")),
                b'C' => format!("C {}", text(&body)),
                b'E' => {
                    let code = body
                        .split(|&b| b == 0)
                        .find(|f| f.first() == Some(&b'C'))
                        .map(|f| text(&f[1..]));
                    format!("E {}", code.unwrap_or_default())
                }
                b'Z' => {
                    seen += 1;
                    format!("Z {}", body[0] as char)
                }
                b'G' | b'H' => format!("{} copy", tag as char),
                // Notices, ParameterStatus: not what these tests compare.
                b'N' | b'S' => continue,
                t => (t as char).to_string(),
            };
            out.push(line);
        }
        out
    }
}

/// The text values of a DataRow (NULL as `NULL`).
pub fn data_row(body: &[u8]) -> Vec<String> {
    let n = i16::from_be_bytes([body[0], body[1]]);
    let mut at = 2;
    (0..n)
        .map(|_| {
            let len = i32::from_be_bytes(body[at..at + 4].try_into().unwrap());
            at += 4;
            if len < 0 {
                return "NULL".to_owned();
            }
            let v = String::from_utf8_lossy(&body[at..at + len as usize]).into_owned();
            at += len as usize;
            v
        })
        .collect()
}
