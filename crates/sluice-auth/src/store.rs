//! The key store: service-account API keys in the embedded SQLite database.
//!
//! The database (`<data_dir>/sluice.db`) is shared with other Sluice crates,
//! hence the `auth_` prefix on every table. Only verifiers are stored: the key
//! is returned once by [`KeyStore::create_key`] and then forgotten.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::crypto::{derive_salt, generate_key, random_bytes, verifier};
use crate::names::{validate_group, validate_identity};
use crate::{
    verify_cleartext, AuthError, Authenticated, CreatedKey, Credentials, KeyInfo, StoredVerifier,
    ITERATIONS, KEY_PREFIX,
};

/// File name of the shared database inside the data directory.
pub const DB_FILE: &str = "sluice.db";

const SECRET_NAME: &str = "installation_secret";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS auth_meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS auth_keys (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id     TEXT NOT NULL UNIQUE,
    identity   TEXT NOT NULL,
    groups     TEXT NOT NULL,
    stored_key BLOB NOT NULL,
    server_key BLOB NOT NULL,
    iterations INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX IF NOT EXISTS auth_keys_identity ON auth_keys (identity, revoked_at);
";

/// Service-account API keys. `Send + Sync`; the API is synchronous (SQLite
/// and PBKDF2 block), so async callers wrap calls in `spawn_blocking`.
pub struct KeyStore {
    conn: Mutex<Connection>,
    /// Random per installation; salts are derived from it (see [`derive_salt`]).
    secret: [u8; 32],
    /// Seals S3 secrets (see `s3keys`).
    pub(crate) sealing: [u8; 32],
}

impl KeyStore {
    /// Opens or creates `<data_dir>/sluice.db` (creating `data_dir` with mode
    /// 0700 if missing), creates the tables if absent, and on first open
    /// generates the random 32-byte installation secret.
    pub fn open(data_dir: &Path) -> Result<KeyStore, AuthError> {
        create_private_dir(data_dir)?;
        let path = data_dir.join(DB_FILE);
        create_private_file(&path)?;
        let conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let _mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(crate::s3keys::SCHEMA)?;
        let secret = load_or_create_secret(&conn)?;
        let sealing = crate::s3keys::load_or_create_sealing_key(data_dir)?;
        Ok(KeyStore {
            conn: Mutex::new(conn),
            secret,
            sealing,
        })
    }

    pub(crate) fn conn(&self) -> Result<MutexGuard<'_, Connection>, AuthError> {
        self.conn.lock().map_err(|_| AuthError::LockPoisoned)
    }

    /// Creates a key for `identity` carrying `groups`. Stores only the SCRAM
    /// verifier; the returned [`CreatedKey::secret`] is the only copy.
    pub fn create_key(&self, identity: &str, groups: &[String]) -> Result<CreatedKey, AuthError> {
        validate_identity(identity)?;
        let clean = clean_groups(groups)?;
        let generated = generate_key()?;
        let salt = derive_salt(&self.secret, identity);
        let (stored, server) = verifier(&generated.secret, &salt);
        let created_at = now_rfc3339()?;
        self.conn()?.execute(
            "INSERT INTO auth_keys (key_id, identity, groups, stored_key, server_key, iterations, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                generated.key_id,
                identity,
                clean.join(","),
                &stored[..],
                &server[..],
                ITERATIONS,
                created_at
            ],
        )?;
        Ok(CreatedKey {
            info: KeyInfo {
                key_id: generated.key_id,
                identity: identity.to_owned(),
                groups: clean,
                created_at,
                revoked_at: None,
                kind: crate::KeyKind::Api,
            },
            secret: generated.secret,
        })
    }

    /// All keys (API keys and S3 key pairs), revoked ones included, in
    /// order of creation.
    pub fn list(&self) -> Result<Vec<KeyInfo>, AuthError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT key_id, identity, groups, created_at, revoked_at, 0 FROM auth_keys
             UNION ALL
             SELECT access_key_id, identity, groups, created_at, revoked_at, 1 FROM auth_s3_keys
             ORDER BY 4, 6",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(KeyInfo {
                key_id: row.get(0)?,
                identity: row.get(1)?,
                groups: split_groups(&row.get::<_, String>(2)?),
                created_at: row.get(3)?,
                revoked_at: row.get(4)?,
                kind: if row.get::<_, i64>(5)? == 1 {
                    crate::KeyKind::S3
                } else {
                    crate::KeyKind::Api
                },
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Revokes every active key of `identity`; returns how many were revoked.
    pub fn revoke_identity(&self, identity: &str) -> Result<usize, AuthError> {
        validate_identity(identity)?;
        let now = now_rfc3339()?;
        let conn = self.conn()?;
        let api = conn.execute(
            "UPDATE auth_keys SET revoked_at = ?1 WHERE identity = ?2 AND revoked_at IS NULL",
            params![now, identity],
        )?;
        let s3 = conn.execute(
            "UPDATE auth_s3_keys SET revoked_at = ?1 WHERE identity = ?2 AND revoked_at IS NULL",
            params![now, identity],
        )?;
        Ok(api + s3)
    }

    /// Revokes one key (an API key by its id, an S3 key pair by its access
    /// key id); `false` if there is no such active key.
    pub fn revoke_key(&self, key_id: &str) -> Result<bool, AuthError> {
        let now = now_rfc3339()?;
        let conn = self.conn()?;
        let n = conn.execute(
            "UPDATE auth_keys SET revoked_at = ?1 WHERE key_id = ?2 AND revoked_at IS NULL",
            params![now, key_id],
        )? + conn.execute(
            "UPDATE auth_s3_keys SET revoked_at = ?1 WHERE access_key_id = ?2 AND revoked_at IS NULL",
            params![now, key_id],
        )?;
        Ok(n > 0)
    }

    /// Active keys of `identity` plus its salt. An unknown (or fully revoked,
    /// or even invalidly named) identity gets empty `keys` and the same kind
    /// of derived salt, so the SCRAM exchange looks identical to an attacker.
    pub fn credentials(&self, identity: &str) -> Result<Credentials, AuthError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT key_id, groups, stored_key, server_key FROM auth_keys
             WHERE identity = ?1 AND revoked_at IS NULL AND iterations = ?2 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![identity, ITERATIONS], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Vec<u8>>(2)?,
                row.get::<_, Vec<u8>>(3)?,
            ))
        })?;
        let mut keys = Vec::new();
        for row in rows {
            let (key_id, groups, stored, server) = row?;
            keys.push(StoredVerifier {
                stored_key: to_array(&key_id, "stored_key", stored)?,
                server_key: to_array(&key_id, "server_key", server)?,
                groups: split_groups(&groups),
                key_id,
            });
        }
        Ok(Credentials {
            identity: identity.to_owned(),
            salt: derive_salt(&self.secret, identity),
            iterations: ITERATIONS,
            keys,
        })
    }
}

impl KeyStore {
    /// Checks a whole API key (`slk_<key_id>_<secret>`, as an HTTP bearer
    /// token): finds the identity of the active key `<key_id>` and verifies
    /// the key against that identity's verifiers, in constant time. Returns
    /// the identity with the groups of that key, or `None` for a malformed,
    /// unknown, revoked or wrong key. The PBKDF2 work is done in every case
    /// (against a derived dummy salt when the key id is unknown), so timing
    /// does not tell an unknown key id from a wrong secret.
    pub fn authenticate(&self, key: &str) -> Result<Option<Authenticated>, AuthError> {
        let key_id = key_id_of(key);
        let owner: Option<String> = match key_id {
            Some(id) => self
                .conn()?
                .query_row(
                    "SELECT identity FROM auth_keys
                     WHERE key_id = ?1 AND revoked_at IS NULL AND iterations = ?2",
                    params![id, ITERATIONS],
                    |row| row.get(0),
                )
                .optional()?,
            None => None,
        };
        let Some(owner) = owner else {
            // Same work as a real check, against nobody's verifiers.
            let dummy = Credentials {
                identity: String::new(),
                salt: derive_salt(&self.secret, "\0unknown key"),
                iterations: ITERATIONS,
                keys: Vec::new(),
            };
            let _ = verify_cleartext(&dummy, key);
            return Ok(None);
        };
        let credentials = self.credentials(&owner)?;
        // The key id is part of the key, so a match is that key; checking it
        // anyway keeps a (theoretical) collision from picking another key.
        Ok(verify_cleartext(&credentials, key).filter(|a| Some(a.key_id.as_str()) == key_id))
    }
}

/// The `<key_id>` of `slk_<key_id>_<secret>`, if the key has that shape.
fn key_id_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let plausible = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
        && !secret.is_empty();
    plausible.then_some(id)
}

fn to_array(key_id: &str, column: &str, bytes: Vec<u8>) -> Result<[u8; 32], AuthError> {
    <[u8; 32]>::try_from(bytes).map_err(|b| {
        AuthError::Corrupt(format!(
            "{column} of key {key_id} has {} bytes, expected 32",
            b.len()
        ))
    })
}

/// Valid group names, each once, in order.
pub(crate) fn clean_groups(groups: &[String]) -> Result<Vec<String>, AuthError> {
    let mut clean: Vec<String> = Vec::with_capacity(groups.len());
    for group in groups {
        validate_group(group)?;
        if !clean.contains(group) {
            clean.push(group.clone());
        }
    }
    Ok(clean)
}

/// Group names cannot contain commas (see `names`), so a comma list is exact.
pub(crate) fn split_groups(joined: &str) -> Vec<String> {
    joined
        .split(',')
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Current time, UTC, RFC 3339 with whole seconds.
pub(crate) fn now_rfc3339() -> Result<String, AuthError> {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    Ok(now.format(&time::format_description::well_known::Rfc3339)?)
}

/// Reads the installation secret, creating it on first open. `INSERT OR
/// IGNORE` then `SELECT` makes two processes opening a fresh database agree
/// on one secret.
fn load_or_create_secret(conn: &Connection) -> Result<[u8; 32], AuthError> {
    let fresh: [u8; 32] = random_bytes()?;
    conn.execute(
        "INSERT OR IGNORE INTO auth_meta (name, value) VALUES (?1, ?2)",
        params![SECRET_NAME, &fresh[..]],
    )?;
    let stored: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM auth_meta WHERE name = ?1",
            params![SECRET_NAME],
            |row| row.get(0),
        )
        .optional()?;
    let stored = stored.ok_or_else(|| AuthError::Corrupt("installation secret missing".into()))?;
    <[u8; 32]>::try_from(stored)
        .map_err(|_| AuthError::Corrupt("installation secret is not 32 bytes".into()))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> AuthError {
    let path: PathBuf = path.to_owned();
    move |source| AuthError::Io { path, source }
}

/// Creates the data directory (and parents) readable only by us; an existing
/// directory keeps its permissions (the operator may have chosen them).
fn create_private_dir(dir: &Path) -> Result<(), AuthError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io_err(dir))
}

/// Creates an empty database file with mode 0600 if missing, so the file
/// (and the WAL files SQLite derives from its mode) are private from the start.
fn create_private_file(path: &Path) -> Result<(), AuthError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}
