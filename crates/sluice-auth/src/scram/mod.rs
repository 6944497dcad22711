//! Server side of one SCRAM-SHA-256 exchange (RFC 5802, RFC 7677), as
//! PostgreSQL runs it inside SASL messages. No channel binding: we only
//! advertise `SCRAM-SHA-256`, never `-PLUS`.
//!
//! All keys of an identity share one salt, so after the client-final message
//! the proof can be checked against each active key's StoredKey; the one that
//! matches says which key the client holds.

mod parse;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::crypto::{hmac, random_bytes, sha256};
use crate::{Authenticated, Credentials, ScramError, StoredVerifier};

/// The SASL mechanism name to advertise in AuthenticationSASL.
pub const SCRAM_MECHANISM: &str = "SCRAM-SHA-256";

enum State {
    Initial,
    SentServerFirst {
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    },
    /// Finished, successfully or not: any further message is out of order.
    Done,
}

/// Server side of one SCRAM-SHA-256 exchange.
pub struct ScramServer {
    credentials: Credentials,
    state: State,
}

impl ScramServer {
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials,
            state: State::Initial,
        }
    }

    /// Takes the client-first-message (SASLInitialResponse data) and returns
    /// the server-first-message. Any error ends the exchange.
    pub fn client_first(&mut self, data: &[u8]) -> Result<Vec<u8>, ScramError> {
        if !matches!(
            std::mem::replace(&mut self.state, State::Done),
            State::Initial
        ) {
            return Err(ScramError::OutOfOrder);
        }
        let message = std::str::from_utf8(data)
            .map_err(|_| ScramError::Malformed("message is not UTF-8".into()))?;
        let first = parse::client_first(message)?;
        let server_nonce: [u8; 18] = random_bytes()?;
        let nonce = format!("{}{}", first.client_nonce, STANDARD.encode(server_nonce));
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&self.credentials.salt),
            self.credentials.iterations
        );
        let reply = server_first.clone().into_bytes();
        self.state = State::SentServerFirst {
            gs2_header: first.gs2_header,
            client_first_bare: first.bare,
            server_first,
            nonce,
        };
        Ok(reply)
    }

    /// Takes the client-final-message, checks channel binding data and nonce,
    /// verifies the proof against every active key of the identity, and
    /// returns the matched key and the server-final-message (`v=...`).
    ///
    /// Unknown identity, wrong key and revoked key all give
    /// [`ScramError::InvalidProof`].
    pub fn client_final(&mut self, data: &[u8]) -> Result<(Authenticated, Vec<u8>), ScramError> {
        let State::SentServerFirst {
            gs2_header,
            client_first_bare,
            server_first,
            nonce,
        } = std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(ScramError::OutOfOrder);
        };
        let message = std::str::from_utf8(data)
            .map_err(|_| ScramError::Malformed("message is not UTF-8".into()))?;
        let last = parse::client_final(message)?;
        if last.channel_binding != gs2_header.as_bytes() {
            return Err(ScramError::ChannelBindingMismatch);
        }
        if last.nonce != nonce {
            return Err(ScramError::NonceMismatch);
        }
        let auth_message = format!("{client_first_bare},{server_first},{}", last.without_proof);
        let key = find_key(&self.credentials.keys, auth_message.as_bytes(), &last.proof)
            .ok_or(ScramError::InvalidProof)?;
        let signature = hmac(&key.server_key, auth_message.as_bytes());
        let server_final = format!("v={}", STANDARD.encode(signature)).into_bytes();
        Ok((
            Authenticated::from_key(&self.credentials.identity, key),
            server_final,
        ))
    }
}

/// Recovers ClientKey = proof XOR HMAC(StoredKey, AuthMessage) for each key
/// and compares H(ClientKey) with StoredKey in constant time. Every key is
/// checked (no early exit), and an identity without keys still does one
/// round of work, so timing says little about which keys exist.
fn find_key<'a>(
    keys: &'a [StoredVerifier],
    auth_message: &[u8],
    proof: &[u8; 32],
) -> Option<&'a StoredVerifier> {
    let check = |stored_key: &[u8; 32]| -> bool {
        let signature = hmac(stored_key, auth_message);
        let mut client_key = [0u8; 32];
        for (out, (p, s)) in client_key.iter_mut().zip(proof.iter().zip(signature)) {
            *out = p ^ s;
        }
        sha256(&client_key).ct_eq(stored_key).into()
    };
    if keys.is_empty() {
        std::hint::black_box(check(&[0u8; 32]));
        return None;
    }
    let mut matched = None;
    for key in keys {
        if check(&key.stored_key) && matched.is_none() {
            matched = Some(key);
        }
    }
    matched
}
