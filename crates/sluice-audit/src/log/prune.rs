//! Retention: dropping old records while the chain stays verifiable.

use super::AuditLog;
use crate::error::AuditError;
use crate::record::PruneMark;
use crate::time::Timestamp;
use crate::writer::{lock, Item};

/// Rows deleted per prune transaction, so the writer is never blocked long.
const PRUNE_CHUNK: usize = 10_000;

/// What a prune did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    /// Records deleted.
    pub deleted: u64,
    /// The first retained seq (the chain now starts there).
    pub first_retained_seq: Option<u64>,
    /// The signed checkpoint that anchors the new start (None: nothing to prune).
    pub checkpoint_seq: Option<u64>,
}

impl AuditLog {
    /// Delete records older than `before`, keeping the chain verifiable: a
    /// signed checkpoint records the seq and hash the retained chain starts
    /// from. The cut never splits a session: it moves back to the start of
    /// any session that has records after it or is still open in this
    /// process, so a replay is always complete. Deletion runs in short
    /// chunks; an interrupted prune leaves a log that still verifies.
    pub fn prune(
        &self,
        before: Timestamp,
        progress: &dyn Fn(u64, u64),
    ) -> Result<PruneReport, AuditError> {
        let shared = self.shared()?;
        let store = self.inner.store.as_ref();
        let nothing = PruneReport {
            deleted: 0,
            first_retained_seq: store.first_seq()?,
            checkpoint_seq: None,
        };
        let (Some(first), Some(head)) = (store.first_seq()?, store.head()?) else {
            return Ok(nothing);
        };
        let mut cut = store.first_seq_at_or_after(before)?.unwrap_or(head.seq + 1);
        loop {
            let moved = store
                .oldest_session_start_touching(cut)?
                .map_or(cut, |s| s.min(cut));
            if moved == cut {
                break;
            }
            cut = moved;
        }
        if let Some(open) = lock(&shared.queue).open_sessions.values().min() {
            cut = cut.min(*open);
        }
        if cut <= first {
            return Ok(nothing);
        }
        let prev = store.records_after(cut - 2, 1)?;
        let Some(prev) = prev.first().filter(|r| r.seq == cut - 1) else {
            return Err(AuditError::Corrupt {
                seq: cut - 1,
                reason: "record missing before the prune point".into(),
            });
        };
        let mark = PruneMark {
            before,
            first_seq: cut,
            prev_hash: prev.hash.clone(),
        };
        let checkpoint_seq = {
            let mut q = lock(&shared.queue);
            if let Some(f) = &q.failed {
                return Err(AuditError::Failed {
                    failed_from: f.from,
                    reason: f.reason.clone(),
                });
            }
            if q.shutdown {
                return Err(AuditError::NotWritable("closed"));
            }
            let seq = q.push(Item::Checkpoint { prune: Some(mark) });
            q.head_at = q.head_at.max(seq);
            seq
        };
        shared.wake.notify_one();
        shared.wait_for(checkpoint_seq, crate::writer::Level::Synced)?;
        let total = cut - first;
        let mut deleted = 0;
        loop {
            let n = store.delete_before(cut, PRUNE_CHUNK)?;
            if n == 0 {
                break;
            }
            deleted += n;
            progress(deleted, total);
        }
        Ok(PruneReport {
            deleted,
            first_retained_seq: Some(cut),
            checkpoint_seq: Some(checkpoint_seq),
        })
    }
}
