//! The backend's answer on its way to the client: object bodies streamed
//! (masked for an identity whose results are masked, or refused when
//! Sluice cannot read them), listings' keys passed through the detectors,
//! uploads' ids remembered, and the response recorded.

use crate::body::{BodyFault, Uploaded};
use crate::error;
use crate::front::{S3Front, S3Gates};
use crate::mask::{self, ObjectMasker};
use crate::op::Understood;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use s3s::{S3ErrorCode, S3Response, S3Result};
use sluice_core::{Action, Identity};
use sluice_http::{Answer, BodyError, ChannelBody, HttpGate, Ticket};
use sluice_mask::Masker;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;
use tracing::warn;

pub(crate) struct Relay<G: S3Gates> {
    pub front: Arc<S3Front<G>>,
    pub gate: Arc<Mutex<G::Gate>>,
    pub ticket: Ticket,
    pub started: Instant,
    pub identity: Identity,
    pub understood: Understood,
    pub masker: Option<Arc<Masker>>,
    /// The client asked for a byte range.
    pub range: bool,
    /// How a streamed upload went.
    pub uploaded: Option<oneshot::Receiver<Result<Uploaded, BodyFault>>>,
}

/// What the relay does to the body.
enum Mode {
    /// As it comes; recorded as text when it is text.
    Pass {
        text: bool,
    },
    Masked(Box<ObjectMasker>),
    /// Read whole (bounded), then changed: a listing masked, an upload id
    /// remembered.
    Whole,
}

pub(crate) async fn respond<G: S3Gates>(
    response: Response<Incoming>,
    r: Relay<G>,
) -> S3Result<S3Response<s3s::Body>> {
    let status = response.status();
    let mut headers = strip_hop_by_hop(response.headers());
    let ok = status.is_success();
    let header = |h: &str| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type");
    let key = r.understood.target.key.clone().unwrap_or_default();
    let action = r.understood.action;
    let mut mode = Mode::Pass {
        text: !matches!(action, Action::GetObject)
            || mask::kind_of(content_type.as_deref(), None, &key).is_some(),
    };
    if ok && matches!(action, Action::CreateMultipartUpload) {
        mode = Mode::Whole;
    }
    if ok
        && matches!(
            action,
            Action::CompleteMultipartUpload | Action::AbortMultipartUpload
        )
    {
        if let Some(id) = &r.understood.upload_id {
            r.front.uploads.ended(id);
        }
    }
    if let Some(m) = r.masker.clone() {
        if ok && r.understood.lists_keys() {
            mode = Mode::Whole;
        }
        if ok && action == Action::GetObject {
            let kind = mask::kind_of(
                content_type.as_deref(),
                header("content-encoding").as_deref(),
                &key,
            );
            let media = content_type
                .as_deref()
                .and_then(|c| c.split(';').next())
                .map(|c| c.trim().to_ascii_lowercase())
                .unwrap_or_default();
            match kind {
                None if r.front.settings.pass_types.contains(&media) => {}
                None => {
                    let why = format!(
                        "s3://{}/{key} is of a type Sluice cannot inspect ({}), and your results are masked: not released. A `pass_types` entry for the resource lets a type pass.",
                        r.understood.target.bucket.as_deref().unwrap_or_default(),
                        if media.is_empty() { "no content type" } else { &media }
                    );
                    warn!(identity = %r.identity.name, key = %key, "uninspectable object refused to a masked identity");
                    sluice_http::answer_now(&r.gate, r.ticket, 403, r.started, &why);
                    return Err(error::error(S3ErrorCode::AccessDenied, why));
                }
                Some(_) if r.range => {
                    let why = "a Range request on an object masked for you is refused: masking changes lengths and offsets; fetch the whole object".to_owned();
                    sluice_http::answer_now(&r.gate, r.ticket, 403, r.started, &why);
                    return Err(error::error(S3ErrorCode::AccessDenied, why));
                }
                Some(kind) => {
                    // Lengths, digests and ranges of the stored bytes no
                    // longer describe what leaves.
                    for h in [
                        "content-length",
                        "content-md5",
                        "etag",
                        "content-range",
                        "accept-ranges",
                    ] {
                        headers.remove(h);
                    }
                    let sums: Vec<_> = headers
                        .keys()
                        .filter(|k| k.as_str().starts_with("x-amz-checksum-"))
                        .cloned()
                        .collect();
                    for k in sums {
                        headers.remove(k);
                    }
                    mode = Mode::Masked(Box::new(ObjectMasker::new(
                        m,
                        kind,
                        r.front.settings.max_document_bytes,
                    )));
                }
            }
        }
    }
    if let Some(m) = &r.masker {
        // User metadata is the uploader's free text.
        let meta: Vec<_> = headers
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("x-amz-meta-"))
            .filter_map(|(k, v)| Some((k.clone(), m.mask_text(v.to_str().ok()?)?)))
            .collect();
        for (k, masked) in meta {
            if let Ok(v) = http::HeaderValue::from_str(&masked) {
                headers.insert(k, v);
            }
        }
    }
    if matches!(mode, Mode::Whole) {
        headers.remove("content-length");
    }
    let (tx, body) = ChannelBody::channel(4);
    let incoming = response.into_body();
    tokio::spawn(relay(incoming, mode, tx, r, status));
    let mut out = S3Response::new(s3s::Body::http_body(body));
    out.status = Some(status);
    out.headers = headers;
    Ok(out)
}

async fn relay<G: S3Gates>(
    mut incoming: Incoming,
    mut mode: Mode,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, BodyError>>,
    r: Relay<G>,
    status: StatusCode,
) {
    let cap = r.gate.lock().map_or(0, |g| g.content_cap());
    let mut content: Vec<u8> = Vec::new();
    let mut sent: u64 = 0;
    let mut whole: Vec<u8> = Vec::new();
    let max = r.front.settings.max_document_bytes;
    let mut failed: Option<String> = None;
    let mut client_gone = false;
    let send = |bytes: Vec<u8>, content: &mut Vec<u8>, sent: &mut u64| {
        *sent += bytes.len() as u64;
        let room = cap.saturating_sub(content.len());
        content.extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
        Bytes::from(bytes)
    };
    loop {
        let frame = match incoming.frame().await {
            None => break,
            Some(Err(e)) => {
                failed = Some(format!("the backend's answer broke off: {e}"));
                break;
            }
            Some(Ok(f)) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let out = match &mut mode {
            Mode::Pass { .. } => Ok(data.to_vec()),
            Mode::Masked(m) => m.push(&data),
            Mode::Whole => {
                if whole.len() + data.len() > max {
                    Err(format!("an answer over {max} bytes cannot be read whole"))
                } else {
                    whole.extend_from_slice(&data);
                    Ok(Vec::new())
                }
            }
        };
        match out {
            Ok(b) if b.is_empty() => {}
            Ok(b) => {
                let b = send(b, &mut content, &mut sent);
                if tx.send(Ok(b)).await.is_err() {
                    client_gone = true;
                    break;
                }
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    if failed.is_none() && !client_gone {
        let last = match &mut mode {
            Mode::Masked(m) => m.finish(),
            Mode::Whole => Ok(finish_whole(&r, std::mem::take(&mut whole))),
            Mode::Pass { .. } => Ok(Vec::new()),
        };
        match last {
            Ok(b) if !b.is_empty() => {
                let b = send(b, &mut content, &mut sent);
                let _ = tx.send(Ok(b)).await;
            }
            Ok(_) => {}
            Err(e) => failed = Some(e),
        }
    }
    if let Some(why) = &failed {
        warn!(identity = %r.identity.name, "S3 answer cut off: {why}");
        let _ = tx.send(Err(BodyError(why.clone()))).await;
    }
    drop(tx);
    let mut text = match mode {
        Mode::Pass { text: false } => format!("[{sent} bytes of object data]"),
        _ => String::from_utf8_lossy(&content).into_owned(),
    };
    if let Some(done) = r.uploaded {
        let line = match done.await {
            Ok(Ok(u)) => format!("uploaded {} bytes, sha256 {}\n", u.bytes, u.sha256),
            Ok(Err(why)) => format!("upload cut off: {why}\n"),
            Err(_) => "upload: no result\n".to_owned(),
        };
        text.insert_str(0, &line);
    }
    if let Some(why) = failed {
        text.push_str(&format!("\n[cut off: {why}]"));
    }
    let truncated = sluice_core::truncate_at_char_boundary(&mut text, cap.max(256));
    let items = if r.understood.lists_keys() {
        memchr::memmem::find_iter(content.as_slice(), b"<Key>").count() as u64
    } else {
        1
    };
    if let Ok(mut g) = r.gate.lock() {
        g.on_response(
            r.ticket,
            Answer {
                status: status.as_u16(),
                items,
                bytes: sent,
                duration: r.started.elapsed(),
                content: text,
                truncated,
            },
        );
    }
}

/// A body read whole: a listing masked, a new upload's id remembered.
fn finish_whole<G: S3Gates>(r: &Relay<G>, body: Vec<u8>) -> Vec<u8> {
    if r.understood.action == Action::CreateMultipartUpload {
        if let (Some(id), Some(b), Some(k)) = (
            element(&body, "UploadId"),
            &r.understood.target.bucket,
            &r.understood.target.key,
        ) {
            r.front.uploads.created(&id, &r.identity, b, k);
        }
    }
    match &r.masker {
        Some(m) if r.understood.lists_keys() => {
            mask::listing(m, &body, r.understood.url_encoded_keys)
        }
        _ => body,
    }
}

fn element(xml: &[u8], name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = memchr::memmem::find(xml, open.as_bytes())? + open.len();
    let len = memchr::memmem::find(xml.get(start..)?, close.as_bytes())?;
    Some(String::from_utf8_lossy(xml.get(start..start + len)?).into_owned())
}

fn strip_hop_by_hop(h: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (k, v) in h {
        if !matches!(
            k.as_str(),
            "connection"
                | "keep-alive"
                | "transfer-encoding"
                | "te"
                | "trailer"
                | "upgrade"
                | "proxy-authenticate"
                | "proxy-connection"
        ) {
            out.append(k.clone(), v.clone());
        }
    }
    out
}
