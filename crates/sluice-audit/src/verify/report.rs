//! What a verification reports: the first problem, named by record, and
//! what was checked.

use serde::Serialize;
use std::fmt;

/// The first thing wrong with a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// The record's content no longer matches its hash.
    Edited { seq: u64 },
    /// `missing` records after `after_seq` are gone.
    Deleted { after_seq: u64, missing: u64 },
    /// The record at `seq` was not part of the chain.
    Inserted { seq: u64 },
    /// The record at `seq` is really record `original_seq`.
    Reordered { seq: u64, original_seq: u64 },
    /// The records after `after_seq` up to `up_to_seq` were rewritten and
    /// re-hashed: the signature at `up_to_seq` covers a different chain.
    Rewritten { after_seq: u64, up_to_seq: u64 },
    /// The log ends at `last_seq` but was signed up to `expected_at_least`.
    Truncated {
        last_seq: u64,
        expected_at_least: u64,
    },
    /// Checkpoint `seq`'s signature is not valid.
    BadSignature { seq: u64 },
    /// Checkpoint `seq` is signed by a key that is not the gateway's.
    UntrustedKey { seq: u64, public_key: String },
    /// Checkpoint `seq` cannot be read or signs something other than its predecessor.
    BadCheckpoint { seq: u64, reason: String },
    /// An export line that is not a record.
    Malformed { line: u64, reason: String },
    /// The head marker's signature or key is wrong.
    BadHeadMarker { reason: String },
    /// The store has records but no head marker, so truncation of the tail
    /// cannot be ruled out.
    MissingHeadMarker { last_seq: u64 },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Edited { seq } => write!(f, "record {seq} was edited: its content no longer matches its hash"),
            Problem::Deleted { after_seq, missing } => {
                write!(f, "{missing} record(s) deleted after record {after_seq} (seq {} to {} missing)", after_seq + 1, after_seq + missing)
            }
            Problem::Inserted { seq } => write!(f, "record {seq} was inserted: it is not part of the chain"),
            Problem::Reordered { seq, original_seq } => {
                write!(f, "record {seq} was moved: the record at seq {seq} is record {original_seq}")
            }
            Problem::Rewritten { after_seq, up_to_seq } => write!(
                f,
                "records after {after_seq} up to {up_to_seq} were rewritten and re-hashed: the signature at {up_to_seq} covers a different chain"
            ),
            Problem::Truncated { last_seq, expected_at_least } => write!(
                f,
                "log truncated: it ends at record {last_seq} but was signed up to record {expected_at_least}"
            ),
            Problem::BadSignature { seq } => write!(f, "checkpoint record {seq} has an invalid signature"),
            Problem::UntrustedKey { seq, public_key } => {
                write!(f, "checkpoint record {seq} is signed by an unknown key {public_key}")
            }
            Problem::BadCheckpoint { seq, reason } => write!(f, "checkpoint record {seq} is invalid: {reason}"),
            Problem::Malformed { line, reason } => write!(f, "line {line} is not an audit record: {reason}"),
            Problem::BadHeadMarker { reason } => write!(f, "head marker is invalid: {reason}"),
            Problem::MissingHeadMarker { last_seq } => {
                write!(f, "head marker missing (log ends at record {last_seq}): truncation cannot be ruled out")
            }
        }
    }
}

/// Where the verified chain starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "start", rename_all = "snake_case")]
pub enum ChainStart {
    /// No records.
    Empty,
    /// At seq 1 from the all-zero hash.
    Genesis,
    /// After a prune, as signed by checkpoint `checkpoint_seq`.
    Pruned { checkpoint_seq: u64, first_seq: u64 },
    /// An export that begins mid-chain (`--since`): records before
    /// `first_seq` were simply not exported, so the start is not evidence.
    Unanchored { first_seq: u64 },
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Records checked (up to the problem, if any).
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub checkpoints: u64,
    pub start: ChainStart,
    /// The highest seq covered by a valid signature (checkpoint or head marker).
    pub signed_through: Option<u64>,
    pub head_marker_seq: Option<u64>,
    /// The key the signatures were checked against.
    pub public_key: Option<String>,
    /// False when no trusted key was given and the log's own key was used:
    /// then the signatures prove consistency, not origin.
    pub key_trusted: bool,
    pub problem: Option<Problem>,
}

impl VerifyReport {
    pub fn is_valid(&self) -> bool {
        self.problem.is_none()
    }

    /// Records after the last signature: their integrity rests on the hash
    /// chain alone (anyone can append a well-formed record there).
    pub fn unsigned_tail(&self) -> u64 {
        match (self.last_seq, self.signed_through) {
            (Some(last), Some(signed)) => last.saturating_sub(signed),
            (Some(last), None) => last + 1 - self.first_seq.unwrap_or(1),
            _ => 0,
        }
    }
}
