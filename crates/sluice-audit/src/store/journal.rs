//! `audit.journal`: where a record is written first.
//!
//! Appending a batch is one `write` of length-prefixed frames to a file
//! opened for append: once it returns, the records survive a crash of the
//! gateway (they are in the kernel's page cache), and `sync` (fdatasync)
//! makes them survive a power loss. The SQLite database is an index of the
//! same records, filled in larger batches off the waiting path; on open,
//! whatever the journal has beyond the database's head is indexed first, so
//! the database never misses a record the journal holds. Once the database
//! holds everything and is synced, the journal is emptied.
//!
//! A frame: `u32` length (little endian) of the rest, then the record's
//! fields, each a `u32` length and its bytes (`seq` as 8 bytes). Reading
//! stops at the first frame that is cut off or does not decode: that is
//! where a crash interrupted a write (nothing after it was ever reported
//! written). Each recovered record must continue the chain and carry its
//! own hash, so an edited frame is refused rather than indexed.

use crate::chain::raw_hash_as;
use crate::error::AuditError;
use crate::record::RawRecord;
use crate::store::sqlite::file_id;
use crate::store::ChainHead;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const JOURNAL_FILE: &str = "audit.journal";

/// Past this size the journal is emptied once the database holds (and has
/// synced) everything in it.
pub(crate) const ROTATE_BYTES: u64 = 64 * 1024 * 1024;

pub(crate) struct Journal {
    /// Shared with [`Syncer`]s, so a sync does not hold up appends.
    file: Arc<File>,
    path: PathBuf,
    /// (device, inode) at open: a journal unlinked under us would silently
    /// lose what it is told to keep.
    id: (u64, u64),
    len: u64,
}

impl Journal {
    pub(crate) fn open(dir: &Path) -> Result<Journal, AuditError> {
        let path = dir.join(JOURNAL_FILE);
        let io = |e| AuditError::io(&path, e);
        let file = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let id = file_id(&path).map_err(io)?;
        Ok(Journal {
            file: Arc::new(file),
            path,
            id,
            len,
        })
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// One write for the whole batch; returns once the kernel has it.
    pub(crate) fn append(&mut self, records: &[RawRecord]) -> Result<(), AuditError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut out = Vec::with_capacity(records.iter().map(frame_len).sum());
        for r in records {
            encode(r, &mut out);
        }
        (&*self.file)
            .write_all(&out)
            .map_err(|e| AuditError::io(&self.path, e))?;
        self.len += out.len() as u64;
        Ok(())
    }

    /// A handle that syncs this journal without holding it.
    pub(crate) fn syncer(&self) -> Syncer {
        Syncer {
            file: self.file.clone(),
            path: self.path.clone(),
            id: self.id,
        }
    }

    /// Empty the journal: only once the database holds and has synced
    /// every record in it.
    pub(crate) fn reset(&mut self) -> Result<(), AuditError> {
        let io = |e| AuditError::io(&self.path, e);
        self.file.set_len(0).map_err(io)?;
        self.file.sync_all().map_err(io)?;
        self.len = 0;
        Ok(())
    }
}

/// Syncs the journal while appends go on: fdatasync covers every write
/// that returned before it was called.
pub(crate) struct Syncer {
    file: Arc<File>,
    path: PathBuf,
    id: (u64, u64),
}

impl Syncer {
    /// Every record appended before this call survives a power loss.
    pub(crate) fn sync(&self) -> Result<(), AuditError> {
        self.file
            .sync_data()
            .map_err(|e| AuditError::io(&self.path, e))?;
        match file_id(&self.path) {
            Ok(id) if id == self.id => Ok(()),
            _ => Err(AuditError::DatabaseMoved(self.path.clone())),
        }
    }
}

fn frame_len(r: &RawRecord) -> usize {
    4 + 4
        + 8
        + [&r.time, &r.session, &r.kind, &r.body, &r.prev_hash, &r.hash]
            .iter()
            .map(|f| 4 + f.len())
            .sum::<usize>()
}

fn put(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&u32::try_from(field.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(field);
}

fn encode(r: &RawRecord, out: &mut Vec<u8>) {
    let body_len = frame_len(r) - 4;
    out.extend_from_slice(&u32::try_from(body_len).unwrap_or(u32::MAX).to_le_bytes());
    put(out, &r.seq.to_le_bytes());
    for f in [&r.time, &r.session, &r.kind, &r.body, &r.prev_hash, &r.hash] {
        put(out, f.as_bytes());
    }
}

/// Reads length-prefixed pieces out of one frame.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn next(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
        let field = rest.get(..len)?;
        self.0 = rest.get(len..)?;
        Some(field)
    }

    fn string(&mut self) -> Option<String> {
        std::str::from_utf8(self.next()?).ok().map(str::to_owned)
    }
}

fn decode(frame: &[u8]) -> Option<RawRecord> {
    let mut f = Fields(frame);
    let seq = u64::from_le_bytes(f.next()?.try_into().ok()?);
    let r = RawRecord {
        seq,
        time: f.string()?,
        session: f.string()?,
        kind: f.string()?,
        body: f.string()?,
        prev_hash: f.string()?,
        hash: f.string()?,
    };
    f.0.is_empty().then_some(r)
}

/// The records of the journal in `dir` after `head` (none when there is
/// no journal), and how many bytes at its end were cut off by a crash.
/// Errors when a complete record does not continue the chain.
pub(crate) fn read_after(
    dir: &Path,
    head: Option<&ChainHead>,
) -> Result<(Vec<RawRecord>, u64), AuditError> {
    let path = dir.join(JOURNAL_FILE);
    let mut bytes = Vec::new();
    match File::open(&path) {
        Ok(mut file) => file
            .read_to_end(&mut bytes)
            .map_err(|e| AuditError::io(&path, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(AuditError::io(&path, e)),
    };
    let (mut seq, mut hash) = match head {
        Some(h) => (h.seq, h.hash.clone()),
        None => (0, crate::chain::ZERO_HASH.to_owned()),
    };
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let Some(record) = frame_at(&bytes, at) else {
            break;
        };
        at += frame_len(&record);
        if record.seq <= seq {
            continue; // already in the database
        }
        let continues = record.seq == seq + 1
            && record.prev_hash == hash
            && raw_hash_as(&record, record.seq) == record.hash;
        if !continues {
            return Err(AuditError::Corrupt {
                seq: record.seq,
                reason: format!(
                    "{} holds a record that does not continue the log at seq {seq}; move the file aside to start (it is evidence)",
                    path.display()
                ),
            });
        }
        seq = record.seq;
        hash.clone_from(&record.hash);
        records.push(record);
    }
    Ok((records, (bytes.len() - at.min(bytes.len())) as u64))
}

fn frame_at(bytes: &[u8], at: usize) -> Option<RawRecord> {
    let (len, rest) = bytes.get(at..)?.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    decode(rest.get(..len)?)
}
