//! Public data types of the key store and of a successful authentication.

use std::fmt;

/// A key as the administrator sees it (never contains secret material).
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    pub key_id: String,
    pub identity: String,
    pub groups: Vec<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC; `None` while the key is active.
    pub revoked_at: Option<String>,
    /// `api` (`slk_...`, for PostgreSQL and Kubernetes) or `s3` (an
    /// access key id and secret, for SigV4).
    pub kind: KeyKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    Api,
    S3,
}

/// The result of [`crate::KeyStore::create_key`]: the only time the key
/// itself is available. `Debug` redacts it so it cannot leak into logs.
pub struct CreatedKey {
    pub info: KeyInfo,
    /// The full API key, `slk_<key_id>_<secret>`.
    pub secret: String,
}

impl fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedKey")
            .field("info", &self.info)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// What an authentication of one identity needs: the shared salt and the
/// verifiers of its active keys (empty for unknown identities).
#[derive(Clone)]
pub struct Credentials {
    pub identity: String,
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub keys: Vec<StoredVerifier>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("identity", &self.identity)
            .field("iterations", &self.iterations)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// The SCRAM verifier of one active key.
#[derive(Clone)]
pub struct StoredVerifier {
    pub key_id: String,
    pub groups: Vec<String>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl fmt::Debug for StoredVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The ServerKey lets its holder impersonate the server: keep it out of logs.
        f.debug_struct("StoredVerifier")
            .field("key_id", &self.key_id)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

/// A verified key: the identity it belongs to and which key matched.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Name of the identity, with the groups of the matched key.
    pub identity: sluice_core::Identity,
    pub key_id: String,
}

impl Authenticated {
    pub(crate) fn from_key(identity: &str, key: &StoredVerifier) -> Self {
        Self {
            identity: sluice_core::Identity::new(identity, key.groups.clone()),
            key_id: key.key_id.clone(),
        }
    }
}
