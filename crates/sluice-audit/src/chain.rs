//! The canonical encodings that are hashed and signed. They are the contract
//! an external verifier implements, so they are spelled out here and never
//! depend on how JSON happens to be serialized (the body is hashed as the
//! exact bytes stored and exported).
//!
//! `field(x)` is `x`'s length in bytes as a u64 big-endian, then its UTF-8
//! bytes; `u64be(n)` is 8 bytes big-endian.
//!
//! Record hash (lowercase hex of):
//! ```text
//! SHA-256( "sluice-audit-record-v1\n" || field(session) || field(kind) || field(body)
//!          || u64be(seq) || field(time) || field(prev_hash) )
//! ```
//! (The parts an appender knows come first, so it hashes the body on its
//! own thread and the writer only finishes the last block or two.)
//! where `time`, `session`, `kind`, `prev_hash` are the record's strings as
//! they appear in the export and `body` is the exact JSON text of the body
//! (the bytes between `"body":` and `,"prev_hash"` of an export line). The
//! first record (seq 1) has `prev_hash` = 64 zeros.
//!
//! Checkpoint signature (Ed25519 over):
//! ```text
//! "sluice-audit-checkpoint-v1\n" || u64be(head_seq) || field(head_hash) || prune
//! prune = 0x00                                                     (no prune)
//!       | 0x01 || field(before) || u64be(first_seq) || field(prev_hash)
//! ```
//! Head marker signature (Ed25519 over):
//! `"sluice-audit-head-v1\n" || u64be(seq) || field(hash)`.

use crate::record::{PruneMark, RawRecord};
use sha2::{Digest, Sha256};

/// `prev_hash` of the first record of a log.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const RECORD_DOMAIN: &[u8] = b"sluice-audit-record-v1\n";
const CHECKPOINT_DOMAIN: &[u8] = b"sluice-audit-checkpoint-v1\n";
const HEAD_DOMAIN: &[u8] = b"sluice-audit-head-v1\n";

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The canonical bytes of a record (see the module docs).
pub fn record_preimage(
    seq: u64,
    time: &str,
    session: &str,
    kind: &str,
    body: &str,
    prev_hash: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(80 + time.len() + session.len() + kind.len() + body.len());
    out.extend_from_slice(RECORD_DOMAIN);
    field(&mut out, session.as_bytes());
    field(&mut out, kind.as_bytes());
    field(&mut out, body.as_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    field(&mut out, time.as_bytes());
    field(&mut out, prev_hash.as_bytes());
    out
}

fn hash_field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// A record hash with the appender-known prefix (session, kind, body)
/// already absorbed; [`finish`](Self::finish) adds seq, time and prev_hash.
#[derive(Clone)]
pub struct RecordHasher(Sha256);

impl RecordHasher {
    pub fn new(session: &str, kind: &str, body: &str) -> RecordHasher {
        let mut h = Sha256::new();
        h.update(RECORD_DOMAIN);
        hash_field(&mut h, session.as_bytes());
        hash_field(&mut h, kind.as_bytes());
        hash_field(&mut h, body.as_bytes());
        RecordHasher(h)
    }

    /// Lowercase hex hash of the record.
    pub fn finish(mut self, seq: u64, time: &str, prev_hash: &str) -> String {
        self.0.update(seq.to_be_bytes());
        hash_field(&mut self.0, time.as_bytes());
        hash_field(&mut self.0, prev_hash.as_bytes());
        to_hex(&self.0.finalize())
    }
}

/// Lowercase hex SHA-256 of [`record_preimage`].
pub fn record_hash(
    seq: u64,
    time: &str,
    session: &str,
    kind: &str,
    body: &str,
    prev_hash: &str,
) -> String {
    RecordHasher::new(session, kind, body).finish(seq, time, prev_hash)
}

/// Lowercase hex (a table loop: `hex::encode`'s iterator showed in profiles).
fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// The hash a stored record should have, but computed as if it had `seq`
/// (used to recognise a record that was moved).
pub fn raw_hash_as(r: &RawRecord, seq: u64) -> String {
    record_hash(seq, &r.time, &r.session, &r.kind, &r.body, &r.prev_hash)
}

/// The message a checkpoint signs.
pub fn checkpoint_message(head_seq: u64, head_hash: &str, prune: Option<&PruneMark>) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(CHECKPOINT_DOMAIN);
    out.extend_from_slice(&head_seq.to_be_bytes());
    field(&mut out, head_hash.as_bytes());
    match prune {
        None => out.push(0),
        Some(p) => {
            out.push(1);
            field(&mut out, p.before.to_string().as_bytes());
            out.extend_from_slice(&p.first_seq.to_be_bytes());
            field(&mut out, p.prev_hash.as_bytes());
        }
    }
    out
}

/// The message a head marker signs.
pub fn head_message(seq: u64, hash: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD_DOMAIN.len() + 80);
    out.extend_from_slice(HEAD_DOMAIN);
    out.extend_from_slice(&seq.to_be_bytes());
    field(&mut out, hash.as_bytes());
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn preimage_layout_is_as_documented() {
        let p = record_preimage(1, "t", "s", "k", "{}", "h");
        let mut want = b"sluice-audit-record-v1\n".to_vec();
        let field = |want: &mut Vec<u8>, f: &str| {
            want.extend_from_slice(&(f.len() as u64).to_be_bytes());
            want.extend_from_slice(f.as_bytes());
        };
        for f in ["s", "k", "{}"] {
            field(&mut want, f);
        }
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        for f in ["t", "h"] {
            field(&mut want, f);
        }
        assert_eq!(p, want);
        assert_eq!(
            record_hash(1, "t", "s", "k", "{}", "h"),
            hex::encode(Sha256::digest(&p))
        );
    }

    #[test]
    fn hex_matches_the_hex_crate() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(to_hex(&bytes), hex::encode(&bytes));
    }

    #[test]
    fn length_prefix_prevents_field_shifting() {
        assert_ne!(
            record_hash(1, "ab", "c", "k", "{}", ZERO_HASH),
            record_hash(1, "a", "bc", "k", "{}", ZERO_HASH)
        );
    }
}
