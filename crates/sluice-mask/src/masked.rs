//! The result of masking one value.

use crate::DetectorSet;

/// How a value may be rewritten, decided by the gateway from the column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// Any text type: sensitive parts are replaced in place.
    Text,
    /// `json`/`jsonb`: key-name rules and detectors apply to the strings of
    /// the document, which stays valid JSON. Text that does not parse is
    /// masked as `Text`.
    Json,
    /// A type whose text form a replacement would not parse as (numeric,
    /// uuid, date, inet...): the whole value becomes NULL when anything is
    /// found or the column is masked.
    Opaque,
}

/// The masked form of one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Masked<'a> {
    /// Nothing to hide; the original bytes.
    Unchanged(&'a [u8]),
    /// The value to send instead, and the detectors that fired (empty when a
    /// column rule or key-name rule alone caused the replacement).
    Replaced(Vec<u8>, DetectorSet),
    /// Send NULL instead, and the detectors that fired.
    Null(DetectorSet),
}

impl<'a> Masked<'a> {
    /// The detectors that fired on this value.
    pub fn hits(&self) -> DetectorSet {
        match self {
            Masked::Unchanged(_) => DetectorSet::none(),
            Masked::Replaced(_, hits) | Masked::Null(hits) => *hits,
        }
    }

    /// Whether the value must be changed before it is sent.
    pub fn is_changed(&self) -> bool {
        !matches!(self, Masked::Unchanged(_))
    }

    /// The bytes to send; `None` means NULL.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Masked::Unchanged(v) => Some(v),
            Masked::Replaced(v, _) => Some(v),
            Masked::Null(_) => None,
        }
    }
}
