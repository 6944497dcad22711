//! Upload bodies on their way to the backend: streamed, never held whole.
//! The last chunk is held back until every claim about the body checks
//! out (its length, the SHA-256 it was signed with, its trailing
//! checksum): a body that fails one never reaches the backend complete,
//! so the backend stores nothing.

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use s3s::checksum::ChecksumHasher;
use s3s::crypto::Checksum as _;
use s3s::S3ErrorCode;
use sha2::{Digest, Sha256};
use sluice_http::{BodyError, ChannelBody};
use std::time::Duration;
use tokio::sync::oneshot;

pub type UpBody = BoxBody<Bytes, BodyError>;

pub fn full(b: Bytes) -> UpBody {
    Full::new(b).map_err(|never| match never {}).boxed()
}

/// What the client claimed about its body.
pub struct Claims {
    /// `Content-Length`, or `x-amz-decoded-content-length` for a chunked
    /// upload.
    pub length: Option<u64>,
    /// `x-amz-content-sha256` when it is a digest.
    pub sha256: Option<String>,
    /// The trailing checksum's header (`x-amz-checksum-crc32`, ...) and
    /// where s3s leaves the trailers once read.
    pub trailer: Option<(String, s3s::TrailingHeaders)>,
}

/// What passed, for the record.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub bytes: u64,
    pub sha256: String,
}

/// Why an upload was cut off, as the S3 error a client is answered with.
#[derive(Debug, Clone)]
pub struct BodyFault {
    pub code: S3ErrorCode,
    pub message: String,
}

impl BodyFault {
    fn new(code: S3ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A failure s3s found while reading the body (a chunk signature, the
    /// chunk framing, a short body). s3s's error types are private, so its
    /// message is what tells them apart; anything else is an incomplete
    /// body.
    fn from_s3s(e: &dyn std::error::Error) -> Self {
        let text = e.to_string();
        let code = if text.contains("SignatureMismatch") {
            S3ErrorCode::SignatureDoesNotMatch
        } else if text.contains("Sha256Mismatch") {
            sha256_mismatch()
        } else {
            S3ErrorCode::IncompleteBody
        };
        Self::new(code, format!("the upload failed: {text}"))
    }

    /// The error the client is answered with: a client fault is a 400
    /// unless S3 gives its code another status.
    pub fn to_error(&self) -> s3s::S3Error {
        let mut e = s3s::S3Error::with_message(self.code.clone(), self.message.clone());
        if e.status_code().is_none() {
            e.set_status_code(http::StatusCode::BAD_REQUEST);
        }
        e
    }
}

/// S3's code for a body that does not match its signed digest; s3s has no
/// name for it.
fn sha256_mismatch() -> S3ErrorCode {
    S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into())
}

impl std::fmt::Display for BodyFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code.as_str())
    }
}

/// The body toward the backend, and what it turned out to be (or why it
/// was cut off).
pub fn stream(
    mut from: s3s::Body,
    claims: Claims,
    idle: Duration,
) -> (UpBody, oneshot::Receiver<Result<Uploaded, BodyFault>>) {
    let (tx, body) = ChannelBody::channel(4);
    let (done, result) = oneshot::channel();
    tokio::spawn(async move {
        let mut sha = Sha256::new();
        let mut sum = claims.trailer.as_ref().and_then(|(name, _)| hasher(name));
        let mut n: u64 = 0;
        let mut held: Option<Bytes> = None;
        let outcome = loop {
            match tokio::time::timeout(idle, from.frame()).await {
                Err(_) => {
                    break Err(BodyFault::new(
                        S3ErrorCode::RequestTimeout,
                        format!("no body bytes for {} s", idle.as_secs()),
                    ))
                }
                Ok(None) => break Ok(()),
                Ok(Some(Err(e))) => break Err(BodyFault::from_s3s(&*e)),
                Ok(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    sha.update(&data);
                    if let Some(h) = sum.as_mut() {
                        h.update(&data);
                    }
                    n += data.len() as u64;
                    // Past the declared length: the backend would stop
                    // reading at it and store what it has, so nothing
                    // more is released (the held chunk included).
                    if let Some(len) = claims.length.filter(|l| n > *l) {
                        break Err(BodyFault::new(
                            S3ErrorCode::IncompleteBody,
                            format!("the body runs past the {len} bytes declared"),
                        ));
                    }
                    if let Some(prev) = held.replace(data) {
                        if tx.send(Ok(prev)).await.is_err() {
                            break Err(BodyFault::new(
                                S3ErrorCode::ServiceUnavailable,
                                "the backend stopped reading the upload",
                            ));
                        }
                    }
                }
            }
        };
        let digest = hex::encode(sha.finalize());
        let outcome = outcome.and_then(|()| {
            if let Some(len) = claims.length.filter(|l| *l != n) {
                return Err(BodyFault::new(
                    S3ErrorCode::IncompleteBody,
                    format!("the body is {n} bytes, not the {len} declared"),
                ));
            }
            if let Some(claimed) = claims.sha256.as_ref().filter(|c| **c != digest) {
                return Err(BodyFault::new(
                    sha256_mismatch(),
                    format!("the body's SHA-256 is {digest}, not the {claimed} it was signed with"),
                ));
            }
            if let (Some((name, trailers)), Some(h)) = (&claims.trailer, sum) {
                let got = checksum_value(h.finalize(), name);
                let sent = trailers
                    .read(|t| {
                        t.get(name.as_str())
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    })
                    .flatten();
                if sent.as_deref() != got.as_deref() {
                    return Err(BodyFault::new(
                        S3ErrorCode::BadDigest,
                        format!("the trailing {name} is {sent:?}, the body's is {got:?}"),
                    ));
                }
            }
            Ok(())
        });
        match outcome {
            Ok(()) => {
                if let Some(last) = held {
                    let _ = tx.send(Ok(last)).await;
                }
                let _ = done.send(Ok(Uploaded {
                    bytes: n,
                    sha256: digest,
                }));
            }
            Err(why) => {
                let _ = tx.send(Err(BodyError(why.message.clone()))).await;
                let _ = done.send(Err(why));
            }
        }
    });
    (body.boxed(), result)
}

/// A hasher for the trailing checksum `name`; `None` for one Sluice does
/// not know (the request is refused before it gets here).
fn hasher(name: &str) -> Option<ChecksumHasher> {
    let mut h = ChecksumHasher::default();
    match name {
        "x-amz-checksum-crc32" => h.crc32 = Some(s3s::crypto::Crc32::new()),
        "x-amz-checksum-crc32c" => h.crc32c = Some(s3s::crypto::Crc32c::new()),
        "x-amz-checksum-crc64nvme" => h.crc64nvme = Some(s3s::crypto::Crc64Nvme::new()),
        "x-amz-checksum-sha1" => h.sha1 = Some(s3s::crypto::Sha1::new()),
        "x-amz-checksum-sha256" => h.sha256 = Some(s3s::crypto::Sha256::new()),
        _ => return None,
    }
    Some(h)
}

pub fn known_trailer(name: &str) -> bool {
    hasher(name).is_some()
}

fn checksum_value(c: s3s::dto::Checksum, name: &str) -> Option<String> {
    match name {
        "x-amz-checksum-crc32" => c.checksum_crc32,
        "x-amz-checksum-crc32c" => c.checksum_crc32c,
        "x-amz-checksum-crc64nvme" => c.checksum_crc64nvme,
        "x-amz-checksum-sha1" => c.checksum_sha1,
        "x-amz-checksum-sha256" => c.checksum_sha256,
        _ => None,
    }
}
