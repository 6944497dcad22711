//! Identities for Sluice: service-account API keys and SCRAM-SHA-256.
//!
//! API keys live in an embedded SQLite database ([`KeyStore`]). Only SCRAM
//! verifiers (StoredKey, ServerKey) are kept, never the key itself, so a
//! stolen database does not let anyone log in as a service account.
//!
//! A client proves it holds a key either with SCRAM-SHA-256 ([`ScramServer`],
//! the key never crosses the wire) or, over TLS only, with a cleartext
//! password message ([`verify_cleartext`]).
//!
//! All keys of one identity share a salt derived from an installation secret
//! and the identity name: the SCRAM server must send the salt before it knows
//! which key the client holds, and unknown identities get a stable, plausible
//! salt so they cannot be told apart from known ones.

mod cleartext;
mod crypto;
mod error;
mod names;
mod s3keys;
mod scram;
mod store;
mod types;

#[cfg(test)]
mod tests;

pub use cleartext::verify_cleartext;
pub use error::{AuthError, ScramError};
pub use names::{validate_group, validate_identity};
pub use s3keys::{CreatedS3Key, S3Secret, S3_KEY_PREFIX, SEALING_KEY_FILE};
pub use scram::{ScramServer, SCRAM_MECHANISM};
pub use store::KeyStore;
pub use types::{Authenticated, CreatedKey, Credentials, KeyInfo, KeyKind, StoredVerifier};

/// PBKDF2 iteration count for every verifier (PostgreSQL's default for
/// SCRAM-SHA-256, RFC 7677's minimum).
pub const ITERATIONS: u32 = 4096;

/// Prefix of every API key, so keys are recognisable in logs and by secret
/// scanners.
pub const KEY_PREFIX: &str = "slk_";
