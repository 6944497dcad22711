//! An S3 request read as the operation it is: which operation (by method,
//! sub-resource and headers, as S3's own router reads them), and every
//! object it touches. What Sluice does not recognise is `unknown`, the
//! riskiest kind.

use sluice_core::{Action, S3Request, Statement};

/// The target of a request, as the backend reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub bucket: Option<String>,
    pub key: Option<String>,
}

/// One request, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Understood {
    pub action: Action,
    pub target: Target,
    /// `versionId`.
    pub version_id: Option<String>,
    /// A listing's `prefix`.
    pub prefix: Option<String>,
    /// `uploadId` (parts, completion, abort, ListParts).
    pub upload_id: Option<String>,
    /// CopyObject / UploadPartCopy: the object read.
    pub copy_source: Option<(Target, Option<String>)>,
    /// The request also sets an ACL (`x-amz-acl`, `x-amz-grant-*`).
    pub sets_acl: bool,
    /// `encoding-type=url`: the listing's keys come back percent-encoded
    /// (aws-cli asks for this by default).
    pub url_encoded_keys: bool,
    /// Why the request is `unknown`, when it is.
    pub error: Option<String>,
}

/// Query parameters that select nothing, only shape an answer or carry a
/// presigned signature.
const MODIFIERS: &[&str] = &[
    "prefix",
    "delimiter",
    "marker",
    "max-keys",
    "list-type",
    "continuation-token",
    "start-after",
    "fetch-owner",
    "encoding-type",
    "key-marker",
    "version-id-marker",
    "upload-id-marker",
    "max-uploads",
    "max-parts",
    "part-number-marker",
    "partNumber",
    "uploadId",
    "versionId",
    "x-id",
    "response-content-type",
    "response-content-language",
    "response-expires",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

/// Sub-resources Sluice knows (each selects an operation).
const SUBRESOURCES: &[&str] = &[
    "acl",
    "tagging",
    "policy",
    "lifecycle",
    "versioning",
    "location",
    "uploads",
    "versions",
    "delete",
    "attributes",
];

/// Reads one request. `query` holds the decoded query pairs.
pub fn understand(
    method: &str,
    target: Target,
    query: &[(String, String)],
    header: impl Fn(&str) -> Option<String>,
) -> Understood {
    let has = |name: &str| query.iter().any(|(k, _)| k == name);
    let value = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut u = Understood {
        action: Action::Unknown,
        target,
        version_id: value("versionId"),
        prefix: value("prefix"),
        upload_id: value("uploadId"),
        copy_source: None,
        sets_acl: header("x-amz-acl").is_some() || has_grant(&header),
        url_encoded_keys: value("encoding-type").is_some_and(|v| v.eq_ignore_ascii_case("url")),
        error: None,
    };
    if let Some(p) = query
        .iter()
        .map(|(k, _)| k.as_str())
        .find(|k| !MODIFIERS.contains(k) && !SUBRESOURCES.contains(k))
    {
        u.error = Some(format!(
            "query parameter {p:?} is not an operation Sluice knows"
        ));
        return u;
    }
    let subs: Vec<&str> = SUBRESOURCES.iter().copied().filter(|s| has(s)).collect();
    if subs.len() > 1 {
        u.error = Some(format!("several sub-resources at once: {subs:?}"));
        return u;
    }
    let sub = subs.first().copied();
    let copy = header("x-amz-copy-source");
    use Action as A;
    let action = match (&u.target.bucket, &u.target.key) {
        (None, _) => match method {
            "GET" if sub.is_none() => Some(A::ListBuckets),
            _ => None,
        },
        (Some(_), None) => match (method, sub) {
            ("GET", None) if value("list-type").as_deref() == Some("2") => Some(A::ListObjectsV2),
            ("GET", None) => Some(A::ListObjects),
            ("GET", Some("location")) => Some(A::GetBucketLocation),
            ("GET", Some("versioning")) => Some(A::GetBucketVersioning),
            ("GET", Some("policy")) => Some(A::GetBucketPolicy),
            ("GET", Some("acl")) => Some(A::GetBucketAcl),
            ("GET", Some("lifecycle")) => Some(A::GetBucketLifecycleConfiguration),
            ("GET", Some("tagging")) => Some(A::GetBucketTagging),
            ("GET", Some("uploads")) => Some(A::ListMultipartUploads),
            ("GET", Some("versions")) => Some(A::ListObjectVersions),
            ("HEAD", None) => Some(A::HeadBucket),
            ("PUT", None) => Some(A::CreateBucket),
            ("PUT", Some("versioning")) => Some(A::PutBucketVersioning),
            ("PUT", Some("policy")) => Some(A::PutBucketPolicy),
            ("PUT", Some("acl")) => Some(A::PutBucketAcl),
            ("PUT", Some("lifecycle")) => Some(A::PutBucketLifecycleConfiguration),
            ("PUT", Some("tagging")) => Some(A::PutBucketTagging),
            ("DELETE", None) => Some(A::DeleteBucket),
            ("DELETE", Some("policy")) => Some(A::DeleteBucketPolicy),
            ("DELETE", Some("lifecycle")) => Some(A::DeleteBucketLifecycle),
            ("DELETE", Some("tagging")) => Some(A::DeleteBucketTagging),
            ("POST", Some("delete")) => Some(A::DeleteObjects),
            _ => None,
        },
        (Some(_), Some(_)) => {
            let upload = u.upload_id.is_some();
            match (method, sub) {
                ("GET", None) if upload => Some(A::ListParts),
                ("GET", None) => Some(A::GetObject),
                ("GET", Some("acl")) => Some(A::GetObjectAcl),
                ("GET", Some("tagging")) => Some(A::GetObjectTagging),
                ("GET", Some("attributes")) => Some(A::GetObjectAttributes),
                ("HEAD", None) => Some(A::HeadObject),
                ("PUT", None) if upload && has("partNumber") => Some(if copy.is_some() {
                    A::UploadPartCopy
                } else {
                    A::UploadPart
                }),
                ("PUT", None) if !upload && !has("partNumber") => Some(if copy.is_some() {
                    A::CopyObject
                } else {
                    A::PutObject
                }),
                ("PUT", Some("acl")) => Some(A::PutObjectAcl),
                ("PUT", Some("tagging")) => Some(A::PutObjectTagging),
                ("POST", Some("uploads")) if !upload => Some(A::CreateMultipartUpload),
                ("POST", None) if upload => Some(A::CompleteMultipartUpload),
                ("DELETE", None) if upload => Some(A::AbortMultipartUpload),
                ("DELETE", None) => Some(A::DeleteObject),
                ("DELETE", Some("tagging")) => Some(A::DeleteObjectTagging),
                _ => None,
            }
        }
    };
    let Some(action) = action else {
        u.error = Some(format!(
            "{method} {} is not an S3 operation Sluice knows",
            match (&u.target.bucket, &u.target.key, sub) {
                (None, _, _) => "on the service".to_owned(),
                (Some(_), None, Some(s)) => format!("?{s} on a bucket"),
                (Some(_), None, None) => "on a bucket".to_owned(),
                (_, Some(_), Some(s)) => format!("?{s} on an object"),
                (_, Some(_), None) => "on an object".to_owned(),
            }
        ));
        return u;
    };
    u.action = action;
    if matches!(action, A::CopyObject | A::UploadPartCopy) {
        match copy.as_deref().map(copy_source) {
            Some(Ok(source)) => u.copy_source = Some(source),
            Some(Err(e)) => {
                u.action = A::Unknown;
                u.error = Some(e);
            }
            None => {}
        }
    }
    u
}

fn has_grant(header: &impl Fn(&str) -> Option<String>) -> bool {
    [
        "x-amz-grant-full-control",
        "x-amz-grant-read",
        "x-amz-grant-read-acp",
        "x-amz-grant-write",
        "x-amz-grant-write-acp",
    ]
    .iter()
    .any(|h| header(h).is_some())
}

/// `x-amz-copy-source`: `[/]bucket/key[?versionId=v]`, URL-encoded.
pub fn copy_source(value: &str) -> Result<(Target, Option<String>), String> {
    let bad = |why: &str| format!("x-amz-copy-source {value:?}: {why}");
    let (path, query) = match value.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (value, None),
    };
    let version = match query {
        None => None,
        Some(q) => match q.strip_prefix("versionId=") {
            Some(v) if !v.contains('&') => Some(decode(v).map_err(|e| bad(&e))?),
            _ => return Err(bad("only ?versionId= may follow the key")),
        },
    };
    let path = decode(path).map_err(|e| bad(&e))?;
    let path = path.strip_prefix('/').unwrap_or(&path);
    let Some((bucket, key)) = path.split_once('/') else {
        return Err(bad("names no object"));
    };
    if bucket.is_empty() || key.is_empty() {
        return Err(bad("names no object"));
    }
    check_key(key).map_err(|e| bad(&e))?;
    Ok((
        Target {
            bucket: Some(bucket.to_owned()),
            key: Some(key.to_owned()),
        },
        version,
    ))
}

/// Percent-decoding that refuses what does not decode to UTF-8.
pub fn decode(s: &str) -> Result<String, String> {
    urlencoding::decode(s)
        .map(|c| c.into_owned())
        .map_err(|_| "not UTF-8 once decoded".to_owned())
}

/// Keys Sluice refuses to decide: S3 reads `a/../b` as that literal key,
/// but other stores and proxies in front of them normalise it to `b`, so
/// the key decided might not be the key written. Refused, not guessed.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(
            "a key with `.` or `..` segments is refused (stores disagree on what it names)".into(),
        );
    }
    // C1 controls too: U+009B is a terminal's CSI, and keys are printed
    // in replays and logs.
    if key.chars().any(char::is_control) {
        return Err("a key with control characters is refused".into());
    }
    Ok(())
}

impl Understood {
    /// What policy decides, one part per object touched: the operation;
    /// for a copy, a GetObject of its source; for an upload that sets an
    /// ACL, the ACL change; for a bucket policy or lifecycle change (which
    /// can open or delete objects later), `admin`. DeleteObjects adds a
    /// DeleteObject per key (`keys`).
    pub fn statements(
        &self,
        text: &str,
        size: Option<u64>,
        keys: &[(String, Option<String>)],
    ) -> Vec<Statement> {
        let part = |action: Action, t: &Target, version: Option<String>, size: Option<u64>| {
            let mut s = Statement::request(action, text.to_owned());
            if let Some(e) = &self.error {
                s.error = Some(e.clone());
            }
            s.s3 = Some(S3Request {
                bucket: t.bucket.clone(),
                key: t.key.clone(),
                prefix: None,
                version_id: version,
                size,
            });
            s
        };
        let mut first = part(self.action, &self.target, self.version_id.clone(), size);
        if let Some(s3) = first.s3.as_mut() {
            s3.prefix = self.prefix.clone().filter(|_| self.lists_keys());
        }
        let mut out = vec![first];
        if let Some((source, version)) = &self.copy_source {
            out.push(part(Action::GetObject, source, version.clone(), None));
        }
        if self.sets_acl {
            let acl = if self.target.key.is_some() {
                Action::PutObjectAcl
            } else {
                Action::PutBucketAcl
            };
            if acl != self.action {
                out.push(part(acl, &self.target, None, None));
            }
        }
        if matches!(
            self.action,
            Action::PutBucketPolicy | Action::PutBucketLifecycleConfiguration
        ) {
            out.push(part(Action::Admin, &self.target, None, None));
        }
        for (key, version) in keys {
            let t = Target {
                bucket: self.target.bucket.clone(),
                key: Some(key.clone()),
            };
            out.push(part(Action::DeleteObject, &t, version.clone(), None));
        }
        out
    }

    /// A read: nothing changes if it runs.
    pub fn read_only(&self) -> bool {
        self.action.is_s3_read()
    }

    /// A listing whose keys pass through the detectors.
    pub fn lists_keys(&self) -> bool {
        matches!(
            self.action,
            Action::ListObjects
                | Action::ListObjectsV2
                | Action::ListObjectVersions
                | Action::ListMultipartUploads
                | Action::ListParts
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::type_complexity)]
#[path = "op_tests.rs"]
mod tests;
