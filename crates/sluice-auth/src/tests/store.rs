use super::{groups, store};
use crate::{verify_cleartext, AuthError, KeyStore};

#[test]
fn open_creates_private_dir_and_is_reopenable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("a/b");
    let first = KeyStore::open(&data).unwrap();
    let key = first.create_key("bot", &groups(&["ops"])).unwrap();
    let salt = first.credentials("bot").unwrap().salt;
    drop(first);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&data).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let mode = std::fs::metadata(data.join("sluice.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = KeyStore::open(&data).unwrap();
    let creds = again.credentials("bot").unwrap();
    assert_eq!(creds.salt, salt, "installation secret must persist");
    assert!(verify_cleartext(&creds, &key.secret).is_some());
}

#[test]
fn salts_are_per_identity_and_stable_for_unknown() {
    let (_dir, store) = store();
    store.create_key("alice", &[]).unwrap();
    let a = store.credentials("alice").unwrap();
    let b = store.credentials("nobody").unwrap();
    assert_eq!(a.salt.len(), 16);
    assert_eq!(b.salt.len(), 16);
    assert_ne!(a.salt, b.salt);
    assert_eq!(b.salt, store.credentials("nobody").unwrap().salt);
    assert!(b.keys.is_empty());
    assert_eq!(a.iterations, b.iterations);
}

#[test]
fn cleartext_accepts_right_key_only() {
    let (_dir, store) = store();
    let k1 = store
        .create_key("svc", &groups(&["readers", "ops"]))
        .unwrap();
    let k2 = store.create_key("svc", &groups(&["writers"])).unwrap();
    let creds = store.credentials("svc").unwrap();
    assert_eq!(creds.keys.len(), 2);

    let auth = verify_cleartext(&creds, &k1.secret).unwrap();
    assert_eq!(auth.identity.name, "svc");
    assert_eq!(auth.identity.groups, groups(&["readers", "ops"]));
    assert_eq!(auth.key_id, k1.info.key_id);
    let auth = verify_cleartext(&creds, &k2.secret).unwrap();
    assert_eq!(auth.identity.groups, groups(&["writers"]));
    assert_eq!(auth.key_id, k2.info.key_id);

    assert!(verify_cleartext(&creds, "slk_k000000000000_wrong").is_none());
    assert!(verify_cleartext(&creds, "").is_none());
    // A key of another identity does not open this one.
    let other = store.create_key("other", &[]).unwrap();
    assert!(verify_cleartext(&creds, &other.secret).is_none());

    assert!(store.revoke_key(&k1.info.key_id).unwrap());
    assert!(
        !store.revoke_key(&k1.info.key_id).unwrap(),
        "already revoked"
    );
    assert!(!store.revoke_key("k-no-such-key").unwrap());
    let creds = store.credentials("svc").unwrap();
    assert!(verify_cleartext(&creds, &k1.secret).is_none());
    assert!(verify_cleartext(&creds, &k2.secret).is_some());
}

#[test]
fn revoke_identity_revokes_all_and_list_shows_it() {
    let (_dir, store) = store();
    let a1 = store.create_key("a", &groups(&["g1", "g1", "g2"])).unwrap();
    assert_eq!(a1.info.groups, groups(&["g1", "g2"]), "duplicates dropped");
    let b = store.create_key("b", &[]).unwrap();
    let a2 = store.create_key("a", &[]).unwrap();
    assert_eq!(store.revoke_identity("a").unwrap(), 2);
    assert_eq!(store.revoke_identity("a").unwrap(), 0);
    assert_eq!(store.revoke_identity("unknown").unwrap(), 0);
    assert!(store.credentials("a").unwrap().keys.is_empty());
    assert!(verify_cleartext(&store.credentials("a").unwrap(), &a2.secret).is_none());

    let list = store.list().unwrap();
    let ids: Vec<_> = list.iter().map(|k| k.key_id.as_str()).collect();
    assert_eq!(ids, [&a1.info.key_id, &b.info.key_id, &a2.info.key_id]);
    assert!(list[0].revoked_at.is_some());
    assert!(list[1].revoked_at.is_none());
    assert!(list[2].revoked_at.is_some());
    assert_eq!(list[0].groups, groups(&["g1", "g2"]));
    for info in &list {
        time::OffsetDateTime::parse(
            &info.created_at,
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert!(info.created_at.ends_with('Z'), "{}", info.created_at);
    }
    // The admin API returns KeyInfo as JSON.
    let json = serde_json::to_value(&list[0]).unwrap();
    assert_eq!(json["key_id"], a1.info.key_id.as_str());
    assert!(json["revoked_at"].is_string());
    assert!(serde_json::to_value(&list[1]).unwrap()["revoked_at"].is_null());
}

#[test]
fn invalid_names_are_rejected() {
    let (_dir, store) = store();
    assert!(matches!(
        store.create_key("", &[]),
        Err(AuthError::InvalidIdentity { .. })
    ));
    assert!(matches!(
        store.create_key("bad name", &[]),
        Err(AuthError::InvalidIdentity { .. })
    ));
    assert!(matches!(
        store.create_key("ok", &groups(&["bad,group"])),
        Err(AuthError::InvalidGroup { .. })
    ));
    assert!(matches!(
        store.create_key("ok", &groups(&[""])),
        Err(AuthError::InvalidGroup { .. })
    ));
    assert!(store.list().unwrap().is_empty());
    // Lookups never fail on odd names: they look like unknown identities.
    assert!(store.credentials("no such, name").unwrap().keys.is_empty());
}

#[test]
fn secret_is_never_written_to_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::open(dir.path()).unwrap();
    let keys: Vec<_> = (0..3)
        .map(|_| store.create_key("leaky", &groups(&["g"])).unwrap())
        .collect();
    store.revoke_key(&keys[0].info.key_id).unwrap();
    let mut contents = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        contents.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(!contents.is_empty());
    let contains = |needle: &[u8]| contents.windows(needle.len()).any(|w| w == needle);
    for key in &keys {
        assert!(
            contains(key.info.key_id.as_bytes()),
            "sanity: key id is stored"
        );
        let prefix = format!("slk_{}_", key.info.key_id);
        let random_part = key.secret.strip_prefix(&prefix).unwrap();
        assert!(!contains(key.secret.as_bytes()));
        assert!(!contains(random_part.as_bytes()));
    }
}

#[test]
fn store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<KeyStore>();
}
