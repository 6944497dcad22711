//! One verified S3 request, in phases: who (the key s3s verified), what
//! (the operation and every object it touches), decide (the gate), wait
//! (for the record or the approval), forward (re-signed, body streamed),
//! and relay the answer masked and recorded.

use crate::body::{self, Claims, UpBody};
use crate::error::{self, refusal};
use crate::front::Ctx;
use crate::op::{self, Target, Understood};
use crate::relay::{self, Relay};
use crate::uploads::Continues;
use crate::upstream::{self, Payload};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request};
use http_body_util::{BodyExt, Limited};
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};
use sha2::{Digest, Sha256};
use sluice_core::{Action, Command, CommandOrigin, Identity, Param};
use sluice_http::{Ask, HoldGuard, HttpGate, Ticket, Verdict};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::{info, warn};

use crate::front::S3Gates;

/// Bodies Sluice reads whole to decide on them (a batch delete's keys, a
/// completion's parts, a bucket policy).
const SMALL_BODY: usize = 2 << 20;

pub(crate) async fn handle<G: S3Gates>(
    ctx: Ctx<G>,
    req: S3Request<s3s::Body>,
) -> S3Result<S3Response<s3s::Body>> {
    let started = Instant::now();
    let front = ctx.front.clone();
    let Some(access_key) = req.credentials.as_ref().map(|c| c.access_key.clone()) else {
        return Err(error::error(
            S3ErrorCode::AccessDenied,
            "Signature is required",
        ));
    };
    let Some(identity) = front.identity(&access_key) else {
        ctx.conn.refused();
        return Err(error::error(
            S3ErrorCode::InvalidAccessKeyId,
            "the access key is not an active Sluice S3 key",
        ));
    };
    let header = |h: &str| -> Option<String> {
        req.headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    // What: read as the backend will read it.
    let target = target(&front, &req.uri, &req.headers)?;
    let query = parse_query(req.uri.query())?;
    let understood = op::understand(req.method.as_str(), target, &query, header);
    if let Some(k) = &understood.target.key {
        if let Err(e) = op::check_key(k) {
            warn!(identity = %identity.name, key = %k, "S3 request refused: {e}");
            return Err(error::error(S3ErrorCode::InvalidArgument, e));
        }
    }
    // Fail closed: a request Sluice cannot read as an operation (an unknown
    // sub-resource or parameter, ?select, ?restore) is not forwarded, even
    // where a policy permits `unknown`: the backend might read it as an
    // operation on objects Sluice never decided.
    if understood.action == Action::Unknown {
        let why = understood.error.clone().unwrap_or_default();
        warn!(identity = %identity.name, "S3 request refused: {why}");
        return Err(error::error(
            S3ErrorCode::NotImplemented,
            format!("Sluice does not forward an S3 request it cannot read as an operation: {why}"),
        ));
    }
    let trailer = header("x-amz-trailer");
    if let Some(t) = trailer.as_deref().filter(|t| !body::known_trailer(t)) {
        return Err(error::error(
            S3ErrorCode::InvalidRequest,
            format!("trailing header {t:?} is not a checksum Sluice can verify"),
        ));
    }
    let size = header("x-amz-decoded-content-length")
        .or_else(|| header("content-length"))
        .and_then(|v| v.parse::<u64>().ok());
    let small = reads_body(understood.action);
    let mut in_body = req.input;
    let mut whole = None;
    if small {
        let limited = Limited::new(std::mem::take(&mut in_body), SMALL_BODY);
        match limited.collect().await {
            // CDATA, DOCTYPE and comments: Sluice's XML reader and the
            // backend's may read them differently (a reviewer deleted
            // `keep/a` on Garage with `<Key><![CDATA[keep/a]]></Key>`,
            // decided as the empty key). Refused, not guessed.
            Ok(b) => {
                let b = b.to_bytes();
                if memchr::memmem::find(&b, b"<!").is_some() {
                    return Err(error::error(
                        S3ErrorCode::MalformedXML,
                        "XML with CDATA, DOCTYPE or comments is refused (stores read them differently)",
                    ));
                }
                whole = Some(b);
            }
            Err(e) => {
                return Err(error::error(
                    S3ErrorCode::InvalidRequest,
                    format!("cannot read the request body (at most {SMALL_BODY} bytes): {e}"),
                ))
            }
        }
    }
    let keys = match (understood.action, &whole) {
        (Action::DeleteObjects, Some(b)) => delete_keys(b)?,
        _ => Vec::new(),
    };
    let continues = continues(&front, &understood, &identity)?;
    let text = command_text(&understood, size, &keys);
    let mut statements = understood.statements(&text, size, &keys);
    if continues {
        // The upload's own part is recorded, not decided; a copied
        // source is still a read to decide.
        if let Some(first) = statements.first_mut() {
            first.error = None;
        }
    }
    let mut command = Command::new(CommandOrigin::Http, text.clone());
    let binding = binding(&req.headers, &query, whole.as_ref(), size);
    if let Some(b) = &whole {
        command.params.push(Param::Text(
            String::from_utf8_lossy(b).into_owned().into_bytes(),
        ));
    }
    let read_only = understood.read_only();
    let gate = ctx
        .conn
        .gate(&*front, &identity, header("user-agent").as_deref())
        .ok_or_else(error::internal)?;
    // The answer's type decides how it is masked: a masked identity may
    // not rename it.
    let overrides = query
        .iter()
        .any(|(k, _)| k == "response-content-type" || k == "response-content-encoding");
    if overrides && gate.lock().map_or(true, |g| g.masker().is_some()) {
        return Err(error::error(
            S3ErrorCode::AccessDenied,
            "response-content-type and response-content-encoding are refused to an identity whose results are masked",
        ));
    }
    let verdict = gate.lock().map_err(|_| error::internal())?.decide(&Ask {
        command: &command,
        statements: &statements,
        binding: &binding,
        read_only,
        continues,
    });
    let mut results_wait = None;
    let ticket = match verdict {
        Verdict::Refuse { ticket, refusal: r } => {
            let e = refusal(&r);
            sluice_http::answer_now(&gate, ticket, 403, started, &r.to_string());
            return Err(e);
        }
        Verdict::Forward { ticket, durable } if read_only => {
            results_wait = durable;
            ticket
        }
        Verdict::Forward { ticket, durable } => {
            if let Some(d) = durable {
                d.await.map_err(|r| refusal(&r))?;
            }
            ticket
        }
        Verdict::Hold {
            ticket,
            request,
            until,
        } => {
            info!(identity = %identity.name, command = %text, "S3 request held for approval");
            let guard = HoldGuard::new(gate.clone(), request);
            let waited = until.await;
            guard.disarm();
            if let Err(r) = waited {
                sluice_http::answer_now(&gate, ticket, 403, started, &r.to_string());
                return Err(refusal(&r));
            }
            ticket
        }
    };
    // Forward: path style, exactly the bucket and key decided.
    let up = &front.settings.upstream;
    let mut uri = format!(
        "{}{}",
        up.base,
        upstream::path(
            understood.target.bucket.as_deref(),
            understood.target.key.as_deref()
        )
    );
    let q = upstream::query(&query);
    if !q.is_empty() {
        uri.push('?');
        uri.push_str(&q);
    }
    let mut headers = upstream::forwardable(&req.headers);
    let (up_body, payload, uploaded) = match whole {
        Some(b) => {
            let hash = hex::encode(Sha256::digest(&b));
            (body::full(b), Payload::Sha256(hash), None)
        }
        None if size.unwrap_or(0) == 0 && !chunked(&req.headers) => (
            body::full(Bytes::new()),
            Payload::Sha256(hex::encode(Sha256::digest(b""))),
            None,
        ),
        None => {
            let claimed = header("x-amz-content-sha256")
                .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(|h| h.to_ascii_lowercase());
            let claims = Claims {
                length: size,
                sha256: claimed.clone(),
                trailer: trailer.clone().zip(req.trailing_headers.clone()),
            };
            let (b, done) = body::stream(in_body, claims, front.settings.limits.body_timeout);
            let payload = claimed.map_or(Payload::Unsigned, Payload::Sha256);
            (b, payload, Some(done))
        }
    };
    if let Some(n) = size {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    let mut out: Request<UpBody> = Request::new(up_body);
    *out.method_mut() = req.method.clone();
    *out.headers_mut() = headers;
    *out.uri_mut() = uri.parse().map_err(|_| error::internal())?;
    if let Err(e) = up.sign(&mut out, payload) {
        warn!(error = %e, "cannot sign toward the backend");
        return Err(error::internal());
    }
    tracing::debug!(uri = %out.uri(), headers = ?out.headers(), "forwarding to the S3 backend");
    let recorded = async {
        match results_wait {
            Some(w) => w.await,
            None => Ok(()),
        }
    };
    let (response, recorded) = tokio::join!(up.client.request(out), recorded);
    recorded.map_err(|r| refusal(&r))?;
    let (response, uploaded) = match (response, uploaded) {
        (Ok(r), uploaded) => (r, uploaded),
        // The request failed because its body did: the client's fault,
        // answered as S3 answers it.
        (Err(e), Some(done)) => {
            let fault = match tokio::time::timeout(Duration::from_secs(5), done).await {
                Ok(Ok(Err(fault))) => fault,
                _ => return Err(unreachable_backend(&gate, ticket, started, &e)),
            };
            warn!(identity = %identity.name, "S3 upload refused: {fault}");
            let e = fault.to_error();
            let status = e.status_code().map_or(400, |s| s.as_u16());
            sluice_http::answer_now(&gate, ticket, status, started, &fault.to_string());
            return Err(e);
        }
        (Err(e), None) => return Err(unreachable_backend(&gate, ticket, started, &e)),
    };
    let masker = gate.lock().ok().and_then(|g| g.masker());
    relay::respond(
        response,
        Relay {
            front,
            gate,
            ticket,
            started,
            identity,
            understood,
            masker,
            range: req.headers.contains_key(http::header::RANGE),
            uploaded,
        },
    )
    .await
}

/// The bucket and key: virtual-host style when a domain is configured and
/// the host names a bucket under it, path style otherwise; decoded as s3s
/// (and so an s3s-based backend) decodes them.
fn target<G: S3Gates>(
    front: &crate::front::S3Front<G>,
    uri: &http::Uri,
    headers: &HeaderMap,
) -> S3Result<Target> {
    let bad = |e: String| error::error(S3ErrorCode::InvalidURI, e);
    let path = op::decode(uri.path()).map_err(bad)?;
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.as_str().to_owned()));
    let parsed = match (&front.domain, host.as_deref()) {
        (Some(d), Some(h)) if h.parse::<std::net::SocketAddr>().is_err() && !is_ip(h) => {
            use s3s::host::S3Host as _;
            let vh = d.parse_host_header(h)?;
            s3s::path::parse_virtual_hosted_style(vh.bucket(), &path)
        }
        _ => s3s::path::parse_path_style(&path),
    }
    .map_err(|e| bad(format!("{e:?}")))?;
    Ok(match parsed {
        s3s::path::S3Path::Root => Target::default(),
        s3s::path::S3Path::Bucket { bucket } => Target {
            bucket: Some(bucket.into()),
            key: None,
        },
        s3s::path::S3Path::Object { bucket, key } => Target {
            bucket: Some(bucket.into()),
            key: Some(key.into()),
        },
    })
}

fn is_ip(host: &str) -> bool {
    let h = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    h.parse::<std::net::IpAddr>().is_ok()
        || h.trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok()
}

/// The query's pairs, form-decoded as s3s reads them; a name given twice
/// is refused (which one would the backend use?).
fn parse_query(q: Option<&str>) -> S3Result<Vec<(String, String)>> {
    let Some(q) = q else {
        return Ok(Vec::new());
    };
    let pairs: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    for (i, (k, _)) in pairs.iter().enumerate() {
        if pairs.iter().skip(i + 1).any(|(k2, _)| k2 == k) {
            return Err(error::error(
                S3ErrorCode::InvalidArgument,
                format!("query parameter {k:?} is given more than once"),
            ));
        }
    }
    Ok(pairs)
}

fn chunked(headers: &HeaderMap) -> bool {
    headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("STREAMING-"))
}

/// Operations whose body says what they do.
fn reads_body(a: Action) -> bool {
    matches!(
        a,
        Action::DeleteObjects
            | Action::CompleteMultipartUpload
            | Action::PutBucketPolicy
            | Action::PutBucketLifecycleConfiguration
            | Action::PutBucketAcl
            | Action::PutObjectAcl
            | Action::PutBucketVersioning
            | Action::PutBucketTagging
            | Action::PutObjectTagging
            | Action::CreateBucket
    )
}

/// DeleteObjects' keys (and versions), from its XML body.
fn delete_keys(body: &[u8]) -> S3Result<Vec<(String, Option<String>)>> {
    use s3s::xml::Deserialize as _;
    let mut d = s3s::xml::Deserializer::new(body);
    let delete = s3s::dto::Delete::deserialize(&mut d).map_err(|e| {
        error::error(
            S3ErrorCode::MalformedXML,
            format!("DeleteObjects body: {e:?}"),
        )
    })?;
    let mut keys = Vec::with_capacity(delete.objects.len());
    for o in delete.objects {
        op::check_key(&o.key).map_err(|e| error::error(S3ErrorCode::InvalidArgument, e))?;
        keys.push((o.key, o.version_id));
    }
    Ok(keys)
}

/// Whether the request continues an upload this identity created through
/// Sluice for this object; an upload of another identity or object is
/// refused outright.
fn continues<G: S3Gates>(
    front: &crate::front::S3Front<G>,
    u: &Understood,
    identity: &Identity,
) -> S3Result<bool> {
    let part = matches!(
        u.action,
        Action::UploadPart
            | Action::UploadPartCopy
            | Action::CompleteMultipartUpload
            | Action::AbortMultipartUpload
    );
    let (Some(id), Some(b), Some(k), true) = (&u.upload_id, &u.target.bucket, &u.target.key, part)
    else {
        return Ok(false);
    };
    match front.uploads.check(id, identity, b, k) {
        Continues::Yes => Ok(true),
        Continues::Unknown => Ok(false),
        Continues::Mismatch => {
            warn!(identity = %identity.name, upload = %id, "S3 upload part for another identity's or object's upload refused");
            Err(error::error(
                S3ErrorCode::AccessDenied,
                format!("upload {id} was created through Sluice by another identity or for another object"),
            ))
        }
    }
}

/// The command as the audit log and approvers read it, like aws-cli names
/// things: `DeleteObject s3://bucket/key`.
fn command_text(u: &Understood, size: Option<u64>, keys: &[(String, Option<String>)]) -> String {
    let mut t = format!("{} {}", u.action, url_of(u));
    if let Some(v) = &u.version_id {
        t.push_str(&format!(" versionId={v}"));
    }
    if let Some(p) = u.prefix.as_ref().filter(|_| u.lists_keys()) {
        t.push_str(&format!(" prefix={p}"));
    }
    if let Some((src, v)) = &u.copy_source {
        t.push_str(&format!(
            " from s3://{}/{}",
            src.bucket.as_deref().unwrap_or_default(),
            src.key.as_deref().unwrap_or_default()
        ));
        if let Some(v) = v {
            t.push_str(&format!(" versionId={v}"));
        }
    }
    if let Some(id) = &u.upload_id {
        t.push_str(&format!(" upload={id}"));
    }
    if matches!(u.action, Action::PutObject | Action::UploadPart) {
        if let Some(n) = size {
            t.push_str(&format!(" ({n} bytes)"));
        }
    }
    if !keys.is_empty() {
        let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        t.push_str(&format!(" ({} keys: {})", keys.len(), names.join(", ")));
    }
    t
}

fn url_of(u: &Understood) -> String {
    sluice_core::S3Request {
        bucket: u.target.bucket.clone(),
        key: u.target.key.clone(),
        ..Default::default()
    }
    .url()
}

/// What a grant is bound to besides the command text: the query, the
/// headers that change what runs (copy source, ACLs, metadata, checksums,
/// encryption, retention), the body's digest (a body read whole) or the
/// digest and size the client declared (a streamed upload).
fn binding(
    headers: &HeaderMap,
    query: &[(String, String)],
    whole: Option<&Bytes>,
    size: Option<u64>,
) -> String {
    let mut parts: Vec<String> = query
        .iter()
        .filter(|(k, _)| !k.starts_with("X-Amz-"))
        .map(|(k, v)| format!("query {k}={v}"))
        .collect();
    let mut named: Vec<String> = headers
        .iter()
        .filter(|(k, _)| {
            let k = k.as_str();
            (k.starts_with("x-amz-")
                && !matches!(
                    k,
                    "x-amz-date"
                        | "x-amz-security-token"
                        | "x-amz-decoded-content-length"
                        | "x-amz-user-agent"
                ))
                || matches!(
                    k,
                    "content-md5" | "content-type" | "range" | "if-match" | "if-none-match"
                )
        })
        .map(|(k, v)| format!("{}: {}", k, String::from_utf8_lossy(v.as_bytes())))
        .collect();
    named.sort();
    parts.extend(named);
    match whole {
        Some(b) => parts.push(format!("body sha256={}", hex::encode(Sha256::digest(b)))),
        None => parts.push(format!("body size={}", size.unwrap_or(0))),
    }
    parts.join("; ")
}

/// The backend did not answer: recorded as a 502, told to the client as S3's
/// "try again".
fn unreachable_backend<G: HttpGate>(
    gate: &Mutex<G>,
    ticket: Ticket,
    started: Instant,
    e: &dyn std::fmt::Display,
) -> s3s::S3Error {
    warn!(error = %e, "the S3 backend cannot be reached");
    let message = format!("Sluice could not reach the S3 backend: {e}");
    sluice_http::answer_now(gate, ticket, 502, started, &message);
    error::error(S3ErrorCode::ServiceUnavailable, message)
}
