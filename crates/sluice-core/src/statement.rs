use crate::{KubeRequest, S3Request};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What one statement does, in the vocabulary policies are written in
/// (`Action::"drop"`). `Unknown` is what cannot be parsed or classified;
/// policy treats it as the riskiest write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Select,
    Insert,
    Update,
    Delete,
    Merge,
    Truncate,
    /// CREATE / ALTER / COMMENT.
    Ddl,
    Drop,
    /// GRANT / REVOKE.
    Grant,
    CopyOut,
    CopyIn,
    /// DO, CALL.
    Procedural,
    /// Calls a function Sluice cannot prove only reads (a user function that
    /// is volatile, written in C, `SECURITY DEFINER`, or not in the catalog):
    /// it may write anything, so it is in no action group.
    Call,
    /// BEGIN / COMMIT / ROLLBACK / SAVEPOINT ...
    Tcl,
    /// SET, RESET, SHOW, DISCARD.
    Session,
    /// SET ROLE, SET SESSION AUTHORIZATION, CREATE/ALTER/DROP ROLE.
    Role,
    /// ALTER SYSTEM, VACUUM, CHECKPOINT, COPY ... PROGRAM, server files, LOAD.
    Admin,
    /// LISTEN / NOTIFY / UNLISTEN.
    Listen,
    /// PREPARE / EXECUTE / DEALLOCATE (EXECUTE resolves to what was prepared).
    Prepare,
    /// EXPLAIN without ANALYZE (EXPLAIN ANALYZE is the statement it runs).
    Explain,
    Unknown,
    // Kubernetes: the API server's own verbs (`update` and `delete` above
    // serve both protocols).
    /// Read one object.
    Get,
    /// Read a collection (a name-less GET).
    List,
    /// Stream changes (`?watch=` or the `/watch/` prefix).
    Watch,
    Create,
    Patch,
    /// A name-less DELETE: every object the selectors match.
    DeleteCollection,
    /// `pods/exec`, and `nodes/proxy` (which reaches the kubelet's exec).
    Exec,
    Attach,
    PortForward,
    /// `services/proxy`, `pods/proxy`: any request to what runs behind.
    Proxy,
    /// Discovery and non-resource URLs (`/api`, `/apis`, `/version`, ...).
    Discover,
    // S3: operations under their S3 names (an operation Sluice does not
    // know is `unknown`).
    GetObject,
    HeadObject,
    GetObjectAttributes,
    ListObjects,
    ListObjectsV2,
    ListObjectVersions,
    ListBuckets,
    HeadBucket,
    GetBucketLocation,
    ListMultipartUploads,
    ListParts,
    GetObjectTagging,
    GetBucketTagging,
    GetBucketVersioning,
    GetObjectAcl,
    GetBucketAcl,
    GetBucketPolicy,
    GetBucketLifecycleConfiguration,
    PutObject,
    CopyObject,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    DeleteObject,
    DeleteObjects,
    PutObjectTagging,
    DeleteObjectTagging,
    PutBucketTagging,
    DeleteBucketTagging,
    CreateBucket,
    DeleteBucket,
    PutObjectAcl,
    PutBucketAcl,
    PutBucketPolicy,
    DeleteBucketPolicy,
    PutBucketLifecycleConfiguration,
    DeleteBucketLifecycle,
    PutBucketVersioning,
}

impl Action {
    pub const ALL: [Action; 72] = [
        Action::Select,
        Action::Insert,
        Action::Update,
        Action::Delete,
        Action::Merge,
        Action::Truncate,
        Action::Ddl,
        Action::Drop,
        Action::Grant,
        Action::CopyOut,
        Action::CopyIn,
        Action::Procedural,
        Action::Call,
        Action::Tcl,
        Action::Session,
        Action::Role,
        Action::Admin,
        Action::Listen,
        Action::Prepare,
        Action::Explain,
        Action::Unknown,
        Action::Get,
        Action::List,
        Action::Watch,
        Action::Create,
        Action::Patch,
        Action::DeleteCollection,
        Action::Exec,
        Action::Attach,
        Action::PortForward,
        Action::Proxy,
        Action::Discover,
        Action::GetObject,
        Action::HeadObject,
        Action::GetObjectAttributes,
        Action::ListObjects,
        Action::ListObjectsV2,
        Action::ListObjectVersions,
        Action::ListBuckets,
        Action::HeadBucket,
        Action::GetBucketLocation,
        Action::ListMultipartUploads,
        Action::ListParts,
        Action::GetObjectTagging,
        Action::GetBucketTagging,
        Action::GetBucketVersioning,
        Action::GetObjectAcl,
        Action::GetBucketAcl,
        Action::GetBucketPolicy,
        Action::GetBucketLifecycleConfiguration,
        Action::PutObject,
        Action::CopyObject,
        Action::CreateMultipartUpload,
        Action::UploadPart,
        Action::UploadPartCopy,
        Action::CompleteMultipartUpload,
        Action::AbortMultipartUpload,
        Action::DeleteObject,
        Action::DeleteObjects,
        Action::PutObjectTagging,
        Action::DeleteObjectTagging,
        Action::PutBucketTagging,
        Action::DeleteBucketTagging,
        Action::CreateBucket,
        Action::DeleteBucket,
        Action::PutObjectAcl,
        Action::PutBucketAcl,
        Action::PutBucketPolicy,
        Action::DeleteBucketPolicy,
        Action::PutBucketLifecycleConfiguration,
        Action::DeleteBucketLifecycle,
        Action::PutBucketVersioning,
    ];

    /// The policy-language name (`Action::"copy_out"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Select => "select",
            Action::Insert => "insert",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Merge => "merge",
            Action::Truncate => "truncate",
            Action::Ddl => "ddl",
            Action::Drop => "drop",
            Action::Grant => "grant",
            Action::CopyOut => "copy_out",
            Action::CopyIn => "copy_in",
            Action::Procedural => "procedural",
            Action::Call => "call",
            Action::Tcl => "tcl",
            Action::Session => "session",
            Action::Role => "role",
            Action::Admin => "admin",
            Action::Listen => "listen",
            Action::Prepare => "prepare",
            Action::Explain => "explain",
            Action::Unknown => "unknown",
            Action::Get => "get",
            Action::List => "list",
            Action::Watch => "watch",
            Action::Create => "create",
            Action::Patch => "patch",
            Action::DeleteCollection => "deletecollection",
            Action::Exec => "exec",
            Action::Attach => "attach",
            Action::PortForward => "portforward",
            Action::Proxy => "proxy",
            Action::Discover => "discover",
            Action::GetObject => "GetObject",
            Action::HeadObject => "HeadObject",
            Action::GetObjectAttributes => "GetObjectAttributes",
            Action::ListObjects => "ListObjects",
            Action::ListObjectsV2 => "ListObjectsV2",
            Action::ListObjectVersions => "ListObjectVersions",
            Action::ListBuckets => "ListBuckets",
            Action::HeadBucket => "HeadBucket",
            Action::GetBucketLocation => "GetBucketLocation",
            Action::ListMultipartUploads => "ListMultipartUploads",
            Action::ListParts => "ListParts",
            Action::GetObjectTagging => "GetObjectTagging",
            Action::GetBucketTagging => "GetBucketTagging",
            Action::GetBucketVersioning => "GetBucketVersioning",
            Action::GetObjectAcl => "GetObjectAcl",
            Action::GetBucketAcl => "GetBucketAcl",
            Action::GetBucketPolicy => "GetBucketPolicy",
            Action::GetBucketLifecycleConfiguration => "GetBucketLifecycleConfiguration",
            Action::PutObject => "PutObject",
            Action::CopyObject => "CopyObject",
            Action::CreateMultipartUpload => "CreateMultipartUpload",
            Action::UploadPart => "UploadPart",
            Action::UploadPartCopy => "UploadPartCopy",
            Action::CompleteMultipartUpload => "CompleteMultipartUpload",
            Action::AbortMultipartUpload => "AbortMultipartUpload",
            Action::DeleteObject => "DeleteObject",
            Action::DeleteObjects => "DeleteObjects",
            Action::PutObjectTagging => "PutObjectTagging",
            Action::DeleteObjectTagging => "DeleteObjectTagging",
            Action::PutBucketTagging => "PutBucketTagging",
            Action::DeleteBucketTagging => "DeleteBucketTagging",
            Action::CreateBucket => "CreateBucket",
            Action::DeleteBucket => "DeleteBucket",
            Action::PutObjectAcl => "PutObjectAcl",
            Action::PutBucketAcl => "PutBucketAcl",
            Action::PutBucketPolicy => "PutBucketPolicy",
            Action::DeleteBucketPolicy => "DeleteBucketPolicy",
            Action::PutBucketLifecycleConfiguration => "PutBucketLifecycleConfiguration",
            Action::DeleteBucketLifecycle => "DeleteBucketLifecycle",
            Action::PutBucketVersioning => "PutBucketVersioning",
        }
    }

    /// One of the Kubernetes verbs that SQL does not share.
    pub fn is_kubernetes(self) -> bool {
        matches!(
            self,
            Action::Get
                | Action::List
                | Action::Watch
                | Action::Create
                | Action::Patch
                | Action::DeleteCollection
                | Action::Exec
                | Action::Attach
                | Action::PortForward
                | Action::Proxy
                | Action::Discover
        )
    }

    /// One of the S3 operations.
    pub fn is_s3(self) -> bool {
        self.is_s3_read()
            || matches!(
                self,
                Action::PutObject
                    | Action::CopyObject
                    | Action::CreateMultipartUpload
                    | Action::UploadPart
                    | Action::UploadPartCopy
                    | Action::CompleteMultipartUpload
                    | Action::AbortMultipartUpload
                    | Action::DeleteObject
                    | Action::DeleteObjects
                    | Action::PutObjectTagging
                    | Action::DeleteObjectTagging
                    | Action::PutBucketTagging
                    | Action::DeleteBucketTagging
                    | Action::CreateBucket
                    | Action::DeleteBucket
                    | Action::PutObjectAcl
                    | Action::PutBucketAcl
                    | Action::PutBucketPolicy
                    | Action::DeleteBucketPolicy
                    | Action::PutBucketLifecycleConfiguration
                    | Action::DeleteBucketLifecycle
                    | Action::PutBucketVersioning
            )
    }

    /// An S3 operation that changes nothing (those in `Action::"read"`).
    pub fn is_s3_read(self) -> bool {
        matches!(
            self,
            Action::GetObject
                | Action::HeadObject
                | Action::GetObjectAttributes
                | Action::ListObjects
                | Action::ListObjectsV2
                | Action::ListObjectVersions
                | Action::ListBuckets
                | Action::HeadBucket
                | Action::GetBucketLocation
                | Action::ListMultipartUploads
                | Action::ListParts
                | Action::GetObjectTagging
                | Action::GetBucketTagging
                | Action::GetBucketVersioning
                | Action::GetObjectAcl
                | Action::GetBucketAcl
                | Action::GetBucketPolicy
                | Action::GetBucketLifecycleConfiguration
        )
    }

    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One classified statement: what policy decides on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub action: Action,
    /// This statement's exact text, as the client wrote it (kept for
    /// approvals, which bind to the exact text).
    pub text: String,
    /// Tables touched, schema-qualified when written so, lower-cased unless
    /// quoted, in order of first appearance, without duplicates.
    pub tables: Vec<String>,
    /// For UPDATE/DELETE (and MERGE): whether a WHERE clause restricts it.
    /// True for statements where the question does not arise.
    pub has_where: bool,
    /// Functions called, schema-qualified when written so.
    pub functions: Vec<String>,
    /// A function that is not known to be read-only is called: policy may
    /// treat the statement as a write.
    pub calls_volatile: bool,
    /// Normalized fingerprint (constants stripped), hex: groups the same
    /// statement shape in caches and the audit log.
    pub fingerprint: String,
    /// Why the statement is `Unknown`, when it is.
    pub error: Option<String>,
    /// Makes a transaction's changes permanent (COMMIT, END, PREPARE
    /// TRANSACTION, COMMIT/ROLLBACK PREPARED): the audit log must hold
    /// every record of the transaction before this reaches the target.
    #[serde(default)]
    pub commits: bool,
    /// COPY ... TO STDOUT (or to a file/program): the statement's rows leave
    /// through COPY, whatever the action; masking cannot apply column rules
    /// to COPY data.
    #[serde(default)]
    pub copies_out: bool,
    /// `SELECT ... FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE`: takes row
    /// locks that stall writers until the transaction ends.
    #[serde(default)]
    pub locks_rows: bool,
    /// Can create or change code that later statements run (a function, a
    /// view, an operator, an extension, a rule): what Sluice knows of the
    /// resource's functions is stale once it ran.
    #[serde(default)]
    pub defines_code: bool,
    /// Calls the classifier alone could not prove read-only, which the
    /// resource's catalog may (a builtin by its volatility, a user function
    /// by its definition). While this is `Some`, `action` is at least
    /// `call`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unproven: Option<Unproven>,
    /// Names selected from a row (`t.f`, `(x).f`): PostgreSQL reads them as
    /// calls of `f(t)` when such a function exists, so the catalog checks
    /// them like calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub field_names: Vec<String>,
    /// A Kubernetes API request, as the API server reads it (the SQL
    /// fields above then say nothing: no tables, no calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubeRequest>,
    /// An S3 operation's bucket and object (likewise, no SQL fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Request>,
}

/// What a statement is once its remaining calls are shown to only read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unproven {
    /// The functions to prove, as written (schema-qualified when written so).
    pub functions: Vec<String>,
    /// The statement's action without them.
    pub action: Action,
    /// `calls_volatile` without them.
    pub calls_volatile: bool,
}

impl Statement {
    /// A statement the gateway cannot judge: the riskiest kind.
    pub fn unknown(text: impl Into<String>, error: impl Into<String>) -> Self {
        Statement {
            action: Action::Unknown,
            text: text.into(),
            tables: Vec::new(),
            has_where: false,
            functions: Vec::new(),
            calls_volatile: true,
            fingerprint: String::new(),
            error: Some(error.into()),
            commits: false,
            copies_out: false,
            locks_rows: false,
            defines_code: true,
            unproven: None,
            field_names: Vec::new(),
            kubernetes: None,
            s3: None,
        }
    }

    /// A request of another protocol than SQL, already understood: its
    /// action, its exact request line, and nothing SQL-specific.
    pub fn request(action: Action, text: impl Into<String>) -> Self {
        Statement {
            action,
            error: None,
            calls_volatile: false,
            defines_code: false,
            has_where: true,
            ..Statement::unknown(text, "")
        }
    }
}
