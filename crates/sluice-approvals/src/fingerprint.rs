//! What a grant is bound to: one exact statement, from one identity, on one
//! resource.

use crate::canonical::Canonical;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sluice_core::Param;
use std::fmt;

const DOMAIN: &[u8] = b"sluice-fingerprint-v1";
/// The same, with the session state the statement runs under.
const DOMAIN_IN_STATE: &[u8] = b"sluice-fingerprint-v2";

/// SHA-256 of a statement's canonical form, lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Wraps a stored or transmitted fingerprint; only the shape is checked
    /// (64 lowercase hex digits), since its meaning can only be checked by
    /// recomputing it from the statement.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| Fingerprint(hex.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The fingerprint of `text` with `params`, sent by `identity` to `resource`:
/// the SHA-256, in lowercase hex, of this length-prefixed message (every
/// `len` a big-endian `u64`):
///
/// ```text
/// len "sluice-fingerprint-v1"
/// len resource   len identity   len text
/// count(params)
/// per param: 0x00                      (NULL)
///            0x01 len bytes            (text format)
///            0x02 len bytes            (binary format)
/// ```
///
/// The exact text is hashed, not a normalized form: an approver saw and
/// approved these bytes, and `DELETE .. WHERE id = 1` must not unlock
/// `DELETE .. WHERE id = 2`. NULL, an empty text value and an empty binary
/// value all differ, so a grant for one cannot run the other.
pub fn fingerprint(resource: &str, identity: &str, text: &str, params: &[Param]) -> Fingerprint {
    fingerprint_in("", resource, identity, text, params)
}

/// [`fingerprint`] bound also to `session_state`, the canonical description
/// of the settings that decide what the text's names mean and with whose
/// privileges it runs (search_path, role, ...). The default state (empty)
/// is the v1 form above; any other state is the same message under the
/// domain `sluice-fingerprint-v2` with `len state` after the identity, so
/// a grant for one state can never match another.
pub fn fingerprint_in(
    session_state: &str,
    resource: &str,
    identity: &str,
    text: &str,
    params: &[Param],
) -> Fingerprint {
    let mut msg = if session_state.is_empty() {
        Canonical::new(DOMAIN)
    } else {
        Canonical::new(DOMAIN_IN_STATE)
    };
    msg.field(resource.as_bytes()).field(identity.as_bytes());
    if !session_state.is_empty() {
        msg.field(session_state.as_bytes());
    }
    msg.field(text.as_bytes()).count(params.len());
    for param in params {
        match param {
            Param::Null => msg.tag(0),
            Param::Text(bytes) => msg.tag(1).field(bytes),
            Param::Binary(bytes) => msg.tag(2).field(bytes),
        };
    }
    Fingerprint(hex::encode(Sha256::digest(msg.into_bytes())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn fp(resource: &str, identity: &str, text: &str, params: &[Param]) -> Fingerprint {
        fingerprint(resource, identity, text, params)
    }

    #[test]
    fn same_inputs_give_the_same_well_formed_fingerprint() {
        let a = fp("app", "agent-1", "DELETE FROM t", &[Param::Null]);
        let b = fp("app", "agent-1", "DELETE FROM t", &[Param::Null]);
        assert_eq!(a, b);
        assert_eq!(Fingerprint::from_hex(a.as_str()), Some(a));
    }

    #[test]
    fn any_change_of_resource_identity_or_text_changes_the_fingerprint() {
        let base = fp("app", "agent-1", "DELETE FROM t", &[]);
        assert_ne!(base, fp("app2", "agent-1", "DELETE FROM t", &[]));
        assert_ne!(base, fp("app", "agent-2", "DELETE FROM t", &[]));
        assert_ne!(base, fp("app", "agent-1", "DELETE FROM t ", &[]));
    }

    #[test]
    fn field_boundaries_cannot_be_shifted() {
        assert_ne!(fp("ab", "c", "x", &[]), fp("a", "bc", "x", &[]));
        assert_ne!(fp("a", "b", "cd", &[]), fp("a", "bc", "d", &[]));
        assert_ne!(
            fp(
                "a",
                "b",
                "c",
                &[Param::Text(b"xy".to_vec()), Param::Text(Vec::new())]
            ),
            fp(
                "a",
                "b",
                "c",
                &[Param::Text(b"x".to_vec()), Param::Text(b"y".to_vec())]
            )
        );
    }

    #[test]
    fn null_empty_text_and_empty_binary_params_all_differ() {
        let null = fp("a", "b", "c", &[Param::Null]);
        let empty_text = fp("a", "b", "c", &[Param::Text(Vec::new())]);
        let empty_binary = fp("a", "b", "c", &[Param::Binary(Vec::new())]);
        let none = fp("a", "b", "c", &[]);
        assert_ne!(null, empty_text);
        assert_ne!(null, empty_binary);
        assert_ne!(empty_text, empty_binary);
        assert_ne!(none, null);
    }

    #[test]
    fn text_and_binary_params_with_the_same_bytes_differ() {
        assert_ne!(
            fp("a", "b", "c", &[Param::Text(b"1".to_vec())]),
            fp("a", "b", "c", &[Param::Binary(b"1".to_vec())])
        );
        assert_ne!(
            fp("a", "b", "c", &[Param::Text(b"1".to_vec())]),
            fp("a", "b", "c", &[Param::Text(b"2".to_vec())])
        );
    }

    #[test]
    fn the_session_state_is_part_of_the_binding() {
        let default = fp("app", "a", "DELETE FROM users WHERE id = 5", &[]);
        let same = fingerprint_in("", "app", "a", "DELETE FROM users WHERE id = 5", &[]);
        let other = fingerprint_in(
            r#"search_path = ["other"]"#,
            "app",
            "a",
            "DELETE FROM users WHERE id = 5",
            &[],
        );
        assert_eq!(default, same);
        assert_ne!(default, other);
        // The state is its own field: it cannot be shifted into the text.
        assert_ne!(
            fingerprint_in("x", "app", "a", "y", &[]),
            fingerprint_in("", "app", "a", "xy", &[])
        );
    }

    #[test]
    fn malformed_hex_is_not_a_fingerprint() {
        assert_eq!(Fingerprint::from_hex("abc"), None);
        assert_eq!(Fingerprint::from_hex(&"A".repeat(64)), None);
    }
}
