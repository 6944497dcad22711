//! Re-deriving the chain: every hash, every link, every seq, every
//! checkpoint signature, the prune anchor the chain starts from and the head
//! marker it must reach. Stops at the first problem and names the record.
//!
//! Classification of a broken link (the record at position `seq`, the
//! expected predecessor hash `p`):
//! - seq jumps forward: records were `Deleted`;
//! - hash wrong but the *next* record links to this record's predecessor, or
//!   the link is wrong and the previous record already claimed the same
//!   predecessor: a record was `Inserted` between them;
//! - hash wrong but it is the correct hash of the same content under another
//!   seq: the record was moved (`Reordered`, e.g. two rows swapped);
//! - hash wrong otherwise: the record was `Edited`;
//! - hash right but the link wrong: the previous record was replaced
//!   (`Edited` of the previous seq);
//! - everything re-hashed consistently (an attacker rebuilt the chain): the
//!   next signed checkpoint or the head marker no longer matches, reported as
//!   `Rewritten` between the last good signature and that point.

mod report;

pub use report::{ChainStart, Problem, VerifyReport};

use crate::chain::{checkpoint_message, head_message, raw_hash_as, record_hash, ZERO_HASH};
use crate::error::AuditError;
use crate::keys::signature_valid;
use crate::record::{Checkpoint, RawRecord};
use crate::store::HeadMarker;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

/// How many alternative seqs are tried to recognise a moved record.
const MOVED_SEARCH_LIMIT: u64 = 200_000;
/// Progress is reported every this many records.
const PROGRESS_EVERY: u64 = 4096;

/// A signed prune mark found in a checkpoint: seq `first_seq` must continue
/// from `prev_hash`, and everything before it was authorised to go.
#[derive(Debug, Clone)]
pub(crate) struct Anchor {
    pub checkpoint_seq: u64,
    pub prev_hash: String,
}

/// Anchors from a set of checkpoint records, keyed by `first_seq`. Their
/// signatures are checked when the scan reaches the checkpoints.
pub(crate) fn anchors_from<'a>(
    checkpoints: impl Iterator<Item = &'a RawRecord>,
) -> BTreeMap<u64, Anchor> {
    let mut anchors = BTreeMap::new();
    for r in checkpoints {
        if let Ok(cp) = serde_json::from_str::<Checkpoint>(&r.body) {
            if let Some(mark) = cp.pruned_before {
                if mark.first_seq <= r.seq {
                    anchors.insert(
                        mark.first_seq,
                        Anchor {
                            checkpoint_seq: r.seq,
                            prev_hash: mark.prev_hash,
                        },
                    );
                }
            }
        }
    }
    anchors
}

/// One item of a scan: a record, or a line that is not one.
pub(crate) enum Scanned {
    Record(RawRecord),
    Bad(Problem),
}

pub(crate) struct Verifier {
    /// A database must start at genesis or at an anchor; an export may start anywhere.
    pub require_anchored_start: bool,
    pub trusted_key: Option<String>,
    pub anchors: BTreeMap<u64, Anchor>,
    pub head: Option<HeadMarker>,
    /// Bounds of the records being scanned (for the moved-record search).
    pub range: (u64, u64),
    report: VerifyReport,
    expected: Option<(u64, String)>,
    prev: Option<(u64, String, String)>,
    last_signed: u64,
}

impl Verifier {
    pub(crate) fn new(
        require_anchored_start: bool,
        trusted_key: Option<String>,
        anchors: BTreeMap<u64, Anchor>,
        head: Option<HeadMarker>,
        range: (u64, u64),
    ) -> Verifier {
        let key_trusted = trusted_key.is_some();
        Verifier {
            require_anchored_start,
            report: VerifyReport {
                records: 0,
                first_seq: None,
                last_seq: None,
                checkpoints: 0,
                start: ChainStart::Empty,
                signed_through: None,
                head_marker_seq: head.as_ref().map(|h| h.seq),
                public_key: trusted_key.clone(),
                key_trusted,
                problem: None,
            },
            trusted_key,
            anchors,
            head,
            range,
            expected: None,
            prev: None,
            last_signed: 0,
        }
    }

    /// Scan everything, stopping at the first problem.
    pub(crate) fn run(
        mut self,
        items: impl Iterator<Item = Result<Scanned, AuditError>>,
        progress: &dyn Fn(u64, u64),
    ) -> Result<VerifyReport, AuditError> {
        let total = self.range.1.saturating_sub(self.range.0) + 1;
        if let Some(problem) = self.check_head_marker() {
            return Ok(self.finish_with(problem));
        }
        let mut items = items.peekable();
        while let Some(item) = items.next() {
            let r = match item? {
                Scanned::Record(r) => r,
                Scanned::Bad(problem) => return Ok(self.finish_with(problem)),
            };
            let next = match items.peek() {
                Some(Ok(Scanned::Record(n))) => Some(n),
                _ => None,
            };
            if let Some(problem) = self.check(&r, next) {
                return Ok(self.finish_with(problem));
            }
            if self.report.records.is_multiple_of(PROGRESS_EVERY) {
                progress(self.report.records, total);
            }
        }
        progress(self.report.records, total);
        let problem = self.check_end();
        Ok(self.finish_with_opt(problem))
    }

    fn finish_with(self, problem: Problem) -> VerifyReport {
        self.finish_with_opt(Some(problem))
    }

    fn finish_with_opt(mut self, problem: Option<Problem>) -> VerifyReport {
        self.report.problem = problem;
        if self.last_signed > 0 {
            self.report.signed_through = Some(self.last_signed);
        }
        self.report
    }

    fn check_head_marker(&mut self) -> Option<Problem> {
        let head = self.head.as_ref()?;
        if let Some(key) = &self.trusted_key {
            if &head.public_key != key {
                return Some(Problem::BadHeadMarker {
                    reason: format!("signed by unknown key {}", head.public_key),
                });
            }
        }
        if !signature_valid(
            &head.public_key,
            &head_message(head.seq, &head.hash),
            &head.signature,
        ) {
            return Some(Problem::BadHeadMarker {
                reason: format!("invalid signature over seq {}", head.seq),
            });
        }
        None
    }

    /// Check one record against the chain so far.
    fn check(&mut self, r: &RawRecord, next: Option<&RawRecord>) -> Option<Problem> {
        let (expected_seq, expected_prev) = match self.expected.take() {
            Some(e) => e,
            None => match self.start(r) {
                Ok(e) => e,
                Err(problem) => return Some(problem),
            },
        };
        if r.seq != expected_seq {
            return Some(self.wrong_seq(r, expected_seq, next));
        }
        let hash = record_hash(r.seq, &r.time, &r.session, &r.kind, &r.body, &r.prev_hash);
        if let Some(problem) = self.check_link(r, &hash, &expected_prev, next) {
            return Some(problem);
        }
        if let Some(anchor) = self.anchors.get(&r.seq) {
            if anchor.prev_hash != r.prev_hash {
                return Some(Problem::Rewritten {
                    after_seq: self.last_signed,
                    up_to_seq: anchor.checkpoint_seq,
                });
            }
        }
        if r.kind == "checkpoint" {
            if let Some(problem) = self.check_checkpoint(r) {
                return Some(problem);
            }
        }
        if let Some(head) = &self.head {
            if head.seq == r.seq {
                if head.hash != r.hash {
                    return Some(Problem::Rewritten {
                        after_seq: self.last_signed,
                        up_to_seq: head.seq,
                    });
                }
                self.last_signed = self.last_signed.max(head.seq);
            }
        }
        self.report.records += 1;
        self.report.first_seq.get_or_insert(r.seq);
        self.report.last_seq = Some(r.seq);
        self.prev = Some((r.seq, r.hash.clone(), r.prev_hash.clone()));
        self.expected = Some((r.seq + 1, r.hash.clone()));
        None
    }

    /// The expected (seq, prev_hash) of the first record.
    fn start(&mut self, r: &RawRecord) -> Result<(u64, String), Problem> {
        if r.seq <= 1 {
            self.report.start = ChainStart::Genesis;
            return Ok((1, ZERO_HASH.to_owned()));
        }
        // The nearest anchor at or after the first record: everything before
        // its first_seq was authorised to go (a prune deletes in chunks, so
        // an interrupted prune leaves a start before the anchor).
        if let Some((&first_seq, anchor)) = self.anchors.range(r.seq..).next() {
            self.report.start = ChainStart::Pruned {
                checkpoint_seq: anchor.checkpoint_seq,
                first_seq,
            };
            let prev = if first_seq == r.seq {
                anchor.prev_hash.clone()
            } else {
                r.prev_hash.clone()
            };
            return Ok((r.seq, prev));
        }
        if self.require_anchored_start {
            // Deleted from the last authorised start (or from the beginning).
            let from = self
                .anchors
                .range(..r.seq)
                .next_back()
                .map_or(1, |(&first_seq, _)| first_seq);
            return Err(Problem::Deleted {
                after_seq: from - 1,
                missing: r.seq - from,
            });
        }
        self.report.start = ChainStart::Unanchored { first_seq: r.seq };
        Ok((r.seq, r.prev_hash.clone()))
    }

    fn wrong_seq(&self, r: &RawRecord, expected_seq: u64, next: Option<&RawRecord>) -> Problem {
        if r.seq > expected_seq {
            if next.is_some_and(|n| n.seq == expected_seq) {
                return Problem::Reordered {
                    seq: expected_seq,
                    original_seq: r.seq,
                };
            }
            return Problem::Deleted {
                after_seq: expected_seq - 1,
                missing: r.seq - expected_seq,
            };
        }
        // A seq seen already: only possible in an export.
        if self.prev.as_ref().is_some_and(|(seq, _, _)| *seq == r.seq) {
            return Problem::Inserted { seq: r.seq };
        }
        Problem::Reordered {
            seq: expected_seq,
            original_seq: r.seq,
        }
    }

    fn check_link(
        &self,
        r: &RawRecord,
        hash: &str,
        expected_prev: &str,
        next: Option<&RawRecord>,
    ) -> Option<Problem> {
        let hash_ok = hash == r.hash;
        if r.prev_hash == expected_prev {
            if hash_ok {
                return None;
            }
            if next.is_some_and(|n| n.prev_hash == r.prev_hash) {
                return Some(Problem::Inserted { seq: r.seq });
            }
            if let Some(original) = self.original_seq(r) {
                return Some(Problem::Reordered {
                    seq: r.seq,
                    original_seq: original,
                });
            }
            return Some(Problem::Edited { seq: r.seq });
        }
        if let Some((prev_seq, _, prev_prev)) = &self.prev {
            if *prev_prev == r.prev_hash {
                return Some(Problem::Inserted { seq: *prev_seq });
            }
        }
        if !hash_ok {
            if let Some(original) = self.original_seq(r) {
                return Some(Problem::Reordered {
                    seq: r.seq,
                    original_seq: original,
                });
            }
            return Some(Problem::Edited { seq: r.seq });
        }
        match &self.prev {
            // The record is intact but does not follow its predecessor: the
            // predecessor was replaced by a self-consistent forgery.
            Some((prev_seq, _, _)) => Some(Problem::Edited { seq: *prev_seq }),
            None => Some(Problem::Edited { seq: r.seq }),
        }
    }

    /// The seq under which this record's content has its stored hash, if
    /// another one: the record was moved there from that seq.
    fn original_seq(&self, r: &RawRecord) -> Option<u64> {
        let (lo, hi) = self.range;
        let mut tried = 0;
        for d in 1..=hi.saturating_sub(lo).max(1) {
            for candidate in [r.seq.checked_add(d), r.seq.checked_sub(d)]
                .into_iter()
                .flatten()
            {
                if candidate < lo.min(r.seq) || candidate > hi.max(r.seq) {
                    continue;
                }
                if raw_hash_as(r, candidate) == r.hash {
                    return Some(candidate);
                }
                tried += 1;
            }
            if tried >= MOVED_SEARCH_LIMIT {
                break;
            }
        }
        None
    }

    fn check_checkpoint(&mut self, r: &RawRecord) -> Option<Problem> {
        let cp: Checkpoint = match serde_json::from_str(&r.body) {
            Ok(cp) => cp,
            Err(e) => {
                return Some(Problem::BadCheckpoint {
                    seq: r.seq,
                    reason: e.to_string(),
                })
            }
        };
        match &self.trusted_key {
            Some(key) if *key != cp.public_key => {
                return Some(Problem::UntrustedKey {
                    seq: r.seq,
                    public_key: cp.public_key,
                });
            }
            Some(_) => {}
            None => {
                // No trusted key: the first checkpoint's key must sign them all.
                let adopted = self
                    .report
                    .public_key
                    .get_or_insert_with(|| cp.public_key.clone());
                if *adopted != cp.public_key {
                    return Some(Problem::UntrustedKey {
                        seq: r.seq,
                        public_key: cp.public_key,
                    });
                }
            }
        }
        let message = checkpoint_message(cp.head_seq, &cp.head_hash, cp.pruned_before.as_ref());
        if !signature_valid(&cp.public_key, &message, &cp.signature) {
            return Some(Problem::BadSignature { seq: r.seq });
        }
        if cp.head_seq + 1 != r.seq {
            return Some(Problem::BadCheckpoint {
                seq: r.seq,
                reason: format!("signs seq {} instead of {}", cp.head_seq, r.seq - 1),
            });
        }
        if cp.head_hash != r.prev_hash {
            return Some(Problem::Rewritten {
                after_seq: self.last_signed,
                up_to_seq: r.seq,
            });
        }
        self.report.checkpoints += 1;
        // The checkpoint signs its predecessor and its own content: count it
        // as signed, so a log that ends in a checkpoint has no unsigned tail.
        self.last_signed = self.last_signed.max(r.seq);
        None
    }

    fn check_end(&self) -> Option<Problem> {
        let last = self.report.last_seq.unwrap_or(0);
        match &self.head {
            Some(head) if head.seq > last => Some(Problem::Truncated {
                last_seq: last,
                expected_at_least: head.seq,
            }),
            None if self.require_anchored_start && self.report.records > 0 => {
                Some(Problem::MissingHeadMarker { last_seq: last })
            }
            _ => None,
        }
    }
}

/// Verify a JSONL export. `public_key_hex`: the gateway's public key
/// (`audit-signing.pub`); without it the log's own key is used and the
/// report says `key_trusted: false`. An export may start mid-chain
/// (`--since`), reported as [`ChainStart::Unanchored`]; it carries no head
/// marker, so a cut-off tail shows only as [`VerifyReport::unsigned_tail`].
pub fn verify_export(
    path: &Path,
    public_key_hex: Option<&str>,
    progress: &dyn Fn(u64, u64),
) -> Result<VerifyReport, AuditError> {
    let trusted = match public_key_hex {
        Some(k) => {
            crate::keys::parse_public_key(k)?;
            Some(k.trim().to_lowercase())
        }
        None => None,
    };
    // First pass: the range and the prune anchors.
    let mut checkpoints = Vec::new();
    let (mut lo, mut hi) = (u64::MAX, 0u64);
    for item in export_lines(path)? {
        if let Scanned::Record(r) = item? {
            lo = lo.min(r.seq);
            hi = hi.max(r.seq);
            if r.kind == "checkpoint" {
                checkpoints.push(r);
            }
        }
    }
    let anchors = anchors_from(checkpoints.iter());
    let range = if lo == u64::MAX { (0, 0) } else { (lo, hi) };
    Verifier::new(false, trusted, anchors, None, range).run(export_lines(path)?, progress)
}

fn export_lines(
    path: &Path,
) -> Result<impl Iterator<Item = Result<Scanned, AuditError>>, AuditError> {
    let file = std::fs::File::open(path).map_err(|e| AuditError::io(path, e))?;
    let path = path.to_owned();
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    Ok(reader.lines().enumerate().filter_map(move |(i, line)| {
        let line_no = i as u64 + 1;
        match line {
            Err(e) => Some(Err(AuditError::io(&path, e))),
            Ok(l) if l.trim().is_empty() => None,
            Ok(l) => Some(Ok(match RawRecord::from_json_line(&l) {
                Ok(r) => Scanned::Record(r),
                Err(e) => Scanned::Bad(Problem::Malformed {
                    line: line_no,
                    reason: e.to_string(),
                }),
            })),
        }
    }))
}
