//! [`AuditLog`]: the handle the gateway and the CLI use. Writing lives
//! here; reading, export and verification in `read`, retention in `prune`.

mod prune;
mod read;

pub use prune::PruneReport;

use crate::chain::RecordHasher;
use crate::committer::Committer;
use crate::error::AuditError;
use crate::keys::{read_public_key, Signer};
use crate::record::{Body, Kind};
use crate::store::{AuditStore, SqliteStore};
use crate::summary::{SessionEffect, Summaries};
use crate::writer::{lock, Item, Level, Shared, Writer, WriterConfig};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The hard ceiling of [`AuditConfig::max_record_bytes`]: below SQLite's
/// default limit on one value (1e9 bytes), and so below a journal frame's
/// u32 length.
const MAX_RECORD_BYTES: usize = 900_000_000;

/// Tunables of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// Sign a checkpoint after this many records...
    pub checkpoint_every: u64,
    /// ...or after this long with new records, whichever comes first.
    pub checkpoint_interval: Duration,
    /// Most records committed in one transaction.
    pub batch_max: usize,
    /// Rewrite the signed head marker at most this often (and on flush):
    /// the window in which a cut-off tail goes unnoticed.
    pub head_interval: Duration,
    /// `response.content` is cut to this many bytes (and marked truncated).
    pub response_content_cap: usize,
    /// Longest a record waits for its commit when nobody waits for it
    /// (see [`AuditLog::durable_lazy`]); a wait commits at once.
    pub commit_delay: Duration,
    /// Largest body one record may have. Statement texts can be as long as
    /// the gateway's message limit, and a body holds them JSON-escaped (up
    /// to six bytes per byte); the journal's frames (u32 lengths) and
    /// SQLite (1e9 bytes per value) cannot store everything, so a larger
    /// record is refused at append rather than failing the whole log later.
    pub max_record_bytes: usize,
    /// Longest a written record waits for its sync (fsync) when nobody
    /// waits for it to survive a power loss; a [`Level::Synced`] wait syncs
    /// at once. One sync serves every record written before it.
    pub sync_delay: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(60),
            batch_max: 8192,
            head_interval: Duration::from_millis(200),
            response_content_cap: 64 * 1024,
            commit_delay: Duration::from_millis(20),
            max_record_bytes: 256 * 1024 * 1024,
            sync_delay: Duration::from_millis(5),
        }
    }
}

/// The audit log: cheap to clone, shareable across tasks and threads. The
/// writer thread stops (after a final checkpoint and head marker) when the
/// last clone is dropped or [`AuditLog::close`] is called.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn AuditStore>,
    /// None when read-only.
    shared: Option<Arc<Shared>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    config: AuditConfig,
    /// The key signatures are verified against.
    public_key: Option<String>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        stop_writer(self.shared.as_deref(), &self.writer);
    }
}

fn stop_writer(shared: Option<&Shared>, writer: &Mutex<Option<JoinHandle<()>>>) {
    let Some(shared) = shared else { return };
    {
        let mut q = lock(&shared.queue);
        if !q.shutdown {
            if q.since_checkpoint > 0 && q.failed.is_none() {
                q.push(Item::Checkpoint { prune: None });
            }
            q.shutdown = true;
        }
    }
    shared.wake.notify_all();
    if let Some(handle) = lock(writer).take() {
        if handle.join().is_err() {
            tracing::error!("audit writer thread panicked");
        }
    }
}

impl AuditLog {
    /// Open `<data_dir>/audit.db` for writing (creating the directory, the
    /// database and the signing key on first use) and start the writer.
    pub fn open(data_dir: &Path, config: AuditConfig) -> Result<AuditLog, AuditError> {
        let store = SqliteStore::open(data_dir)?;
        let signer = Signer::load_or_create(data_dir)?;
        AuditLog::with_store(Arc::new(store), signer, config)
    }

    /// Open an existing log for queries, export and verification, e.g. from
    /// the CLI while the gateway runs. `append` fails on it.
    pub fn open_read_only(data_dir: &Path) -> Result<AuditLog, AuditError> {
        let store = SqliteStore::open_read_only(data_dir)?;
        Ok(AuditLog {
            inner: Arc::new(Inner {
                store: Arc::new(store),
                shared: None,
                writer: Mutex::new(None),
                config: AuditConfig::default(),
                public_key: read_public_key(data_dir)?,
            }),
        })
    }

    /// Run on any store (the seam for a PostgreSQL store).
    pub fn with_store(
        store: Arc<dyn AuditStore>,
        signer: Signer,
        config: AuditConfig,
    ) -> Result<AuditLog, AuditError> {
        let signer = Arc::new(signer);
        let head = store.head()?;
        let shared = Arc::new(Shared::new(Committer {
            store: store.clone(),
            signer: signer.clone(),
            head: head.clone(),
            summaries: Summaries::new(),
            batch_max: config.batch_max.max(1),
        }));
        let public_key = Some(signer.public_hex().to_owned());
        let writer = Writer {
            head,
            shared: shared.clone(),
            store: store.clone(),
            signer,
            config: WriterConfig {
                batch_max: config.batch_max.max(1),
                commit_delay: config.commit_delay,
                sync_delay: config.sync_delay,
                checkpoint_interval: config.checkpoint_interval,
                head_interval: config.head_interval,
            },
        };
        let handle = std::thread::Builder::new()
            .name("sluice-audit-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| AuditError::Writer(e.to_string()))?;
        Ok(AuditLog {
            inner: Arc::new(Inner {
                store,
                shared: Some(shared),
                writer: Mutex::new(Some(handle)),
                config,
                public_key,
            }),
        })
    }

    fn shared(&self) -> Result<&Shared, AuditError> {
        self.inner
            .shared
            .as_deref()
            .ok_or(AuditError::NotWritable("opened read-only"))
    }

    /// Queue a record and return its seq at once. The record is durable once
    /// [`durable`](Self::durable) resolves for that seq. Fails fast when the
    /// store has failed or the log is closed. A `response` body's content is
    /// capped at `response_content_cap` here.
    pub fn append(&self, session: &str, body: impl Into<Body>) -> Result<u64, AuditError> {
        let mut body = body.into();
        match &mut body {
            Body::Checkpoint(_) => return Err(AuditError::ReservedKind),
            Body::Response(r) => r.cap_content(self.inner.config.response_content_cap),
            Body::Stream(r) => r.cap_data(self.inner.config.response_content_cap),
            _ => {}
        }
        let kind = body.kind();
        let body_json = body.to_json()?;
        let max = self.inner.config.max_record_bytes.min(MAX_RECORD_BYTES);
        if body_json.len() > max {
            return Err(AuditError::RecordTooLarge {
                bytes: body_json.len(),
                max,
            });
        }
        // Hashed here, on the appender's thread: the writer only finishes it.
        let hasher = RecordHasher::new(session, kind.as_str(), &body_json);
        let effect = SessionEffect::of(&body);
        let shared = self.shared()?;
        let (seq, wake) = {
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
            match kind {
                Kind::SessionStart => {
                    let next = q.next_seq;
                    q.open_sessions.insert(session.to_owned(), next);
                }
                Kind::SessionEnd => {
                    q.open_sessions.remove(session);
                }
                _ => {}
            }
            let seq = q.push(Item::Record {
                session: session.to_owned(),
                kind,
                body_json,
                hasher,
                effect,
            });
            if q.since_checkpoint >= self.inner.config.checkpoint_every.max(1) {
                q.push(Item::Checkpoint { prune: None });
            }
            // The writer must commit this within the commit delay if nobody
            // waits for it (a waiting session usually commits it first), and
            // must learn of a full batch at once.
            let by = if q.items.len() >= self.inner.config.batch_max {
                Instant::now()
            } else {
                Instant::now() + self.inner.config.commit_delay
            };
            let sleeps_past = q.writer_deadline.is_none_or(|t| t > by);
            (seq, sleeps_past && std::mem::take(&mut q.writer_waiting))
        };
        if wake {
            shared.wake.notify_one();
        }
        Ok(seq)
    }

    fn check_known(&self, shared: &Shared, seq: u64) -> Result<(), AuditError> {
        let next = lock(&shared.queue).next_seq;
        if seq == 0 || seq >= next {
            return Err(AuditError::UnknownSeq { seq, next });
        }
        Ok(())
    }

    /// Resolves once record `seq` is committed and fsync'd; errors if the
    /// store failed before it got there. Never reports a record durable that
    /// is not.
    pub async fn durable(&self, seq: u64) -> Result<(), AuditError> {
        self.reach(seq, Level::Synced, true).await
    }

    /// Like [`durable`](Self::durable), without asking for a commit: for a
    /// record nobody needs durable yet, committed with the next demanded
    /// one, a full batch, or after the commit delay.
    pub async fn durable_lazy(&self, seq: u64) -> Result<(), AuditError> {
        self.reach(seq, Level::Synced, false).await
    }

    /// Resolves once record `seq` has reached `level`; with `now`, asks the
    /// writer to get it there without delay (otherwise it gets there with
    /// the next demanded record, a full batch, or after the commit and sync
    /// delays).
    pub async fn reach(&self, seq: u64, level: Level, now: bool) -> Result<(), AuditError> {
        let shared = self.shared()?;
        self.check_known(shared, seq)?;
        if now {
            self.hurry(shared, seq, level);
        }
        let mut rx = shared.durable_tx.subscribe();
        loop {
            if let Some(outcome) = rx.borrow_and_update().outcome(seq, level) {
                return outcome;
            }
            // The sender lives in `shared`, which we hold: this cannot close.
            if rx.changed().await.is_err() {
                return Err(AuditError::Writer("durability channel closed".into()));
            }
        }
    }

    /// Asks for every record up to `seq` to reach `level` now rather than
    /// after the commit (and sync) delay.
    pub fn demand(&self, seq: u64, level: Level) -> Result<(), AuditError> {
        let shared = self.shared()?;
        self.hurry(shared, seq, level);
        Ok(())
    }

    /// Writes the queue on this thread (a few µs: one `write`, after
    /// whoever holds the committer finishes theirs), so no thread is woken
    /// for it; the writer thread is asked only for what this cannot do: a
    /// sync (or anything, once the log has failed).
    fn hurry(&self, shared: &Shared, seq: u64, level: Level) {
        let written = shared.write_now(seq, self.inner.config.sync_delay);
        if !written || level == Level::Synced {
            shared.demand(seq, level);
        }
    }

    /// Blocking form of [`durable`](Self::durable) for threads outside tokio.
    pub fn wait_durable(&self, seq: u64) -> Result<(), AuditError> {
        let shared = self.shared()?;
        self.check_known(shared, seq)?;
        shared.wait_for(seq, Level::Synced)
    }

    /// The highest seq known durable (0 for none, or for a read-only log).
    pub fn durable_seq(&self) -> u64 {
        self.inner
            .shared
            .as_deref()
            .map_or(0, |s| lock(&s.durable).durable)
    }

    /// `Err` once the store has failed (for health checks and for the
    /// fail-open-for-reads switch).
    pub fn health(&self) -> Result<(), AuditError> {
        let shared = self.shared()?;
        match &lock(&shared.queue).failed {
            Some(f) => Err(AuditError::Failed {
                failed_from: f.from,
                reason: f.reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Queue a checkpoint (when records came since the last one) and a head
    /// marker rewrite; returns the seq to await.
    fn request_flush(&self) -> Result<Option<u64>, AuditError> {
        let shared = self.shared()?;
        let (seq, wake) = {
            let mut q = lock(&shared.queue);
            if let Some(f) = &q.failed {
                return Err(AuditError::Failed {
                    failed_from: f.from,
                    reason: f.reason.clone(),
                });
            }
            if q.shutdown {
                return Ok(None);
            }
            let seq = if q.since_checkpoint > 0 {
                q.push(Item::Checkpoint { prune: None })
            } else {
                q.next_seq - 1
            };
            q.head_at = q.head_at.max(seq);
            (seq, true)
        };
        if wake {
            shared.wake.notify_one();
        }
        Ok((seq > 0).then_some(seq))
    }

    /// Sign the head with a checkpoint, make everything durable and rewrite
    /// the head marker. Blocking; see [`flush_async`](Self::flush_async).
    pub fn flush(&self) -> Result<(), AuditError> {
        match self.request_flush()? {
            Some(seq) => self
                .inner
                .shared
                .as_deref()
                .map_or(Ok(()), |s| s.wait_for(seq, Level::Synced)),
            None => Ok(()),
        }
    }

    pub async fn flush_async(&self) -> Result<(), AuditError> {
        match self.request_flush()? {
            Some(seq) => self.durable(seq).await,
            None => Ok(()),
        }
    }

    /// Flush and stop the writer; later appends fail with `NotWritable`.
    /// Also happens when the last clone is dropped.
    pub fn close(&self) -> Result<(), AuditError> {
        if self.inner.shared.is_none() {
            return Ok(());
        }
        let flushed = self.flush();
        stop_writer(self.inner.shared.as_deref(), &self.inner.writer);
        flushed
    }

    /// The hex public key checkpoints are signed (and verified) with.
    pub fn public_key(&self) -> Option<&str> {
        self.inner.public_key.as_deref()
    }

    /// The store, for callers that need raw access.
    pub fn store(&self) -> &Arc<dyn AuditStore> {
        &self.inner.store
    }
}
