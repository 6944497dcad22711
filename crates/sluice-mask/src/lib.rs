//! Redaction of credentials and personal data in the values Sluice returns.
//!
//! Agents downstream of the gateway must never see raw secrets or personal
//! data. This crate decides what to hide and performs the redaction; it does
//! no I/O and knows nothing of the wire protocol. The gateway asks
//! [`Masker::column`] once per result column and [`Masker::mask`] per value,
//! row by row; [`Masker::mask_text`] covers error details, notices and NOTIFY
//! payloads.
//!
//! Two kinds of rules:
//! - column rules ([`ColumnRule`]) hide a whole column by name, table or type;
//! - content detectors ([`Detector`]) find sensitive substrings in any value
//!   (emails, card numbers, cloud keys, private keys, JWTs...), and key-name
//!   rules hide the values of secret-looking JSON keys.
//!
//! Everything defaults to on: forgetting to configure masking must not leak.

mod column;
mod config;
mod describe;
mod detector;
mod error;
mod json;
mod keyname;
mod masked;
mod masker;
mod scan;
mod style;

pub use column::{ColumnInfo, ColumnMask, ColumnPattern, ColumnRule};
pub use config::MaskConfig;
pub use describe::{ColumnDescription, Description};
pub use detector::{Detector, DetectorSet};
pub use error::MaskError;
pub use keyname::DEFAULT_KEY_NAMES;
pub use masked::{Masked, ValueKind};
pub use masker::Masker;
pub use style::Style;
