//! The Sluice runtime: reads the config, opens the stores, and runs the
//! listeners until shutdown.

pub mod admin;
pub mod approvals;
pub mod config;
pub mod http_gate;
pub mod kube;
pub mod masking;
mod pipeline;
pub mod policy;
pub mod runtime;
pub mod s3;
pub mod tls;

pub use config::{Config, ConfigError, LogFormat};
pub use runtime::{prepare, serve, termination_signal, Prepared, ServeError};
