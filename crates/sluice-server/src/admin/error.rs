//! Errors of the approval API: an HTTP status, a stable machine code and a
//! message for people, sent as `{"error": code, "message": message}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sluice_approvals::ApprovalError;

/// A refused or failed call. `message` is what the caller sees; for
/// internal failures the details go to the log, not here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn internal() -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the gateway's log has the details",
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn too_large() -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request bodies are limited to {} bytes", super::MAX_BODY),
        )
    }

    /// True for failures of the gateway rather than refusals of the call.
    pub fn is_internal(&self) -> bool {
        self.status.is_server_error()
    }
}

impl From<&ApprovalError> for ApiError {
    fn from(e: &ApprovalError) -> Self {
        use ApprovalError as E;
        let (status, code) = match e {
            E::UnknownRequest(_) => (StatusCode::NOT_FOUND, "unknown_request"),
            E::SelfApproval { .. } => (StatusCode::FORBIDDEN, "self_approval"),
            E::AgentApprover { .. } => (StatusCode::FORBIDDEN, "agent_approver"),
            E::NotInApproverGroup { .. } => (StatusCode::FORBIDDEN, "not_in_approver_group"),
            E::AlreadyVoted { .. } => (StatusCode::CONFLICT, "already_voted"),
            E::NotPending { .. } => (StatusCode::CONFLICT, "not_pending"),
            E::Expired { .. } => (StatusCode::CONFLICT, "expired"),
            E::ReasonRequired => (StatusCode::BAD_REQUEST, "reason_required"),
            E::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            // Store failures, and grant errors no API call should produce.
            _ => return ApiError::internal(),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn approval_refusals_map_to_their_http_statuses_and_codes() {
        let cases = [
            (ApprovalError::UnknownRequest("apr_1".into()), 404),
            (
                ApprovalError::SelfApproval {
                    id: "apr_1".into(),
                    approver: "alice".into(),
                },
                403,
            ),
            (
                ApprovalError::AgentApprover {
                    approver: "bot".into(),
                    group: "agents".into(),
                },
                403,
            ),
            (
                ApprovalError::NotInApproverGroup {
                    id: "apr_1".into(),
                    approver: "eve".into(),
                    group: "dba".into(),
                },
                403,
            ),
            (
                ApprovalError::AlreadyVoted {
                    id: "apr_1".into(),
                    approver: "bob".into(),
                },
                409,
            ),
            (ApprovalError::ReasonRequired, 400),
            (ApprovalError::InvalidRequest("x".into()), 400),
        ];
        for (e, status) in cases {
            let api = ApiError::from(&e);
            assert_eq!(api.status.as_u16(), status, "{e}");
            assert_eq!(api.message, e.to_string());
        }
    }

    #[test]
    fn store_failures_become_a_generic_500_without_details() {
        let e = ApprovalError::Corrupt {
            what: "row apr_1".into(),
            detail: "database disk image is malformed".into(),
        };
        let api = ApiError::from(&e);
        assert_eq!(api.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(api.code, "internal");
        assert!(!api.message.contains("malformed"), "{}", api.message);
    }

    #[test]
    fn unauthenticated_responses_carry_www_authenticate_bearer() {
        let r = ApiError::unauthenticated("no key").into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }
}
