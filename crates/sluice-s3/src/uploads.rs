//! Multipart uploads created through Sluice: decided once, at
//! CreateMultipartUpload; each part, the completion and an abort are
//! checked against that creation (same identity, bucket and key) and
//! recorded, not decided again. An upload Sluice does not know (created
//! elsewhere, or before a restart: the table lives in memory) is decided
//! part by part like any write.

use sluice_core::Identity;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Uploads older than this are forgotten (S3 keeps them until aborted or
/// a lifecycle rule ends them; a forgotten one is decided part by part).
const KEPT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Bounds the table against a client creating uploads without end.
const MAX_UPLOADS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    identity: String,
    groups: Vec<String>,
    bucket: String,
    key: String,
}

#[derive(Default)]
pub struct Uploads {
    table: Mutex<HashMap<String, (Owner, Instant)>>,
}

/// What a part's upload id says.
#[derive(Debug, PartialEq, Eq)]
pub enum Continues {
    /// Created through Sluice by this identity for this object.
    Yes,
    /// Not an upload Sluice knows: decide the request itself.
    Unknown,
    /// Created through Sluice by another identity or for another object.
    Mismatch,
}

impl Uploads {
    pub fn created(&self, id: &str, identity: &Identity, bucket: &str, key: &str) {
        let Ok(mut t) = self.table.lock() else {
            return;
        };
        if t.len() >= MAX_UPLOADS {
            t.retain(|_, (_, at)| at.elapsed() < KEPT);
        }
        if t.len() < MAX_UPLOADS {
            t.insert(
                id.to_owned(),
                (owner(identity, bucket, key), Instant::now()),
            );
        }
    }

    pub fn check(&self, id: &str, identity: &Identity, bucket: &str, key: &str) -> Continues {
        let Ok(t) = self.table.lock() else {
            return Continues::Unknown;
        };
        match t.get(id) {
            Some((o, at)) if at.elapsed() < KEPT => {
                if *o == owner(identity, bucket, key) {
                    Continues::Yes
                } else {
                    Continues::Mismatch
                }
            }
            _ => Continues::Unknown,
        }
    }

    pub fn ended(&self, id: &str) {
        if let Ok(mut t) = self.table.lock() {
            t.remove(id);
        }
    }
}

fn owner(identity: &Identity, bucket: &str, key: &str) -> Owner {
    Owner {
        identity: identity.name.clone(),
        groups: identity.groups.clone(),
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_part_continues_only_its_creators_upload_of_that_object() {
        let u = Uploads::default();
        let agent = Identity::new("agent-1", vec!["agents".into()]);
        let other = Identity::new("agent-2", vec!["agents".into()]);
        u.created("u1", &agent, "b", "scratch/x");
        assert_eq!(u.check("u1", &agent, "b", "scratch/x"), Continues::Yes);
        assert_eq!(u.check("u1", &other, "b", "scratch/x"), Continues::Mismatch);
        assert_eq!(u.check("u1", &agent, "b", "pii/x"), Continues::Mismatch);
        assert_eq!(u.check("u2", &agent, "b", "scratch/x"), Continues::Unknown);
        u.ended("u1");
        assert_eq!(u.check("u1", &agent, "b", "scratch/x"), Continues::Unknown);
    }
}
