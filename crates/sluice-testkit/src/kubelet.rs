//! A stand-in kubelet: no kubelet runs here, so the Kubernetes tests
//! register a Node whose kubelet endpoint is this small HTTPS server. The
//! API server proxies `exec`, `attach` and `logs` to it exactly as it would
//! to a real kubelet; everything between kubectl, Sluice and the API server
//! stays real.
//!
//! It answers:
//! * `/containerLogs/...`: three lines of text, one with an email address;
//! * `/exec/...` and `/attach/...`: a WebSocket upgrade with 400 (as a 1.20
//!   kubelet does for kubectl's v5 WebSocket protocol), an SPDY/3.1 upgrade
//!   with `101` and the v4 stream protocol: it prints `ran: <argv>`, then
//!   what arrived on stdin (`stdin: ...`), then `contact alice@example.com`,
//!   and reports success on the error stream.

use sluice_kube::spdy::{self, Framer, HeaderReader, HeaderWriter};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

pub struct FakeKubelet {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl FakeKubelet {
    /// Listens on a free loopback port with a throwaway certificate (the
    /// API server does not verify kubelets without `--kubelet-certificate-authority`).
    pub fn start(dir: &Path) -> FakeKubelet {
        let tls = crate::make_tls_files(&dir.join("kubelet-tls"));
        let certs = rustls_pemfile::certs(&mut std::fs::read(&tls.cert).unwrap().as_slice())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut std::fs::read(&tls.key).unwrap().as_slice())
            .unwrap()
            .unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let (config, log) = (config.clone(), log.clone());
                std::thread::spawn(move || {
                    let Ok(conn) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    let _ = serve(&mut tls, &log);
                });
            }
        });
        FakeKubelet { port, seen }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `METHOD target` of every request it got, and how it answered.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

type Tls = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

fn serve(tls: &mut Tls, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tls.read(&mut byte)? == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("").to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let target = request_line.split(' ').nth(1).unwrap_or("").to_owned();
    let upgrade = headers.get("upgrade").cloned().unwrap_or_default();
    let note = |what: &str| {
        log.lock()
            .unwrap()
            .push(format!("{request_line} -> {what}"))
    };
    if target.starts_with("/containerLogs/") {
        note("logs");
        tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nfirst line\ncontact alice@example.com\nlast line\n")?;
        tls.conn.send_close_notify();
        return tls.flush();
    }
    if !(target.starts_with("/exec/") || target.starts_with("/attach/")) {
        note("404");
        return tls.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    }
    if upgrade.eq_ignore_ascii_case("websocket") {
        note("400 websocket");
        return tls.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    }
    if !upgrade.eq_ignore_ascii_case("SPDY/3.1") {
        note("400 no upgrade");
        return tls.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    }
    note("101 SPDY/3.1");
    tls.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n")?;
    tls.flush()?;
    let query = target.split_once('?').map_or("", |(_, q)| q).to_owned();
    exec(tls, &query)
}

fn param(query: &str, key: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| decode(v))
        .collect()
}

fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn flag(query: &str, keys: &[&str]) -> bool {
    keys.iter().any(|k| {
        param(query, k)
            .first()
            .is_some_and(|v| v == "1" || v == "true")
    })
}

/// The v4 remote-command protocol, server side.
fn exec(tls: &mut Tls, query: &str) -> std::io::Result<()> {
    let argv = param(query, "command");
    let stdin = flag(query, &["input", "stdin"]);
    let tty = flag(query, &["tty"]);
    let mut expected = vec!["error", "stdout"];
    if stdin {
        expected.push("stdin");
    }
    if flag(query, &["error", "stderr"]) && !tty {
        expected.push("stderr");
    }
    let mut framer = Framer::default();
    let mut reader = HeaderReader::default();
    let mut writer = HeaderWriter::default();
    let mut streams: HashMap<String, u32> = HashMap::new();
    let mut input = Vec::new();
    let mut stdin_done = !stdin;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let all_open = expected.iter().all(|s| streams.contains_key(*s));
        if all_open && stdin_done {
            break;
        }
        let n = tls.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        framer.push(&buf[..n]);
        while let Some(frame) = framer.next_frame().map_err(std::io::Error::other)? {
            match (frame.is_control(), frame.control_type()) {
                (true, spdy::SYN_STREAM) => {
                    let pairs = reader
                        .read(frame.header_block().unwrap_or(&[]))
                        .map_err(std::io::Error::other)?;
                    let id = frame.stream_id().unwrap_or(0);
                    if let Some((_, t)) = pairs.iter().find(|(k, _)| k == "streamtype") {
                        streams.insert(t.clone(), id);
                    }
                    let block = writer.write(&[]).map_err(std::io::Error::other)?;
                    let mut payload = id.to_be_bytes().to_vec();
                    payload.extend(block);
                    tls.write_all(&spdy::control_frame(spdy::SYN_REPLY, 0, &payload))?;
                }
                (true, 6) => tls.write_all(frame.bytes())?, // PING: echo
                (false, _) if stdin && streams.get("stdin") == frame.stream_id().as_ref() => {
                    input.extend_from_slice(frame.payload());
                    if frame.flags() & spdy::FLAG_FIN != 0 {
                        stdin_done = true;
                    }
                }
                _ => {}
            }
        }
        tls.flush()?;
    }
    let out = streams["stdout"];
    let mut text = format!("ran: {}\n", argv.join(" "));
    if stdin {
        text.push_str(&format!(
            "stdin: {}\n",
            String::from_utf8_lossy(&input).trim_end()
        ));
    }
    text.push_str("contact alice@example.com\n");
    tls.write_all(&spdy::data_frame(out, 0, text.as_bytes()))?;
    tls.write_all(&spdy::data_frame(out, spdy::FLAG_FIN, b""))?;
    if let Some(err) = streams.get("stderr") {
        tls.write_all(&spdy::data_frame(*err, spdy::FLAG_FIN, b""))?;
    }
    tls.write_all(&spdy::data_frame(
        streams["error"],
        spdy::FLAG_FIN,
        br#"{"metadata":{},"status":"Success"}"#,
    ))?;
    tls.flush()?;
    // Let the client read everything and hang up first.
    while tls.read(&mut buf).unwrap_or(0) > 0 {}
    Ok(())
}
