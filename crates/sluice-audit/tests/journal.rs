//! The journal: a record written but not yet in the database survives the
//! gateway's crash, a write cut off by the crash is dropped (and kept), and
//! an edited journal is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_audit::chain::{record_hash, ZERO_HASH};
use sluice_audit::{AuditError, AuditStore, RawRecord, SqliteStore};
use std::io::Write;
use std::path::Path;

fn records(n: u64) -> Vec<RawRecord> {
    let mut prev = ZERO_HASH.to_owned();
    (1..=n)
        .map(|seq| {
            let time = format!("2026-12-07T08:00:{:02}.000000Z", seq % 60);
            let body = format!(r#"{{"n":{seq}}}"#);
            let hash = record_hash(seq, &time, "s", "statement", &body, &prev);
            RawRecord {
                seq,
                time,
                session: "s".into(),
                kind: "statement".into(),
                body,
                prev_hash: std::mem::replace(&mut prev, hash.clone()),
                hash,
            }
        })
        .collect()
}

/// Writes `records` to the journal only, then "crashes" (drops the store
/// without indexing or closing it).
fn crash_after_writing(dir: &Path, records: &[RawRecord]) {
    let store = SqliteStore::open(dir).unwrap();
    store.append_batch(records, &[]).unwrap();
    assert_eq!(store.head().unwrap(), None, "not indexed yet");
    drop(store);
}

fn journal(dir: &Path) -> std::path::PathBuf {
    dir.join("audit.journal")
}

#[test]
fn records_written_before_a_crash_are_indexed_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let written = records(5);
    crash_after_writing(dir.path(), &written);
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.records_after(0, 100).unwrap(), written);
    assert_eq!(
        std::fs::metadata(journal(dir.path())).unwrap().len(),
        0,
        "emptied once indexed"
    );
}

#[test]
fn a_read_only_open_after_a_crash_sees_the_journal_records() {
    let dir = tempfile::tempdir().unwrap();
    SqliteStore::open(dir.path()).unwrap().close().unwrap();
    crash_after_writing(dir.path(), &records(3));
    let reader = SqliteStore::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.head().unwrap().map(|h| h.seq), Some(3));
}

#[test]
fn a_write_cut_off_by_a_crash_is_dropped_and_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let written = records(4);
    crash_after_writing(dir.path(), &written);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(journal(dir.path()))
        .unwrap();
    file.write_all(&[200, 1, 0, 0, 7, 7]).unwrap(); // a frame's start, no more
    drop(file);
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.records_after(0, 100).unwrap(), written);
    let kept = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("audit.journal.torn-")
        });
    assert!(kept, "the cut-off journal is kept as evidence");
}

#[test]
fn an_edited_journal_record_is_refused_not_indexed() {
    let dir = tempfile::tempdir().unwrap();
    crash_after_writing(dir.path(), &records(3));
    let path = journal(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(6).position(|w| w == br#""n":2}"#).unwrap();
    let mut edited = bytes.clone();
    edited[at + 4] = b'9';
    std::fs::write(&path, edited).unwrap();
    match SqliteStore::open(dir.path()) {
        Err(AuditError::Corrupt { seq, .. }) => assert_eq!(seq, 2),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("an edited journal was accepted"),
    }
}
