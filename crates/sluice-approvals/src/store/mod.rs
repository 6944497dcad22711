//! The SQLite side of the approval store: one connection behind a mutex.
//!
//! Approval calls are rare (a human is in the loop) and never on the
//! per-statement hot path, so they run synchronously in the caller, tokio
//! worker threads included; each holds the lock for a few small queries.
//! Every change runs in an `IMMEDIATE` transaction, which takes SQLite's
//! write lock up front: two handles on the same file (two processes, or the
//! CLI next to the gateway) serialise instead of both reading "pending" and
//! both deciding.

pub(crate) mod rows;
mod schema;

pub use schema::DB_FILE;

use crate::error::ApprovalError;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

pub(crate) struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    pub(crate) fn open(data_dir: &Path) -> Result<Self, ApprovalError> {
        Ok(Store {
            conn: Mutex::new(schema::open(data_dir)?),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic mid-call left at most an open transaction, which rusqlite
        // rolled back on unwind: the connection itself is fine to reuse.
        self.conn.lock().unwrap_or_else(|poisoned| {
            tracing::warn!("approval store lock was poisoned; continuing");
            poisoned.into_inner()
        })
    }

    /// Runs `f` in an `IMMEDIATE` transaction: committed if it returns
    /// `Ok`, rolled back if it returns `Err`.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, ApprovalError>,
    ) -> Result<T, ApprovalError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Reads without a write lock (WAL readers never block the writer).
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, ApprovalError>,
    ) -> Result<T, ApprovalError> {
        let conn = self.lock();
        f(&conn)
    }
}
