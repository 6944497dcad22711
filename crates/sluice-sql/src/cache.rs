//! A bounded, sharded LRU cache keyed by exact query text.
//!
//! Keyed by the exact text (not a normalized one) so two different
//! statements can never share an entry. Bounded both in entries and in bytes:
//! a client sending many distinct megabyte-sized queries must not grow the
//! gateway's memory without limit.

use lru::LruCache;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::Mutex;

const SHARDS: usize = 16;

/// Total bytes of keys the cache may hold (each entry costs about twice its
/// text: the key and the statements' copies).
pub(crate) const MAX_BYTES: usize = 64 * 1024 * 1024;

/// Fixed bookkeeping cost counted per entry.
const ENTRY_OVERHEAD: usize = 256;

struct Shard<V> {
    entries: LruCache<Box<str>, V>,
    bytes: usize,
}

pub(crate) struct Cache<V> {
    shards: Vec<Mutex<Shard<V>>>,
    shard_bytes: usize,
}

impl<V: Clone> Cache<V> {
    /// A cache of about `entries` entries (0: caches nothing).
    pub fn new(entries: usize) -> Cache<V> {
        let per_shard = entries.div_ceil(SHARDS);
        let shards = match NonZeroUsize::new(per_shard) {
            Some(cap) => (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        entries: LruCache::new(cap),
                        bytes: 0,
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        Cache {
            shards,
            shard_bytes: MAX_BYTES / SHARDS,
        }
    }

    fn shard(&self, key: &str) -> Option<&Mutex<Shard<V>>> {
        if self.shards.is_empty() {
            return None;
        }
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let index = usize::try_from(hasher.finish() % SHARDS as u64).unwrap_or(0);
        self.shards.get(index)
    }

    pub fn get(&self, key: &str) -> Option<V> {
        let shard = self.shard(key)?;
        let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
        shard.entries.get(key).cloned()
    }

    pub fn insert(&self, key: &str, value: V) {
        let cost = cost(key);
        if cost > self.shard_bytes / 4 {
            return; // too large to be worth a slot
        }
        let Some(shard) = self.shard(key) else {
            return;
        };
        let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((old, _)) = shard.entries.push(key.into(), value) {
            shard.bytes = shard.bytes.saturating_sub(self::cost(&old));
        }
        shard.bytes += cost;
        while shard.bytes > self.shard_bytes {
            match shard.entries.pop_lru() {
                Some((old, _)) => shard.bytes = shard.bytes.saturating_sub(self::cost(&old)),
                None => break,
            }
        }
    }
}

fn cost(key: &str) -> usize {
    key.len() * 2 + ENTRY_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_by_entries() {
        let cache = Cache::new(SHARDS);
        for i in 0..1000 {
            cache.insert(&format!("k{i}"), i);
        }
        let kept = (0..1000)
            .filter(|i| cache.get(&format!("k{i}")).is_some())
            .count();
        assert!(kept <= SHARDS, "kept {kept}");
        assert_eq!(cache.get("k999"), Some(999));
    }

    #[test]
    fn evicts_by_bytes() {
        let cache = Cache::new(1_000_000);
        let big = "x".repeat(MAX_BYTES / SHARDS / 8);
        for i in 0..200 {
            cache.insert(&format!("{i}{big}"), i);
        }
        let held: usize = cache
            .shards
            .iter()
            .map(|s| s.lock().map(|s| s.bytes).unwrap_or(0))
            .sum();
        assert!(held <= MAX_BYTES, "{held}");
    }

    #[test]
    fn zero_entries_caches_nothing() {
        let cache = Cache::new(0);
        cache.insert("a", 1);
        assert_eq!(cache.get("a"), None);
    }
}
