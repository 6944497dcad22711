//! Object operations decided per object: what the backend stores is the
//! ground truth.

use crate::{aws, bucket, file, fixture, ok, py};

#[test]
fn aws_cli_puts_gets_lists_copies_uploads_in_parts_and_deletes_as_policy_permits() {
    let f = fixture();
    let b = bucket(f, "flow");
    let small = file(f, "small.txt", b"hello\n");
    let small = small.to_str().unwrap();
    ok(aws(
        f,
        &f.agent,
        &["s3", "cp", small, &format!("s3://{b}/data/a.txt")],
    ));
    assert!(f.s3.has(&b, "data/a.txt"));
    let listed = ok(aws(f, &f.agent, &["s3", "ls", &format!("s3://{b}/data/")]));
    assert!(listed.contains("a.txt"), "{listed}");
    assert_eq!(
        ok(aws(
            f,
            &f.agent,
            &["s3", "cp", &format!("s3://{b}/data/a.txt"), "-"]
        )),
        "hello\n"
    );
    ok(aws(
        f,
        &f.agent,
        &[
            "s3",
            "cp",
            &format!("s3://{b}/data/a.txt"),
            &format!("s3://{b}/data/b.txt"),
        ],
    ));
    assert!(f.s3.has(&b, "data/b.txt"));
    // 20 MB: aws-cli uploads it in parts (CreateMultipartUpload, parts,
    // CompleteMultipartUpload), decided once at creation.
    let big: Vec<u8> = (0..20_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let big_path = file(f, "big.bin", &big);
    ok(aws(
        f,
        &f.agent,
        &[
            "s3",
            "cp",
            big_path.to_str().unwrap(),
            &format!("s3://{b}/data/big.bin"),
        ],
    ));
    let back = f.gw.dir.path().join("big.back");
    // Binary data is not released to a masked identity; sre is unmasked.
    let refused = aws(
        f,
        &f.agent,
        &[
            "s3",
            "cp",
            &format!("s3://{b}/data/big.bin"),
            back.to_str().unwrap(),
        ],
    );
    assert!(
        !refused.0 && refused.2.contains("cannot inspect"),
        "{}",
        refused.2
    );
    ok(aws(
        f,
        &f.sre,
        &[
            "s3",
            "cp",
            &format!("s3://{b}/data/big.bin"),
            back.to_str().unwrap(),
        ],
    ));
    assert!(
        std::fs::read(&back).unwrap() == big,
        "the 20 MB object came back changed"
    );
    ok(aws(
        f,
        &f.agent,
        &["s3", "rm", &format!("s3://{b}/data/b.txt")],
    ));
    assert!(!f.s3.has(&b, "data/b.txt"));
    let log = f.gw.log();
    assert!(
        log.contains("listening for S3 clients over PLAIN HTTP"),
        "{log}"
    );
}

#[test]
fn a_denied_delete_leaves_the_object_and_a_batch_hiding_a_denied_key_deletes_nothing() {
    let f = fixture();
    let b = bucket(f, "deletes");
    let p = file(f, "d.txt", b"x");
    for key in ["keep/a", "tmp/a", "tmp/b"] {
        ok(aws(
            f,
            &f.agent,
            &["s3", "cp", p.to_str().unwrap(), &format!("s3://{b}/{key}")],
        ));
    }
    let r = aws(f, &f.agent, &["s3", "rm", &format!("s3://{b}/keep/a")]);
    assert!(
        !r.0 && r.2.contains("AccessDenied") && r.2.contains("keep-stays"),
        "{}",
        r.2
    );
    assert!(f.s3.has(&b, "keep/a"));
    // The denied key last, after keys that alone would be allowed.
    let batch = r#"{"Objects":[{"Key":"tmp/a"},{"Key":"tmp/b"},{"Key":"keep/a"}]}"#;
    let r = aws(
        f,
        &f.agent,
        &["s3api", "delete-objects", "--bucket", &b, "--delete", batch],
    );
    assert!(
        !r.0 && r.2.contains("s3://deletes/keep/a"),
        "the reply names the key: {}",
        r.2
    );
    for key in ["keep/a", "tmp/a", "tmp/b"] {
        assert!(f.s3.has(&b, key), "{key} was deleted");
    }
    let batch = r#"{"Objects":[{"Key":"tmp/a"},{"Key":"tmp/b"}]}"#;
    ok(aws(
        f,
        &f.agent,
        &["s3api", "delete-objects", "--bucket", &b, "--delete", batch],
    ));
    assert!(!f.s3.has(&b, "tmp/a") && !f.s3.has(&b, "tmp/b"));
}

#[test]
fn a_copy_out_of_a_denied_prefix_is_refused_and_an_encoded_slash_is_decided_as_the_backend_reads_it(
) {
    let f = fixture();
    let b = bucket(f, "copies");
    let p = file(f, "c.csv", b"a\n1\n");
    ok(aws(
        f,
        &f.sre,
        &[
            "s3",
            "cp",
            p.to_str().unwrap(),
            &format!("s3://{b}/pii/c.csv"),
        ],
    ));
    let r = aws(
        f,
        &f.agent,
        &[
            "s3api",
            "copy-object",
            "--bucket",
            &b,
            "--key",
            "out/c.csv",
            "--copy-source",
            &format!("{b}/pii/c.csv"),
        ],
    );
    assert!(!r.0 && r.2.contains("no-pii"), "{}", r.2);
    assert!(!f.s3.has(&b, "out/c.csv"));
    // `pii%2Fc.csv` decodes to the key `pii/c.csv`, the one the backend
    // would read: s3s checks the signature over the decoded key (as S3
    // does), so a client that signed the encoded form is refused before
    // policy; one that signed the decoded form is denied by policy.
    let r = py(
        f,
        &f.agent.id,
        &f.agent.secret,
        &["raw", "GET", &format!("/{b}/pii%2Fc.csv")],
    );
    assert_eq!(r["status"], 403, "{r}");
    assert!(!r["body"].as_str().unwrap().contains("a\n1"), "{r}");
    let r = py(
        f,
        &f.agent.id,
        &f.agent.secret,
        &["raw", "GET", &format!("/{b}/pii/c.csv")],
    );
    assert!(r["body"].as_str().unwrap().contains("no-pii"), "{r}");
    // A parameter Sluice does not know is not forwarded (the backend
    // would ignore it and serve the object), whatever policy says.
    let r = py(
        f,
        &f.sre.id,
        &f.sre.secret,
        &["raw", "GET", &format!("/{b}/pii/c.csv?foo=1")],
    );
    assert_eq!(r["code"], "NotImplemented", "{r}");
    // Dot segments are refused, not guessed.
    let r = py(
        f,
        &f.agent.id,
        &f.agent.secret,
        &["raw", "GET", &format!("/{b}/x/../pii/c.csv")],
    );
    assert_eq!(r["status"], 400, "{r}");
}
