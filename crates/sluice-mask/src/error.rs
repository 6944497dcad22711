//! Errors raised while building a [`crate::Masker`]; masking itself never fails
//! (it fails closed instead: a value it cannot understand is redacted).

use thiserror::Error;

/// Why a masking configuration was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MaskError {
    /// `Style::Hash` needs a key: without one, hashes of low-entropy values
    /// (emails, SSNs) could be reversed by brute force.
    #[error("style \"hash\" needs an HMAC key (hmac_key) and none was configured")]
    HashWithoutKey,
    /// A column pattern could not be parsed.
    #[error("invalid column pattern {pattern:?}: {reason}")]
    BadPattern {
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A detector name in the configuration is not known.
    #[error("unknown detector {0:?}")]
    UnknownDetector(String),
}
