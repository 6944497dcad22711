//! The handlers: authentication, then one approval-store call on the
//! blocking pool (SQLite and PBKDF2 block).

use super::error::ApiError;
use super::{AdminState, OPENAPI};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use sluice_approvals::{ApprovalError, ListFilter, Status};
use sluice_core::Identity;
use std::net::SocketAddr;
use tracing::{error, info, warn};

/// Default and largest `limit` of a list.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

pub(super) async fn healthz() -> &'static str {
    "ok"
}

pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub(super) async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /openapi.json")
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint; see /openapi.json",
    )
}

#[derive(Deserialize)]
pub(super) struct ListParams {
    status: Option<String>,
    limit: Option<String>,
}

pub(super) async fn list(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Response {
    let result = async {
        authenticate(&state, &headers).await?;
        let Query(params) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
        let filter = list_filter(&params)?;
        let store = state.approvals.store.clone();
        let requests = blocking(move || store.list(filter)).await?;
        Ok::<_, ApiError>(Json(serde_json::json!({ "requests": requests })))
    }
    .await;
    reply(peer, "list", result)
}

pub(super) async fn show(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        authenticate(&state, &headers).await?;
        let store = state.approvals.store.clone();
        let lookup = id.clone();
        match blocking(move || store.get(&lookup)).await? {
            Some(request) => Ok::<_, ApiError>(Json(request)),
            None => Err(ApiError::from(&ApprovalError::UnknownRequest(id))),
        }
    }
    .await;
    reply(peer, "show", result)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    comment: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DenyBody {
    reason: Option<String>,
}

pub(super) async fn approve(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let approver = authenticate(&state, &headers).await?;
        let ApproveBody { comment } = json_body(body)?;
        let comment = comment.filter(|c| !c.trim().is_empty());
        let store = state.approvals.store.clone();
        let (who, rid) = (approver.clone(), id.clone());
        let request = blocking(move || store.approve(&rid, &who, comment))
            .await
            .map_err(|e| e.by(&approver))?;
        info!(request = %id, approver = %approver.name, decision = "approve", status = %request.status, "approval decision");
        Ok::<_, Refused>(Json(request))
    }
    .await;
    record_refusal(&state, &id, "approve", &result);
    reply(peer, "approve", result)
}

pub(super) async fn deny(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let approver = authenticate(&state, &headers).await?;
        let DenyBody { reason } = json_body(body)?;
        let reason = reason
            .filter(|r| !r.trim().is_empty())
            .ok_or_else(|| ApiError::from(&ApprovalError::ReasonRequired))
            .map_err(|e| e.by(&approver))?;
        let store = state.approvals.store.clone();
        let (who, rid) = (approver.clone(), id.clone());
        let request = blocking(move || store.deny(&rid, &who, reason))
            .await
            .map_err(|e| e.by(&approver))?;
        info!(request = %id, approver = %approver.name, decision = "deny", status = %request.status, "approval decision");
        Ok::<_, Refused>(Json(request))
    }
    .await;
    record_refusal(&state, &id, "deny", &result);
    reply(peer, "deny", result)
}

/// A refused decision goes to the audit log as well as the gateway log.
fn record_refusal<T>(state: &AdminState, id: &str, call: &str, result: &Result<T, Refused>) {
    if let Err(refused) = result {
        if !refused.error.is_internal() {
            let actor = refused.identity.as_deref().unwrap_or("(unauthenticated)");
            state
                .approvals
                .record_refusal(id, actor, call, &refused.error.message);
        }
    }
}

/// A refusal with the identity that was refused, for the log.
struct Refused {
    error: ApiError,
    identity: Option<String>,
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        Refused {
            error,
            identity: None,
        }
    }
}

impl ApiError {
    fn by(self, identity: &Identity) -> Refused {
        Refused {
            error: self,
            identity: Some(identity.name.clone()),
        }
    }
}

/// Sends the result; every refusal is logged with the peer and the reason.
fn reply<T: IntoResponse, E: Into<Refused>>(
    peer: SocketAddr,
    call: &'static str,
    result: Result<T, E>,
) -> Response {
    match result {
        Ok(body) => body.into_response(),
        Err(refused) => {
            let Refused { error, identity } = refused.into();
            let identity = identity.as_deref().unwrap_or("-");
            if error.is_internal() {
                error!(%peer, call, identity, reason = %error.message, "approval API call failed");
            } else {
                warn!(%peer, call, identity, code = error.code, reason = %error.message, "approval API call refused");
            }
            error.into_response()
        }
    }
}

/// The identity of the `Authorization: Bearer <key>` header.
async fn authenticate(state: &AdminState, headers: &HeaderMap) -> Result<Identity, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthenticated(
            "missing `Authorization: Bearer <key>` header",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            ApiError::unauthenticated("the Authorization header is not `Bearer <key>`")
        })?;
    let keys = state.keys.clone();
    match tokio::task::spawn_blocking(move || keys.authenticate(&token)).await {
        Ok(Ok(Some(authenticated))) => Ok(authenticated.identity),
        Ok(Ok(None)) => Err(ApiError::unauthenticated(
            "invalid key (unknown, revoked or wrong)",
        )),
        Ok(Err(e)) => {
            error!(error = %e, "approval API: key store failed");
            Err(ApiError::internal())
        }
        Err(e) => {
            error!(error = %e, "approval API: key check did not finish");
            Err(ApiError::internal())
        }
    }
}

/// Runs a store call on the blocking pool; internal failures are logged
/// here with their details and reach the client as a generic 500.
async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApprovalError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            let api = ApiError::from(&e);
            if api.is_internal() {
                error!(error = %e, "approval API: approval store failed");
            }
            Err(api)
        }
        Err(e) => {
            error!(error = %e, "approval API: approval store call did not finish");
            Err(ApiError::internal())
        }
    }
}

/// An optional JSON object body (empty means all fields absent).
fn json_body<T: for<'de> Deserialize<'de> + Default>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large()
        } else {
            ApiError::bad_request(e.body_text())
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not the expected JSON: {e}")))
}

fn list_filter(params: &ListParams) -> Result<ListFilter, ApiError> {
    let status = match params.status.as_deref() {
        None | Some("all") => None,
        Some(s) => Some(
            serde_json::from_value::<Status>(serde_json::Value::String(s.to_owned())).map_err(
                |_| {
                    ApiError::bad_request(format!(
                        "unknown status {s:?}: pending, approved, denied, expired, withdrawn, consumed or all"
                    ))
                },
            )?,
        ),
    };
    let limit = match params.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit must be a number from 1 to {MAX_LIMIT}"
                )))
            }
        },
    };
    Ok(ListFilter { status, limit })
}
