//! In-memory wake-ups for sessions waiting on a request.
//!
//! One `watch` sender per request id that someone is waiting on. A change to
//! the request removes the sender and drops it, which wakes every receiver;
//! the waiters then re-read the store (the store, not the wake-up, is the
//! truth). An entry disappears when the request changes or when its last
//! waiter goes away, so finished or abandoned requests leave nothing behind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

#[derive(Default)]
pub(crate) struct Waiters {
    map: Mutex<HashMap<String, watch::Sender<()>>>,
}

impl Waiters {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, watch::Sender<()>>> {
        // The map only holds senders; a panic elsewhere cannot leave it
        // half-updated in a way that matters.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribe before reading the store, so a change between the read and
    /// the wait is not missed.
    pub(crate) fn subscribe(self: &Arc<Self>, id: &str) -> Subscription {
        let rx = self
            .lock()
            .entry(id.to_string())
            .or_insert_with(|| watch::channel(()).0)
            .subscribe();
        Subscription {
            rx: Some(rx),
            id: id.to_string(),
            waiters: Arc::clone(self),
        }
    }

    pub(crate) fn wake(&self, id: &str) {
        if let Some(tx) = self.lock().remove(id) {
            // Dropping the sender alone wakes receivers too; sending first
            // makes the intent plain.
            let _ = tx.send(());
        }
    }

    /// Entries still held; for tests proving nothing leaks.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

pub(crate) struct Subscription {
    rx: Option<watch::Receiver<()>>,
    id: String,
    waiters: Arc<Waiters>,
}

impl Subscription {
    /// Resolves once the request was changed (or the entry was dropped).
    pub(crate) async fn changed(&mut self) {
        if let Some(rx) = self.rx.as_mut() {
            // Err means the sender is gone, which is also a wake-up.
            let _ = rx.changed().await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.rx.take());
        let mut map = self.waiters.lock();
        if map.get(&self.id).is_some_and(|tx| tx.receiver_count() == 0) {
            map.remove(&self.id);
        }
    }
}
