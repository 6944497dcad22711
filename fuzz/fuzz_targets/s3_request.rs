//! The S3 request reader on arbitrary requests: a method line, a path
//! line, query pairs (`k=v` lines) up to a `--` line, then headers
//! (`name: value`). Must never panic; whatever it cannot read is
//! `unknown` with a reason (refused before policy); a key it accepts has
//! no dot segment or control character; every part it hands policy names
//! the request's bucket or a copy's source.
//! Run: `cargo fuzz run s3_request -- -max_total_time=300` (RUSTC_BOOTSTRAP=1
//! on a stable toolchain).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::Action;
use sluice_s3::op::{self, Target};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or_default();
    let path = lines.next().unwrap_or_default();
    let mut query = Vec::new();
    let mut headers = Vec::new();
    let mut in_headers = false;
    for line in lines {
        if line == "--" {
            in_headers = true;
        } else if in_headers {
            let (k, v) = line.split_once(':').unwrap_or((line, ""));
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        } else {
            let (k, v) = line.split_once('=').unwrap_or((line, ""));
            query.push((k.to_owned(), v.to_owned()));
        }
    }
    let Ok(decoded) = op::decode(path) else {
        return;
    };
    let mut parts = decoded.trim_start_matches('/').splitn(2, '/');
    let bucket = parts.next().filter(|b| !b.is_empty()).map(str::to_owned);
    let key = parts.next().filter(|k| !k.is_empty()).map(str::to_owned);
    if let Some(k) = &key {
        if op::check_key(k).is_ok() {
            assert!(!k.split('/').any(|s| s == "." || s == ".."), "{k:?}");
            assert!(!k.chars().any(char::is_control), "{k:?}");
        }
    }
    let target = Target {
        bucket: bucket.clone(),
        key,
    };
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let u = op::understand(method, target, &query, header);
    if u.action == Action::Unknown {
        assert!(u.error.is_some(), "unknown without a reason: {u:?}");
    }
    let keys = vec![("a".to_owned(), None)];
    let statements = u.statements("fuzz", Some(1), &keys);
    assert!(!statements.is_empty());
    let first = &statements[0];
    assert_eq!(first.action, u.action);
    for s in &statements {
        let s3 = s.s3.as_ref().expect("every part names its object");
        let source = u.copy_source.as_ref().map(|(t, _)| t.bucket.clone());
        assert!(
            s3.bucket == bucket || Some(s3.bucket.clone()) == source,
            "a part names another bucket: {s3:?}"
        );
        if u.error.is_some() {
            assert!(s.error.is_some(), "an unreadable request's part lost its reason");
        }
    }
});
