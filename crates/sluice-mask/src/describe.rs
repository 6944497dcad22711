//! A serialisable summary of a masker, for `sluice policy check` and startup logs.

use serde::Serialize;

use crate::Style;

/// What a [`crate::Masker`] masks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Description {
    /// Names of the content detectors that are on.
    pub detectors: Vec<&'static str>,
    /// Style of detector hits.
    pub style: Style,
    /// Column rules in the order they are tried.
    pub columns: Vec<ColumnDescription>,
    /// JSON key names whose values are always redacted.
    pub key_names: Vec<String>,
    /// Whether columns named after a key name are masked whole.
    pub key_named_columns: bool,
    /// Whether an HMAC key is configured (never the key itself).
    pub hash_key_set: bool,
}

/// One column rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnDescription {
    /// The pattern as written.
    pub rule: String,
    /// How its values are replaced.
    pub style: Style,
}
