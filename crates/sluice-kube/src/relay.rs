//! Relaying the API server's response: masked by its shape (one JSON
//! document streamed item by item, watch events and log lines one at a
//! time), sent to the client through a bounded channel, and recorded when
//! it ends.

use crate::body::{ChannelBody, Lines, Shape};
use crate::gate::{Answer, HttpGate, Ticket};
use crate::headers;
use crate::proxy::{answer_now, status_response, ProxyBody};
use crate::split::{Piece, Splitter};
use crate::{info, mask};
use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use sluice_core::Action;
use sluice_mask::Masker;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::warn;

/// What the relay of one response needs.
pub(crate) struct Context<'a, G: HttpGate> {
    pub masker: Option<Arc<Masker>>,
    pub understood: &'a info::Understood,
    pub cap: usize,
    pub max_document: usize,
    pub gate: Arc<Mutex<G>>,
    pub ticket: Ticket,
    pub started: Instant,
    pub identity: &'a str,
    pub target: &'a str,
}

/// The client's response: the API server's status and headers, and a body
/// a relay task fills as the API server's arrives. A response Sluice cannot
/// inspect for a masked identity is replaced by a 502 `Status`.
pub(crate) fn respond<G: HttpGate>(
    response: Response<Incoming>,
    cx: Context<'_, G>,
) -> Response<ProxyBody> {
    let shape = match shape_of(cx.masker.as_deref(), &response, cx.understood) {
        Ok(s) => s,
        Err(message) => {
            warn!(identity = %cx.identity, target = %cx.target, "{message}");
            let r = status_response(StatusCode::BAD_GATEWAY, "InternalError", &message);
            answer_now(&cx.gate, cx.ticket, r.status(), cx.started, &message);
            return r;
        }
    };
    let (mut rparts, rbody) = response.into_parts();
    headers::outbound(&mut rparts.headers, shape != Shape::Raw);
    let (tx, client_body) = ChannelBody::channel(8);
    let relay = Relay {
        shape,
        masker: cx.masker,
        cap: cx.cap,
        max_document: cx.max_document,
        gate: cx.gate,
        ticket: cx.ticket,
        status: rparts.status.as_u16(),
        started: cx.started,
    };
    tokio::spawn(relay.run(rbody, tx));
    Response::from_parts(rparts, http_body_util::Either::Right(client_body))
}

/// How the response is relayed; `Err` when it cannot be inspected and the
/// identity's results are masked (fail closed).
fn shape_of(
    masker: Option<&Masker>,
    response: &Response<Incoming>,
    u: &info::Understood,
) -> Result<Shape, String> {
    if masker.is_none() {
        return Ok(Shape::Raw);
    }
    let h = response.headers();
    if let Some(enc) = h.get(header::CONTENT_ENCODING) {
        if enc.as_bytes() != b"identity" {
            return Err(format!("the API server answered with Content-Encoding {enc:?}, which Sluice cannot inspect: not released"));
        }
    }
    let ctype = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ctype
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let secrets = u.request.resource == "secrets";
    if media == "application/json" {
        return Ok(if u.action == Action::Watch {
            Shape::JsonLines { secrets }
        } else {
            Shape::Document { secrets }
        });
    }
    if media == "text/plain" || (media.is_empty() && response.status() == StatusCode::NO_CONTENT) {
        return Ok(Shape::TextLines);
    }
    if media.is_empty()
        && h.get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0")
    {
        return Ok(Shape::TextLines);
    }
    Err(format!("the API server answered with Content-Type {ctype:?}, which Sluice cannot mask: not released"))
}

/// Masks one piece of a JSON document streamed by the splitter.
fn mask_piece(m: &Masker, piece: Piece, list_of_secrets: &mut bool) -> Vec<u8> {
    match piece {
        Piece::Head(head) => {
            *list_of_secrets |= memchr::memmem::find(&head, b"\"SecretList\"").is_some();
            mask::text(m, &head)
        }
        Piece::Item(item) => mask::document(m, &item, *list_of_secrets),
        Piece::Between(bytes) => mask::text(m, &bytes),
        Piece::Whole(doc) => mask::document(m, &doc, *list_of_secrets),
    }
}

/// Masks one line of a watch stream (a JSON event) or of a log.
fn mask_line(m: &Masker, shape: Shape, secrets: bool, line: &[u8]) -> Vec<u8> {
    if shape == Shape::TextLines {
        return mask::text(m, line);
    }
    let (doc, newline) = match line.strip_suffix(b"\n") {
        Some(doc) => (doc, true),
        None => (line, false),
    };
    let mut out = mask::document(m, doc, secrets);
    if newline {
        out.push(b'\n');
    }
    out
}

/// Relays one response body: masks by shape, sends to the client, keeps
/// what the record holds, and records the response when it ends.
struct Relay<G: HttpGate> {
    shape: Shape,
    masker: Option<Arc<Masker>>,
    cap: usize,
    max_document: usize,
    gate: Arc<Mutex<G>>,
    ticket: Ticket,
    status: u16,
    started: Instant,
}

impl<G: HttpGate> Relay<G> {
    async fn run(
        self,
        mut body: Incoming,
        tx: tokio::sync::mpsc::Sender<Result<Bytes, crate::body::BodyError>>,
    ) {
        let mut content = Vec::new();
        let mut bytes = 0u64;
        let mut items = 0u64;
        let mut lines = Lines::default();
        let mut splitter = Splitter::default();
        let mut ended = "complete";
        let masker = self.masker.clone();
        let secrets = matches!(
            self.shape,
            Shape::Document { secrets: true } | Shape::JsonLines { secrets: true }
        );
        // Items of a SecretList carry no kind: its head says what they are.
        let mut list_of_secrets = secrets;
        let mut send = Vec::new();
        loop {
            let frame = match body.frame().await {
                None => break,
                Some(Ok(f)) => f,
                Some(Err(e)) => {
                    warn!(error = %e, "the API server's response broke off");
                    ended = "upstream_error";
                    break;
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            send.clear();
            match (&masker, self.shape) {
                (None, _) | (_, Shape::Raw) => send.push(data.to_vec()),
                (Some(m), Shape::Document { .. }) => {
                    for piece in splitter.push(&data) {
                        if let Piece::Item(_) = piece {
                            items += 1;
                        }
                        send.push(mask_piece(m, piece, &mut list_of_secrets));
                    }
                    if splitter.held() > self.max_document {
                        let _ = tx
                            .send(Err(crate::body::BodyError(format!(
                                "one object of the response is over Sluice's limit of {} bytes for a masked document",
                                self.max_document
                            ))))
                            .await;
                        ended = "too_large";
                        break;
                    }
                }
                (Some(m), Shape::JsonLines { .. } | Shape::TextLines) => {
                    for line in lines.push(&data) {
                        items += 1;
                        send.push(mask_line(m, self.shape, secrets, &line));
                    }
                    if lines.pending() > self.max_document {
                        let _ = tx
                            .send(Err(crate::body::BodyError(format!(
                                "one line of the stream is over Sluice's limit of {} bytes",
                                self.max_document
                            ))))
                            .await;
                        ended = "too_large";
                        break;
                    }
                }
            }
            if !self.forward(&tx, &mut send, &mut content, &mut bytes).await {
                ended = "client_gone";
                break;
            }
        }
        if ended == "complete" {
            if let Some(m) = &masker {
                if let Some(piece) = splitter.finish() {
                    items += 1;
                    send.push(mask_piece(m, piece, &mut list_of_secrets));
                }
                if let Some(rest) = lines.finish() {
                    items += 1;
                    send.push(mask_line(m, self.shape, secrets, &rest));
                }
            }
            if !self.forward(&tx, &mut send, &mut content, &mut bytes).await {
                ended = "client_gone";
            }
        }
        let truncated = content.len() >= self.cap && bytes as usize > self.cap;
        let mut text = String::from_utf8_lossy(&content).into_owned();
        sluice_core::truncate_at_char_boundary(&mut text, self.cap);
        if ended != "complete" {
            text.push_str(&format!("\n[response ended: {ended}]"));
        }
        if let Ok(mut g) = self.gate.lock() {
            g.on_response(
                self.ticket,
                Answer {
                    status: self.status,
                    items,
                    bytes,
                    duration: self.started.elapsed(),
                    content: text,
                    truncated,
                },
            );
        }
    }

    /// Sends the chunks; false when the client is gone.
    async fn forward(
        &self,
        tx: &tokio::sync::mpsc::Sender<Result<Bytes, crate::body::BodyError>>,
        send: &mut Vec<Vec<u8>>,
        content: &mut Vec<u8>,
        bytes: &mut u64,
    ) -> bool {
        for chunk in send.drain(..) {
            *bytes += chunk.len() as u64;
            if content.len() < self.cap {
                let room = self.cap - content.len();
                content.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return false;
            }
        }
        true
    }
}
