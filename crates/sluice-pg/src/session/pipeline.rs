//! What the backend does with each message forwarded to it, followed
//! message by message from its replies. The session counts a
//! ReadyForQuery for every Sync, Query and FunctionCall it forwards, and
//! numbers every response by the ReadyForQuery it precedes; this model says
//! which of those ReadyForQuery will never come, so the numbering stays
//! in step with the server for the rest of the session. Two server rules
//! make one go missing:
//!
//! - After an error in an extended-protocol message the backend discards
//!   every message until Sync, a simple Query or FunctionCall included
//!   (PostgreSQL's `ignore_till_sync`).
//! - A COPY FROM STDIN reads the messages behind it itself: CopyData and
//!   Flush, and Sync (ignored: a client may send one not knowing the
//!   statement was a COPY) until CopyDone or CopyFail. Any other message
//!   makes the COPY fail with a protocol violation, and is consumed.
//!
//! When a COPY fails on bad data the server's error does not say which
//! message it was reading. The model takes it that the COPY read every
//! message up to the CopyDone, CopyFail or other message that would end
//! it: exact for every client that sends no Sync among its CopyData (libpq
//! and the drivers send one only after CopyDone or CopyFail).
//!
//! Pure bookkeeping over message tags, no I/O.

use super::Session;
use crate::denial::PendingDenial;
use crate::gate::Gate;
use std::collections::VecDeque;

impl<G: Gate> Session<G> {
    /// Queues whole messages for the backend. Everything forwarded passes
    /// here, so the model sees exactly what the backend will read.
    pub(super) fn forward(&mut self, bytes: &[u8]) {
        self.to_backend.extend_from_slice(bytes);
        self.pipeline.forwarded(bytes);
        self.settle_pipeline();
    }

    /// Ends, in order, the segments whose ReadyForQuery the backend will
    /// never send.
    pub(super) fn settle_pipeline(&mut self) {
        for _ in 0..self.pipeline.take_missing() {
            self.never_ready();
        }
    }

    /// A ReadyForQuery was counted for a message the backend discarded or
    /// swallowed: what waited for it is over as if it had come, and what
    /// was still open in its segment never ran (its response says
    /// skipped). Nothing reaches the client: the backend sent nothing.
    fn never_ready(&mut self) {
        let z_before = self.z_seen;
        ready_seen(&mut self.z_seen, &mut self.denials);
        self.extended.on_backend(b'Z', z_before);
        if let Some(m) = self.masking.as_mut() {
            m.on_message(b'Z', &[], z_before);
        }
        if let Some(responses) = self.responses.as_mut() {
            let gate = &mut self.gate;
            responses.end_segment(z_before, None, &mut |r| gate.on_response(r));
        }
        tracing::debug!(
            segment = self.z_seen,
            "the backend discarded what this ReadyForQuery was counted for"
        );
    }
}

/// One more ReadyForQuery came or never will: denials of its segment that
/// did not come back never will. (Fields, not `&mut Session`: the caller
/// still holds the backend message.)
pub(super) fn ready_seen(z_seen: &mut u64, denials: &mut VecDeque<PendingDenial>) {
    *z_seen += 1;
    let seen = *z_seen;
    denials.retain(|d| d.segment > seen);
}

/// A forwarded message still to be answered, as far as it matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Parse,
    Bind,
    Close,
    Describe,
    Execute,
    Sync,
    Query,
    FunctionCall,
    /// CopyData outside a COPY, or Flush: answered by nothing
    /// (consecutive ones are kept as one).
    Silent,
    /// CopyDone or CopyFail outside a COPY: answered by nothing, but one
    /// queued before its COPY started ends it.
    CopyEnd,
}

impl Sent {
    fn of(tag: u8) -> Option<Sent> {
        Some(match tag {
            b'P' => Sent::Parse,
            b'B' => Sent::Bind,
            b'C' => Sent::Close,
            b'D' => Sent::Describe,
            b'E' => Sent::Execute,
            b'S' => Sent::Sync,
            b'Q' => Sent::Query,
            b'F' => Sent::FunctionCall,
            b'd' | b'H' => Sent::Silent,
            b'c' | b'f' => Sent::CopyEnd,
            _ => return None,
        })
    }

    /// Answered by ReadyForQuery.
    fn ends_in_ready(self) -> bool {
        matches!(self, Sent::Sync | Sent::Query | Sent::FunctionCall)
    }

    /// An extended-protocol message: an error in it makes the backend skip
    /// to Sync.
    fn extended(self) -> bool {
        matches!(
            self,
            Sent::Parse | Sent::Bind | Sent::Close | Sent::Describe | Sent::Execute
        )
    }
}

/// The COPY FROM STDIN the first message in line is running.
#[derive(Debug, Default)]
struct CopyIn {
    /// Messages it read that were counted for a ReadyForQuery it never
    /// sends: Syncs it ignored, a Query or FunctionCall it failed on.
    swallowed: u64,
    /// The message that ends it was forwarded: what follows is read by
    /// the backend's main loop again.
    closed: bool,
}

impl CopyIn {
    /// One message the COPY reads.
    fn read(&mut self, tag: u8) {
        match tag {
            b'd' | b'H' => {}
            b'S' => self.swallowed += 1,
            b'Q' | b'F' => {
                self.swallowed += 1;
                self.closed = true;
            }
            _ => self.closed = true,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Pipeline {
    /// Forwarded messages the backend has not finished with, in order.
    sent: VecDeque<Sent>,
    /// The backend discards messages until the next Sync.
    skipping: bool,
    copy: Option<CopyIn>,
    /// ReadyForQuery that will not come, owed once the first message in
    /// line is done (a COPY inside it swallowed what would have sent them).
    after_front: u64,
    /// ReadyForQuery that will not come, not yet reported.
    missing: u64,
}

impl Pipeline {
    /// `bytes` (whole messages) were queued for the backend.
    pub(super) fn forwarded(&mut self, mut bytes: &[u8]) {
        while bytes.len() >= 5 {
            let tag = bytes[0];
            let len = i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
            let Some(next) = usize::try_from(len).ok().and_then(|l| bytes.get(1 + l..)) else {
                break;
            };
            bytes = next;
            match self.copy.as_mut() {
                Some(copy) if !copy.closed => copy.read(tag),
                _ => self.push(tag),
            }
        }
        self.settle();
    }

    fn push(&mut self, tag: u8) {
        let Some(sent) = Sent::of(tag) else { return };
        if sent == Sent::Silent && self.sent.back() == Some(&Sent::Silent) {
            return;
        }
        self.sent.push_back(sent);
    }

    /// One backend message, by its tag.
    pub(super) fn on_backend(&mut self, tag: u8) {
        let front = self.sent.front().copied();
        match tag {
            // CopyInResponse: the messages behind are the COPY's to read.
            b'G' if matches!(front, Some(Sent::Execute | Sent::Query)) => {
                let mut copy = CopyIn::default();
                while !copy.closed && self.sent.len() > 1 {
                    if let Some(sent) = self.sent.remove(1) {
                        copy.read(tag_of(sent));
                    }
                }
                self.copy = Some(copy);
            }
            // The COPY is over, done or failed.
            b'C' | b'E' if self.copy.is_some() => {
                if let Some(copy) = self.copy.take() {
                    self.after_front += copy.swallowed;
                }
            }
            _ => {}
        }
        match (tag, front) {
            (b'1', Some(Sent::Parse))
            | (b'2', Some(Sent::Bind))
            | (b'3', Some(Sent::Close))
            | (b'T' | b'n', Some(Sent::Describe))
            | (b'C' | b'I' | b's', Some(Sent::Execute)) => self.pop(),
            (b'E', Some(sent)) if sent.extended() => {
                self.pop();
                self.skipping = true;
            }
            (b'Z', Some(sent)) if sent.ends_in_ready() => self.pop(),
            // Out of step (it should not happen): start again from here.
            (b'Z', _) => {
                tracing::warn!(
                    ?front,
                    "ReadyForQuery out of step with the forwarded messages"
                );
                while let Some(sent) = self.sent.pop_front() {
                    if sent.ends_in_ready() {
                        break;
                    }
                }
                self.skipping = false;
                self.copy = None;
                self.after_front = 0;
            }
            _ => {}
        }
        self.settle();
    }

    fn pop(&mut self) {
        self.sent.pop_front();
        self.missing += std::mem::take(&mut self.after_front);
    }

    /// Passes over what the backend answers with nothing, from the front.
    fn settle(&mut self) {
        while self.copy.is_none() {
            match self.sent.front().copied() {
                Some(Sent::Sync) if self.skipping => {
                    // Read by the backend: skipping ends, its answer comes.
                    self.skipping = false;
                    break;
                }
                Some(sent) if self.skipping => {
                    self.pop();
                    self.missing += u64::from(sent.ends_in_ready());
                }
                Some(Sent::Silent | Sent::CopyEnd) => self.pop(),
                _ => break,
            }
        }
    }

    /// How many counted ReadyForQuery will never come, found since the
    /// last call, in order: each is due now, before the next backend
    /// message.
    pub(super) fn take_missing(&mut self) -> u64 {
        std::mem::take(&mut self.missing)
    }
}

/// A tag that reads as `sent` does to a COPY.
fn tag_of(sent: Sent) -> u8 {
    match sent {
        Sent::Sync => b'S',
        Sent::Query => b'Q',
        Sent::FunctionCall => b'F',
        Sent::Silent => b'd',
        Sent::CopyEnd => b'c',
        // Anything else ends the COPY.
        _ => b'P',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(tags: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for tag in tags.bytes() {
            out.extend_from_slice(&[tag, 0, 0, 0, 4]);
        }
        out
    }

    /// Forwards `client` messages, then feeds `server` replies; returns the
    /// ReadyForQuery found missing.
    fn run(p: &mut Pipeline, client: &str, server: &str) -> u64 {
        p.forwarded(&bytes(client));
        for tag in server.bytes() {
            p.on_backend(tag);
        }
        p.take_missing()
    }

    #[test]
    fn a_query_after_a_failed_flushed_batch_never_gets_its_ready_for_query() {
        let mut p = Pipeline::default();
        assert_eq!(run(&mut p, "PH", "E"), 0);
        // Sent after the error is known: discarded on arrival.
        assert_eq!(run(&mut p, "Q", ""), 1);
        assert_eq!(run(&mut p, "S", "Z"), 0);
        assert_eq!(run(&mut p, "Q", "TDCZ"), 0, "in step again");
        assert!(p.sent.is_empty());
    }

    #[test]
    fn a_query_pipelined_behind_a_failing_batch_is_found_discarded_at_the_error() {
        let mut p = Pipeline::default();
        assert_eq!(run(&mut p, "PBEHQFS", ""), 0);
        assert_eq!(run(&mut p, "", "1"), 0);
        assert_eq!(run(&mut p, "", "E"), 2, "the Query and the FunctionCall");
        assert_eq!(run(&mut p, "", "Z"), 0);
        assert!(p.sent.is_empty());
    }

    #[test]
    fn an_error_in_a_simple_query_skips_nothing() {
        let mut p = Pipeline::default();
        assert_eq!(run(&mut p, "QQ", "EZTDCZ"), 0);
        assert!(p.sent.is_empty());
    }

    #[test]
    fn a_sync_behind_an_extended_copy_is_swallowed_and_owed_when_the_copy_ends() {
        let mut p = Pipeline::default();
        // libpq: Parse, Bind, Describe, Execute, Sync; data; CopyDone; Sync.
        assert_eq!(run(&mut p, "PBDES", "12nG"), 0);
        assert_eq!(run(&mut p, "ddcS", ""), 0);
        assert_eq!(run(&mut p, "", "C"), 1);
        assert_eq!(run(&mut p, "", "Z"), 0);
        assert!(p.sent.is_empty() && p.copy.is_none());
    }

    #[test]
    fn a_failed_extended_copy_discards_what_follows_until_sync() {
        let mut p = Pipeline::default();
        assert_eq!(run(&mut p, "PBES", "12G"), 0);
        // A bad row; the client goes on with CopyDone, a batch, a Query, Sync.
        assert_eq!(run(&mut p, "ddcPBEQS", ""), 0);
        assert_eq!(run(&mut p, "", "E"), 2, "the swallowed Sync and the Query");
        assert_eq!(run(&mut p, "", "Z"), 0);
        assert!(p.sent.is_empty());
    }

    #[test]
    fn a_copy_that_fails_before_the_client_is_done_leaves_its_data_to_be_discarded() {
        let mut p = Pipeline::default();
        assert_eq!(run(&mut p, "PBEHd", "12Gd"), 0);
        assert_eq!(run(&mut p, "", "E"), 0);
        assert_eq!(run(&mut p, "ddcQS", ""), 1, "the Query, discarded");
        assert_eq!(run(&mut p, "", "Z"), 0);
        assert!(p.sent.is_empty());
    }

    #[test]
    fn a_sync_inside_a_simple_query_copy_is_owed_after_its_ready_for_query() {
        let mut p = Pipeline::default();
        assert_eq!(run(&mut p, "QSdcQ", "G"), 0);
        assert_eq!(run(&mut p, "", "C"), 0, "the Query is not over yet");
        assert_eq!(run(&mut p, "", "Z"), 1);
        assert_eq!(run(&mut p, "", "TDCZ"), 0);
        assert!(p.sent.is_empty());
    }

    #[test]
    fn a_sync_sent_after_copy_done_is_answered_even_if_the_copy_starts_later() {
        let mut p = Pipeline::default();
        assert_eq!(run(&mut p, "QdcS", "GCZ"), 0);
        assert_eq!(run(&mut p, "", "Z"), 0);
        assert!(p.sent.is_empty());
    }

    #[test]
    fn data_streamed_into_a_running_copy_is_not_queued() {
        let mut p = Pipeline::default();
        run(&mut p, "Q", "G");
        for _ in 0..10_000 {
            p.forwarded(&bytes("d"));
        }
        assert_eq!(p.sent.len(), 1);
    }
}
