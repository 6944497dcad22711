use super::groups;
use crate::{AuthError, KeyKind, KeyStore};

#[test]
fn an_s3_key_opens_to_its_identity_and_secret_until_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::open(dir.path()).unwrap();
    let created = store
        .create_s3_key("agent-1", &groups(&["agents"]))
        .unwrap();
    assert_eq!(created.access_key_id.len(), 20);
    assert!(created.access_key_id.starts_with("SLU"));
    assert!(!format!("{created:?}").contains(&created.secret_access_key));
    drop(store);
    // The secret survives a reopen (sealing key on disk).
    let store = KeyStore::open(dir.path()).unwrap();
    let found = store.s3_secret(&created.access_key_id).unwrap().unwrap();
    assert_eq!(found.secret, created.secret_access_key);
    assert_eq!(found.identity.name, "agent-1");
    assert_eq!(found.identity.groups, ["agents"]);
    assert!(store.s3_secret("SLUNOSUCHKEY0000000").unwrap().is_none());
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].kind, KeyKind::S3);
    assert!(store.revoke_key(&created.access_key_id).unwrap());
    assert!(store.s3_secret(&created.access_key_id).unwrap().is_none());
}

#[test]
fn a_secret_is_not_in_the_database_and_an_edited_row_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::open(dir.path()).unwrap();
    let created = store
        .create_s3_key("agent-1", &groups(&["agents"]))
        .unwrap();
    drop(store);
    let db = std::fs::read(dir.path().join("sluice.db")).unwrap();
    let wal = std::fs::read(dir.path().join("sluice.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(!bytes
            .windows(created.secret_access_key.len())
            .any(|w| w == created.secret_access_key.as_bytes()));
    }
    // Promote the key's identity to another group by editing its row.
    let conn = rusqlite::Connection::open(dir.path().join("sluice.db")).unwrap();
    conn.execute("UPDATE auth_s3_keys SET groups = 'dba'", [])
        .unwrap();
    drop(conn);
    let store = KeyStore::open(dir.path()).unwrap();
    assert!(matches!(
        store.s3_secret(&created.access_key_id),
        Err(AuthError::Corrupt(_))
    ));
}

#[test]
fn revoking_an_identity_revokes_its_s3_keys_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::open(dir.path()).unwrap();
    let s3 = store.create_s3_key("bot", &[]).unwrap();
    store.create_key("bot", &[]).unwrap();
    assert_eq!(store.revoke_identity("bot").unwrap(), 2);
    assert!(store.s3_secret(&s3.access_key_id).unwrap().is_none());
}
