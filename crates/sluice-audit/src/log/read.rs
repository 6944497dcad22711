//! Queries, export and verification: everything that reads the store,
//! always in pages so memory stays flat however large the log is.

use super::AuditLog;
use crate::error::AuditError;
use crate::record::{RawRecord, Record};
use crate::store::{AuditStore, SessionFilter, SessionSummary};
use crate::time::Timestamp;
use crate::verify::{anchors_from, Scanned, Verifier, VerifyReport};

/// Page size of scans (export, verify, session replay).
const PAGE: usize = 2000;

impl AuditLog {
    /// Session summaries, newest first.
    pub fn sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionSummary>, AuditError> {
        self.inner.store.sessions(filter)
    }

    /// Every record of one session, in order (read in pages).
    pub fn session_records(&self, session_id: &str) -> Result<Vec<Record>, AuditError> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = self.session_records_after(session_id, after, PAGE)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            let full = page.len() == PAGE;
            out.extend(page);
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// Up to `limit` records of a session after `after_seq` (for `replay --follow`).
    pub fn session_records_after(
        &self,
        session_id: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Record>, AuditError> {
        let raw = self
            .inner
            .store
            .session_records_after(session_id, after_seq, limit)?;
        raw.iter().map(RawRecord::decode).collect()
    }

    /// Up to `limit` records after `after_seq`, in order (for `--follow` and paging).
    pub fn records_after(&self, after_seq: u64, limit: usize) -> Result<Vec<Record>, AuditError> {
        let raw = self.inner.store.records_after(after_seq, limit)?;
        raw.iter().map(RawRecord::decode).collect()
    }

    /// Like [`records_after`](Self::records_after) without decoding bodies.
    pub fn raw_records_after(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<RawRecord>, AuditError> {
        self.inner.store.records_after(after_seq, limit)
    }

    /// Write one JSON object per record (hashes included, bodies byte-exact)
    /// from `since` (or the start) up to the head at the time of the call.
    /// Returns the number of records written.
    pub fn export_jsonl(
        &self,
        writer: &mut dyn std::io::Write,
        since: Option<Timestamp>,
        progress: &dyn Fn(u64, u64),
    ) -> Result<u64, AuditError> {
        let store = &self.inner.store;
        let Some(head) = store.head()? else {
            return Ok(0);
        };
        let start = match since {
            Some(t) => match store.first_seq_at_or_after(t)? {
                Some(seq) => seq,
                None => return Ok(0),
            },
            None => store.first_seq()?.unwrap_or(1),
        };
        let total = head.seq + 1 - start.min(head.seq + 1);
        let mut written = 0u64;
        for record in PagedRecords::new(store.as_ref(), start.saturating_sub(1), head.seq) {
            let line = record?.to_json_line()?;
            writer
                .write_all(line.as_bytes())
                .map_err(AuditError::Write)?;
            writer.write_all(b"\n").map_err(AuditError::Write)?;
            written += 1;
            if written.is_multiple_of(4096) {
                progress(written, total);
            }
        }
        writer.flush().map_err(AuditError::Write)?;
        progress(written, total);
        Ok(written)
    }

    /// Verify the stored chain against this log's public key.
    pub fn verify(&self, progress: &dyn Fn(u64, u64)) -> Result<VerifyReport, AuditError> {
        self.verify_with_key(self.inner.public_key.as_deref(), progress)
    }

    /// Verify against a key given out of band (safer than the key file in
    /// the same directory an attacker could have replaced).
    pub fn verify_with_key(
        &self,
        public_key_hex: Option<&str>,
        progress: &dyn Fn(u64, u64),
    ) -> Result<VerifyReport, AuditError> {
        let store = self.inner.store.as_ref();
        // The marker first: records only ever reach the marker's seq before
        // it is written, so a table read afterwards must contain it.
        let head_marker = store.read_head_marker()?;
        let Some(head) = store.head()? else {
            return Verifier::new(
                true,
                public_key_hex.map(str::to_owned),
                Default::default(),
                head_marker,
                (0, 0),
            )
            .run(std::iter::empty(), progress);
        };
        let first = store.first_seq()?.unwrap_or(1);
        let checkpoints = store.checkpoints()?;
        let anchors = anchors_from(checkpoints.iter());
        let verifier = Verifier::new(
            true,
            public_key_hex.map(str::to_owned),
            anchors,
            head_marker,
            (first, head.seq),
        );
        let items = PagedRecords::new(store, first.saturating_sub(1), head.seq)
            .map(|r| r.map(Scanned::Record));
        verifier.run(items, progress)
    }
}

/// Records `(after, until]` read page by page.
struct PagedRecords<'a> {
    store: &'a dyn AuditStore,
    after: u64,
    until: u64,
    page: std::vec::IntoIter<RawRecord>,
    done: bool,
}

impl<'a> PagedRecords<'a> {
    fn new(store: &'a dyn AuditStore, after: u64, until: u64) -> Self {
        PagedRecords {
            store,
            after,
            until,
            page: Vec::new().into_iter(),
            done: false,
        }
    }
}

impl Iterator for PagedRecords<'_> {
    type Item = Result<RawRecord, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.page.next() {
                if r.seq > self.until {
                    self.done = true;
                    return None;
                }
                self.after = r.seq;
                return Some(Ok(r));
            }
            if self.done {
                return None;
            }
            match self.store.records_after(self.after, PAGE) {
                Ok(page) => {
                    self.done = page.len() < PAGE;
                    if page.is_empty() {
                        return None;
                    }
                    self.page = page.into_iter();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
