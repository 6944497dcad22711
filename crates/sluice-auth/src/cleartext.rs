//! Cleartext password check, for clients that cannot do SCRAM. The caller
//! must only use it over TLS: the key crosses the wire.

use subtle::ConstantTimeEq;

use crate::crypto::{salted_password, stored_key};
use crate::{Authenticated, Credentials};

/// Derives StoredKey from `key` and compares it, in constant time, with every
/// active key of the identity. The PBKDF2 work is done even when the identity
/// has no keys, so timing does not reveal whether it exists.
pub fn verify_cleartext(credentials: &Credentials, key: &str) -> Option<Authenticated> {
    let salted = salted_password(key.as_bytes(), &credentials.salt, credentials.iterations);
    let candidate = stored_key(&salted);
    let mut matched = None;
    for verifier in &credentials.keys {
        let equal: bool = candidate.ct_eq(&verifier.stored_key).into();
        if equal && matched.is_none() {
            matched = Some(verifier);
        }
    }
    matched.map(|v| Authenticated::from_key(&credentials.identity, v))
}
