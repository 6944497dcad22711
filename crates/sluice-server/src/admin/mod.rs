//! The approval API on `[server] admin_listen` (being written: see the
//! approvals issue). Its entry point is fixed: `serve`.

use crate::approvals::ApprovalService;
use sluice_auth::KeyStore;
use sluice_pg::ShutdownState;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the API serves from.
#[derive(Clone)]
pub struct AdminState {
    pub approvals: ApprovalService,
    pub keys: Arc<KeyStore>,
}

/// Serves the API on `listener` (HTTPS with `tls`) until shutdown leaves
/// `Running`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: AdminState,
    mut shutdown: watch::Receiver<ShutdownState>,
) {
    let _ = (listener, tls, state);
    while *shutdown.borrow() == ShutdownState::Running {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}
