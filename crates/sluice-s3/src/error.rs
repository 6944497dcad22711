//! What an S3 client is told: S3's own XML errors, which aws-cli and boto3
//! print as `An error occurred (AccessDenied) when calling ...: <message>`.

use s3s::{S3Error, S3ErrorCode};
use sluice_core::{Refusal, RefusalKind};

/// A refusal from the pipeline as an S3 error: the message carries the
/// policy and its reason, the detail the object that decided it.
pub fn refusal(r: &Refusal) -> S3Error {
    let code = match r.kind {
        RefusalKind::Denied | RefusalKind::ApprovalRequired | RefusalKind::ApprovalRefused => {
            S3ErrorCode::AccessDenied
        }
        RefusalKind::ApprovalEnded => S3ErrorCode::RequestTimeout,
        RefusalKind::Unrecorded => S3ErrorCode::ServiceUnavailable,
        RefusalKind::Unsupported => S3ErrorCode::NotImplemented,
        RefusalKind::Internal => S3ErrorCode::InternalError,
    };
    S3Error::with_message(code, r.to_string())
}

pub fn error(code: S3ErrorCode, message: impl Into<String>) -> S3Error {
    S3Error::with_message(code, message.into())
}

pub fn internal() -> S3Error {
    error(
        S3ErrorCode::InternalError,
        "Sluice failed internally; the gateway log has the cause",
    )
}

/// An S3 error document Sluice writes itself, before s3s sees the request.
pub fn response(status: http::StatusCode, code: &str, message: &str) -> http::Response<s3s::Body> {
    let escape = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code><Message>{}</Message></Error>",
        escape(code),
        escape(message)
    );
    let mut r = http::Response::new(s3s::Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    r
}
