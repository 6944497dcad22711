//! The two levels a waiter can ask for: *written* is reached on the
//! waiter's own thread, never behind the writer's fsync; *synced* only once
//! the store has synced.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use sluice_audit::store::*;
use sluice_audit::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The SQLite store, with `sync` held until the test lets it go (when
/// `hold`), and writes that fail once `fail_writes` is set.
struct Controlled {
    inner: SqliteStore,
    hold: bool,
    /// (a sync is waiting, released)
    state: Mutex<(bool, bool)>,
    changed: Condvar,
    fail_writes: AtomicBool,
}

impl Controlled {
    fn open(dir: &std::path::Path, hold: bool) -> Arc<Controlled> {
        Arc::new(Controlled {
            inner: SqliteStore::open(dir).unwrap(),
            hold,
            state: Mutex::new((false, false)),
            changed: Condvar::new(),
            fail_writes: AtomicBool::new(false),
        })
    }

    fn wait_until_syncing(&self) {
        let mut s = self.state.lock().unwrap();
        while !s.0 {
            s = self.changed.wait(s).unwrap();
        }
    }

    fn release(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }
}

impl AuditStore for Controlled {
    fn head(&self) -> Result<Option<ChainHead>, AuditError> {
        self.inner.head()
    }
    fn first_seq(&self) -> Result<Option<u64>, AuditError> {
        self.inner.first_seq()
    }
    fn append_batch(&self, r: &[RawRecord], s: &[SessionUpdate]) -> Result<(), AuditError> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(AuditError::Writer("the disk is full (test)".into()));
        }
        self.inner.append_batch(r, s)
    }
    fn sync(&self) -> Result<(), AuditError> {
        if !self.hold {
            return self.inner.sync();
        }
        let mut s = self.state.lock().unwrap();
        s.0 = true;
        self.changed.notify_all();
        while !s.1 {
            s = self.changed.wait(s).unwrap();
        }
        drop(s);
        self.inner.sync()
    }
    fn maintain(&self) -> Result<(), AuditError> {
        self.inner.maintain()
    }
    fn close(&self) -> Result<(), AuditError> {
        self.inner.close()
    }
    fn records_after(&self, after: u64, limit: usize) -> Result<Vec<RawRecord>, AuditError> {
        self.inner.records_after(after, limit)
    }
    fn session_records_after(
        &self,
        session: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<RawRecord>, AuditError> {
        self.inner.session_records_after(session, after, limit)
    }
    fn checkpoints(&self) -> Result<Vec<RawRecord>, AuditError> {
        self.inner.checkpoints()
    }
    fn sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionSummary>, AuditError> {
        self.inner.sessions(filter)
    }
    fn first_seq_at_or_after(&self, time: Timestamp) -> Result<Option<u64>, AuditError> {
        self.inner.first_seq_at_or_after(time)
    }
    fn oldest_session_start_touching(&self, seq: u64) -> Result<Option<u64>, AuditError> {
        self.inner.oldest_session_start_touching(seq)
    }
    fn delete_before(&self, before: u64, max_rows: usize) -> Result<u64, AuditError> {
        self.inner.delete_before(before, max_rows)
    }
    fn read_head_marker(&self) -> Result<Option<HeadMarker>, AuditError> {
        self.inner.read_head_marker()
    }
    fn write_head_marker(&self, marker: &HeadMarker) -> Result<(), AuditError> {
        self.inner.write_head_marker(marker)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_is_written_while_the_writer_is_stuck_in_a_sync_and_synced_only_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Controlled::open(dir.path(), true);
    let signer = keys::Signer::load_or_create(dir.path()).unwrap();
    let log = AuditLog::with_store(store.clone(), signer, config()).unwrap();
    let session = new_session_id();

    let first = log.append(&session, statement("SELECT 1", true)).unwrap();
    let synced = tokio::spawn({
        let log = log.clone();
        async move { log.reach(first, Level::Synced, true).await }
    });
    let held = store.clone();
    tokio::task::spawn_blocking(move || held.wait_until_syncing())
        .await
        .unwrap();

    // The writer thread is inside `sync` and stays there.
    let second = log.append(&session, statement("SELECT 2", true)).unwrap();
    let written = tokio::time::timeout(
        Duration::from_secs(10),
        log.reach(second, Level::Written, true),
    )
    .await;
    if written.is_err() {
        store.release(); // so that a failure fails rather than hangs
    }
    written
        .expect("a written wait must not queue behind the writer's sync")
        .unwrap();
    assert!(!synced.is_finished(), "synced before the sync returned");
    assert_eq!(log.durable_seq(), 0, "nothing is synced yet");

    store.release();
    synced.await.unwrap().unwrap();
    assert!(log.durable_seq() >= first);
    log.reach(second, Level::Synced, true).await.unwrap();
    log.close().unwrap();
    let report = log.verify(&|_, _| {}).unwrap();
    assert!(report.problem.is_none(), "{report:?}");
    assert!(log.records_after(0, 10).unwrap().len() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failed_write_what_was_written_before_it_is_still_synced_and_later_records_fail() {
    let dir = tempfile::tempdir().unwrap();
    let store = Controlled::open(dir.path(), false);
    let signer = keys::Signer::load_or_create(dir.path()).unwrap();
    let config = AuditConfig {
        // Nothing is synced unless someone waits for it.
        sync_delay: Duration::from_secs(3600),
        ..config()
    };
    let log = AuditLog::with_store(store.clone(), signer, config).unwrap();
    let session = new_session_id();
    let first = log.append(&session, statement("SELECT 1", true)).unwrap();
    log.reach(first, Level::Written, true).await.unwrap();
    assert_eq!(log.durable_seq(), 0);

    store.fail_writes.store(true, Ordering::SeqCst);
    let second = log.append(&session, statement("SELECT 2", true)).unwrap();
    let e = log.reach(second, Level::Written, true).await.unwrap_err();
    assert!(matches!(e, AuditError::NotDurable { .. }), "{e:?}");

    let synced = tokio::time::timeout(
        Duration::from_secs(10),
        log.reach(first, Level::Synced, true),
    )
    .await
    .expect("a record written before the failure must still get its sync");
    synced.unwrap();
    assert!(log.durable_seq() >= first);
    assert!(log.append(&session, statement("SELECT 3", true)).is_err());
}
