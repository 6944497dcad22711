//! The masking configuration, as read from the `[masking]` section of the
//! gateway's TOML file. Every default is the secure one.

use serde::{Deserialize, Serialize};

use crate::{keyname::DEFAULT_KEY_NAMES, ColumnRule, DetectorSet, Style};

/// What to mask and how.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaskConfig {
    /// Content detectors that run on every value; default: all of them.
    pub detectors: DetectorSet,
    /// Column rules: columns masked as a whole.
    pub columns: Vec<ColumnRule>,
    /// JSON key names whose values are always redacted (matched as words,
    /// case-insensitively: `password` covers `db_password` and `dbPassword`).
    pub key_names: Vec<String>,
    /// Also mask whole columns whose name contains one of `key_names` (a column
    /// `password_hash` or `api_key` holds secrets no detector can recognise).
    pub key_named_columns: bool,
    /// Style for detector hits.
    pub style: Style,
    /// HMAC key for [`Style::Hash`]. Never read from the config file (secrets
    /// come from the environment or a file); the gateway fills it in.
    #[serde(skip)]
    pub hmac_key: Option<Vec<u8>>,
}

impl Default for MaskConfig {
    fn default() -> Self {
        MaskConfig {
            detectors: DetectorSet::all(),
            columns: Vec::new(),
            key_names: DEFAULT_KEY_NAMES.iter().map(|s| s.to_string()).collect(),
            key_named_columns: true,
            style: Style::Full,
            hmac_key: None,
        }
    }
}

impl std::fmt::Debug for MaskConfig {
    /// Hides the HMAC key: configs end up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskConfig")
            .field("detectors", &self.detectors)
            .field("columns", &self.columns)
            .field("key_names", &self.key_names)
            .field("key_named_columns", &self.key_named_columns)
            .field("style", &self.style)
            .field("hmac_key", &self.hmac_key.as_ref().map(|_| "<set>"))
            .finish()
    }
}
