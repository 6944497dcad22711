//! The single writer thread and the queue in front of it.
//!
//! `append` takes the queue lock, hands out the next seq and a clamped time,
//! and pushes the already-serialized body: queue order is seq order, so the
//! writer can chain without sorting. The writer drains up to `batch_max`
//! records, hashes them in order, writes them in one transaction, then
//! publishes the new *written* watermark once for the whole batch (the
//! records are in the operating system's hands: they survive a crash of the
//! gateway). It syncs the store (fsync) when someone waits for a record to
//! survive a power loss, and otherwise at most `sync_delay` after a write,
//! so one fsync serves every session that appended meanwhile; then it
//! publishes the *synced* watermark.
//!
//! When a commit fails the log is *failed*: every queued seq and every later
//! append gets an error, and nothing after the failure is ever reported
//! durable. Reopening the log continues from what is really stored.

use crate::chain::{checkpoint_message, head_message, RecordHasher};
use crate::error::AuditError;
use crate::keys::Signer;
use crate::record::{Body, Checkpoint, Kind, PruneMark, RawRecord};
use crate::store::{AuditStore, ChainHead, HeadMarker};
use crate::summary::{SessionEffect, Summaries};
use crate::time::Timestamp;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// Nearly every item is a record: boxing it would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Item {
    Record {
        session: String,
        kind: Kind,
        body_json: String,
        /// Hash state over session, kind and body, computed by the appender.
        hasher: RecordHasher,
        effect: SessionEffect,
    },
    /// Signed by the writer over whatever precedes it in the chain.
    Checkpoint { prune: Option<PruneMark> },
}

pub(crate) struct Pending {
    pub seq: u64,
    pub time: Timestamp,
    /// When it was queued: a record nobody waits for is committed at the
    /// latest `commit_delay` after this.
    pub queued: Instant,
    pub item: Item,
}

#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub from: u64,
    pub reason: String,
}

pub(crate) struct Queue {
    pub next_seq: u64,
    pub last_time: Timestamp,
    pub items: VecDeque<Pending>,
    pub failed: Option<Failure>,
    pub shutdown: bool,
    pub writer_waiting: bool,
    /// Records appended since the last checkpoint was queued.
    pub since_checkpoint: u64,
    /// Write the head marker right after the next commit (flush).
    pub head_now: bool,
    /// Sessions started and not yet ended by this process: prune keeps them.
    pub open_sessions: HashMap<String, u64>,
    /// The highest seq someone waits to see written: the writer commits as
    /// soon as a queued record is at or below it.
    pub demand: u64,
    /// The highest seq someone waits to see synced (implies `demand`).
    pub sync_demand: u64,
}

impl Queue {
    /// Hand out the next seq and a time that never goes backwards.
    pub(crate) fn push(&mut self, item: Item) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let time = Timestamp::now().max(self.last_time);
        self.last_time = time;
        self.since_checkpoint = match item {
            Item::Checkpoint { .. } => 0,
            Item::Record { .. } => self.since_checkpoint + 1,
        };
        self.items.push_back(Pending {
            seq,
            time,
            queued: Instant::now(),
            item,
        });
        seq
    }

    /// Whether the queued records should be committed now.
    fn commit_due(&self, batch_max: usize, commit_delay: Duration, now: Instant) -> bool {
        let Some(front) = self.items.front() else {
            return false;
        };
        self.shutdown
            || self.head_now
            || self.demand >= front.seq
            || self.items.len() >= batch_max
            || now >= front.queued + commit_delay
    }
}

/// How far a record has to get before a waiter continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Committed to the store and handed to the operating system: it
    /// survives a crash (even SIGKILL) of the gateway, not a power loss.
    Written,
    /// Also synced to stable storage (fsync): it survives a power loss.
    Synced,
}

/// The watermarks as published after each commit and each sync.
#[derive(Debug, Clone, Default)]
pub(crate) struct DurableState {
    /// Every seq up to here is written.
    pub written: u64,
    /// Every seq up to here is synced (`<= written`).
    pub durable: u64,
    pub failed: Option<Failure>,
    /// The writer has exited; nothing more will become durable.
    pub stopped: bool,
}

impl DurableState {
    /// `Some` once the fate of `seq` at `level` is known.
    pub(crate) fn outcome(&self, seq: u64, level: Level) -> Option<Result<(), AuditError>> {
        let reached = match level {
            Level::Written => self.written,
            Level::Synced => self.durable,
        };
        if seq <= reached {
            return Some(Ok(()));
        }
        if let Some(f) = &self.failed {
            if seq >= f.from {
                return Some(Err(AuditError::NotDurable {
                    seq,
                    failed_from: f.from,
                    reason: f.reason.clone(),
                }));
            }
        }
        if self.stopped {
            return Some(Err(AuditError::Writer(format!(
                "writer stopped before seq {seq} was durable"
            ))));
        }
        None
    }
}

pub(crate) struct Shared {
    pub queue: Mutex<Queue>,
    pub wake: Condvar,
    pub durable: Mutex<DurableState>,
    pub durable_changed: Condvar,
    pub durable_tx: watch::Sender<DurableState>,
}

impl Shared {
    pub(crate) fn new(next_seq: u64, last_time: Timestamp) -> Shared {
        let durable = DurableState {
            written: next_seq - 1,
            durable: next_seq - 1,
            failed: None,
            stopped: false,
        };
        Shared {
            queue: Mutex::new(Queue {
                next_seq,
                last_time,
                items: VecDeque::new(),
                failed: None,
                shutdown: false,
                writer_waiting: false,
                since_checkpoint: 0,
                head_now: false,
                open_sessions: HashMap::new(),
                demand: 0,
                sync_demand: 0,
            }),
            wake: Condvar::new(),
            durable: Mutex::new(durable.clone()),
            durable_changed: Condvar::new(),
            durable_tx: watch::Sender::new(durable),
        }
    }

    fn publish(&self, update: impl FnOnce(&mut DurableState)) {
        let snapshot = {
            let mut d = lock(&self.durable);
            update(&mut d);
            d.clone()
        };
        self.durable_changed.notify_all();
        self.durable_tx.send_replace(snapshot);
    }

    /// Someone waits for `seq` at `level`: commit (and sync) it without delay.
    pub(crate) fn demand(&self, seq: u64, level: Level) {
        let wake = {
            let mut q = lock(&self.queue);
            let known = match level {
                Level::Written => seq <= q.demand,
                Level::Synced => seq <= q.sync_demand,
            };
            if known {
                return;
            }
            q.demand = q.demand.max(seq);
            if level == Level::Synced {
                q.sync_demand = seq;
            }
            std::mem::take(&mut q.writer_waiting)
        };
        if wake {
            self.wake.notify_one();
        }
    }

    /// Block until `seq`'s fate at `level` is known.
    pub(crate) fn wait_for(&self, seq: u64, level: Level) -> Result<(), AuditError> {
        self.demand(seq, level);
        let mut d = lock(&self.durable);
        loop {
            if let Some(outcome) = d.outcome(seq, level) {
                return outcome;
            }
            d = self
                .durable_changed
                .wait(d)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Tunables the writer needs (a subset of `AuditConfig`).
pub(crate) struct WriterConfig {
    pub batch_max: usize,
    pub commit_delay: Duration,
    pub sync_delay: Duration,
    pub checkpoint_interval: Duration,
    pub head_interval: Duration,
}

pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub store: Arc<dyn AuditStore>,
    pub signer: Arc<Signer>,
    pub config: WriterConfig,
    pub head: Option<ChainHead>,
    pub summaries: Summaries,
}

/// Marks the writer stopped however it exits, so no waiter hangs forever.
struct StopGuard(Arc<Shared>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.0.publish(|d| d.stopped = true);
    }
}

impl Writer {
    pub(crate) fn run(mut self) {
        let _guard = StopGuard(self.shared.clone());
        let mut last_checkpoint = Instant::now();
        let mut last_head = None::<Instant>;
        let mut head_dirty = false;
        let (mut written, mut synced) = {
            let d = lock(&self.shared.durable);
            (d.written, d.durable)
        };
        // When the oldest written-but-unsynced commit happened.
        let mut unsynced_since = None::<Instant>;
        loop {
            let (batch, head_now, shutdown, sync_demand) = {
                let mut q = lock(&self.shared.queue);
                loop {
                    let now = Instant::now();
                    if q.shutdown
                        || q.commit_due(self.config.batch_max, self.config.commit_delay, now)
                    {
                        break;
                    }
                    let sync_due = unsynced_since.map(|t| t + self.config.sync_delay);
                    if written > synced
                        && (q.sync_demand > synced
                            || q.head_now
                            || sync_due.is_some_and(|t| now >= t))
                    {
                        break;
                    }
                    let mut deadline = last_checkpoint + self.config.checkpoint_interval;
                    if let Some(t) = sync_due {
                        deadline = deadline.min(t);
                    }
                    if let Some(front) = q.items.front() {
                        // Records wait for a demand, a full batch or their delay.
                        deadline = deadline.min(front.queued + self.config.commit_delay);
                    } else {
                        if q.since_checkpoint > 0
                            && q.failed.is_none()
                            && now >= last_checkpoint + self.config.checkpoint_interval
                        {
                            q.push(Item::Checkpoint { prune: None });
                            break;
                        }
                        // The head marker only ever names a synced record.
                        let head_due =
                            last_head.map_or(now, |t: Instant| t + self.config.head_interval);
                        if head_dirty && written == synced && now >= head_due {
                            break;
                        }
                        let summaries_due = self.summaries.due_at();
                        if summaries_due.is_some_and(|t| now >= t) {
                            break;
                        }
                        if head_dirty && written == synced {
                            deadline = deadline.min(head_due);
                        }
                        if let Some(t) = summaries_due {
                            deadline = deadline.min(t);
                        }
                    }
                    q.writer_waiting = true;
                    let timeout = deadline
                        .saturating_duration_since(now)
                        .max(Duration::from_micros(100));
                    q = self
                        .shared
                        .wake
                        .wait_timeout(q, timeout)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                    q.writer_waiting = false;
                }
                let n = q.items.len().min(self.config.batch_max);
                let batch: Vec<Pending> = q.items.drain(..n).collect();
                let head_now = std::mem::take(&mut q.head_now);
                (
                    batch,
                    head_now,
                    q.shutdown && q.items.is_empty(),
                    q.sync_demand,
                )
            };
            if !batch.is_empty() {
                if batch
                    .iter()
                    .any(|p| matches!(p.item, Item::Checkpoint { .. }))
                {
                    last_checkpoint = Instant::now();
                }
                let first = batch.first().map_or(0, |p| p.seq);
                match self.commit(batch, head_now || shutdown) {
                    Ok(last) => {
                        written = last;
                        head_dirty = true;
                        unsynced_since.get_or_insert_with(Instant::now);
                        self.shared.publish(|d| d.written = last);
                    }
                    Err(e) => self.fail(first, &e),
                }
            } else {
                self.write_idle_summaries(shutdown);
                if written == synced {
                    if let Err(e) = self.store.maintain() {
                        tracing::warn!(error = %e, "audit session summaries not written");
                    }
                }
            }
            let now = Instant::now();
            let sync_due = unsynced_since.is_some_and(|t| now >= t + self.config.sync_delay);
            if written > synced && (sync_demand > synced || head_now || shutdown || sync_due) {
                // Readers see a record once it is reported synced.
                match self.store.sync().and_then(|()| self.store.maintain()) {
                    Ok(()) => {
                        synced = written;
                        unsynced_since = None;
                        // A flush returns only with the head marker written.
                        if head_dirty && (head_now || shutdown) {
                            self.write_head();
                            last_head = Some(now);
                            head_dirty = false;
                        }
                        self.shared.publish(|d| d.durable = synced);
                    }
                    Err(e) => {
                        // Nothing written since the last sync may be called
                        // durable now; and nothing is left to retry.
                        self.fail(synced + 1, &e);
                        written = synced;
                        unsynced_since = None;
                    }
                }
            }
            // The periodic rewrite happens after waking the waiters, so its
            // fsyncs add no latency to them.
            let head_due = head_now
                || shutdown
                || last_head.is_none_or(|t| now >= t + self.config.head_interval);
            if head_dirty && written == synced && head_due {
                self.write_head();
                last_head = Some(now);
                head_dirty = false;
            }
            if shutdown {
                if written == synced {
                    if let Err(e) = self.store.close() {
                        tracing::warn!(error = %e, "audit store not closed cleanly: the next open recovers from its journal");
                    }
                }
                return;
            }
        }
    }

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
                // Cannot happen: the queue hands seqs out in order. Refuse
                // rather than write a broken chain.
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
    fn write_idle_summaries(&mut self, force: bool) {
        let sessions = self.summaries.take_due(force);
        if sessions.is_empty() {
            return;
        }
        if let Err(e) = self.store.append_batch(&[], &sessions) {
            tracing::warn!(error = %e, "audit session summaries not written");
        }
    }

    fn write_head(&self) {
        let Some(head) = &self.head else { return };
        let marker = HeadMarker {
            seq: head.seq,
            hash: head.hash.clone(),
            public_key: self.signer.public_hex().to_owned(),
            signature: self.signer.sign_hex(&head_message(head.seq, &head.hash)),
        };
        if let Err(e) = self.store.write_head_marker(&marker) {
            // The records are durable; only tail-truncation evidence lags.
            tracing::warn!(error = %e, seq = head.seq, "audit head marker not written");
        }
    }

    fn fail(&self, from: u64, error: &AuditError) {
        tracing::error!(error = %error, seq = from, "audit store cannot write: failing closed");
        let failure = Failure {
            from,
            reason: error.to_string(),
        };
        {
            let mut q = lock(&self.shared.queue);
            q.failed = Some(failure.clone());
            q.items.clear();
        }
        self.shared.publish(|d| d.failed = Some(failure));
    }
}
