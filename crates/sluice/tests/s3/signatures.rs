//! Signatures verified as S3 verifies them: presigned URLs, wrong and
//! revoked keys, skewed clocks, chunk-signed streams.

use crate::{aws, bucket, file, fixture, ok, py, s3_keys};
use std::time::Duration;

#[test]
fn presigned_urls_expire_and_are_bound_to_method_bucket_and_key_and_sigv2_is_refused() {
    let f = fixture();
    let b = bucket(f, "presign");
    let p = file(f, "p.txt", b"presigned\n");
    ok(aws(
        f,
        &f.agent,
        &["s3", "cp", p.to_str().unwrap(), &format!("s3://{b}/k.txt")],
    ));
    let url = py(
        f,
        &f.agent.id,
        &f.agent.secret,
        &["presign", "GET", &b, "k.txt", "8"],
    )["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = py(f, "", "", &["fetch", "GET", &url]);
    assert_eq!(
        (r["status"].as_i64(), r["body"].as_str()),
        (Some(200), Some("presigned\n")),
        "{r}"
    );
    let r = py(f, "", "", &["fetch", "DELETE", &url]);
    assert_eq!(r["status"], 403, "another method: {r}");
    assert!(f.s3.has(&b, "k.txt"));
    let r = py(
        f,
        "",
        "",
        &["fetch", "GET", &url.replace("/k.txt", "/other.txt")],
    );
    assert_eq!(r["code"], "SignatureDoesNotMatch", "another key: {r}");
    std::thread::sleep(Duration::from_secs(9));
    let r = py(f, "", "", &["fetch", "GET", &url]);
    assert_eq!(r["status"], 403, "expired: {r}");
    assert!(r["body"].as_str().unwrap().contains("expired"), "{r}");
    let v2 = format!(
        "http://127.0.0.1:{}/{b}/k.txt?AWSAccessKeyId={}&Signature=x&Expires=9999999999",
        f.port, f.agent.id
    );
    let r = py(f, "", "", &["fetch", "GET", &v2]);
    assert!(
        r["body"]
            .as_str()
            .unwrap()
            .contains("Signature Version 4 only"),
        "{r}"
    );
}

#[test]
fn wrong_secrets_backend_keys_revoked_keys_and_skewed_clocks_get_s3_errors() {
    let f = fixture();
    let b = bucket(f, "signatures");
    let r = py(f, &f.agent.id, "wrong-secret", &["get", &b, "x"]);
    assert_eq!(r["code"], "SignatureDoesNotMatch", "{r}");
    let r = py(f, &f.s3.access_key(), &f.s3.secret_key(), &["get", &b, "x"]);
    assert_eq!(
        r["code"], "InvalidAccessKeyId",
        "the backend's own keys: {r}"
    );
    let r = py(
        f,
        &f.agent.id,
        &f.agent.secret,
        &["signed", "GET", &format!("/{b}/x"), "-1800"],
    );
    assert_eq!(r["status"], 403, "a clock 30 min behind: {r}");
    let revoked = s3_keys(&f.gw, "agent-9", "agents");
    assert_eq!(
        py(
            f,
            &revoked.id,
            &revoked.secret,
            &["put", &b, "r.txt", "x", "text/plain"]
        )["status"],
        200
    );
    let out = f.gw.cli(&["keys", "revoke", "--key-id", &revoked.id]);
    assert!(out.status.success());
    let r = py(
        f,
        &revoked.id,
        &revoked.secret,
        &["put", &b, "r2.txt", "x", "text/plain"],
    );
    assert_eq!(r["code"], "InvalidAccessKeyId", "revoked: {r}");
    assert!(!f.s3.has(&b, "r2.txt"));
}

#[test]
fn chunk_signed_streams_are_checked_chunk_by_chunk_and_a_truncated_tampered_or_misdigested_body_stores_nothing(
) {
    let f = fixture();
    let b = bucket(f, "chunks");
    let upload = |key: &str, mode: &str| {
        py(
            f,
            &f.agent.id,
            &f.agent.secret,
            &["streamed", &b, key, "200000", mode],
        )
    };
    let r = upload("whole.bin", "ok");
    assert_eq!(r["status"], 200, "{r}");
    assert!(f.s3.has(&b, "whole.bin"));
    let r = upload("truncated.bin", "truncated");
    assert_eq!(
        (r["status"].as_i64(), r["code"].as_str()),
        (Some(400), Some("IncompleteBody")),
        "{r}"
    );
    assert!(!f.s3.has(&b, "truncated.bin"));
    let r = upload("tampered.bin", "tampered");
    assert_eq!(r["code"], "SignatureDoesNotMatch", "{r}");
    assert!(!f.s3.has(&b, "tampered.bin"));
    let r = py(
        f,
        &f.agent.id,
        &f.agent.secret,
        &["lying", &format!("/{b}/lying.bin"), "3000000"],
    );
    assert_eq!(
        (r["status"].as_i64(), r["code"].as_str()),
        (Some(400), Some("XAmzContentSHA256Mismatch")),
        "{r}"
    );
    assert!(!f.s3.has(&b, "lying.bin"));
    let replay = crate::session_replay(f, "PutObject s3://chunks/tampered.bin");
    assert!(
        replay.contains("HTTP 403") && replay.contains("SignatureMismatch"),
        "{replay}"
    );
}
