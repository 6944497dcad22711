//! Shared fixtures: a real store in a temporary directory.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ed25519_dalek::SigningKey;
use sluice_approvals::{fingerprint, Approvals, ApprovalsConfig, Mode, NewRequest, Request};
use sluice_core::{Identity, Param};
use std::path::Path;
use std::time::Duration;
use tempfile::TempDir;

pub const KEY: [u8; 32] = [7; 32];

pub fn config() -> ApprovalsConfig {
    ApprovalsConfig {
        agent_groups: vec!["agents".into()],
        wait_poll: Duration::from_millis(50),
        ..ApprovalsConfig::default()
    }
}

pub fn open_at(dir: &Path) -> Approvals {
    Approvals::open(dir, SigningKey::from_bytes(&KEY), config()).unwrap()
}

pub fn store_with(config: ApprovalsConfig) -> (TempDir, Approvals) {
    let dir = tempfile::tempdir().unwrap();
    let approvals = Approvals::open(dir.path(), SigningKey::from_bytes(&KEY), config).unwrap();
    (dir, approvals)
}

pub fn store() -> (TempDir, Approvals) {
    let dir = tempfile::tempdir().unwrap();
    let approvals = open_at(dir.path());
    (dir, approvals)
}

pub fn agent() -> Identity {
    Identity::new("agent-1", vec!["agents".into()])
}

pub fn dba(name: &str) -> Identity {
    Identity::new(name, vec!["dba".into()])
}

pub const TEXT: &str = "DELETE FROM orders WHERE id = $1";
pub const RESOURCE: &str = "app";

pub fn statement_params() -> Vec<Param> {
    vec![Param::Text(b"42".to_vec())]
}

pub fn statement_fingerprint() -> sluice_approvals::Fingerprint {
    fingerprint(RESOURCE, "agent-1", TEXT, &statement_params())
}

pub fn new_request(quorum: u32) -> NewRequest {
    NewRequest {
        requester: agent(),
        resource: RESOURCE.into(),
        text: TEXT.into(),
        params: vec![Some("42".into())],
        session_state: String::new(),
        fingerprint: statement_fingerprint(),
        actions: vec!["delete".into()],
        policy_id: "review-deletes".into(),
        reason: Some("deletes need a human".into()),
        approver_group: "dba".into(),
        quorum,
        mode: Mode::Deferred,
        ttl: None,
    }
}

pub fn create(approvals: &Approvals, quorum: u32) -> Request {
    approvals.create(new_request(quorum)).unwrap()
}

/// A request approved by one dba, ready to consume.
pub fn approved(approvals: &Approvals) -> Request {
    let request = create(approvals, 1);
    approvals.approve(&request.id, &dba("alice"), None).unwrap()
}
