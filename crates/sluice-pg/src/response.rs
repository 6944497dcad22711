//! What came back for each forwarded command, read off the backend messages
//! on their way to the client, after anything the gateway changed in them:
//! a response record never holds more than the client saw.
//!
//! Responses arrive in the order the commands were sent. A Query or a
//! FunctionCall ends at its ReadyForQuery; an Execute at its
//! CommandComplete, EmptyQueryResponse, PortalSuspended or ErrorResponse.
//! After an error in an extended batch the backend skips to Sync, so the
//! batch's remaining Executes end, unrun, at that ReadyForQuery. Each open
//! command carries the number of the ReadyForQuery its messages precede
//! (its *segment*), so messages answering something else (a Describe
//! alone, a Parse error in a batch without Execute) are never attributed
//! to it.

use crate::codec::{error_fields, Reader};
use crate::gate::{Completion, Response};
use std::collections::VecDeque;
use std::fmt::Write;
use std::time::Instant;

/// Longest `; `-joined tag list kept for one query string.
const MAX_TAGS: usize = 1024;

struct Open {
    segment: u64,
    /// Ends at its own completion message, not at ReadyForQuery.
    execute: bool,
    started: Instant,
    rows: u64,
    rows_since_tag: u64,
    bytes: u64,
    tags: String,
    error: Option<Completion>,
    empty: bool,
    content: String,
    truncated: bool,
    /// Never forwarded: ends as soon as it is first in line.
    not_run: Option<Completion>,
}

/// The open commands of one session, oldest first.
pub(crate) struct Responses {
    open: VecDeque<Open>,
    cap: usize,
}

impl Responses {
    /// `cap`: most content bytes kept per command.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            open: VecDeque::new(),
            cap,
        }
    }

    /// A command was forwarded; its messages precede ReadyForQuery number
    /// `segment`.
    pub(crate) fn expect(&mut self, segment: u64, execute: bool) {
        self.open.push_back(Open {
            segment,
            execute,
            started: Instant::now(),
            rows: 0,
            rows_since_tag: 0,
            bytes: 0,
            tags: String::new(),
            error: None,
            empty: false,
            content: String::new(),
            truncated: false,
            not_run: None,
        });
    }

    /// The last `count` commands expected were not forwarded after all.
    pub(crate) fn not_run(&mut self, count: usize, completion: &Completion) {
        let first = self.open.len().saturating_sub(count);
        for open in self.open.iter_mut().skip(first) {
            open.not_run = Some(completion.clone());
        }
    }

    /// One backend message on its way to the client; `z_seen` counts the
    /// ReadyForQuery messages before it. Finished responses go to `done`.
    pub(crate) fn on_message(
        &mut self,
        tag: u8,
        frame: &[u8],
        z_seen: u64,
        done: &mut impl FnMut(Response),
    ) {
        self.settle(done);
        if tag == b'Z' {
            self.end_segment(z_seen, Some(frame.len()), done);
            return;
        }
        let cap = self.cap;
        let Some(open) = self.open.front_mut() else {
            return;
        };
        if open.segment != z_seen + 1 {
            return;
        }
        let body = frame.get(5..).unwrap_or_default();
        let finished = match tag {
            b'D' => {
                open.rows_since_tag += 1;
                open.capture(cap, |out| data_row(body, out));
                None
            }
            b'd' => {
                open.capture(cap, |out| push_cell(body, out));
                None
            }
            b'T' => {
                open.capture(cap, |out| row_description(body, out));
                None
            }
            b'C' => {
                let tag = Reader::new(body).cstr().unwrap_or_default();
                open.rows += tag_rows(tag).unwrap_or(open.rows_since_tag);
                open.rows_since_tag = 0;
                if open.execute {
                    Some(Completion::Tags(tag.to_owned()))
                } else {
                    open.add_tag(tag);
                    None
                }
            }
            b'V' => {
                open.add_tag("FUNCTION CALL");
                None
            }
            b'I' if open.execute => Some(Completion::Empty),
            b'I' => {
                open.empty = true;
                None
            }
            b's' if open.execute => Some(Completion::Suspended),
            b'E' => {
                let (sqlstate, message) = error_fields(body);
                let error = Completion::Error {
                    sqlstate: sqlstate.to_owned(),
                    message: message.to_owned(),
                };
                if open.execute {
                    Some(error)
                } else {
                    open.error.get_or_insert(error);
                    None
                }
            }
            _ => return,
        };
        open.bytes += frame.len() as u64;
        if let Some(completion) = finished {
            if let Some(open) = self.open.pop_front() {
                done(open.finish(completion));
            }
            self.settle(done);
        }
    }

    /// ReadyForQuery number `z_seen + 1` came (`ready`: its length), or
    /// never will (the backend discarded the message it was counted for):
    /// everything of its segment is over. The Query or FunctionCall it
    /// answered ends with what it collected, or as skipped if the backend
    /// discarded it; Executes still open were skipped after an error.
    pub(crate) fn end_segment(
        &mut self,
        z_seen: u64,
        ready: Option<usize>,
        done: &mut impl FnMut(Response),
    ) {
        while self.open.front().is_some_and(|o| o.segment <= z_seen + 1) {
            if let Some(mut open) = self.open.pop_front() {
                let completion = match ready {
                    Some(len) => {
                        open.bytes += len as u64;
                        if open.execute {
                            Completion::Skipped
                        } else {
                            open.final_completion()
                        }
                    }
                    None => Completion::Skipped,
                };
                done(open.finish(completion));
            }
            self.settle(done);
        }
    }

    /// Ends the commands first in line that never ran.
    pub(crate) fn settle(&mut self, done: &mut impl FnMut(Response)) {
        while let Some(completion) = self.open.front().and_then(|o| o.not_run.clone()) {
            if let Some(open) = self.open.pop_front() {
                done(open.finish(completion));
            }
        }
    }
}

impl Open {
    fn add_tag(&mut self, tag: &str) {
        if self.tags.len() >= MAX_TAGS {
            return;
        }
        if !self.tags.is_empty() {
            self.tags.push_str("; ");
        }
        self.tags.push_str(tag);
    }

    fn final_completion(&mut self) -> Completion {
        if let Some(error) = self.error.take() {
            error
        } else if self.tags.is_empty() && self.empty {
            Completion::Empty
        } else {
            Completion::Tags(std::mem::take(&mut self.tags))
        }
    }

    /// Appends one line of content, unless the cap is already reached.
    /// Writers stop at the cap themselves, so one huge value never builds
    /// a huge string.
    fn capture(&mut self, cap: usize, line: impl FnOnce(&mut Capped<'_>)) {
        if self.content.len() >= cap {
            self.truncated |= cap > 0;
            return;
        }
        let mut out = Capped {
            out: &mut self.content,
            cap,
        };
        line(&mut out);
        out.push('\n');
        if sluice_core::truncate_at_char_boundary(&mut self.content, cap) {
            self.truncated = true;
        }
    }

    fn finish(self, completion: Completion) -> Response {
        Response {
            completion,
            rows: self.rows + self.rows_since_tag,
            bytes: self.bytes,
            duration: self.started.elapsed(),
            content: self.content,
            truncated: self.truncated,
        }
    }
}

/// Content being written, which ignores whatever goes past the cap (the
/// caller cuts the last character that straddles it).
struct Capped<'a> {
    out: &'a mut String,
    cap: usize,
}

impl Capped<'_> {
    fn room(&self) -> usize {
        (self.cap + 1).saturating_sub(self.out.len())
    }

    fn full(&self) -> bool {
        self.out.len() > self.cap
    }

    fn push(&mut self, c: char) {
        if !self.full() {
            self.out.push(c);
        }
    }

    fn push_str(&mut self, s: &str) {
        if self.out.len() + s.len() <= self.cap {
            self.out.push_str(s);
        } else {
            for c in s.chars() {
                self.push(c);
            }
        }
    }
}

/// The row count a CommandComplete tag reports (`INSERT 0 5`, `SELECT 3`).
fn tag_rows(tag: &str) -> Option<u64> {
    let (verb, rest) = tag.split_once(' ')?;
    match verb {
        "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "COPY" | "FETCH" | "MOVE" => {
            rest.rsplit(' ').next()?.parse().ok()
        }
        _ => None,
    }
}

/// Column names, tab-separated.
fn row_description(body: &[u8], out: &mut Capped<'_>) {
    let mut r = Reader::new(body);
    let Ok(n) = r.i16() else { return };
    for i in 0..n {
        let Ok(name) = r.cstr() else { return };
        if i > 0 {
            out.push('\t');
        }
        escape_text(name, out);
        // table oid, column, type oid, type size, type modifier, format
        if r.bytes(18).is_err() {
            return;
        }
    }
}

/// One row, tab-separated cells.
fn data_row(body: &[u8], out: &mut Capped<'_>) {
    let mut r = Reader::new(body);
    let Ok(n) = r.i16() else { return };
    for i in 0..n {
        if i > 0 {
            out.push('\t');
        }
        let Ok(len) = r.i32() else { return };
        let Ok(len) = usize::try_from(len) else {
            out.push_str("\\N");
            continue;
        };
        let Ok(cell) = r.bytes(len) else { return };
        push_cell(cell, out);
    }
}

/// A value as text when it is printable UTF-8 (COPY text escaping), else
/// as `\x` and hex (a binary-format value).
fn push_cell(cell: &[u8], out: &mut Capped<'_>) {
    // Only what can still fit is looked at: a 1 GB value costs no more
    // than a small one.
    let prefix = cell.get(..out.room().saturating_add(4)).unwrap_or(cell);
    let text = match std::str::from_utf8(prefix) {
        Ok(text) => Some(text),
        // Cut inside a character by the prefix, not by the value itself.
        Err(e) if e.error_len().is_none() && prefix.len() < cell.len() => {
            std::str::from_utf8(&prefix[..e.valid_up_to()]).ok()
        }
        Err(_) => None,
    };
    match text {
        Some(text)
            if !text
                .chars()
                .any(|c| c.is_control() && !"\t\n\r".contains(c)) =>
        {
            escape_text(text, out);
        }
        _ => {
            out.push_str("\\x");
            for b in prefix {
                if out.full() {
                    return;
                }
                let _ = write!(out.out, "{b:02x}");
            }
        }
    }
}

fn escape_text(text: &str, out: &mut Capped<'_>) {
    for c in text.chars() {
        if out.full() {
            return;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tags_with_counts_give_rows() {
        assert_eq!(tag_rows("INSERT 0 5"), Some(5));
        assert_eq!(tag_rows("SELECT 3"), Some(3));
        assert_eq!(tag_rows("COPY 10"), Some(10));
        assert_eq!(tag_rows("CREATE TABLE"), None);
        assert_eq!(tag_rows("BEGIN"), None);
    }

    #[test]
    fn cells_are_text_when_printable_and_hex_otherwise() {
        let mut s = String::new();
        push_cell(
            b"a\tb\\c",
            &mut Capped {
                out: &mut s,
                cap: 100,
            },
        );
        assert_eq!(s, "a\\tb\\\\c");
        s.clear();
        push_cell(
            &[0, 0, 0, 1],
            &mut Capped {
                out: &mut s,
                cap: 100,
            },
        );
        assert_eq!(s, "\\x00000001");
    }

    #[test]
    fn a_huge_value_is_never_written_past_the_cap() {
        let mut s = String::new();
        push_cell(
            &vec![0u8; 1 << 20],
            &mut Capped {
                out: &mut s,
                cap: 10,
            },
        );
        assert!(s.len() <= 12, "{}", s.len());
        s.clear();
        push_cell(
            "é".repeat(1 << 20).as_bytes(),
            &mut Capped {
                out: &mut s,
                cap: 10,
            },
        );
        assert!(s.len() <= 12, "{}", s.len());
    }

    #[test]
    fn content_stops_at_the_cap_and_says_so() {
        let mut r = Responses::new(10);
        r.expect(1, true);
        let row = |v: &[u8]| {
            let mut f = vec![b'D', 0, 0, 0, 0, 0, 1];
            f.extend_from_slice(&(v.len() as i32).to_be_bytes());
            f.extend_from_slice(v);
            f
        };
        let mut got = Vec::new();
        for _ in 0..5 {
            r.on_message(b'D', &row(b"abcdef"), 0, &mut |resp| got.push(resp));
        }
        let complete = b"C\0\0\0\x0dSELECT 5\0";
        r.on_message(b'C', complete, 0, &mut |resp| got.push(resp));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].rows, 5);
        assert_eq!(got[0].content.len(), 10);
        assert!(got[0].truncated);
        assert_eq!(got[0].completion, Completion::Tags("SELECT 5".into()));
    }
}
