//! Chaining, hashing and storing queued records, under one lock.
//!
//! The writer thread commits on its timers and on demands, but a session
//! that waits to see its own record written commits the queue itself when
//! the lock is free: the wait that every read's result pays then costs no
//! wake-up of another thread (two context switches on a busy machine) and
//! never queues behind the writer's fsync or indexing, which the writer
//! does without this lock. Whoever commits writes everything queued, so one
//! write serves every session that appended meanwhile.

use crate::chain::{checkpoint_message, RecordHasher};
use crate::error::AuditError;
use crate::keys::Signer;
use crate::record::{Body, Checkpoint, Kind, RawRecord};
use crate::store::{AuditStore, ChainHead};
use crate::summary::Summaries;
use crate::writer::{lock, Failure, Item, Pending, Shared};
use std::sync::{Arc, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

/// How often `write_now` tries for a busy committer before it leaves the
/// write to the writer thread (each try after the first yields the CPU).
const BRIEF_TRIES: usize = 64;

pub(crate) struct Committer {
    pub store: Arc<dyn AuditStore>,
    pub signer: Arc<Signer>,
    /// The last record written: the chain continues from here.
    pub head: Option<ChainHead>,
    pub summaries: Summaries,
    pub batch_max: usize,
}

impl Committer {
    /// Chain, hash and store one batch. Returns the last seq stored.
    fn commit(&mut self, batch: Vec<Pending>, force_summaries: bool) -> Result<u64, AuditError> {
        let mut records = Vec::with_capacity(batch.len());
        let (mut prev_seq, mut prev_hash) = match &self.head {
            Some(h) => (h.seq, h.hash.clone()),
            None => (0, crate::chain::ZERO_HASH.to_owned()),
        };
        let mut last_time = self.head.as_ref().map(|h| h.time);
        for p in batch {
            if p.seq != prev_seq + 1 {
                // Cannot happen: the queue hands seqs out in order and one
                // committer at a time takes them. Refuse rather than write a
                // broken chain.
                return Err(AuditError::Writer(format!(
                    "seq {} does not follow {prev_seq}",
                    p.seq
                )));
            }
            let time = p.time.to_string();
            let (session, kind, body_json, hasher) = match p.item {
                Item::Record {
                    session,
                    kind,
                    body_json,
                    hasher,
                    effect,
                } => {
                    self.summaries.record(&session, p.seq, p.time, effect);
                    (session, kind, body_json, hasher)
                }
                Item::Checkpoint { prune } => {
                    let message = checkpoint_message(prev_seq, &prev_hash, prune.as_ref());
                    let body = Body::Checkpoint(Checkpoint {
                        head_seq: prev_seq,
                        head_hash: prev_hash.clone(),
                        signature: self.signer.sign_hex(&message),
                        public_key: self.signer.public_hex().to_owned(),
                        pruned_before: prune,
                    })
                    .to_json()?;
                    let hasher = RecordHasher::new("", Kind::Checkpoint.as_str(), &body);
                    (String::new(), Kind::Checkpoint, body, hasher)
                }
            };
            let hash = hasher.finish(p.seq, &time, &prev_hash);
            records.push(RawRecord {
                seq: p.seq,
                time,
                session,
                kind: kind.as_str().to_owned(),
                body: body_json,
                prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
                hash,
            });
            prev_seq = p.seq;
            last_time = Some(p.time);
        }
        let sessions = self.summaries.take_due(force_summaries);
        self.store.append_batch(&records, &sessions)?;
        if let Some(time) = last_time {
            self.head = Some(ChainHead {
                seq: prev_seq,
                hash: prev_hash,
                time,
            });
        }
        Ok(prev_seq)
    }

    /// Summary counters left over when no records come.
    pub(crate) fn write_idle_summaries(&mut self, force: bool) {
        let sessions = self.summaries.take_due(force);
        if sessions.is_empty() {
            return;
        }
        if let Err(e) = self.store.append_batch(&[], &sessions) {
            tracing::warn!(error = %e, "audit session summaries not written");
        }
    }
}

impl Shared {
    /// Commit up to one batch of what is queued, the committer locked by
    /// the caller. True when records were written.
    pub(crate) fn commit_queued(
        &self,
        c: &mut Committer,
        force_summaries: bool,
        sync_delay: Duration,
    ) -> bool {
        let batch: Vec<Pending> = {
            let mut q = lock(&self.queue);
            if q.failed.is_some() {
                return false;
            }
            let n = q.items.len().min(c.batch_max);
            q.items.drain(..n).collect()
        };
        let Some(first) = batch.first().map(|p| p.seq) else {
            return false;
        };
        match c.commit(batch, force_summaries) {
            Ok(last) => {
                let now = Instant::now();
                let mut first_unsynced = false;
                self.publish(|d| {
                    d.written = last;
                    if d.unsynced_since.is_none() {
                        d.unsynced_since = Some(now);
                        first_unsynced = true;
                    }
                });
                if first_unsynced {
                    // The writer must sync within `sync_delay` of this.
                    self.nudge_writer(now + sync_delay);
                }
                true
            }
            Err(e) => {
                self.fail(first, &e);
                false
            }
        }
    }

    /// On the caller's thread: write what is queued until `seq` is written.
    /// The committer is usually held only for a hash and a `write` of a few
    /// records (the writer fsyncs and indexes without it), so waiting a
    /// moment for it here is cheaper than waking another thread. But one
    /// record can be hundreds of MB (a huge statement): then the holder is
    /// not waited for on this (runtime) thread, and false sends the caller
    /// to the writer thread and an async wait. False also once the log has
    /// failed.
    pub(crate) fn write_now(&self, seq: u64, sync_delay: Duration) -> bool {
        if lock(&self.durable).written >= seq {
            return true;
        }
        let Some(mut c) = self.committer_briefly() else {
            return false;
        };
        loop {
            if lock(&self.durable).written >= seq {
                return true;
            }
            if !self.commit_queued(&mut c, false, sync_delay) {
                return lock(&self.durable).written >= seq;
            }
        }
    }

    /// The committer, if whoever holds it lets go within a few yields.
    fn committer_briefly(&self) -> Option<MutexGuard<'_, Committer>> {
        for _ in 0..BRIEF_TRIES {
            match self.committer.try_lock() {
                Ok(c) => return Some(c),
                Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
                Err(TryLockError::WouldBlock) => std::thread::yield_now(),
            }
        }
        None
    }

    pub(crate) fn fail(&self, from: u64, error: &AuditError) {
        tracing::error!(error = %error, seq = from, "audit store cannot write: failing closed");
        let failure = Failure {
            from,
            reason: error.to_string(),
        };
        // Two threads can fail the log (a session's write, the writer's
        // sync): the lowest seq stays the failure point.
        let lower = |f: &Option<Failure>| f.as_ref().is_none_or(|f| from < f.from);
        {
            let mut q = lock(&self.queue);
            if lower(&q.failed) {
                q.failed = Some(failure.clone());
            }
            q.items.clear();
        }
        self.publish(|d| {
            if lower(&d.failed) {
                d.failed = Some(failure);
            }
        });
    }
}
