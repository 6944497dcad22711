//! The Kubernetes resource's front as the shared listener
//! (`sluice_http::listener`) serves it.

use crate::connect::ConnectCache;
use crate::gate::KubeGates;
use crate::proxy::{self, ProxyBody};
use crate::upstream::Upstream;
use http::{Request, Response};
use hyper::body::Incoming;
use sluice_http::{Connection, HttpGates, Limits};
use std::sync::{Arc, Mutex};

/// What the request handler needs from the gateway.
pub trait Front: sluice_http::Front {
    fn authenticate(&self, token: &str) -> Option<sluice_core::Identity>;
    fn upstream(&self) -> &Upstream;
    fn connects(&self) -> &ConnectCache<Arc<Mutex<Self::Gate>>>;
}

/// One Kubernetes resource's front.
pub struct KubeFront<G: KubeGates> {
    pub gates: Arc<G>,
    pub resource: String,
    pub upstream: Upstream,
    pub limits: Limits,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Connect decisions kept for the client's fallback attempt.
    pub connects: ConnectCache<Arc<Mutex<G::Gate>>>,
}

impl<G: KubeGates> sluice_http::Front for KubeFront<G> {
    type Gate = G::Gate;
    type Body = ProxyBody;
    const PROTOCOL: &'static str = "Kubernetes";
    fn gates(&self) -> &dyn HttpGates<Gate = G::Gate> {
        &*self.gates
    }
    fn resource(&self) -> &str {
        &self.resource
    }
    fn limits(&self) -> Limits {
        self.limits
    }
    fn handle(
        self: Arc<Self>,
        conn: Arc<Connection<G::Gate>>,
        req: Request<Incoming>,
    ) -> impl std::future::Future<Output = Response<ProxyBody>> + Send {
        proxy::handle(self, conn, req)
    }
}

impl<G: KubeGates> Front for KubeFront<G> {
    fn authenticate(&self, token: &str) -> Option<sluice_core::Identity> {
        self.gates.authenticate(token)
    }
    fn upstream(&self) -> &Upstream {
        &self.upstream
    }
    fn connects(&self) -> &ConnectCache<Arc<Mutex<G::Gate>>> {
        &self.connects
    }
}
