use std::path::PathBuf;

/// Everything that can go wrong in the audit log. Tampering is *not* an
/// error: `verify` returns a report naming the problem, because finding
/// tampering is the successful outcome of a verification.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The SQLite store refused an operation.
    #[error("audit store: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// A file of the data directory (key, head marker, export) could not be
    /// read or written.
    #[error("audit file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Writing to an export (or another caller-supplied writer) failed.
    #[error("writing audit export: {0}")]
    Write(#[source] std::io::Error),

    /// The writer could not commit a batch: this record (and every record
    /// appended after the failure) is not durable. The log stays failed until
    /// it is reopened, so nothing is ever reported durable by mistake.
    #[error("audit store failed at seq {failed_from}, record {seq} is not durable: {reason}")]
    NotDurable {
        seq: u64,
        failed_from: u64,
        reason: String,
    },

    /// The store failed earlier; appends are refused until the log is reopened.
    #[error("audit store failed at seq {failed_from} and refuses further records: {reason}")]
    Failed { failed_from: u64, reason: String },

    /// The log is shut down (or was opened read-only) and takes no records.
    #[error("audit log is {0}")]
    NotWritable(&'static str),

    /// The database file was deleted or replaced under the open store: what
    /// SQLite writes now lands in an unlinked file, which is not durable.
    #[error(
        "audit file {0} was removed or replaced while open; records written to it are not durable"
    )]
    DatabaseMoved(PathBuf),

    /// Another process holds the writer lock of this data directory.
    #[error("audit log {0} is already open for writing by another process")]
    Locked(PathBuf),

    /// `durable(seq)` was asked about a seq that was never handed out.
    #[error("seq {seq} was never appended (next seq is {next})")]
    UnknownSeq { seq: u64, next: u64 },

    /// One record's body is larger than the log stores (the journal frames
    /// and SQLite both have a size limit): refused at append, so the
    /// command it records is refused and the log stays healthy.
    #[error("audit record of {bytes} bytes is larger than the {max}-byte limit of one record")]
    RecordTooLarge { bytes: usize, max: usize },

    /// Checkpoints are written by the log itself, never appended by callers.
    #[error("checkpoint records are written by the audit log itself")]
    ReservedKind,

    /// A stored record cannot be decoded (run `verify` to learn more).
    #[error("audit record {seq} is malformed: {reason}")]
    Corrupt { seq: u64, reason: String },

    /// An export line cannot be parsed at all.
    #[error("export line {line}: {reason}")]
    BadExportLine { line: u64, reason: String },

    /// A key file or a key given on the command line is not a valid key.
    #[error("invalid key {what}: {reason}")]
    BadKey { what: String, reason: String },

    /// A time string cannot be parsed.
    #[error("invalid time {input:?}: expected RFC 3339 such as 2024-05-01T12:00:00Z or a date 2024-05-01")]
    BadTime { input: String },

    /// JSON encoding of a body failed (cannot happen for the typed bodies,
    /// kept precise rather than panicking).
    #[error("encoding audit body: {0}")]
    Encode(#[from] serde_json::Error),

    /// The writer thread is gone (it panicked or could not start).
    #[error("audit writer thread: {0}")]
    Writer(String),
}

impl AuditError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AuditError::Io {
            path: path.into(),
            source,
        }
    }
}
