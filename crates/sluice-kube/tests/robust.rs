#![allow(clippy::unwrap_used, clippy::panic)]
//! Bad input never panics the Kubernetes front's parsers: random and
//! mutated request targets through the request-info reader, random bytes
//! and mutated lists through the list splitter and the masker, any text
//! through `Status` rendering. A small deterministic generator (no seed
//! from the clock) so a failure reproduces.

use sluice_kube::split::{Piece, Splitter};
use sluice_kube::{info, mask, status};
use sluice_mask::{MaskConfig, Masker};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

const SEGMENTS: &[&str] = &[
    "api",
    "apis",
    "v1",
    "apps",
    "namespaces",
    "default",
    "kube-system",
    "pods",
    "secrets",
    "exec",
    "proxy",
    "watch",
    "nodes",
    "status",
    "finalize",
    "log",
    ".",
    "..",
    "",
    "%2F",
    "a%",
    "é",
    "x;y",
    "portforward",
    "attach",
    "serviceaccounts",
    "token",
];
const QUERIES: &[&str] = &[
    "watch=1",
    "watch=0",
    "watch",
    "watch=false",
    "fieldSelector=metadata.name%3Dx",
    "fieldSelector=metadata.name%3D%5C",
    "labelSelector=a%3Db",
    "dryRun=All",
    "dryRun=x",
    "%zz",
    "command=sh",
    "command=-c",
    "container=c",
    "stdin=true",
    "tty",
    "ports=80",
    ";",
    "&&",
    "=",
    "a=%E2%82",
    "+%2B+",
];
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "get",
];

#[test]
fn random_request_targets_are_read_or_refused_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..200_000 {
        let mut path = String::new();
        for _ in 0..rng.below(9) {
            path.push('/');
            path.push_str(rng.pick(SEGMENTS));
        }
        if rng.below(10) == 0 {
            path.push('/');
        }
        let query: Vec<&str> = (0..rng.below(5)).map(|_| rng.pick(QUERIES)).collect();
        let query = query.join("&");
        let method = rng.pick(METHODS);
        if let Ok(u) = info::understand(method, &path, Some(&query)) {
            // What was read is what was sent: nothing normalised away.
            assert_eq!(u.request.path, path);
            assert!(!path.contains('%') && !query.contains(';'));
            assert!(
                !path
                    .split('/')
                    .skip(1)
                    .any(|s| s.is_empty() || s == "." || s == "..")
                    || path == "/",
                "{path}"
            );
        }
    }
}

fn masker() -> Masker {
    Masker::new(MaskConfig::default()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn random_and_cut_documents_pass_the_splitter_and_the_masker_without_panic() {
    let m = masker();
    let list = br#"{"kind":"SecretList","metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"a","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"data\":{\"k\":\"djE=\"}}"}},"data":{"k":"djE="}},{"metadata":{"name":"b"},"stringData":{"p":"s\"ec\\ret"}}]}"#;
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for round in 0..20_000 {
        let mut doc = list.to_vec();
        for _ in 0..rng.below(4) {
            if doc.is_empty() {
                break;
            }
            let at = rng.below(doc.len());
            match rng.below(3) {
                0 => {
                    doc.remove(at);
                }
                1 => doc.insert(at, b"{}[]\",:\\x"[rng.below(9)]),
                _ => doc.truncate(at.max(1)),
            }
        }
        let chunk = 1 + rng.below(40);
        let mut s = Splitter::default();
        let mut out = Vec::new();
        for c in doc.chunks(chunk) {
            out.extend(s.push(c));
        }
        out.extend(s.finish());
        let mut joined = Vec::new();
        for p in out {
            let (Piece::Head(b) | Piece::Item(b) | Piece::Between(b) | Piece::Whole(b)) = p;
            let _ = mask::document(&m, &b, round % 2 == 0);
            joined.extend(b);
        }
        assert_eq!(joined, doc, "the splitter lost or invented bytes");
    }
    for _ in 0..2_000 {
        let bytes: Vec<u8> = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
        let _ = mask::document(&m, &bytes, true);
        let _ = mask::text(&m, &bytes);
        let mut s = Splitter::default();
        let _ = s.push(&bytes);
        let _ = s.finish();
    }
}

#[test]
fn the_unmasked_secret_value_never_survives_a_split_list() {
    let m = masker();
    let list = br#"{"kind":"SecretList","items":[{"metadata":{"name":"a"},"data":{"k":"c3VwZXJzZWNyZXQ="}},{"metadata":{"name":"b"},"data":{"k":"c3VwZXJzZWNyZXQ="}}]}"#;
    for chunk in 1..list.len() {
        let mut s = Splitter::default();
        let mut pieces = Vec::new();
        for c in list.chunks(chunk) {
            pieces.extend(s.push(c));
        }
        pieces.extend(s.finish());
        let mut secrets = false;
        let mut out = Vec::new();
        for p in pieces {
            match p {
                Piece::Head(b) => {
                    secrets |= String::from_utf8_lossy(&b).contains("SecretList");
                    out.extend(mask::text(&m, &b));
                }
                Piece::Item(b) | Piece::Whole(b) => out.extend(mask::document(&m, &b, secrets)),
                Piece::Between(b) => out.extend(mask::text(&m, &b)),
            }
        }
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("c3VwZXJzZWNyZXQ="), "chunk {chunk}: {text}");
        let v: serde_json::Value =
            serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(v["items"].as_array().map(Vec::len), Some(2));
    }
}

#[test]
fn any_text_renders_as_a_valid_status() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for _ in 0..5_000 {
        let bytes: Vec<u8> = (0..rng.below(200)).map(|_| rng.next() as u8).collect();
        let text = String::from_utf8_lossy(&bytes);
        let body = status::body(http::StatusCode::FORBIDDEN, "Forbidden", &text);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["message"].as_str(), Some(text.as_ref()));
    }
}
