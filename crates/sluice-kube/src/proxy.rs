//! One request through the Kubernetes front, in phases: authenticate, read
//! the target, clean the headers, read the body, decide (the gate), wait
//! for the record or the approval, forward, and relay the response masked
//! and recorded.

use crate::body::ChannelBody;
use crate::connect::Prior;
use crate::gate::{Ask, HttpGate, Ticket, Verdict};
use crate::headers::{self, HeaderRefusal};
use crate::listener::Front;
use crate::{info, mask, status};
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};
use sluice_core::{Action, Command, CommandOrigin, Param, Refusal, Statement};
use sluice_http::Connection;
use sluice_mask::Masker;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::{info as log_info, warn};

pub type ProxyBody = http_body_util::Either<Full<Bytes>, ChannelBody>;

/// A response Sluice writes itself: a `Status`.
pub(crate) fn status_response(
    code: StatusCode,
    reason: &str,
    message: &str,
) -> Response<ProxyBody> {
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

pub(crate) fn refusal_response(r: &Refusal) -> Response<ProxyBody> {
    let (code, reason) = status::code_of(r.kind);
    status_response(code, reason, &r.to_string())
}

/// Records a response Sluice wrote itself.
pub(crate) fn answer_now<G: HttpGate>(
    gate: &Mutex<G>,
    ticket: Ticket,
    code: StatusCode,
    started: Instant,
    text: &str,
) {
    sluice_http::answer_now(gate, ticket, code.as_u16(), started, text);
}

pub(crate) async fn handle<F: Front>(
    front: Arc<F>,
    conn: Arc<Connection<F::Gate>>,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let limits = sluice_http::Front::limits(&*front);
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
    let lookup = {
        let front = front.clone();
        move |t: String| front.authenticate(&t)
    };
    let Some(identity) = conn.identity(&token, lookup).await else {
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
    let mut understood = match info::understand(parts.method.as_str(), &path, query.as_deref()) {
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
    let connect = matches!(
        understood.action,
        Action::Exec | Action::Attach | Action::PortForward
    );
    // The client's fallback attempt of a connect command already decided.
    let prior = if connect {
        front.connects().take(&identity.name, &target)
    } else {
        None
    };
    // A fallback attempt continues the session its command was decided in.
    let (prior, gate) = match prior {
        Some(Prior::Allowed(ticket, gate)) => (Some(Prior::Allowed(ticket, ())), gate),
        Some(Prior::Refused(r)) => return refusal_response(&r),
        None => match conn.gate(&*front, &identity, user_agent.as_deref()) {
            Some(g) => (None, g),
            None => return internal(),
        },
    };
    // The command: the exact request line, the body as recorded.
    let (record_masker, cap, masked) = match gate.lock() {
        Ok(g) => (g.record_masker(), g.content_cap(), g.masker().is_some()),
        Err(_) => return internal(),
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let secrets = understood.request.resource == "secrets";
    // A JSON patch can copy a Secret's values into fields Sluice does not
    // mask (`copy`, `move`) or test them one guess at a time (`test`).
    if masked && secrets && media == "application/json-patch+json" {
        warn!(identity = %identity.name, %target, "JSON patch of a Secret refused for a masked identity");
        return status_response(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "a JSON patch of a Secret can copy its masked values into the response: refused for an identity whose results are masked (use a merge patch)",
        );
    }
    // A DELETE with a body takes its options, dryRun included, from the
    // body, not the query.
    if parts.method == http::Method::DELETE && !body.is_empty() {
        understood.request.dry_run = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("dryRun").cloned())
            .is_some_and(|d| d == serde_json::json!(["All"]));
    }
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
                secrets,
            )
            .into_bytes(),
        ));
        // What a PATCH does depends on its type as much as on its bytes.
        binding = format!("content-type {media}; body sha256={digest}");
    }
    let mut statement = Statement::request(understood.action, command.text.clone());
    statement.kubernetes = Some(understood.request.clone());
    let read_only = matches!(
        understood.action,
        Action::Get | Action::List | Action::Watch | Action::Discover
    );
    let remember_refusal = |refusal: &Refusal| {
        if connect {
            front
                .connects()
                .remember(&identity.name, &target, Prior::Refused(refusal.clone()));
        }
    };
    let verdict = match prior {
        Some(Prior::Refused(refusal)) => return refusal_response(&refusal),
        Some(Prior::Allowed(ticket, ())) => Verdict::Forward {
            ticket,
            durable: None,
        },
        None => match gate.lock() {
            Ok(mut g) => g.decide(&Ask {
                command: &command,
                statements: std::slice::from_ref(&statement),
                binding: &binding,
                read_only,
                continues: false,
            }),
            Err(_) => return internal(),
        },
    };
    let mut results_wait = None;
    let ticket = match verdict {
        Verdict::Refuse { ticket, refusal } => {
            remember_refusal(&refusal);
            let r = refusal_response(&refusal);
            answer_now(&gate, ticket, r.status(), started, &refusal.to_string());
            return r;
        }
        // A read is forwarded at once, its record written meanwhile; no
        // byte of the answer leaves before it is (see below). Anything
        // else waits for its record first.
        Verdict::Forward { ticket, durable } if read_only && !connect => {
            results_wait = durable;
            ticket
        }
        Verdict::Forward { ticket, durable } => {
            if let Some(d) = durable {
                if let Err(refusal) = d.await {
                    return refusal_response(&refusal);
                }
            }
            ticket
        }
        Verdict::Hold {
            ticket,
            request,
            until,
        } => {
            log_info!(identity = %identity.name, %target, "kubernetes request held for approval");
            let guard = sluice_http::HoldGuard::new(gate.clone(), request);
            let waited = until.await;
            guard.disarm();
            if let Err(refusal) = waited {
                remember_refusal(&refusal);
                let r = refusal_response(&refusal);
                answer_now(&gate, ticket, r.status(), started, &refusal.to_string());
                return r;
            }
            ticket
        }
    };
    if connect || parts.headers.contains_key(header::UPGRADE) {
        let masker = gate.lock().ok().and_then(|g| g.masker());
        return crate::connect::forward(crate::connect::Forward {
            front: &*front,
            gate,
            ticket,
            parts,
            headers: out_headers,
            identity: &identity,
            target: &target,
            masker,
            started,
            understood: &understood,
            cap,
        })
        .await;
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
    let recorded = async {
        match results_wait {
            Some(wait) => wait.await,
            None => Ok(()),
        }
    };
    let (response, recorded) = tokio::join!(upstream.client.request(up), recorded);
    if let Err(refusal) = recorded {
        return refusal_response(&refusal);
    }
    let response = match response {
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
    crate::relay::respond(
        response,
        crate::relay::Context {
            masker,
            understood: &understood,
            cap,
            max_document: limits.max_response_bytes,
            gate,
            ticket,
            started,
            identity: &identity.name,
            target: &target,
        },
    )
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
