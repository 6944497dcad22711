//! Cancel keys. A client's BackendKeyData carries its backend's real
//! process id (what `pg_backend_pid()` and NotificationResponse show, so
//! drivers can match them) and a secret minted by the gateway. The
//! backend's real secret stays here: a client can cancel only its own
//! statement, and only through Sluice, which looks the pair up.
//!
//! Process ids are unique only within one server, and one gateway fronts
//! many: two sessions on different resources can share a pid. So a
//! request is matched on pid *and* secret, secrets are random and distinct
//! among the sessions sharing a pid, and a wrong secret matches nothing.

use crate::backend::BackendTarget;
use rand::Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use subtle::ConstantTimeEq;
use tokio::sync::watch;

struct Entry {
    /// Counts valid cancel requests, for a session waiting in the gateway
    /// (for an approval) rather than in the backend.
    cancels: watch::Sender<u64>,
    secret: i32,
    target: Arc<BackendTarget>,
    backend_secret: i32,
}

/// What a valid cancel request maps to.
pub struct CancelTarget {
    pub target: Arc<BackendTarget>,
    pub backend_pid: i32,
    pub backend_secret: i32,
}

/// Live sessions by backend pid; usually one per pid.
#[derive(Clone, Default)]
pub struct CancelRegistry {
    inner: Arc<Mutex<HashMap<i32, Vec<Entry>>>>,
}

/// Removes the key from the registry when the session ends.
pub struct CancelKey {
    /// The backend's own process id.
    pub pid: i32,
    /// Minted by the gateway; not the backend's.
    pub secret: i32,
    /// Changes with every valid cancel request for this session.
    pub cancels: watch::Receiver<u64>,
    registry: CancelRegistry,
}

impl Drop for CancelKey {
    fn drop(&mut self) {
        let mut map = self.registry.map();
        if let Some(entries) = map.get_mut(&self.pid) {
            entries.retain(|e| e.secret != self.secret);
            if entries.is_empty() {
                map.remove(&self.pid);
            }
        }
    }
}

fn same(a: i32, b: i32) -> bool {
    bool::from(a.to_be_bytes().ct_eq(&b.to_be_bytes()))
}

impl CancelRegistry {
    /// A poisoned lock still holds a consistent map (no code path panics
    /// half-way through a change), so it is used rather than lost.
    fn map(&self) -> MutexGuard<'_, HashMap<i32, Vec<Entry>>> {
        match self.inner.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn register(
        &self,
        target: Arc<BackendTarget>,
        backend_pid: i32,
        backend_secret: i32,
    ) -> CancelKey {
        let mut rng = rand::thread_rng();
        let mut map = self.map();
        let entries = map.entry(backend_pid).or_default();
        let secret = loop {
            // Distinct among the sessions sharing this pid.
            let secret: i32 = rng.gen();
            if !entries.iter().any(|e| e.secret == secret) {
                break secret;
            }
        };
        let (cancels, cancel_rx) = watch::channel(0);
        entries.push(Entry {
            cancels,
            secret,
            target,
            backend_secret,
        });
        CancelKey {
            pid: backend_pid,
            secret,
            cancels: cancel_rx,
            registry: self.clone(),
        }
    }

    /// The backend to cancel, if a live session has `pid` and `secret`.
    pub fn lookup(&self, pid: i32, secret: i32) -> Option<CancelTarget> {
        let map = self.map();
        // Every candidate is compared, in constant time, whichever matches.
        let mut hit = None;
        for e in map.get(&pid)? {
            if same(e.secret, secret) {
                hit = Some(e);
            }
        }
        let e = hit?;
        e.cancels.send_modify(|n| *n += 1);
        Some(CancelTarget {
            target: e.target.clone(),
            backend_pid: pid,
            backend_secret: e.backend_secret,
        })
    }

    /// Sessions registered.
    pub fn len(&self) -> usize {
        self.map().values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::backend::BackendTls;
    use std::time::Duration;

    fn target() -> Arc<BackendTarget> {
        Arc::new(BackendTarget {
            host: "127.0.0.1".into(),
            port: 1,
            database: "d".into(),
            user: "u".into(),
            password: None,
            tls: BackendTls::Disable,
            connect_timeout: Duration::from_secs(1),
        })
    }

    #[test]
    fn a_cancel_key_carries_the_real_pid_and_maps_to_the_backend_key_only_with_the_right_secret() {
        let reg = CancelRegistry::default();
        let key = reg.register(target(), 4242, 99);
        assert_eq!(key.pid, 4242, "the client sees the backend's pid");
        let hit = reg.lookup(key.pid, key.secret).unwrap();
        assert_eq!((hit.backend_pid, hit.backend_secret), (4242, 99));
        assert!(reg.lookup(key.pid, key.secret.wrapping_add(1)).is_none());
    }

    #[test]
    fn sessions_sharing_a_backend_pid_are_told_apart_by_their_secrets() {
        let reg = CancelRegistry::default();
        let (a, b) = (target(), target());
        let ka = reg.register(a.clone(), 77, 1);
        let kb = reg.register(b.clone(), 77, 2);
        assert_ne!(ka.secret, kb.secret);
        let hit = reg.lookup(77, kb.secret).unwrap();
        assert!(Arc::ptr_eq(&hit.target, &b) && hit.backend_secret == 2);
        assert!(
            !ka.cancels.has_changed().unwrap(),
            "only the matched session is told"
        );
        let gone = kb.secret;
        drop(kb);
        assert!(reg.lookup(77, gone).is_none());
        let hit = reg.lookup(77, ka.secret).unwrap();
        assert!(Arc::ptr_eq(&hit.target, &a) && hit.backend_secret == 1);
        assert!(ka.cancels.has_changed().unwrap());
        assert_eq!(reg.len(), 1);
    }

    #[test]
    fn a_key_is_forgotten_when_its_session_ends() {
        let reg = CancelRegistry::default();
        let key = reg.register(target(), 1, 2);
        let (pid, secret) = (key.pid, key.secret);
        drop(key);
        assert!(reg.lookup(pid, secret).is_none());
        assert!(reg.is_empty());
    }
}
