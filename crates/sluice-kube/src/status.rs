//! Kubernetes `Status` objects: how the API server says no, and so how
//! Sluice does (kubectl prints `Error from server (<reason>): <message>`).

use http::StatusCode;
use serde_json::json;
use sluice_core::{Refusal, RefusalKind};

/// The HTTP code and `reason` a refusal is rendered with.
pub fn code_of(kind: RefusalKind) -> (StatusCode, &'static str) {
    match kind {
        RefusalKind::Denied | RefusalKind::ApprovalRequired | RefusalKind::ApprovalRefused => {
            (StatusCode::FORBIDDEN, "Forbidden")
        }
        RefusalKind::ApprovalEnded => (StatusCode::GATEWAY_TIMEOUT, "Timeout"),
        RefusalKind::Unrecorded => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
        RefusalKind::Unsupported => (StatusCode::NOT_IMPLEMENTED, "NotImplemented"),
        RefusalKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
    }
}

/// A `Status` body (`kind: Status`, `status: Failure`).
pub fn body(code: StatusCode, reason: &str, message: &str) -> Vec<u8> {
    let status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    // Serialising a json! value cannot fail; an empty body would still be
    // a refusal.
    serde_json::to_vec(&status).unwrap_or_default()
}

/// The body of a refusal from the pipeline.
pub fn refusal(r: &Refusal) -> (StatusCode, Vec<u8>) {
    let (code, reason) = code_of(r.kind);
    (code, body(code, reason, &r.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_denial_is_a_403_status_that_names_the_policy() {
        let r = Refusal::new(
            RefusalKind::Denied,
            "denied by policy \"no-delete\": no \"quotes\"\n",
        )
        .with_hint("The request did not reach the API server.");
        let (code, body) = refusal(&r);
        assert_eq!(code, 403);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["reason"], "Forbidden");
        assert_eq!(v["code"], 403);
        assert!(v["message"].as_str().unwrap().contains("no-delete"));
    }
}
