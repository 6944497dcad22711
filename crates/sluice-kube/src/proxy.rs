//! One request through the Kubernetes front, in phases: authenticate, read
//! the target, clean the headers, read the body, decide (the gate), wait
//! for the record or the approval, forward, and relay the response masked
//! and recorded.

use crate::body::{ChannelBody, Lines, Shape};
use crate::gate::{Answer, Ask, KubeGate, Ticket, Verdict};
use crate::headers::{self, HeaderRefusal};
use crate::listener::{Connection, Front};
use crate::split::{Piece, Splitter};
use crate::{info, mask, status};
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};
use sluice_core::{Action, Command, CommandOrigin, Param, Refusal, Statement};
use sluice_mask::Masker;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::{info as log_info, warn};

pub type ProxyBody = http_body_util::Either<Full<Bytes>, ChannelBody>;

/// A response Sluice writes itself: a `Status`.
fn status_response(code: StatusCode, reason: &str, message: &str) -> Response<ProxyBody> {
    let mut r = Response::new(http_body_util::Either::Left(Full::new(Bytes::from(
        status::body(code, reason, message),
    ))));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn refusal_response(r: &Refusal) -> Response<ProxyBody> {
    let (code, reason) = status::code_of(r.kind);
    status_response(code, reason, &r.to_string())
}

/// Records a response Sluice wrote itself.
fn answer_now<G: KubeGate>(
    gate: &Mutex<G>,
    ticket: Ticket,
    code: StatusCode,
    started: Instant,
    text: &str,
) {
    if let Ok(mut g) = gate.lock() {
        let cap = g.content_cap();
        let mut content = text.to_owned();
        let truncated = sluice_core::truncate_at_char_boundary(&mut content, cap);
        g.on_response(
            ticket,
            Answer {
                status: code.as_u16(),
                items: 0,
                bytes: text.len() as u64,
                duration: started.elapsed(),
                content,
                truncated,
            },
        );
    }
}

/// Withdraws the approval request if the client goes away while held.
struct HoldGuard<G: KubeGate> {
    gate: Arc<Mutex<G>>,
    armed: bool,
}

impl<G: KubeGate> Drop for HoldGuard<G> {
    fn drop(&mut self) {
        if self.armed {
            if let Ok(mut g) = self.gate.lock() {
                g.withdraw("the client went away while its request waited for approval");
            }
        }
    }
}

pub(crate) async fn handle<F: Front>(
    front: Arc<F>,
    conn: Arc<Connection<F::Gate>>,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let limits = front.limits();
    let Some(token) = headers::bearer(req.headers()) else {
        return status_response(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "present a Sluice key as the bearer token (sluice kubeconfig prints a kubeconfig that does)",
        );
    };
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some((identity, gate)) = conn.session(&*front, &token, user_agent.as_deref()).await else {
        warn!(peer = %conn.peer, "kubernetes request with an unknown or revoked key");
        return status_response(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "the bearer token is not a valid Sluice key",
        );
    };
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| path.clone(), |pq| pq.as_str().to_owned());
    let understood = match info::understand(parts.method.as_str(), &path, query.as_deref()) {
        Ok(u) => u,
        Err(e) => {
            warn!(identity = %identity.name, %target, error = %e, "kubernetes request refused: bad target");
            return status_response(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string());
        }
    };
    // The OpenAPI schema is the API server's own description (no object
    // data): kubectl asks for it as protobuf and gets it as asked.
    let schema = understood.action == Action::Discover && path.starts_with("/openapi/");
    let accept = match parts.headers.get(header::ACCEPT) {
        Some(client) if schema => Ok(client.clone()),
        client => headers::accept(client),
    };
    let mut out_headers = match headers::inbound(parts.headers.clone())
        .and_then(|h| Ok((h, accept?)))
    {
        Ok((mut h, accept)) => {
            h.insert(header::ACCEPT, accept);
            h.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
            h
        }
        Err(HeaderRefusal::Impersonation(name)) => {
            warn!(identity = %identity.name, header = %name, "kubernetes request refused: client impersonation");
            return status_response(
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!("Sluice does not forward {name}: requests run as your Sluice identity, which Sluice impersonates itself"),
            );
        }
        Err(HeaderRefusal::NotAcceptable(why)) => {
            return status_response(StatusCode::NOT_ACCEPTABLE, "NotAcceptable", &why);
        }
    };
    let body = match tokio::time::timeout(
        limits.body_timeout,
        Limited::new(body, limits.max_request_bytes).collect(),
    )
    .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return status_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!(
                    "the request body is over Sluice's limit of {} bytes",
                    limits.max_request_bytes
                ),
            );
        }
        Ok(Err(e)) => {
            return status_response(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("cannot read the request body: {e}"),
            );
        }
        Err(_) => {
            return status_response(
                StatusCode::REQUEST_TIMEOUT,
                "Timeout",
                &format!(
                    "the request body did not arrive within {} s",
                    limits.body_timeout.as_secs()
                ),
            );
        }
    };
    // The command: the exact request line, the body as recorded.
    let (record_masker, cap) = match gate.lock() {
        Ok(g) => (g.record_masker(), g.content_cap()),
        Err(_) => return internal(),
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut command = Command::new(CommandOrigin::Http, format!("{} {target}", parts.method));
    let mut binding = String::new();
    if !body.is_empty() {
        let digest = hex::encode(Sha256::digest(&body));
        command.params.push(Param::Text(
            recorded_body(
                record_masker.as_deref(),
                &body,
                &content_type,
                &digest,
                understood.request.resource == "secrets",
            )
            .into_bytes(),
        ));
        binding = format!("body sha256={digest}");
    }
    let mut statement = Statement::request(understood.action, command.text.clone());
    statement.kubernetes = Some(understood.request.clone());
    let read_only = matches!(
        understood.action,
        Action::Get | Action::List | Action::Watch | Action::Discover
    );
    let verdict = match gate.lock() {
        Ok(mut g) => g.decide(&Ask {
            command: &command,
            statement: &statement,
            binding: &binding,
            read_only,
        }),
        Err(_) => return internal(),
    };
    let ticket = match verdict {
        Verdict::Refuse { ticket, refusal } => {
            let r = refusal_response(&refusal);
            answer_now(&gate, ticket, r.status(), started, &refusal.to_string());
            return r;
        }
        Verdict::Forward { ticket, durable } => {
            if let Some(d) = durable {
                if let Err(refusal) = d.await {
                    return refusal_response(&refusal);
                }
            }
            ticket
        }
        Verdict::Hold { ticket, until } => {
            log_info!(identity = %identity.name, %target, "kubernetes request held for approval");
            let mut guard = HoldGuard {
                gate: gate.clone(),
                armed: true,
            };
            let waited = until.await;
            guard.armed = false;
            if let Err(refusal) = waited {
                let r = refusal_response(&refusal);
                answer_now(&gate, ticket, r.status(), started, &refusal.to_string());
                return r;
            }
            ticket
        }
    };
    if matches!(
        understood.action,
        Action::Exec | Action::Attach | Action::PortForward
    ) || parts.headers.contains_key(header::UPGRADE)
    {
        let message = "exec, attach and port-forward streams through Sluice are not implemented yet: the request was decided and recorded, and not forwarded";
        let r = status_response(StatusCode::NOT_IMPLEMENTED, "NotImplemented", message);
        answer_now(&gate, ticket, r.status(), started, message);
        return r;
    }
    // Forward: exactly the bytes of the target Sluice read.
    let upstream = front.upstream();
    upstream.authorize(&mut out_headers, &identity.name, &identity.groups);
    let uri = format!("{}{target}", upstream.base);
    let mut up = Request::new(Full::new(body));
    *up.method_mut() = parts.method.clone();
    *up.headers_mut() = out_headers;
    *up.uri_mut() = match uri.parse() {
        Ok(u) => u,
        Err(_) => {
            return status_response(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "the request target cannot be forwarded",
            )
        }
    };
    let response = match upstream.client.request(up).await {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "the API server cannot be reached");
            let message = format!("Sluice could not reach the API server: {e}");
            let r = status_response(StatusCode::BAD_GATEWAY, "ServiceUnavailable", &message);
            answer_now(&gate, ticket, r.status(), started, &message);
            return r;
        }
    };
    let masker = gate
        .lock()
        .ok()
        .and_then(|g| g.masker())
        .filter(|_| !schema);
    let shape = match shape_of(masker.as_deref(), &response, &understood) {
        Ok(s) => s,
        Err(message) => {
            warn!(identity = %identity.name, %target, "{message}");
            let r = status_response(StatusCode::BAD_GATEWAY, "InternalError", &message);
            answer_now(&gate, ticket, r.status(), started, &message);
            return r;
        }
    };
    let (mut rparts, rbody) = response.into_parts();
    headers::outbound(&mut rparts.headers, shape != Shape::Raw);
    let (tx, client_body) = ChannelBody::channel(8);
    let relay = Relay {
        shape,
        masker,
        cap,
        max_document: limits.max_response_bytes,
        gate,
        ticket,
        status: rparts.status.as_u16(),
        started,
    };
    tokio::spawn(relay.run(rbody, tx));
    Response::from_parts(rparts, http_body_util::Either::Right(client_body))
}

fn internal() -> Response<ProxyBody> {
    status_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        "Sluice failed internally; the gateway log has the cause",
    )
}

/// What the audit log keeps of a request body: masked JSON, or for a body
/// Sluice cannot mask (YAML apply patches, protobuf) its size and digest.
fn recorded_body(
    masker: Option<&Masker>,
    body: &[u8],
    content_type: &str,
    digest: &str,
    secrets: bool,
) -> String {
    let json = content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim().ends_with("json"));
    if json {
        if let Some(m) = masker {
            return String::from_utf8_lossy(&mask::document(m, body, secrets)).into_owned();
        }
        if let Ok(text) = std::str::from_utf8(body) {
            return text.to_owned();
        }
    }
    format!("[{} bytes of {content_type:?}, sha256 {digest}: not recorded, Sluice cannot mask this format]", body.len())
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
struct Relay<G: KubeGate> {
    shape: Shape,
    masker: Option<Arc<Masker>>,
    cap: usize,
    max_document: usize,
    gate: Arc<Mutex<G>>,
    ticket: Ticket,
    status: u16,
    started: Instant,
}

impl<G: KubeGate> Relay<G> {
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
