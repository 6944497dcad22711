//! Errors say which side failed: the client (downstream), the target
//! (upstream) or the gateway itself, so logs and replies can tell "your
//! client sent garbage" from "the database is down".

use std::io;

/// A malformed or unexpected message, from either side.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("message '{}' of {len} bytes exceeds the limit of {max} bytes", *tag as char)]
    TooLarge { tag: u8, len: usize, max: usize },
    #[error("more than {max} messages held in one extended-protocol batch (send Sync or Flush)")]
    BatchTooLong { max: usize },
    #[error("message '{}' declares an invalid length {declared}", *tag as char)]
    BadLength { tag: u8, declared: i64 },
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("text is not valid UTF-8: Sluice reads statements and names as UTF-8, so under a client_encoding other than UTF8 only ASCII text passes (set client_encoding to UTF8)")]
    NotUtf8,
    #[error("unexpected message '{}' {during}", *tag as char)]
    Unexpected { tag: u8, during: &'static str },
    #[error("unknown message type 0x{0:02x}")]
    UnknownMessage(u8),
    #[error("unsupported protocol version {}.{}", .0 >> 16, .0 & 0xffff)]
    UnsupportedVersion(i32),
    #[error("connection closed {0}")]
    Closed(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("client I/O error: {0}")]
    ClientIo(#[source] io::Error),
    #[error("client protocol violation: {0}")]
    ClientProtocol(#[source] ProtocolError),
    #[error("backend I/O error: {0}")]
    BackendIo(#[source] io::Error),
    #[error("backend protocol violation: {0}")]
    BackendProtocol(#[source] ProtocolError),
    #[error("backend rejected the connection: {0}")]
    BackendRejected(String),
    #[error("backend authentication failed: {0}")]
    BackendAuth(String),
    #[error("backend TLS: {0}")]
    BackendTls(String),
    #[error("timed out {0}")]
    Timeout(&'static str),
    #[error("internal error: {0}")]
    Internal(String),
    /// A forwarded read's record could not be made durable: its results
    /// are withheld and the session ends.
    #[error("statement could not be recorded: {}", .0.message)]
    Unrecorded(crate::messages::PgErrorReply),
}

impl PgError {
    /// True when the failure is on the target's side (the client did nothing wrong).
    pub fn is_upstream(&self) -> bool {
        matches!(
            self,
            PgError::BackendIo(_)
                | PgError::BackendProtocol(_)
                | PgError::BackendRejected(_)
                | PgError::BackendAuth(_)
                | PgError::BackendTls(_)
        )
    }
}
