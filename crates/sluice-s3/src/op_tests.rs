use super::*;

fn t(bucket: Option<&str>, key: Option<&str>) -> Target {
    Target {
        bucket: bucket.map(str::to_owned),
        key: key.map(str::to_owned),
    }
}

fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn no_headers(_: &str) -> Option<String> {
    None
}

#[test]
fn operations_are_read_as_s3_routes_them() {
    let cases: &[(&str, Option<&str>, Option<&str>, &[(&str, &str)], Action)] = &[
        ("GET", None, None, &[], Action::ListBuckets),
        (
            "GET",
            Some("b"),
            None,
            &[("list-type", "2"), ("prefix", "a/")],
            Action::ListObjectsV2,
        ),
        ("GET", Some("b"), None, &[], Action::ListObjects),
        (
            "GET",
            Some("b"),
            None,
            &[("versions", "")],
            Action::ListObjectVersions,
        ),
        (
            "GET",
            Some("b"),
            None,
            &[("uploads", "")],
            Action::ListMultipartUploads,
        ),
        ("HEAD", Some("b"), None, &[], Action::HeadBucket),
        ("PUT", Some("b"), None, &[], Action::CreateBucket),
        (
            "PUT",
            Some("b"),
            None,
            &[("policy", "")],
            Action::PutBucketPolicy,
        ),
        (
            "PUT",
            Some("b"),
            None,
            &[("lifecycle", "")],
            Action::PutBucketLifecycleConfiguration,
        ),
        ("DELETE", Some("b"), None, &[], Action::DeleteBucket),
        (
            "POST",
            Some("b"),
            None,
            &[("delete", "")],
            Action::DeleteObjects,
        ),
        ("GET", Some("b"), Some("k"), &[], Action::GetObject),
        (
            "GET",
            Some("b"),
            Some("k"),
            &[("x-id", "GetObject")],
            Action::GetObject,
        ),
        (
            "HEAD",
            Some("b"),
            Some("k"),
            &[("versionId", "v1")],
            Action::HeadObject,
        ),
        ("PUT", Some("b"), Some("k"), &[], Action::PutObject),
        (
            "PUT",
            Some("b"),
            Some("k"),
            &[("uploadId", "u"), ("partNumber", "1")],
            Action::UploadPart,
        ),
        (
            "POST",
            Some("b"),
            Some("k"),
            &[("uploads", "")],
            Action::CreateMultipartUpload,
        ),
        (
            "POST",
            Some("b"),
            Some("k"),
            &[("uploadId", "u")],
            Action::CompleteMultipartUpload,
        ),
        (
            "DELETE",
            Some("b"),
            Some("k"),
            &[("uploadId", "u")],
            Action::AbortMultipartUpload,
        ),
        (
            "GET",
            Some("b"),
            Some("k"),
            &[("uploadId", "u")],
            Action::ListParts,
        ),
        ("DELETE", Some("b"), Some("k"), &[], Action::DeleteObject),
        (
            "PUT",
            Some("b"),
            Some("k"),
            &[("tagging", "")],
            Action::PutObjectTagging,
        ),
        (
            "PUT",
            Some("b"),
            Some("k"),
            &[("acl", "")],
            Action::PutObjectAcl,
        ),
    ];
    for (method, bucket, key, query, want) in cases {
        let u = understand(method, t(*bucket, *key), &q(query), no_headers);
        assert_eq!(
            u.action, *want,
            "{method} {bucket:?} {key:?} {query:?}: {:?}",
            u.error
        );
    }
}

#[test]
fn what_sluice_does_not_know_is_unknown_with_a_reason() {
    for (method, bucket, key, query) in [
        ("GET", Some("b"), None, &[("cors", "")][..]),
        ("PUT", Some("b"), Some("k"), &[("retention", "")][..]),
        ("POST", Some("b"), Some("k"), &[("restore", "")][..]),
        (
            "POST",
            Some("b"),
            Some("k"),
            &[("select", ""), ("select-type", "2")][..],
        ),
        ("PUT", Some("b"), None, &[("acl", ""), ("policy", "")][..]),
        ("PATCH", Some("b"), Some("k"), &[][..]),
        ("DELETE", None, None, &[][..]),
        ("PUT", Some("b"), Some("k"), &[("partNumber", "1")][..]),
    ] {
        let u = understand(method, t(bucket, key), &q(query), no_headers);
        assert_eq!(u.action, Action::Unknown, "{method} {query:?}");
        assert!(u.error.is_some());
    }
}

#[test]
fn a_copy_is_also_a_read_of_its_source() {
    let header = |h: &str| {
        (h == "x-amz-copy-source").then(|| "/src/pii/a%20b.csv?versionId=v%2B1".to_owned())
    };
    let u = understand("PUT", t(Some("dst"), Some("scratch/x")), &[], header);
    assert_eq!(u.action, Action::CopyObject);
    let parts = u.statements("CopyObject", None, &[]);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[1].action, Action::GetObject);
    let src = parts[1].s3.as_ref().unwrap();
    assert_eq!(src.bucket.as_deref(), Some("src"));
    assert_eq!(src.key.as_deref(), Some("pii/a b.csv"));
    assert_eq!(src.version_id.as_deref(), Some("v+1"));
}

#[test]
fn a_copy_source_sluice_cannot_read_makes_the_copy_unknown() {
    for bad in ["nobucket", "/b/", "/b/a/../k", "/b/k?acl", "/b/%FF"] {
        let header = |h: &str| (h == "x-amz-copy-source").then(|| bad.to_owned());
        let u = understand("PUT", t(Some("dst"), Some("k")), &[], header);
        assert_eq!(u.action, Action::Unknown, "{bad}");
    }
}

#[test]
fn an_upload_that_sets_an_acl_is_also_an_acl_change_and_a_bucket_policy_is_admin() {
    let header = |h: &str| (h == "x-amz-acl").then(|| "public-read".to_owned());
    let u = understand("PUT", t(Some("b"), Some("k")), &[], header);
    let actions: Vec<Action> = u
        .statements("x", Some(3), &[])
        .iter()
        .map(|s| s.action)
        .collect();
    assert_eq!(actions, [Action::PutObject, Action::PutObjectAcl]);
    let u = understand("PUT", t(Some("b"), None), &q(&[("policy", "")]), no_headers);
    let actions: Vec<Action> = u
        .statements("x", None, &[])
        .iter()
        .map(|s| s.action)
        .collect();
    assert_eq!(actions, [Action::PutBucketPolicy, Action::Admin]);
}

#[test]
fn a_batch_delete_is_decided_for_every_key() {
    let u = understand(
        "POST",
        t(Some("b"), None),
        &q(&[("delete", "")]),
        no_headers,
    );
    let keys = vec![
        ("a".to_owned(), None),
        ("pii/x".to_owned(), Some("v".to_owned())),
    ];
    let parts = u.statements("DeleteObjects", None, &keys);
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0].action, Action::DeleteObjects);
    assert_eq!(parts[2].action, Action::DeleteObject);
    assert_eq!(parts[2].s3.as_ref().unwrap().key.as_deref(), Some("pii/x"));
    assert_eq!(
        parts[2].s3.as_ref().unwrap().version_id.as_deref(),
        Some("v")
    );
}

#[test]
fn dot_segments_and_control_characters_in_keys_are_refused() {
    assert!(check_key("a/../b").is_err());
    assert!(check_key("./b").is_err());
    assert!(check_key("a/.").is_err());
    assert!(check_key("a\nb").is_err());
    assert!(check_key("a\u{9b}31mb").is_err(), "C1 controls too");
    assert!(check_key("é/ü.txt").is_ok());
    assert!(check_key("a..b/c.d/...").is_ok());
}
