//! Redaction styles and the tokens that replace sensitive text.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::Detector;

/// How a sensitive value is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    /// `[REDACTED:email]`: nothing of the value survives.
    #[default]
    Full,
    /// Keeps the part analysts need and that does not identify the person:
    /// an email's domain (`[REDACTED]@example.com`), a card's last four digits
    /// (`[REDACTED:card:1234]`); every other kind falls back to `Full`.
    Partial,
    /// `[HASH:email:<16 hex>]`, a keyed HMAC-SHA256 prefix, so equal values stay
    /// joinable and countable without being readable. Keyed so that small value
    /// spaces (SSNs, phone numbers) cannot be reversed by hashing candidates.
    Hash,
}

/// Renders replacement tokens; holds the HMAC key so it is not passed around.
#[derive(Clone)]
pub(crate) struct Redactor {
    key: Option<Vec<u8>>,
}

impl Redactor {
    pub(crate) fn new(key: Option<Vec<u8>>) -> Redactor {
        Redactor { key }
    }

    /// Appends the token for a detector hit `value` to `out`.
    pub(crate) fn detector_token(
        &self,
        out: &mut Vec<u8>,
        d: Detector,
        value: &[u8],
        style: Style,
    ) {
        match style {
            Style::Partial => {
                if let Some(tail) = partial_tail(Some(d), value) {
                    out.extend_from_slice(tail.as_bytes());
                    return;
                }
                full(out, Some(d.name()));
            }
            Style::Hash => self.hash(out, Some(d.name()), value),
            Style::Full => full(out, Some(d.name())),
        }
    }

    /// The token for a whole value hidden by a column rule.
    pub(crate) fn column_token(&self, value: &[u8], style: Style) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        match style {
            Style::Partial => match partial_tail(None, value) {
                Some(tail) => out.extend_from_slice(tail.as_bytes()),
                None => full(&mut out, None),
            },
            Style::Hash => self.hash(&mut out, None, value),
            Style::Full => full(&mut out, None),
        }
        out
    }

    fn hash(&self, out: &mut Vec<u8>, label: Option<&str>, value: &[u8]) {
        // `Masker::new` refuses Style::Hash without a key; an empty key here
        // would only be reachable through a bug, and still yields a keyed token.
        let key = self.key.as_deref().unwrap_or_default();
        let digest = match Hmac::<Sha256>::new_from_slice(key) {
            Ok(mut mac) => {
                mac.update(value);
                hex::encode(&mac.finalize().into_bytes()[..8])
            }
            // HMAC accepts keys of any length; fail closed anyway.
            Err(_) => return full(out, label),
        };
        out.extend_from_slice(b"[HASH:");
        if let Some(label) = label {
            out.extend_from_slice(label.as_bytes());
            out.push(b':');
        }
        out.extend_from_slice(digest.as_bytes());
        out.push(b']');
    }
}

fn full(out: &mut Vec<u8>, label: Option<&str>) {
    out.extend_from_slice(b"[REDACTED");
    if let Some(label) = label {
        out.push(b':');
        out.extend_from_slice(label.as_bytes());
    }
    out.push(b']');
}

/// The partial token when the value has a part worth keeping: an email's
/// domain or a card's last four digits. `None` means "use Full".
fn partial_tail(d: Option<Detector>, value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let is_email = matches!(d, Some(Detector::Email))
        || (d.is_none() && crate::scan::whole_value_is_email(text.as_bytes()));
    if is_email {
        let at = text.rfind('@')?;
        return Some(format!("[REDACTED]@{}", &text[at + 1..]));
    }
    let is_card = matches!(d, Some(Detector::CardNumber))
        || (d.is_none() && crate::scan::whole_value_is_card(text.as_bytes()));
    if is_card {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_digit).collect();
        let last4 = std::str::from_utf8(&digits[digits.len().saturating_sub(4)..]).ok()?;
        return Some(format!("[REDACTED:card:{last4}]"));
    }
    None
}
