//! S3 key pairs. SigV4 proves a request with an HMAC keyed by the secret,
//! so unlike an API key the secret itself must be kept: sealed with
//! ChaCha20-Poly1305 under the data directory's `secrets.key`, a file
//! apart from the database (a copy of `sluice.db` alone reveals no secret),
//! and bound to its row (access key id, identity, groups) so that an edited
//! row no longer opens.

use std::fmt;
use std::path::Path;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rusqlite::{params, OptionalExtension};

use crate::crypto::random_bytes;
use crate::names::validate_identity;
use crate::store::{now_rfc3339, split_groups};
use crate::{AuthError, KeyInfo, KeyStore};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS auth_s3_keys (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    access_key_id TEXT NOT NULL UNIQUE,
    identity      TEXT NOT NULL,
    groups        TEXT NOT NULL,
    nonce         BLOB NOT NULL,
    sealed        BLOB NOT NULL,
    created_at    TEXT NOT NULL,
    revoked_at    TEXT
);
";

/// Name of the sealing key inside the data directory.
pub const SEALING_KEY_FILE: &str = "secrets.key";

/// Access key ids start so; they are 20 characters, as AWS's are.
pub const S3_KEY_PREFIX: &str = "SLU";

/// The result of [`KeyStore::create_s3_key`]: the only time the secret is
/// shown. `Debug` redacts it.
pub struct CreatedS3Key {
    pub info: KeyInfo,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for CreatedS3Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedS3Key")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// An active S3 key: who it proves, and the secret to check SigV4 with.
#[derive(Clone)]
pub struct S3Secret {
    pub identity: sluice_core::Identity,
    pub secret: String,
}

impl fmt::Debug for S3Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Secret")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// Creates an S3 key pair for `identity` carrying `groups`.
    pub fn create_s3_key(
        &self,
        identity: &str,
        groups: &[String],
    ) -> Result<CreatedS3Key, AuthError> {
        validate_identity(identity)?;
        let clean = crate::store::clean_groups(groups)?;
        let id: [u8; 11] = random_bytes()?;
        let access_key_id = format!(
            "{S3_KEY_PREFIX}{}",
            base32(&id).get(..17).unwrap_or_default()
        );
        let secret: [u8; 30] = random_bytes()?;
        let secret_access_key = STANDARD_NO_PAD.encode(secret);
        let nonce: [u8; 12] = random_bytes()?;
        let joined = clean.join(",");
        let sealed = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret_access_key.as_bytes(),
                    aad: &binding(&access_key_id, identity, &joined),
                },
            )
            .map_err(|_| AuthError::Corrupt("cannot seal the S3 secret".into()))?;
        let created_at = now_rfc3339()?;
        self.conn()?.execute(
            "INSERT INTO auth_s3_keys (access_key_id, identity, groups, nonce, sealed, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                access_key_id,
                identity,
                joined,
                &nonce[..],
                sealed,
                created_at
            ],
        )?;
        Ok(CreatedS3Key {
            info: KeyInfo {
                key_id: access_key_id.clone(),
                identity: identity.to_owned(),
                groups: clean,
                created_at,
                revoked_at: None,
                kind: crate::KeyKind::S3,
            },
            access_key_id,
            secret_access_key,
        })
    }

    /// The identity and secret of the active S3 key `access_key_id`;
    /// `None` for an unknown or revoked one. A row that does not open
    /// under the sealing key (edited, or from another installation) is an
    /// error, never a secret.
    pub fn s3_secret(&self, access_key_id: &str) -> Result<Option<S3Secret>, AuthError> {
        let row: Option<(String, String, Vec<u8>, Vec<u8>)> = self
            .conn()?
            .query_row(
                "SELECT identity, groups, nonce, sealed FROM auth_s3_keys
                 WHERE access_key_id = ?1 AND revoked_at IS NULL",
                params![access_key_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((identity, groups, nonce, sealed)) = row else {
            return Ok(None);
        };
        if nonce.len() != 12 {
            return Err(AuthError::Corrupt(format!(
                "S3 key {access_key_id}: bad nonce"
            )));
        }
        let open = self
            .cipher()
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &sealed,
                    aad: &binding(access_key_id, &identity, &groups),
                },
            )
            .map_err(|_| {
                AuthError::Corrupt(format!(
                    "S3 key {access_key_id} does not open under {SEALING_KEY_FILE}: its row was edited, or the file is not this installation's"
                ))
            })?;
        let secret = String::from_utf8(open)
            .map_err(|_| AuthError::Corrupt(format!("S3 key {access_key_id}: not UTF-8")))?;
        Ok(Some(S3Secret {
            identity: sluice_core::Identity::new(&identity, split_groups(&groups)),
            secret,
        }))
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&self.sealing))
    }
}

/// What a sealed secret is bound to.
fn binding(access_key_id: &str, identity: &str, groups: &str) -> Vec<u8> {
    format!("sluice-s3-key\0{access_key_id}\0{identity}\0{groups}").into_bytes()
}

/// RFC 4648 base32 without padding (upper case, as AWS access key ids).
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buf >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Reads the sealing key, creating it (mode 0600) on first use.
pub(crate) fn load_or_create_sealing_key(dir: &Path) -> Result<[u8; 32], AuthError> {
    let path = dir.join(SEALING_KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => <[u8; 32]>::try_from(bytes)
            .map_err(|_| AuthError::Corrupt(format!("{} is not 32 bytes", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let fresh: [u8; 32] = random_bytes()?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            match options.open(&path) {
                Ok(mut f) => {
                    use std::io::Write;
                    f.write_all(&fresh)
                        .and_then(|()| f.sync_all())
                        .map_err(|source| AuthError::Io {
                            path: path.clone(),
                            source,
                        })?;
                    Ok(fresh)
                }
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    load_or_create_sealing_key(dir)
                }
                Err(source) => Err(AuthError::Io { path, source }),
            }
        }
        Err(source) => Err(AuthError::Io { path, source }),
    }
}
