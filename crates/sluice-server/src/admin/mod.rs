//! The approval API on `[server] admin_listen`: approvers list, show,
//! approve and deny held statements over HTTP(S) with their Sluice key as a
//! bearer token. `/openapi.json` describes it; `/healthz` answers "ok".
//!
//! Who may do what: any authenticated identity may list and show requests
//! (approvers need to read them, and an agent may poll its own request);
//! deciding is checked by the approval store: never one's own request,
//! never a member of an agent group, only members of the request's
//! approver group, one vote each.
//!
//! One accept loop serves both plain HTTP and HTTPS (hyper per connection),
//! so the tests over plain HTTP run the same code as production over TLS.

mod error;
mod handlers;

use crate::approvals::ApprovalService;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use sluice_auth::KeyStore;
use sluice_pg::ShutdownState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info, warn};

pub use error::ApiError;

/// Largest request body accepted; larger gets 413.
pub const MAX_BODY: usize = 64 * 1024;

/// A client must finish the TLS handshake, and send each request's
/// headers, within this.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// After shutdown, how long calls in flight may take to finish.
const DRAIN: Duration = Duration::from_secs(5);

/// The OpenAPI 3.0 description of this API, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What the API serves from.
#[derive(Clone)]
pub struct AdminState {
    pub approvals: ApprovalService,
    pub keys: Arc<KeyStore>,
}

/// The routes. Handlers expect a `ConnectInfo<SocketAddr>` extension (the
/// peer), which [`serve`] inserts into every request.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .route("/openapi.json", get(handlers::openapi))
        .route("/v1/approvals", get(handlers::list))
        .route("/v1/approvals/{id}", get(handlers::show))
        .route("/v1/approvals/{id}/approve", post(handlers::approve))
        .route("/v1/approvals/{id}/deny", post(handlers::deny))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Serves the API on `listener` (HTTPS with `tls`) until shutdown leaves
/// `Running`; then stops accepting, lets calls in flight finish (up to
/// a few seconds) and closes idle connections.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: AdminState,
    mut shutdown: watch::Receiver<ShutdownState>,
) {
    let router = router(state);
    let graceful = GracefulShutdown::new();
    loop {
        if *shutdown.borrow_and_update() != ShutdownState::Running {
            break;
        }
        let (tcp, peer) = tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(error = %e, "approval API: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(tcp, peer, router, watcher).await,
                Some(acceptor) => {
                    match tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => serve_connection(stream, peer, router, watcher).await,
                        Ok(Err(e)) => {
                            debug!(%peer, error = %e, "approval API: TLS handshake failed")
                        }
                        Err(_) => debug!(%peer, "approval API: TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    info!("approval API: stopped accepting");
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("approval API: calls still running after the drain period");
    }
}

/// One HTTP/1.1 connection (keep-alive), the peer address attached to
/// every request for the handlers' logs.
async fn serve_connection<S>(stream: S, peer: SocketAddr, router: Router, watcher: Watcher)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut router = router.clone();
        tower::Service::call(&mut router, request)
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(CLIENT_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(connection).await {
        debug!(%peer, error = %e, "approval API: connection ended with an error");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    #[test]
    fn openapi_document_is_json_and_describes_every_route() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
        for path in [
            "/v1/approvals",
            "/v1/approvals/{id}",
            "/v1/approvals/{id}/approve",
            "/v1/approvals/{id}/deny",
            "/openapi.json",
            "/healthz",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path}");
        }
    }
}
