//! The SCRAM-SHA-256 key derivations (RFC 5802 section 3) and key generation.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{ITERATIONS, KEY_PREFIX};

type HmacSha256 = Hmac<Sha256>;

/// Length of the derived per-identity salt.
pub const SALT_LEN: usize = 16;

/// HMAC-SHA256. HMAC accepts keys of any length, so the fallible
/// constructor cannot fail; the fallback keeps this function total anyway.
pub fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0u8; 32],
    }
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Salt shared by all keys of `identity`: derived rather than stored so an
/// unknown identity gets the same kind of stable salt as a known one.
pub fn derive_salt(installation_secret: &[u8], identity: &str) -> Vec<u8> {
    let mut input = Vec::with_capacity(5 + identity.len());
    input.extend_from_slice(b"salt:");
    input.extend_from_slice(identity.as_bytes());
    hmac(installation_secret, &input)[..SALT_LEN].to_vec()
}

/// SaltedPassword := Hi(password, salt, i), i.e. PBKDF2-HMAC-SHA256.
pub fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
    out
}

/// StoredKey := H(HMAC(SaltedPassword, "Client Key")).
pub fn stored_key(salted: &[u8; 32]) -> [u8; 32] {
    sha256(&hmac(salted, b"Client Key"))
}

/// ServerKey := HMAC(SaltedPassword, "Server Key").
pub fn server_key(salted: &[u8; 32]) -> [u8; 32] {
    hmac(salted, b"Server Key")
}

/// A freshly generated API key: its public id and the full key string.
pub struct GeneratedKey {
    pub key_id: String,
    pub secret: String,
}

/// Fills a buffer from the OS generator without panicking on failure.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], rand::Error> {
    let mut buf = [0u8; N];
    OsRng.try_fill_bytes(&mut buf)?;
    Ok(buf)
}

/// Generates `slk_<key_id>_<secret>`: key_id is "k" + 12 hex chars, secret is
/// 32 random bytes in URL-safe base64 without padding. The key is pure ASCII,
/// so SASLprep leaves it unchanged and any client computes the same proof.
pub fn generate_key() -> Result<GeneratedKey, rand::Error> {
    let id: [u8; 6] = random_bytes()?;
    let secret: [u8; 32] = random_bytes()?;
    let key_id = format!("k{}", hex::encode(id));
    let secret = format!("{KEY_PREFIX}{key_id}_{}", URL_SAFE_NO_PAD.encode(secret));
    Ok(GeneratedKey { key_id, secret })
}

/// The verifier of a key: (StoredKey, ServerKey) at [`ITERATIONS`].
pub fn verifier(key: &str, salt: &[u8]) -> ([u8; 32], [u8; 32]) {
    let salted = salted_password(key.as_bytes(), salt, ITERATIONS);
    (stored_key(&salted), server_key(&salted))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// RFC 7677 section 3 test vector (user "user", password "pencil").
    #[test]
    fn rfc7677_vector() {
        use base64::engine::general_purpose::STANDARD;
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = salted_password(b"pencil", &salt, 4096);
        let client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final_wo = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let auth = format!("{client_first_bare},{server_first},{client_final_wo}");
        let client_key = hmac(&salted, b"Client Key");
        let sig = hmac(&stored_key(&salted), auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(sig).map(|(a, b)| a ^ b).collect();
        assert_eq!(
            STANDARD.encode(proof),
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let server_sig = hmac(&server_key(&salted), auth.as_bytes());
        assert_eq!(
            STANDARD.encode(server_sig),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn key_format() {
        let k = generate_key().unwrap();
        assert_eq!(k.key_id.len(), 13);
        assert!(k.secret.starts_with(&format!("slk_{}_", k.key_id)));
        assert!(k.secret.is_ascii());
        assert_eq!(k.secret.len(), 4 + 13 + 1 + 43);
    }
}
