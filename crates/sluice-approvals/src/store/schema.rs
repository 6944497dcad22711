//! The SQLite file and its tables.

use crate::error::ApprovalError;
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

/// The store's file name inside the data directory.
pub const DB_FILE: &str = "approvals.db";

/// A writer waits this long for another handle's transaction (another
/// process, the CLI) before giving up with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS requests (
    id               TEXT PRIMARY KEY,
    requester        TEXT NOT NULL,
    requester_groups TEXT NOT NULL,   -- JSON array
    resource         TEXT NOT NULL,
    text             TEXT NOT NULL,
    params           TEXT NOT NULL,   -- JSON array of string|null
    fingerprint      TEXT NOT NULL,
    actions          TEXT NOT NULL,   -- JSON array
    policy_id        TEXT NOT NULL,
    reason           TEXT,
    approver_group   TEXT NOT NULL,
    quorum           INTEGER NOT NULL,
    mode             TEXT NOT NULL,
    status           TEXT NOT NULL,
    created_at       INTEGER NOT NULL, -- unix microseconds
    expires_at       INTEGER NOT NULL,
    decided_at       INTEGER,
    withdraw_reason  TEXT,
    session_state    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS requests_by_status ON requests(status, expires_at);
CREATE INDEX IF NOT EXISTS requests_by_created ON requests(created_at);
CREATE TABLE IF NOT EXISTS votes (
    request_id TEXT NOT NULL REFERENCES requests(id),
    approver   TEXT NOT NULL,
    decision   TEXT NOT NULL,
    comment    TEXT,
    at         INTEGER NOT NULL,
    PRIMARY KEY (request_id, approver)
);
CREATE TABLE IF NOT EXISTS grants (
    request_id  TEXT PRIMARY KEY REFERENCES requests(id),
    fingerprint TEXT NOT NULL,
    requester   TEXT NOT NULL,
    resource    TEXT NOT NULL,
    approvers   TEXT NOT NULL,         -- JSON array, in signed order
    decision    TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    signature   TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    consumed_at INTEGER
);
CREATE INDEX IF NOT EXISTS grants_unconsumed
    ON grants(fingerprint, requester, resource) WHERE consumed_at IS NULL;
"#;

/// Version 2 added `requests.session_state` (what a grant is bound to
/// besides the text); a version 1 store gets the column, empty (the
/// defaults, which is what its fingerprints were computed for).
const VERSION: i64 = 2;

/// Opens (creating if needed) the store. `synchronous=FULL` because a
/// pending request or a consumed mark lost in a power cut would either
/// strand an approver's decision or let a grant run twice.
pub(crate) fn open(data_dir: &Path) -> Result<Connection, ApprovalError> {
    let path = data_dir.join(DB_FILE);
    let open_err = |source| ApprovalError::Open {
        path: path.clone(),
        source,
    };
    let conn = Connection::open(&path).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(open_err)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(open_err)?;
    conn.execute_batch(SCHEMA).map_err(open_err)?;
    let has_state: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('requests') WHERE name = 'session_state'")
        .and_then(|mut s| s.exists([]))
        .map_err(open_err)?;
    if !has_state {
        conn.execute_batch(
            "ALTER TABLE requests ADD COLUMN session_state TEXT NOT NULL DEFAULT ''",
        )
        .map_err(open_err)?;
    }
    conn.pragma_update(None, "user_version", VERSION)
        .map_err(open_err)?;
    Ok(conn)
}
