//! The signed permission to run one approved statement once.

use crate::canonical::Canonical;
use crate::clock::Timestamp;
use crate::error::ApprovalError;
use crate::fingerprint::Fingerprint;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

const DOMAIN: &[u8] = b"sluice-grant-v1";

/// The only decision a grant is ever issued for; signed so the field cannot
/// be reinterpreted later.
pub const APPROVED: &str = "approved";

/// A grant is what a consumer trusts, so it carries everything it is
/// checked against. The signature is Ed25519 over this length-prefixed
/// message (every `len` a big-endian `u64`, `i64` big-endian two's
/// complement):
///
/// ```text
/// len "sluice-grant-v1"
/// len request_id   len fingerprint (hex text)   len requester   len resource
/// count(approvers)   per approver: len approver
/// len decision ("approved")
/// i64 expires_at (unix microseconds)
/// ```
///
/// Signing binds every field a consumer relies on, so anyone who can write
/// the SQLite file but not read the key cannot widen a grant (another
/// statement, identity or resource, a later expiry, invented approvers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub request_id: String,
    pub fingerprint: Fingerprint,
    pub requester: String,
    pub resource: String,
    /// The distinct approvers whose votes made the quorum, in vote order.
    pub approvers: Vec<String>,
    pub decision: String,
    pub expires_at: Timestamp,
    /// Ed25519 signature over [`Grant::message`], lowercase hex.
    pub signature: String,
}

impl Grant {
    /// The exact bytes signed (see the module documentation).
    pub fn message(&self) -> Vec<u8> {
        let mut msg = Canonical::new(DOMAIN);
        msg.field(self.request_id.as_bytes())
            .field(self.fingerprint.as_str().as_bytes())
            .field(self.requester.as_bytes())
            .field(self.resource.as_bytes())
            .count(self.approvers.len());
        for approver in &self.approvers {
            msg.field(approver.as_bytes());
        }
        msg.field(self.decision.as_bytes())
            .int(self.expires_at.unix_micros());
        msg.into_bytes()
    }

    pub(crate) fn sign(mut self, key: &SigningKey) -> Self {
        let signature = key.sign(&self.message());
        self.signature = hex::encode(signature.to_bytes());
        self
    }

    /// Refuses a grant whose fields are not exactly what was signed, or whose
    /// decision is anything but `approved`.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), ApprovalError> {
        let tampered = || ApprovalError::TamperedGrant {
            id: self.request_id.clone(),
        };
        if self.decision != APPROVED {
            return Err(tampered());
        }
        let bytes: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(tampered)?;
        key.verify(&self.message(), &Signature::from_bytes(&bytes))
            .map_err(|_| tampered())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use rand::rngs::OsRng;

    fn signed(key: &SigningKey) -> Grant {
        Grant {
            request_id: "apr_0123456789abcdef".into(),
            fingerprint: crate::fingerprint("app", "agent", "DELETE FROM t", &[]),
            requester: "agent".into(),
            resource: "app".into(),
            approvers: vec!["alice".into(), "bob".into()],
            decision: APPROVED.into(),
            expires_at: Timestamp::from_unix_micros(1_000_000),
            signature: String::new(),
        }
        .sign(key)
    }

    #[test]
    fn a_signed_grant_verifies_with_its_key_only() {
        let key = SigningKey::generate(&mut OsRng);
        let grant = signed(&key);
        grant.verify(&key.verifying_key()).unwrap();
        let other = SigningKey::generate(&mut OsRng);
        assert!(matches!(
            grant.verify(&other.verifying_key()),
            Err(ApprovalError::TamperedGrant { .. })
        ));
    }

    #[test]
    fn changing_any_signed_field_breaks_the_signature() {
        let key = SigningKey::generate(&mut OsRng);
        let grant = signed(&key);
        let edits: [fn(&mut Grant); 9] = [
            |g| g.request_id.push('0'),
            |g| g.fingerprint = crate::fingerprint("app", "agent", "x", &[]),
            |g| g.requester = "other".into(),
            |g| g.resource = "prod".into(),
            |g| g.approvers.push("mallory".into()),
            |g| g.approvers = vec!["alicebob".into()],
            |g| g.decision = "denied".into(),
            |g| g.expires_at = Timestamp::from_unix_micros(2_000_000),
            |g| g.signature = "00".into(),
        ];
        for edit in edits {
            let mut copy = grant.clone();
            edit(&mut copy);
            assert!(matches!(
                copy.verify(&key.verifying_key()),
                Err(ApprovalError::TamperedGrant { .. })
            ));
        }
    }
}
