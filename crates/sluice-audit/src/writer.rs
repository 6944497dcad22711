//! The queue, the watermarks, and the writer thread.
//!
//! `append` takes the queue lock, hands out the next seq and a clamped time,
//! and pushes the already-serialized body: queue order is seq order, so a
//! committer can chain without sorting. A committer (see `committer`: a
//! session waiting for its record, or the writer thread) drains up to
//! `batch_max` records, hashes them in order, writes them in one write, then
//! publishes the new *written* watermark once for the whole batch (the
//! records are in the operating system's hands: they survive a crash of the
//! gateway). The writer thread syncs the store (fsync) when someone waits
//! for a record to survive a power loss, and otherwise at most `sync_delay`
//! after the first unsynced write, so one fsync serves every session that
//! appended meanwhile; then it publishes the *synced* watermark. It also
//! commits what nobody waits for (after `commit_delay`), signs checkpoints
//! on its interval and rewrites the head marker.
//!
//! When a commit fails the log is *failed*: every queued seq and every later
//! append gets an error, and nothing after the failure is ever reported
//! durable. Reopening the log continues from what is really stored.

use crate::chain::{head_message, RecordHasher};
use crate::committer::Committer;
use crate::error::AuditError;
use crate::keys::Signer;
use crate::record::{Kind, PruneMark};
use crate::store::{AuditStore, ChainHead, HeadMarker};
use crate::summary::{SessionEffect, SUMMARY_INTERVAL};
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
    /// When the sleeping writer wakes by itself.
    pub writer_deadline: Option<Instant>,
    /// Records appended since the last checkpoint was queued...
    pub since_checkpoint: u64,
    /// ...and when that was.
    pub last_checkpoint: Instant,
    /// A flush waits for this seq: commit and sync it at once, and write
    /// the head marker before reporting it synced (0: none).
    pub head_at: u64,
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
        match item {
            Item::Checkpoint { .. } => {
                self.since_checkpoint = 0;
                self.last_checkpoint = Instant::now();
            }
            Item::Record { .. } => self.since_checkpoint += 1,
        }
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
            || self.head_at > 0
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
    /// Since when `written` has been ahead of `durable`.
    pub unsynced_since: Option<Instant>,
    pub failed: Option<Failure>,
    /// The writer has exited; nothing more will become durable.
    pub stopped: bool,
    /// Threads blocked in [`Shared::wait_for`]: a publish notifies the
    /// condvar only when there are some (each notify is a syscall).
    pub sleepers: usize,
}

impl DurableState {
    /// When the writer must sync: at once when someone waits for a sync
    /// (`sync_demand`, a flush's seq included) or at shutdown (`urgent`),
    /// else `sync_delay` after the first unsynced write. After a failed
    /// sync never again (nothing written since the last sync may be called
    /// durable, and nothing is retried); after a failed write, what was
    /// written before it is still synced, so its waiters get an answer.
    pub(crate) fn sync_at(
        &self,
        sync_demand: u64,
        urgent: bool,
        sync_delay: Duration,
        now: Instant,
    ) -> Option<Instant> {
        let sync_failed = self
            .failed
            .as_ref()
            .is_some_and(|f| f.from <= self.durable + 1);
        if sync_failed || self.written <= self.durable {
            return None;
        }
        if sync_demand > self.durable || urgent {
            return Some(now);
        }
        self.unsynced_since.map(|t| t + sync_delay)
    }

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

/// Lock order: `committer`, then `queue`, then `durable`; never the other
/// way round.
pub(crate) struct Shared {
    pub committer: Mutex<Committer>,
    pub queue: Mutex<Queue>,
    pub wake: Condvar,
    pub durable: Mutex<DurableState>,
    pub durable_changed: Condvar,
    pub durable_tx: watch::Sender<DurableState>,
}

impl Shared {
    pub(crate) fn new(committer: Committer) -> Shared {
        let next_seq = committer.head.as_ref().map_or(1, |h| h.seq + 1);
        let last_time = committer
            .head
            .as_ref()
            .map_or(Timestamp::from_unix_micros(0), |h| h.time);
        let durable = DurableState {
            written: next_seq - 1,
            durable: next_seq - 1,
            unsynced_since: None,
            failed: None,
            stopped: false,
            sleepers: 0,
        };
        Shared {
            committer: Mutex::new(committer),
            queue: Mutex::new(Queue {
                next_seq,
                last_time,
                items: VecDeque::new(),
                failed: None,
                shutdown: false,
                writer_waiting: false,
                writer_deadline: None,
                since_checkpoint: 0,
                last_checkpoint: Instant::now(),
                head_at: 0,
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

    pub(crate) fn publish(&self, update: impl FnOnce(&mut DurableState)) {
        let (snapshot, sleepers) = {
            let mut d = lock(&self.durable);
            update(&mut d);
            (d.clone(), d.sleepers)
        };
        if sleepers > 0 {
            self.durable_changed.notify_all();
        }
        self.durable_tx.send_replace(snapshot);
    }

    /// Wake the writer if it sleeps past `by`.
    pub(crate) fn nudge_writer(&self, by: Instant) {
        let wake = {
            let mut q = lock(&self.queue);
            let sleeps_past = q.writer_deadline.is_none_or(|t| t > by);
            sleeps_past && std::mem::take(&mut q.writer_waiting)
        };
        if wake {
            self.wake.notify_one();
        }
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
            d.sleepers += 1;
            d = self
                .durable_changed
                .wait(d)
                .unwrap_or_else(PoisonError::into_inner);
            d.sleepers -= 1;
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
    /// The chain's head when the log was opened (already synced).
    pub head: Option<ChainHead>,
    pub shared: Arc<Shared>,
    pub store: Arc<dyn AuditStore>,
    pub signer: Arc<Signer>,
    pub config: WriterConfig,
}

/// Marks the writer stopped however it exits, so no waiter hangs forever.
struct StopGuard(Arc<Shared>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.0.publish(|d| d.stopped = true);
    }
}

/// What woke the writer, read from the queue under its lock.
struct Wake {
    /// The highest seq someone waits to see synced, a flush's included.
    sync_demand: u64,
    /// A flush waits (for the head marker too).
    flush: bool,
}

impl Writer {
    pub(crate) fn run(self) {
        let _guard = StopGuard(self.shared.clone());
        // The last synced record, and the one the head marker names.
        let mut synced_head = self.head.clone();
        let mut marker_seq = synced_head.as_ref().map_or(0, |h| h.seq);
        let mut last_head = None::<Instant>;
        loop {
            let wake = self.sleep(
                synced_head.as_ref().map_or(0, |h| h.seq) > marker_seq,
                last_head,
            );
            let shutdown = {
                let mut c = lock(&self.shared.committer);
                let force = wake.flush || lock(&self.shared.queue).shutdown;
                let committed = self
                    .shared
                    .commit_queued(&mut c, force, self.config.sync_delay);
                let q = lock(&self.shared.queue);
                let shutdown = q.shutdown && q.items.is_empty();
                drop(q);
                // A session may have committed a flush's records without
                // forcing the summaries: they go now.
                if !committed || force {
                    c.write_idle_summaries(force);
                }
                shutdown
            };
            let d = lock(&self.shared.durable).clone();
            let now = Instant::now();
            if d.written == d.durable {
                // Summary-only updates get indexed too.
                if let Err(e) = self.store.maintain() {
                    tracing::warn!(error = %e, "audit session summaries not written");
                }
            }
            let sync_at = d.sync_at(wake.sync_demand, shutdown, self.config.sync_delay, now);
            if sync_at.is_some_and(|t| now >= t) {
                // Everything up to this head is written: the sync covers it.
                let target = lock(&self.shared.committer).head.clone();
                // Readers see every record reported synced (and maybe more).
                match self.store.sync().and_then(|()| self.store.maintain()) {
                    Ok(()) => {
                        let seq = target.as_ref().map_or(0, |h| h.seq);
                        synced_head = target;
                        // A flush returns only with the head marker written;
                        // read now, so one asked for during the sync counts.
                        let flush_at = lock(&self.shared.queue).head_at;
                        if shutdown || (flush_at > 0 && flush_at <= seq) {
                            self.write_head(synced_head.as_ref());
                            marker_seq = seq;
                            last_head = Some(now);
                        }
                        self.shared.publish(|d| {
                            d.durable = seq;
                            d.unsynced_since = (d.written > seq).then_some(now);
                        });
                    }
                    // Nothing written since the last sync may be called
                    // durable now.
                    Err(e) => self.shared.fail(d.durable + 1, &e),
                }
            }
            // The periodic rewrite happens after waking the waiters, so its
            // fsyncs add no latency to them.
            let head_due = wake.flush
                || shutdown
                || last_head.is_none_or(|t| now >= t + self.config.head_interval);
            let head_seq = synced_head.as_ref().map_or(0, |h| h.seq);
            if head_seq > marker_seq && head_due {
                self.write_head(synced_head.as_ref());
                marker_seq = head_seq;
                last_head = Some(now);
            }
            {
                // A flush is done once the marker names its seq; after a
                // failure it never will be.
                let mut q = lock(&self.shared.queue);
                if q.head_at <= marker_seq || q.failed.is_some() {
                    q.head_at = 0;
                }
            }
            if shutdown {
                let d = lock(&self.shared.durable).clone();
                if d.written == d.durable {
                    if let Err(e) = self.store.close() {
                        tracing::warn!(error = %e, "audit store not closed cleanly: the next open recovers from its journal");
                    }
                }
                return;
            }
        }
    }

    /// Wait until there is something to do: records to commit (a demand, a
    /// flush, a full batch, the commit delay), a sync due, a checkpoint,
    /// the head marker, summaries, or shutdown.
    fn sleep(&self, head_dirty: bool, last_head: Option<Instant>) -> Wake {
        let summaries_due = lock(&self.shared.committer).summaries.due_at();
        let mut q = lock(&self.shared.queue);
        loop {
            let now = Instant::now();
            if q.shutdown || q.commit_due(self.config.batch_max, self.config.commit_delay, now) {
                break;
            }
            let sync_due = lock(&self.shared.durable).sync_at(
                q.sync_demand.max(q.head_at),
                false,
                self.config.sync_delay,
                now,
            );
            if sync_due.is_some_and(|t| now >= t) {
                break;
            }
            // Summaries were read before the queue lock (lock order); a
            // commit by a session since then also nudges us, and this
            // bounds the staleness in any case.
            let mut deadline = now + SUMMARY_INTERVAL;
            if q.since_checkpoint > 0 && q.failed.is_none() {
                let checkpoint_due = q.last_checkpoint + self.config.checkpoint_interval;
                if now >= checkpoint_due {
                    q.push(Item::Checkpoint { prune: None });
                    break;
                }
                deadline = deadline.min(checkpoint_due);
            }
            if let Some(t) = sync_due {
                deadline = deadline.min(t);
            }
            if let Some(front) = q.items.front() {
                // Records wait for a demand, a full batch or their delay.
                deadline = deadline.min(front.queued + self.config.commit_delay);
            } else {
                // The head marker only ever names a synced record.
                let head_due = if q.head_at > 0 {
                    now
                } else {
                    last_head.map_or(now, |t| t + self.config.head_interval)
                };
                if head_dirty && now >= head_due {
                    break;
                }
                if summaries_due.is_some_and(|t| now >= t) {
                    break;
                }
                if head_dirty {
                    deadline = deadline.min(head_due);
                }
                if let Some(t) = summaries_due {
                    deadline = deadline.min(t);
                }
            }
            q.writer_waiting = true;
            q.writer_deadline = Some(deadline);
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
            q.writer_deadline = None;
        }
        Wake {
            sync_demand: q.sync_demand.max(q.head_at),
            flush: q.head_at > 0,
        }
    }

    fn write_head(&self, head: Option<&ChainHead>) {
        let Some(head) = head else { return };
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
}
