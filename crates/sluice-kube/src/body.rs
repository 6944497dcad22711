//! How the Kubernetes relay treats a response body.

pub use sluice_http::body::{BodyError, ChannelBody, Lines};

/// How the relay treats the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Passed as they come (no masking for this identity).
    Raw,
    /// One JSON document: a list item by item, anything else once whole.
    Document { secrets: bool },
    /// Newline-delimited JSON (watch events), each masked as it completes.
    JsonLines { secrets: bool },
    /// Text lines (logs), each masked as it completes.
    TextLines,
}
