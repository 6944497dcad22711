//! The storage seam. The writer thread hands the store batches of records
//! that are already numbered and chained; the store only has to make a batch
//! durable atomically and answer range queries. That is all a PostgreSQL
//! store needs to implement too.
//!
//! The trait is object-safe and used as `Arc<dyn AuditStore>`: the backend is
//! chosen from configuration at runtime, dynamic dispatch costs one indirect
//! call per *batch* (not per record), and the gateway's types stay free of a
//! store type parameter.
//!
//! Seqs are handed out in memory by the one process that writes a chain
//! (that is what lets `append` return the seq without a round trip). A
//! PostgreSQL store shared by several replicas therefore keeps one chain per
//! replica (a `chain` column holding the replica's id, each with its own
//! seqs, checkpoints and head marker row) rather than one global chain that
//! would need a cross-replica lock per batch; verification runs per chain.

mod journal;
mod sqlite;
mod wal;

pub use sqlite::SqliteStore;

use crate::error::AuditError;
use crate::record::RawRecord;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The last record of the chain, from which the writer continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: String,
    pub time: Timestamp,
}

/// A signed statement "the chain had reached `seq` with `hash`", kept outside
/// the records (for SQLite: `<data_dir>/audit-head.json`) so that cutting the
/// tail off the table is detectable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadMarker {
    pub seq: u64,
    pub hash: String,
    pub public_key: String,
    /// Hex Ed25519 over [`crate::chain::head_message`].
    pub signature: String,
}

/// Which sessions to list. Empty filter: all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    pub identity: Option<String>,
    pub resource: Option<String>,
    /// Sessions that started at or after this instant.
    pub since: Option<Timestamp>,
    /// At most this many, newest first (None: no limit).
    pub limit: Option<usize>,
}

/// One row of `sluice audit sessions`. Derived data, kept by the writer in
/// the same transaction as the records; the records themselves stay the
/// source of truth (replay reads them, verify checks them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSummary {
    pub id: String,
    pub identity: String,
    pub groups: Vec<String>,
    pub resource: String,
    pub client_addr: String,
    pub application_name: Option<String>,
    pub tls: bool,
    pub start: Timestamp,
    /// None while the session is open, or when the gateway stopped without
    /// ending it (a crash).
    pub end: Option<Timestamp>,
    pub end_reason: Option<String>,
    pub statements: u64,
    pub denied: u64,
    pub reviewed: u64,
    pub errors: u64,
    pub rows: u64,
    pub bytes: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

/// What one batch changes in a session's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionUpdate {
    pub id: String,
    pub start: Option<SessionStartInfo>,
    pub end: Option<(Timestamp, String)>,
    pub statements: u64,
    pub denied: u64,
    pub reviewed: u64,
    pub errors: u64,
    pub rows: u64,
    pub bytes: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

/// The `session_start` facts a summary is created from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStartInfo {
    pub time: Timestamp,
    pub body: crate::record::SessionStart,
}

/// Persistence of the audit log. Implementations must be safe to call from
/// the writer thread and from readers concurrently.
pub trait AuditStore: Send + Sync {
    /// The last record, to continue the chain after a restart.
    fn head(&self) -> Result<Option<ChainHead>, AuditError>;

    /// The lowest seq still stored (after prunes, not 1).
    fn first_seq(&self) -> Result<Option<u64>, AuditError>;

    /// Store `records` (consecutive seqs continuing the head) and apply
    /// `sessions` atomically. Returns once the batch is committed: visible
    /// to readers and surviving a crash of this process (SIGKILL included);
    /// on error nothing of the batch may be visible. `records` may be empty
    /// (a summary-only update). Surviving a power loss is [`sync`](Self::sync)'s job.
    fn append_batch(
        &self,
        records: &[RawRecord],
        sessions: &[SessionUpdate],
    ) -> Result<(), AuditError>;

    /// Returns once every batch committed so far is on stable storage (it
    /// survives a power loss). The writer calls it once for many batches:
    /// this is where the fsync is. A store whose commits are already on
    /// stable storage has nothing to do.
    fn sync(&self) -> Result<(), AuditError>;

    /// Work no waiter needs done, run by the writer thread after each sync
    /// (before reporting it, so readers see every record reported synced)
    /// and when idle; the SQLite store indexes the journal here. Appends
    /// may run concurrently. An error after a sync fails the log.
    fn maintain(&self) -> Result<(), AuditError> {
        Ok(())
    }

    /// The writer is stopping after its last sync: leave nothing that a
    /// later open would have to recover.
    fn close(&self) -> Result<(), AuditError> {
        Ok(())
    }

    /// Up to `limit` records with seq > `after_seq`, in seq order.
    fn records_after(&self, after_seq: u64, limit: usize) -> Result<Vec<RawRecord>, AuditError>;

    /// Up to `limit` records of one session with seq > `after_seq`, in order.
    fn session_records_after(
        &self,
        session: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<RawRecord>, AuditError>;

    /// Every `checkpoint` record (there is one per thousands of records).
    fn checkpoints(&self) -> Result<Vec<RawRecord>, AuditError>;

    /// Session summaries, newest first.
    fn sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionSummary>, AuditError>;

    /// The lowest seq whose time is at or after `time`. Record times never
    /// decrease along the chain (the log clamps them), so this is a search.
    fn first_seq_at_or_after(&self, time: Timestamp) -> Result<Option<u64>, AuditError>;

    /// The lowest `first_seq` of the sessions that have a record at or after
    /// `seq`: a prune that cuts at `seq` would cut these sessions in half.
    fn oldest_session_start_touching(&self, seq: u64) -> Result<Option<u64>, AuditError>;

    /// Delete up to `max_rows` of the oldest records with seq < `before_seq`
    /// (and the summaries of sessions that started before it), in one short
    /// transaction. Returns how many records went; 0 means done.
    fn delete_before(&self, before_seq: u64, max_rows: usize) -> Result<u64, AuditError>;

    fn read_head_marker(&self) -> Result<Option<HeadMarker>, AuditError>;

    /// Replace the head marker atomically and durably.
    fn write_head_marker(&self, marker: &HeadMarker) -> Result<(), AuditError>;
}
