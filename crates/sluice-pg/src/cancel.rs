//! Cancel keys. Each client gets a key minted by the gateway; the backend's
//! real key stays here, so a client can cancel only its own statement and
//! never learns anything about the target.

use crate::backend::BackendTarget;
use rand::Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;
use tokio::sync::watch;

struct Entry {
    /// Counts valid cancel requests, for a session waiting in the gateway
    /// (for an approval) rather than in the backend.
    cancels: watch::Sender<u64>,
    secret: i32,
    target: Arc<BackendTarget>,
    backend_pid: i32,
    backend_secret: i32,
}

/// What a valid cancel request maps to.
pub struct CancelTarget {
    pub target: Arc<BackendTarget>,
    pub backend_pid: i32,
    pub backend_secret: i32,
}

#[derive(Clone, Default)]
pub struct CancelRegistry {
    inner: Arc<Mutex<HashMap<i32, Entry>>>,
}

/// Removes the key from the registry when the session ends.
pub struct CancelKey {
    pub pid: i32,
    pub secret: i32,
    /// Changes with every valid cancel request for this session.
    pub cancels: watch::Receiver<u64>,
    registry: CancelRegistry,
}

impl Drop for CancelKey {
    fn drop(&mut self) {
        if let Ok(mut map) = self.registry.inner.lock() {
            map.remove(&self.pid);
        }
    }
}

impl CancelRegistry {
    pub fn register(
        &self,
        target: Arc<BackendTarget>,
        backend_pid: i32,
        backend_secret: i32,
    ) -> CancelKey {
        let mut rng = rand::thread_rng();
        let secret: i32 = rng.gen();
        let mut map = match self.inner.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let pid = loop {
            // Positive like a real pid, and unique among live sessions.
            let pid = rng.gen_range(1..i32::MAX);
            if !map.contains_key(&pid) {
                break pid;
            }
        };
        let (cancels, cancel_rx) = watch::channel(0);
        map.insert(
            pid,
            Entry {
                cancels,
                secret,
                target,
                backend_pid,
                backend_secret,
            },
        );
        CancelKey {
            pid,
            secret,
            cancels: cancel_rx,
            registry: self.clone(),
        }
    }

    /// The backend to cancel, if `pid` is live and `secret` matches.
    pub fn lookup(&self, pid: i32, secret: i32) -> Option<CancelTarget> {
        let map = self.inner.lock().ok()?;
        let e = map.get(&pid)?;
        if bool::from(e.secret.to_be_bytes().ct_eq(&secret.to_be_bytes())) {
            e.cancels.send_modify(|n| *n += 1);
            Some(CancelTarget {
                target: e.target.clone(),
                backend_pid: e.backend_pid,
                backend_secret: e.backend_secret,
            })
        } else {
            None
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|m| m.len()).unwrap_or(0)
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
    fn a_cancel_key_maps_to_the_backend_key_only_with_the_right_secret() {
        let reg = CancelRegistry::default();
        let key = reg.register(target(), 4242, 99);
        let hit = reg.lookup(key.pid, key.secret).unwrap();
        assert_eq!((hit.backend_pid, hit.backend_secret), (4242, 99));
        assert!(reg.lookup(key.pid, key.secret.wrapping_add(1)).is_none());
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
