use serde::{Deserialize, Serialize};

/// One S3 operation's target as the backend reads it: what policy decides
/// on and the audit log keeps. A request that touches several objects (a
/// batch delete, a copy) is one of these per object, each decided.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct S3Request {
    /// Absent only for ListBuckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The object key, decoded; absent for bucket operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A listing's `prefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Bytes uploaded (the decoded length of a streamed upload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

impl S3Request {
    /// `s3://bucket/key`, as aws-cli names an object.
    pub fn url(&self) -> String {
        match (&self.bucket, &self.key) {
            (Some(b), Some(k)) => format!("s3://{b}/{k}"),
            (Some(b), None) => format!("s3://{b}"),
            _ => "s3://".to_owned(),
        }
    }
}
