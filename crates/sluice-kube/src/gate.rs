//! The Kubernetes front's side of the gate seam (`sluice_http::gate`):
//! bearer tokens.

use sluice_core::Identity;
pub use sluice_http::gate::*;

pub trait KubeGates: HttpGates {
    /// The identity a bearer token proves, if any (may block: call off the
    /// runtime).
    fn authenticate(&self, token: &str) -> Option<Identity>;
}
