//! `KeyStore::authenticate`: a whole API key as a bearer token.

use super::{groups, store};
use std::time::{Duration, Instant};

#[test]
fn authenticate_returns_the_identity_with_the_groups_of_the_matching_key() {
    let (_dir, store) = store();
    let k1 = store.create_key("alice", &groups(&["dba"])).unwrap();
    let k2 = store.create_key("alice", &groups(&["ops", "dba"])).unwrap();
    let a = store.authenticate(&k1.secret).unwrap().unwrap();
    assert_eq!(a.identity.name, "alice");
    assert_eq!(a.identity.groups, groups(&["dba"]));
    assert_eq!(a.key_id, k1.info.key_id);
    let a = store.authenticate(&k2.secret).unwrap().unwrap();
    assert_eq!(a.identity.groups, groups(&["ops", "dba"]));
    assert_eq!(a.key_id, k2.info.key_id);
}

#[test]
fn authenticate_refuses_wrong_unknown_malformed_and_revoked_keys() {
    let (_dir, store) = store();
    let k = store.create_key("bob", &groups(&["dba"])).unwrap();
    let id = &k.info.key_id;
    for bad in [
        String::new(),
        "Bearer".to_owned(),
        "slk_".to_owned(),
        format!("slk_{id}_"),
        format!("slk_{id}"),
        format!("slk_{id}_wrong-secret"),
        format!("{}x", k.secret),
        k.secret.replacen("slk_", "SLK_", 1),
        "slk_k000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        format!("slk_{id}!_{}", "a".repeat(43)),
    ] {
        assert!(store.authenticate(&bad).unwrap().is_none(), "{bad:?}");
    }
    assert!(store.authenticate(&k.secret).unwrap().is_some());
    assert!(store.revoke_key(id).unwrap());
    assert!(store.authenticate(&k.secret).unwrap().is_none(), "revoked");
}

#[test]
fn authenticate_refuses_a_secret_presented_under_another_keys_id() {
    let (_dir, store) = store();
    let k1 = store.create_key("carol", &groups(&["dba"])).unwrap();
    let k2 = store.create_key("carol", &groups(&["agents"])).unwrap();
    let secret1 = k1
        .secret
        .strip_prefix(&format!("slk_{}_", k1.info.key_id))
        .unwrap();
    let swapped = format!("slk_{}_{secret1}", k2.info.key_id);
    assert!(store.authenticate(&swapped).unwrap().is_none());
}

/// Median duration of `n` calls.
fn median(n: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[n / 2]
}

#[test]
fn an_unknown_key_id_costs_the_same_pbkdf2_work_as_a_wrong_secret() {
    let (_dir, store) = store();
    let k = store.create_key("dave", &[]).unwrap();
    let wrong_secret = format!("slk_{}_{}", k.info.key_id, "b".repeat(43));
    let unknown_id = format!("slk_k123456789abc_{}", "b".repeat(43));
    let malformed = "not a key at all".to_owned();
    let wrong = median(7, || {
        assert!(store.authenticate(&wrong_secret).unwrap().is_none())
    });
    let unknown = median(7, || {
        assert!(store.authenticate(&unknown_id).unwrap().is_none())
    });
    let odd = median(7, || {
        assert!(store.authenticate(&malformed).unwrap().is_none())
    });
    // PBKDF2 (4096 rounds) dominates: without it a miss would be ~100x faster.
    assert!(
        unknown * 2 > wrong,
        "unknown {unknown:?} vs wrong {wrong:?}"
    );
    assert!(odd * 2 > wrong, "malformed {odd:?} vs wrong {wrong:?}");
}
