//! `sluice-audit`: the append-only, hash-chained, signed audit log.
//!
//! Every record has a gap-free `seq`, a `time` (RFC 3339 UTC, microseconds),
//! the `session` it belongs to, a `kind` with a typed `body`, the `prev_hash`
//! of the record before it and its own `hash` (see [`chain`] for the exact
//! bytes hashed). The writer signs a `checkpoint` of the chain head every
//! `checkpoint_every` records or `checkpoint_interval`, on flush and on
//! prune, and keeps a signed head marker outside the table so a cut-off tail
//! shows.
//!
//! Files in the data directory (SQLite store):
//! - `audit.journal`: every record is written here first (see
//!   `store::journal`), emptied once the database holds and has synced it;
//! - `audit.db` (+ `-wal`, `-shm`): table `records` (seq, time, session,
//!   kind, body, prev_hash, hash; seq is the primary key, plus a partial
//!   index of the checkpoints) and table `sessions` (the summaries listed by
//!   `sluice audit sessions`; derived data, bounded scans for replay);
//! - `audit-head.json`: the signed head marker, rewritten atomically at most
//!   every `head_interval` and on flush;
//! - `audit-signing.key` (0600) / `audit-signing.pub`: the Ed25519 key, hex;
//! - `audit.lock`: held by the one process that writes.
//!
//! # What tamper evidence does and does not cover
//!
//! Anyone who edits, deletes, inserts, reorders or cuts off records in the
//! database is caught by [`AuditLog::verify`], which names the record. An
//! attacker with full access to the data directory can still:
//! - roll the database *and* the head marker back together to an older,
//!   consistent state (both are genuinely signed): detectable only against
//!   a copy kept elsewhere;
//! - read the signing key and sign a forged history, or replace the key
//!   files: verify against a public key kept off the box
//!   ([`AuditLog::verify_with_key`], `verify_export(.., Some(key), ..)`);
//! - append well-formed records after the last signature (the hash chain
//!   has no secret): [`VerifyReport::unsigned_tail`] says how many.
//!
//! Closing these means shipping exports and head markers off-box (a SIEM,
//! write-once storage) and pinning the public key there.

pub mod chain;
mod committer;
mod error;
pub mod keys;
mod log;
mod record;
pub mod store;
mod summary;
mod time;
mod verify;
mod writer;

pub use error::AuditError;
pub use log::{AuditConfig, AuditLog, PruneReport};
pub use record::{
    encode_param, ApprovalEvent, ApprovalRef, Body, Checkpoint, Kind, PruneMark, RawRecord, Record,
    ResponseRecord, ResponseStatus, SessionEnd, SessionStart, StatementRecord, StreamRecord,
    BINARY_PARAM_PREFIX,
};
pub use store::{AuditStore, ChainHead, HeadMarker, SessionFilter, SessionSummary, SqliteStore};
pub use time::{new_session_id, Timestamp};
pub use verify::{verify_export, ChainStart, Problem, VerifyReport};
pub use writer::Level;
