//! Background WAL checkpointing for the SQLite store.
//!
//! With SQLite's default auto-checkpoint the *committing* thread copies the
//! WAL into the database every 1000 pages, so one unlucky batch of appenders
//! pays for it (measured: ~17% of the writer's time). Here a separate thread
//! runs PASSIVE checkpoints, which never block the writer; the writer keeps
//! a much higher auto-checkpoint limit only as a backstop if this thread
//! falls behind.

use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Pages after which the writer checkpoints by itself (about 40 MiB); by
/// then the background thread has copied most frames, so this is short.
pub(crate) const WRITER_BACKSTOP_PAGES: i64 = 10_000;
const EVERY: Duration = Duration::from_millis(250);

pub(crate) struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Start checkpointing `db`. Failures are logged, never fatal: the WAL
    /// still holds every committed record.
    pub(crate) fn start(db: &Path) -> Result<Checkpointer, rusqlite::Error> {
        let conn = Connection::open(db)?;
        conn.busy_timeout(Duration::from_millis(100))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-audit-wal".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::park_timeout(EVERY);
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "audit WAL checkpoint failed");
                    }
                }
            })
            .ok();
        Ok(Checkpointer { stop, thread })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
