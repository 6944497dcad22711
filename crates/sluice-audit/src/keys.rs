//! The gateway's Ed25519 audit signing key: generated into the data
//! directory on first open (secret `audit-signing.key`, mode 0600, hex of the
//! 32-byte seed; public `audit-signing.pub`, hex), loaded afterwards.

use crate::error::AuditError;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub const SECRET_KEY_FILE: &str = "audit-signing.key";
pub const PUBLIC_KEY_FILE: &str = "audit-signing.pub";

/// Signs checkpoints and head markers.
pub struct Signer {
    key: SigningKey,
    public_hex: String,
}

impl Signer {
    pub fn from_key(key: SigningKey) -> Self {
        let public_hex = hex::encode(key.verifying_key().as_bytes());
        Signer { key, public_hex }
    }

    /// Load `<dir>/audit-signing.key`, or create it (and the `.pub`) when
    /// absent. `create_new` means two processes racing on first start cannot
    /// both write a key.
    pub fn load_or_create(dir: &Path) -> Result<Signer, AuditError> {
        let path = dir.join(SECRET_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let signer = Signer::from_key(parse_secret(text.trim(), &path)?);
                let pub_path = dir.join(PUBLIC_KEY_FILE);
                if !pub_path.exists() {
                    write_public(&pub_path, &signer.public_hex)?;
                }
                Ok(signer)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
                let signer = Signer::from_key(SigningKey::from_bytes(&seed));
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| AuditError::io(&path, e))?;
                file.write_all(format!("{}\n", hex::encode(seed)).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| AuditError::io(&path, e))?;
                write_public(&dir.join(PUBLIC_KEY_FILE), &signer.public_hex)?;
                Ok(signer)
            }
            Err(e) => Err(AuditError::io(&path, e)),
        }
    }

    pub fn public_hex(&self) -> &str {
        &self.public_hex
    }

    /// The key itself, for the other things the gateway signs (approval
    /// grants) with the same identity.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Hex signature of `message`.
    pub fn sign_hex(&self, message: &[u8]) -> String {
        hex::encode(self.key.sign(message).to_bytes())
    }
}

fn write_public(path: &Path, public_hex: &str) -> Result<(), AuditError> {
    std::fs::write(path, format!("{public_hex}\n")).map_err(|e| AuditError::io(path, e))
}

fn parse_secret(text: &str, path: &Path) -> Result<SigningKey, AuditError> {
    let bad = |reason: &str| AuditError::BadKey {
        what: path.display().to_string(),
        reason: reason.to_owned(),
    };
    let bytes = hex::decode(text).map_err(|_| bad("not hex"))?;
    let seed: [u8; 32] = bytes.try_into().map_err(|_| bad("not 32 bytes"))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Parse a hex public key (from `audit-signing.pub` or the command line).
pub fn parse_public_key(hex_key: &str) -> Result<VerifyingKey, AuditError> {
    let bad = |reason: &str| AuditError::BadKey {
        what: "public key".into(),
        reason: reason.to_owned(),
    };
    let bytes = hex::decode(hex_key.trim()).map_err(|_| bad("not hex"))?;
    let arr: [u8; 32] = bytes.try_into().map_err(|_| bad("not 32 bytes"))?;
    VerifyingKey::from_bytes(&arr).map_err(|_| bad("not a valid Ed25519 point"))
}

/// Read `<dir>/audit-signing.pub` if it exists.
pub fn read_public_key(dir: &Path) -> Result<Option<String>, AuditError> {
    let path = dir.join(PUBLIC_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let text = text.trim().to_owned();
            parse_public_key(&text)?;
            Ok(Some(text))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AuditError::io(&path, e)),
    }
}

/// Whether `signature_hex` is `public_key_hex`'s signature of `message`.
/// Any decoding failure is simply "not valid".
pub fn signature_valid(public_key_hex: &str, message: &[u8], signature_hex: &str) -> bool {
    let Ok(key) = parse_public_key(public_key_hex) else {
        return false;
    };
    let Ok(sig_bytes) = hex::decode(signature_hex) else {
        return false;
    };
    let Ok(sig_arr) = <[u8; 64]>::try_from(sig_bytes.as_slice()) else {
        return false;
    };
    key.verify(message, &Signature::from_bytes(&sig_arr))
        .is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generates_once_with_private_mode_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let a = Signer::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(SECRET_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = Signer::load_or_create(dir.path()).unwrap();
        assert_eq!(a.public_hex(), b.public_hex());
        assert_eq!(
            read_public_key(dir.path()).unwrap().as_deref(),
            Some(a.public_hex())
        );
        let sig = a.sign_hex(b"m");
        assert!(signature_valid(a.public_hex(), b"m", &sig));
        assert!(!signature_valid(a.public_hex(), b"n", &sig));
    }
}
