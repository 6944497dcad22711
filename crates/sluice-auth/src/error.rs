//! Error types: storage/administration errors and SCRAM exchange errors are
//! kept apart because callers map them differently (an `AuthError` is an
//! internal failure, a `ScramError` is the client's fault).

use std::path::PathBuf;

/// Errors of the key store: storage, invalid names, corrupt records.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The data directory could not be created or the database file could
    /// not be prepared.
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An SQLite error (open, schema, query).
    #[error("key store database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// An identity name that does not follow the naming rules.
    #[error("invalid identity name {name:?}: {reason}")]
    InvalidIdentity { name: String, reason: &'static str },
    /// A group name that does not follow the naming rules.
    #[error("invalid group name {name:?}: {reason}")]
    InvalidGroup { name: String, reason: &'static str },
    /// A stored row that cannot be what this crate wrote (wrong length etc.).
    #[error("corrupt key store record: {0}")]
    Corrupt(String),
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(#[from] rand::Error),
    /// A timestamp could not be formatted.
    #[error("cannot format timestamp: {0}")]
    Time(#[from] time::error::Format),
    /// A previous holder of the connection lock panicked.
    #[error("key store lock poisoned")]
    LockPoisoned,
}

/// Errors of one SCRAM-SHA-256 exchange.
///
/// Wrong identity, wrong key and revoked key all give [`ScramError::InvalidProof`]
/// on purpose: the client must not learn which one it was.
#[derive(Debug, thiserror::Error)]
pub enum ScramError {
    /// The message does not follow RFC 5802's grammar.
    #[error("malformed SCRAM message: {0}")]
    Malformed(String),
    /// The client asked for channel binding (`p=`), which we do not offer.
    #[error("channel binding is not supported (only SCRAM-SHA-256 is offered)")]
    ChannelBindingNotSupported,
    /// The `c=` attribute of client-final does not repeat the gs2 header.
    #[error("SCRAM channel binding check failed")]
    ChannelBindingMismatch,
    /// The nonce in client-final is not the one the server sent.
    #[error("SCRAM nonce does not match")]
    NonceMismatch,
    /// The proof matches no active key of the identity.
    #[error("invalid SCRAM proof")]
    InvalidProof,
    /// A message arrived in the wrong state of the exchange.
    #[error("SCRAM message out of order")]
    OutOfOrder,
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(#[from] rand::Error),
}
