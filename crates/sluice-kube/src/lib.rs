//! The Kubernetes API front: kubectl and client-go talk to Sluice as to an
//! API server. Each request is read as the API server reads it
//! ([`info::understand`]), decided through a `sluice_http::HttpGate` (the
//! shared enforcement pipeline lives in `sluice-server`), forwarded with
//! Sluice's own credentials, and its response relayed masked and recorded.
//!
//! The path of one request: `sluice_http::serve` accepts, `proxy::handle`
//! runs the phases in order.

mod body;
pub mod connect;
pub mod gate;
pub mod headers;
pub mod info;
pub mod listener;
pub mod mask;
mod proxy;
mod query;
mod relay;
pub mod spdy;
pub mod split;
pub mod status;
pub mod upstream;

pub use gate::{Answer, Ask, HttpGate, HttpGates, KubeGates, Pending, Ticket, Verdict};
pub use listener::KubeFront;
pub use sluice_http::{serve, Limits};
pub use upstream::{Credential, Upstream};
