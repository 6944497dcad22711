//! exec, attach and port-forward: one logical command, decided once,
//! relayed only after a real `101` from the API server, recorded as it
//! streams.
//!
//! A current kubectl tries a WebSocket upgrade first and falls back to
//! SPDY/3.1 after any answer but `101`. Sluice relays SPDY only (it can read
//! its frames, see [`crate::spdy`]): a WebSocket attempt is decided like any
//! request, then answered `400` so the client falls back, and the decision
//! (and its record, and any approval) is kept for the fallback — the same
//! target from the same identity within [`FALLBACK_WINDOW`], used once. A
//! refused attempt is remembered the same way, so the fallback is refused
//! without a second record.

use crate::gate::{Answer, HttpGate, Ticket};
use crate::listener::Front;
use crate::mask;
use crate::proxy::{answer_now, status_response, ProxyBody};
use crate::spdy::{self, Framer, HeaderReader};
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use sluice_core::Identity;
use sluice_core::Refusal;
use sluice_mask::Masker;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, warn};

/// How long a decision waits for the client's fallback attempt.
pub const FALLBACK_WINDOW: Duration = Duration::from_secs(30);
/// Bounds the remembered decisions (a client cycling targets only makes
/// the oldest go).
const REMEMBERED: usize = 1024;

/// What the first attempt of a logical command came to. An allowed one
/// keeps its session (`S`, the gate), so the fallback's stream is recorded
/// where its command was.
pub enum Prior<S> {
    Allowed(Ticket, S),
    Refused(Refusal),
}

/// (identity, target) → when, and what was decided.
type Entries<S> = HashMap<(String, String), (Instant, Prior<S>)>;

/// Decisions of connect requests, kept for the client's fallback attempt.
pub struct ConnectCache<S> {
    entries: Mutex<Entries<S>>,
}

impl<S> Default for ConnectCache<S> {
    fn default() -> Self {
        ConnectCache {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<S> ConnectCache<S> {
    pub fn remember(&self, identity: &str, target: &str, prior: Prior<S>) {
        if let Ok(mut e) = self.entries.lock() {
            e.retain(|_, (at, _)| at.elapsed() < FALLBACK_WINDOW);
            if e.len() >= REMEMBERED {
                e.clear();
            }
            e.insert(
                (identity.to_owned(), target.to_owned()),
                (Instant::now(), prior),
            );
        }
    }

    /// The earlier decision for this target, used up by taking it.
    pub fn take(&self, identity: &str, target: &str) -> Option<Prior<S>> {
        let mut e = self.entries.lock().ok()?;
        e.retain(|_, (at, _)| at.elapsed() < FALLBACK_WINDOW);
        let (at, prior) = e.remove(&(identity.to_owned(), target.to_owned()))?;
        (at.elapsed() < FALLBACK_WINDOW).then_some(prior)
    }
}

/// The streams whose output is masked: all but a port-forward's data
/// (which masked identities are refused before it starts).
fn masked_stream(name: &str) -> bool {
    !name.starts_with("data:")
}

/// Relays an SPDY session between the client and the API server until
/// both sides are done: every frame passes unchanged except output data
/// frames of a masked identity, rewritten masked; stdin and every output
/// chunk are recorded, stdin before it is forwarded.
pub(crate) async fn relay_spdy<C, U, G>(
    client: C,
    upstream: U,
    gate: Arc<Mutex<G>>,
    ticket: Ticket,
    masker: Option<Arc<Masker>>,
    started: Instant,
) where
    C: AsyncRead + AsyncWrite + Unpin + Send,
    U: AsyncRead + AsyncWrite + Unpin + Send,
    G: HttpGate,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut ur, mut uw) = tokio::io::split(upstream);
    let streams: Mutex<HashMap<u32, String>> = Mutex::new(HashMap::new());
    let totals = Mutex::new((0u64, 0u64));
    let inbound = async {
        let mut framer = Framer::default();
        let mut headers = HeaderReader::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = cr.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            framer.push(&buf[..n]);
            while let Some(frame) = framer.next_frame().map_err(|e| e.to_string())? {
                if let Some(block) = frame.header_block() {
                    let pairs = headers.read(block).map_err(|e| e.to_string())?;
                    if frame.control_type() == spdy::SYN_STREAM {
                        let name = stream_name(&pairs);
                        if let (Some(id), Ok(mut s)) = (frame.stream_id(), streams.lock()) {
                            s.insert(id, name);
                        }
                    }
                } else if !frame.is_control() && !frame.payload().is_empty() {
                    let name = name_of(&streams, &frame);
                    let wait = gate
                        .lock()
                        .ok()
                        .and_then(|mut g| g.on_stream(ticket, &name, true, frame.payload()));
                    if let Some(w) = wait {
                        w.await.map_err(|r| r.to_string())?;
                    }
                    if let Ok(mut t) = totals.lock() {
                        t.0 += frame.payload().len() as u64;
                    }
                }
                uw.write_all(frame.bytes())
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        let _ = uw.shutdown().await;
        Ok::<(), String>(())
    };
    let outbound = async {
        let mut framer = Framer::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = ur.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            framer.push(&buf[..n]);
            while let Some(frame) = framer.next_frame().map_err(|e| e.to_string())? {
                if frame.is_control() || frame.payload().is_empty() {
                    cw.write_all(frame.bytes())
                        .await
                        .map_err(|e| e.to_string())?;
                    continue;
                }
                let name = name_of(&streams, &frame);
                let masked = match &masker {
                    Some(m) if masked_stream(&name) => Some(mask::text(m, frame.payload())),
                    _ => None,
                };
                let data = masked.as_deref().unwrap_or(frame.payload());
                if let Ok(mut g) = gate.lock() {
                    let _ = g.on_stream(ticket, &name, false, data);
                }
                if let Ok(mut t) = totals.lock() {
                    t.1 += data.len() as u64;
                }
                match (&masked, frame.stream_id()) {
                    (Some(m), Some(id)) => {
                        let rewritten = spdy::data_frame(id, frame.flags(), m);
                        cw.write_all(&rewritten).await
                    }
                    _ => cw.write_all(frame.bytes()).await,
                }
                .map_err(|e| e.to_string())?;
            }
        }
        let _ = cw.shutdown().await;
        Ok::<(), String>(())
    };
    let (a, b) = tokio::join!(inbound, outbound);
    let ended = match (&a, &b) {
        (Ok(()), Ok(())) => "stream closed".to_owned(),
        (Err(e), _) | (_, Err(e)) => {
            debug!(error = %e, "SPDY relay ended with an error");
            format!("stream ended: {e}")
        }
    };
    if a.is_err() || b.is_err() {
        warn!(reason = %ended, "exec/attach/port-forward stream ended early");
    }
    let (sent_in, sent_out) = totals.lock().map_or((0, 0), |t| *t);
    if let Ok(mut g) = gate.lock() {
        g.on_response(
            ticket,
            Answer {
                status: 101,
                items: 0,
                bytes: sent_in + sent_out,
                duration: started.elapsed(),
                content: format!("{ended}: {sent_in} bytes in, {sent_out} bytes out"),
                truncated: false,
            },
        );
    }
}

/// What forwarding one connect request needs.
pub(crate) struct Forward<'a, F: Front> {
    pub front: &'a F,
    pub gate: Arc<Mutex<F::Gate>>,
    pub ticket: Ticket,
    pub parts: http::request::Parts,
    /// The client's headers, cleaned ([`crate::headers::inbound`]).
    pub headers: http::HeaderMap,
    pub identity: &'a Identity,
    pub target: &'a str,
    pub masker: Option<Arc<Masker>>,
    pub started: Instant,
    pub understood: &'a crate::info::Understood,
    pub cap: usize,
}

/// Forwards an allowed connect request (or any upgrade): SPDY/3.1 only,
/// relayed after the API server's `101`; anything else it answers goes to
/// the client as a response, never as a tunnel.
pub(crate) async fn forward<F: Front>(mut f: Forward<'_, F>) -> Response<ProxyBody> {
    let upgrade = f
        .parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let refuse = |f: &Forward<'_, F>, code: StatusCode, reason: &str, message: &str| {
        let r = status_response(code, reason, message);
        answer_now(&f.gate, f.ticket, r.status(), f.started, message);
        r
    };
    if upgrade.eq_ignore_ascii_case("websocket") {
        // Kept for the SPDY attempt that follows.
        f.front.connects().remember(
            &f.identity.name,
            f.target,
            Prior::Allowed(f.ticket, f.gate.clone()),
        );
        return status_response(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Sluice relays exec, attach and port-forward over SPDY/3.1, not WebSocket: retry with SPDY (kubectl does so by itself)",
        );
    }
    if !upgrade.eq_ignore_ascii_case("SPDY/3.1") {
        return refuse(
            &f,
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "exec, attach and port-forward need an upgrade to SPDY/3.1",
        );
    }
    if f.masker.is_some() && f.understood.action == sluice_core::Action::PortForward {
        return refuse(
            &f,
            StatusCode::FORBIDDEN,
            "Forbidden",
            "port-forward carries raw bytes Sluice cannot mask: only an identity whose results policy unmasks may port-forward",
        );
    }
    let Some(client_upgrade) = f.parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return refuse(
            &f,
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "this connection cannot be upgraded (exec needs HTTP/1.1)",
        );
    };
    let upstream = f.front.upstream();
    let mut headers = std::mem::take(&mut f.headers);
    upstream.authorize(&mut headers, &f.identity.name, &f.identity.groups);
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    let mut up = http::Request::new(Full::new(Bytes::new()));
    *up.method_mut() = f.parts.method.clone();
    *up.headers_mut() = headers;
    *up.uri_mut() = match format!("{}{}", upstream.base, f.target).parse() {
        Ok(u) => u,
        Err(_) => {
            return refuse(
                &f,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "the request target cannot be forwarded",
            )
        }
    };
    let mut response = match upstream.client_h1.request(up).await {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "the API server cannot be reached");
            return refuse(
                &f,
                StatusCode::BAD_GATEWAY,
                "ServiceUnavailable",
                &format!("Sluice could not reach the API server: {e}"),
            );
        }
    };
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return crate::relay::respond(
            response,
            crate::relay::Context {
                masker: f.masker,
                understood: f.understood,
                cap: f.cap,
                max_document: f.front.limits().max_response_bytes,
                gate: f.gate,
                ticket: f.ticket,
                started: f.started,
                identity: &f.identity.name,
                target: f.target,
            },
        );
    }
    let upstream_upgrade = hyper::upgrade::on(&mut response);
    let mut client_response = Response::new(http_body_util::Either::Left(Full::new(Bytes::new())));
    *client_response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for name in [header::CONNECTION, header::UPGRADE] {
        if let Some(v) = response.headers().get(&name) {
            client_response.headers_mut().insert(name, v.clone());
        }
    }
    for (name, v) in response.headers() {
        if name.as_str().starts_with("x-stream-protocol-version") {
            client_response
                .headers_mut()
                .insert(name.clone(), v.clone());
        }
    }
    let (gate, ticket, masker, started) = (f.gate, f.ticket, f.masker, f.started);
    tokio::spawn(async move {
        match tokio::try_join!(client_upgrade, upstream_upgrade) {
            Ok((c, u)) => {
                relay_spdy(
                    TokioIo::new(c),
                    TokioIo::new(u),
                    gate,
                    ticket,
                    masker,
                    started,
                )
                .await;
            }
            Err(e) => {
                warn!(error = %e, "the upgrade did not complete");
                answer_now(
                    &gate,
                    ticket,
                    StatusCode::SWITCHING_PROTOCOLS,
                    started,
                    &format!("upgrade failed: {e}"),
                );
            }
        }
    });
    client_response
}

/// `stdin`, `stdout`..., or `data:8080` / `error:8080` for port-forward.
fn stream_name(pairs: &[(String, String)]) -> String {
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match (get("streamtype"), get("port")) {
        (Some(t), Some(p)) => format!("{t}:{p}"),
        (Some(t), None) => t.to_owned(),
        (None, _) => "unknown".to_owned(),
    }
}

fn name_of(streams: &Mutex<HashMap<u32, String>>, frame: &spdy::Frame) -> String {
    frame
        .stream_id()
        .and_then(|id| streams.lock().ok()?.get(&id).cloned())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sluice_core::RefusalKind;

    #[test]
    fn a_decision_serves_one_fallback_attempt_of_the_same_target_and_identity() {
        let c = ConnectCache::<()>::default();
        c.remember("a", "/t", Prior::Allowed(Ticket(Some(7)), ()));
        assert!(c.take("b", "/t").is_none());
        assert!(c.take("a", "/u").is_none());
        assert!(matches!(
            c.take("a", "/t"),
            Some(Prior::Allowed(Ticket(Some(7)), ()))
        ));
        assert!(c.take("a", "/t").is_none(), "used once");
        c.remember(
            "a",
            "/t",
            Prior::Refused(Refusal::new(RefusalKind::Denied, "no")),
        );
        assert!(matches!(c.take("a", "/t"), Some(Prior::Refused(_))));
    }
}
