//! The shared fixture of `approvals_api.rs`: one gateway with the approval
//! API, keys for everyone, and a second handle on its approval store.

use crate::common::{Gateway, SLUICE};
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::Value;
use sluice_approvals::{Approvals, ApprovalsConfig, Mode, NewRequest, Request};
use sluice_core::Identity;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, Weak};

/// A resource nobody connects to: the API never touches the backend.
pub const RESOURCE: &str = "[[resource]]\nname = \"app\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = 1\ndatabase = \"app\"\nuser = \"nobody\"\n";

/// A gateway with the approval API, keys for everyone, and a handle on its
/// approval store. Shared by the tests of this binary.
pub struct Fixture {
    pub store: Approvals,
    pub url: String,
    /// alice (dev, dba): requests; bob, carol (dba): approvers; bot (agents,
    /// dba): an agent; eve (ops): outside the approver group; mallory (dba):
    /// revoked.
    keys: std::collections::HashMap<&'static str, String>,
    pub gw: Gateway,
}

pub fn fixture() -> Arc<Fixture> {
    static SHARED: Mutex<Weak<Fixture>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(f) = slot.upgrade() {
        return f;
    }
    let admin = sluice_testkit::free_port();
    let mut gw = Gateway::configure(&format!("admin_listen = \"127.0.0.1:{admin}\""), RESOURCE);
    gw.start(&[]);
    let mut keys = std::collections::HashMap::new();
    for (name, groups) in [
        ("alice", "dev,dba"),
        ("bob", "dba"),
        ("carol", "dba"),
        ("bot", "agents,dba"),
        ("eve", "ops"),
        ("mallory", "dba"),
    ] {
        keys.insert(name, gw.create_key(name, groups));
    }
    let out = gw.cli(&["keys", "revoke", "--identity", "mallory"]);
    assert!(out.status.success(), "{out:?}");
    let data = gw.dir.path().join("data");
    let signer = sluice_audit::keys::Signer::load_or_create(&data).unwrap();
    let store = Approvals::open(
        &data,
        signer.signing_key().clone(),
        ApprovalsConfig::default(),
    )
    .unwrap();
    let f = Arc::new(Fixture {
        store,
        url: format!("http://127.0.0.1:{admin}"),
        keys,
        gw,
    });
    *slot = Arc::downgrade(&f);
    f
}

impl Fixture {
    /// A pending request by alice on resource app, decided by group dba.
    pub fn request(&self, text: &str, quorum: u32) -> Request {
        let requester = Identity::new("alice", vec!["dev".into(), "dba".into()]);
        let params = vec![Some("42".to_owned()), None];
        self.store
            .create(NewRequest {
                session_state: String::new(),
                fingerprint: sluice_approvals::fingerprint("app", "alice", text, &[]),
                requester,
                resource: "app".into(),
                text: text.into(),
                params,
                actions: vec!["delete".into()],
                policy_id: "review-deletes".into(),
                reason: Some("deletes need a second pair of eyes".into()),
                approver_group: "dba".into(),
                quorum,
                mode: Mode::Deferred,
                ttl: None,
            })
            .unwrap()
    }

    pub fn key(&self, who: &str) -> &str {
        &self.keys[who]
    }

    /// `sluice approvals <args>` with SLUICE_URL set and SLUICE_KEY = `key`.
    pub fn cli(&self, key: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = Command::new(SLUICE);
        cmd.arg("approvals")
            .args(args)
            .env_remove("SLUICE_KEY")
            .env_remove("SLUICE_CONFIG")
            .env("SLUICE_URL", &self.url)
            .current_dir(self.gw.dir.path());
        if let Some(k) = key {
            cmd.env("SLUICE_KEY", k);
        }
        cmd.output().unwrap()
    }

    /// A raw call; returns (status, JSON body).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let r = self.raw(method, path, key, body);
        let status = r.status();
        (status, r.json().unwrap_or(Value::Null))
    }

    pub fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> reqwest::blocking::Response {
        let client = Client::new();
        let url = format!("{}{path}", self.url);
        let mut req = match method {
            "GET" => client.get(url),
            "POST" => client.post(url),
            other => panic!("{other}"),
        };
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        req.send().unwrap()
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
