//! Tests against a real SQLite database in a temporary directory, with the
//! real SCRAM client of `postgres-protocol`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bearer;
mod s3keys;
mod scram;
mod store;

use crate::KeyStore;

pub(crate) fn store() -> (tempfile::TempDir, KeyStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::open(&dir.path().join("data")).unwrap();
    (dir, store)
}

pub(crate) fn groups(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}
