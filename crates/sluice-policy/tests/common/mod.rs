//! Builders shared by the integration tests.
#![allow(dead_code)]

use sluice_core::{Action, Identity, Statement};
use sluice_policy::{PolicyError, PolicySet, ResourceInfo};
use std::path::PathBuf;

/// The default policies a team starts from (`examples/policies`).
pub fn defaults() -> Result<PolicySet, PolicyError> {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    PolicySet::load(&examples, &["policies/*.cedar".to_string()])
}

pub fn stmt(action: Action, text: &str) -> Statement {
    Statement {
        action,
        text: text.into(),
        tables: vec!["users".into()],
        has_where: true,
        functions: Vec::new(),
        calls_volatile: false,
        fingerprint: String::new(),
        commits: false,
        copies_out: false,
        locks_rows: false,
        defines_code: false,
        unproven: None,
        field_names: Vec::new(),
        kubernetes: None,
        s3: None,
        error: None,
    }
}

pub fn without_where(mut s: Statement) -> Statement {
    s.has_where = false;
    s
}

pub fn volatile(mut s: Statement, function: &str) -> Statement {
    s.functions.push(function.into());
    s.calls_volatile = true;
    s
}

pub fn agent() -> Identity {
    Identity::new("agent-1", vec!["agents".into()])
}

pub fn dba() -> Identity {
    Identity::new("alice", vec!["dba".into(), "staff".into()])
}

pub fn nobody() -> Identity {
    Identity::new("mallory", vec!["staff".into()])
}

pub fn resource(name: &str, env: Option<&str>) -> ResourceInfo {
    let mut r = ResourceInfo {
        name: name.into(),
        kind: "postgres".into(),
        ..Default::default()
    };
    if let Some(env) = env {
        r.tags.insert("env".into(), env.into());
    }
    r
}

pub fn prod() -> ResourceInfo {
    resource("app", Some("prod"))
}

pub fn staging() -> ResourceInfo {
    resource("app-staging", Some("staging"))
}

pub fn ids(d: &sluice_core::Decision) -> Vec<&str> {
    d.policies.iter().map(|p| p.id.as_str()).collect()
}
