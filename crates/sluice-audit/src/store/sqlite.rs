//! The embedded default store: `<data_dir>/audit.journal` (where records
//! are written first, see `journal`), `<data_dir>/audit.db` (SQLite, WAL:
//! the index every reader uses) and the signed head marker
//! `<data_dir>/audit-head.json`.
//!
//! `append_batch` is one write to the journal; `sync` fdatasyncs it;
//! `maintain` then inserts what was synced into SQLite in one transaction
//! (`synchronous=NORMAL`: the journal is what survives a power loss), so
//! the database trails the journal by at most the writer's sync delay. The
//! journal is emptied only after the database holds and has synced all of
//! it; opening for writing (or read-only with no writer running) first
//! indexes whatever the journal has beyond the database's head.
//!
//! One process writes: `audit.lock` is locked exclusively by a read-write
//! open, because seqs are handed out in memory by the writing process. Any
//! number of read-only opens (the CLI's `verify`, `sessions`, `export`) may
//! run next to it.

use super::journal::{self, Journal};
use super::{AuditStore, ChainHead, HeadMarker, SessionFilter, SessionSummary, SessionUpdate};
use crate::error::AuditError;
use crate::record::RawRecord;
use crate::time::Timestamp;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, ToSql, TransactionBehavior};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

pub const DB_FILE: &str = "audit.db";
pub const HEAD_FILE: &str = "audit-head.json";
pub const LOCK_FILE: &str = "audit.lock";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    seq       INTEGER PRIMARY KEY,
    time      TEXT NOT NULL,
    session   TEXT NOT NULL,
    kind      TEXT NOT NULL,
    body      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_checkpoints ON records(seq) WHERE kind = 'checkpoint';
CREATE TABLE IF NOT EXISTS sessions (
    id               TEXT PRIMARY KEY,
    identity         TEXT NOT NULL DEFAULT '',
    groups           TEXT NOT NULL DEFAULT '[]',
    resource         TEXT NOT NULL DEFAULT '',
    client_addr      TEXT NOT NULL DEFAULT '',
    application_name TEXT,
    tls              INTEGER NOT NULL DEFAULT 0,
    start_us         INTEGER NOT NULL DEFAULT 0,
    end_us           INTEGER,
    end_reason       TEXT,
    statements       INTEGER NOT NULL DEFAULT 0,
    denied           INTEGER NOT NULL DEFAULT 0,
    reviewed         INTEGER NOT NULL DEFAULT 0,
    errors           INTEGER NOT NULL DEFAULT 0,
    rows             INTEGER NOT NULL DEFAULT 0,
    bytes            INTEGER NOT NULL DEFAULT 0,
    first_seq        INTEGER NOT NULL,
    last_seq         INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_start ON sessions(start_us);
PRAGMA user_version = 1;
";

const RECORD_COLUMNS: &str = "seq, time, session, kind, body, prev_hash, hash";

/// SQLite implementation of [`AuditStore`].
pub struct SqliteStore {
    dir: PathBuf,
    /// None when opened read-only.
    write: Option<Mutex<Connection>>,
    read: Mutex<Connection>,
    /// Held for the store's lifetime: the exclusive writer lock.
    _lock: Option<File>,
    /// (device, inode) of `audit.db` at open. SQLite happily keeps writing to
    /// a database file that was unlinked, and those writes vanish with the
    /// process, so every commit checks the file is still the one opened.
    file_id: Option<(u64, u64)>,
    /// Background WAL checkpoints (writing stores only).
    _checkpointer: Option<super::wal::Checkpointer>,
    /// The WAL file synced before the journal is emptied, opened on first
    /// use (SQLite creates it with the first write) and reopened if it is
    /// not the file at the path any more.
    wal: Mutex<Option<(File, (u64, u64))>>,
    /// Writing stores: the journal, and what it holds that SQLite does not.
    journal: Option<Mutex<Journaled>>,
}

struct Journaled {
    journal: Journal,
    records: Vec<RawRecord>,
    sessions: Vec<SessionUpdate>,
}

/// (device, inode): tells a file from one put in its place.
pub(super) fn file_id(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl SqliteStore {
    /// Open (creating if needed) the store in `dir` for writing.
    pub fn open(dir: &Path) -> Result<SqliteStore, AuditError> {
        std::fs::create_dir_all(dir).map_err(|e| AuditError::io(dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| AuditError::io(&lock_path, e))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(AuditError::Locked(dir.join(DB_FILE)))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(AuditError::io(&lock_path, e)),
        }
        let db = dir.join(DB_FILE);
        let write = Connection::open(&db)?;
        write.busy_timeout(std::time::Duration::from_secs(10))?;
        write.pragma_update(None, "journal_mode", "WAL")?;
        // Commits write the WAL; `sync` makes them durable (see above).
        write.pragma_update(None, "synchronous", "NORMAL")?;
        // Big enough that a full batch (8192 records of ~1 KiB) never spills
        // pages mid-transaction; an append-only writer needs no more, and
        // every page here is gateway memory.
        write.pragma_update(None, "cache_size", -16_384)?;
        write.pragma_update(
            None,
            "wal_autocheckpoint",
            super::wal::WRITER_BACKSTOP_PAGES,
        )?;
        write.execute_batch(SCHEMA)?;
        write.set_prepared_statement_cache_capacity(32);
        let read = open_reader(&db)?;
        let file_id = Some(file_id(&db).map_err(|e| AuditError::io(&db, e))?);
        let checkpointer = Some(super::wal::Checkpointer::start(&db)?);
        let mut store = SqliteStore {
            _checkpointer: checkpointer,
            dir: dir.to_owned(),
            write: Some(Mutex::new(write)),
            read: Mutex::new(read),
            _lock: Some(lock_file),
            file_id,
            wal: Mutex::new(None),
            journal: None,
        };
        store.recover()?;
        store.journal = Some(Mutex::new(Journaled {
            journal: Journal::open(dir)?,
            records: Vec::new(),
            sessions: Vec::new(),
        }));
        Ok(store)
    }

    /// Index what the journal holds beyond the database's head, sync, and
    /// empty the journal (a cut-off tail is kept aside as evidence).
    fn recover(&self) -> Result<(), AuditError> {
        let head = self.head()?;
        let (records, torn) = journal::read_after(&self.dir, head.as_ref())?;
        if !records.is_empty() {
            self.index(&records, &[])?;
            self.sync_wal()?;
            tracing::info!(
                records = records.len(),
                "audit log: indexed records the journal held beyond the database"
            );
        }
        let path = self.dir.join(journal::JOURNAL_FILE);
        if torn > 0 {
            let aside = self.dir.join(format!(
                "{}.torn-{}",
                journal::JOURNAL_FILE,
                Timestamp::now().unix_micros()
            ));
            std::fs::copy(&path, &aside).map_err(|e| AuditError::io(&aside, e))?;
            tracing::warn!(bytes = torn, kept = %aside.display(), "audit journal ended in a cut-off write (a crash mid-append); its bytes were kept aside");
        }
        if path.exists() {
            let mut journal = Journal::open(&self.dir)?;
            if journal.len() > 0 {
                // The database may hold it all in a WAL never synced (a
                // crash after indexing): sync before the journal goes.
                self.sync_wal()?;
            }
            journal.reset()?;
        }
        Ok(())
    }

    /// Insert `records` and apply `sessions` in one transaction.
    fn index(&self, records: &[RawRecord], sessions: &[SessionUpdate]) -> Result<(), AuditError> {
        let mut conn = self.writer()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO records (seq, time, session, kind, body, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for r in records {
                insert.execute(params![
                    to_i64(r.seq),
                    r.time,
                    r.session,
                    r.kind,
                    r.body,
                    r.prev_hash,
                    r.hash
                ])?;
            }
        }
        for s in sessions {
            apply_session(&tx, s)?;
        }
        tx.commit()?;
        // After the commit: a removal during it must not pass as stored.
        self.check_file()
    }

    /// Make every commit to the database survive a power loss.
    fn sync_wal(&self) -> Result<(), AuditError> {
        let path = self.dir.join(format!("{DB_FILE}-wal"));
        let mut wal = lock(&self.wal);
        let at_path = match file_id(&path) {
            Ok(id) => id,
            // No WAL: every commit is in the database file itself.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let db = self.db_path();
                return File::open(&db)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| AuditError::io(&db, e));
            }
            Err(e) => return Err(AuditError::io(&path, e)),
        };
        if wal.as_ref().is_none_or(|(_, id)| *id != at_path) {
            let file = File::open(&path).map_err(|e| AuditError::io(&path, e))?;
            *wal = Some((file, at_path));
        }
        if let Some((file, _)) = wal.as_ref() {
            file.sync_data().map_err(|e| AuditError::io(&path, e))?;
        }
        self.check_file()
    }

    fn journaled(&self) -> Result<MutexGuard<'_, Journaled>, AuditError> {
        self.journal
            .as_ref()
            .map(lock)
            .ok_or(AuditError::NotWritable("opened read-only"))
    }

    /// Open an existing store for queries and verification only; works while
    /// a gateway is writing to it.
    pub fn open_read_only(dir: &Path) -> Result<SqliteStore, AuditError> {
        let db = dir.join(DB_FILE);
        if !db.exists() {
            return Err(AuditError::io(
                &db,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        // A gateway that crashed leaves records in the journal only: index
        // them when no writer runs (one that does keeps the database fresh).
        let journal = dir.join(journal::JOURNAL_FILE);
        if std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0) {
            match SqliteStore::open(dir) {
                Ok(_) | Err(AuditError::Locked(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let read = open_reader(&db)?;
        Ok(SqliteStore {
            dir: dir.to_owned(),
            write: None,
            read: Mutex::new(read),
            _lock: None,
            file_id: None,
            _checkpointer: None,
            wal: Mutex::new(None),
            journal: None,
        })
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.join(DB_FILE)
    }

    /// Err when `audit.db` is no longer the file this store writes to.
    fn check_file(&self) -> Result<(), AuditError> {
        let db = self.db_path();
        match (self.file_id, file_id(&db)) {
            (Some(opened), Ok(now)) if opened == now => Ok(()),
            (None, _) => Ok(()),
            _ => Err(AuditError::DatabaseMoved(db)),
        }
    }

    fn writer(&self) -> Result<MutexGuard<'_, Connection>, AuditError> {
        self.write
            .as_ref()
            .map(lock)
            .ok_or(AuditError::NotWritable("opened read-only"))
    }
}

fn open_reader(db: &Path) -> Result<Connection, AuditError> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

fn raw_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok(RawRecord {
        seq: to_u64(row.get(0)?),
        time: row.get(1)?,
        session: row.get(2)?,
        kind: row.get(3)?,
        body: row.get(4)?,
        prev_hash: row.get(5)?,
        hash: row.get(6)?,
    })
}

fn query_records(
    conn: &Connection,
    sql: &str,
    args: &[&dyn ToSql],
) -> Result<Vec<RawRecord>, AuditError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(args, raw_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

fn apply_session(tx: &rusqlite::Transaction<'_>, s: &SessionUpdate) -> Result<(), AuditError> {
    if let Some(start) = &s.start {
        let b = &start.body;
        let groups = serde_json::to_string(&b.groups)?;
        tx.prepare_cached(
            "INSERT OR IGNORE INTO sessions (id, identity, groups, resource, client_addr, application_name, tls, start_us, first_seq, last_seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
        )?
        .execute(params![s.id, b.identity, groups, b.resource, b.client_addr, b.application_name, b.tls, start.time.unix_micros(), to_i64(s.first_seq)])?;
    } else {
        // A session whose start this store never saw (pruned, or recorded by
        // an older version): keep counting rather than dropping the facts.
        tx.prepare_cached(
            "INSERT OR IGNORE INTO sessions (id, first_seq, last_seq) VALUES (?1, ?2, ?2)",
        )?
        .execute(params![s.id, to_i64(s.first_seq)])?;
    }
    let (end_us, end_reason) = match &s.end {
        Some((t, reason)) => (Some(t.unix_micros()), Some(reason.as_str())),
        None => (None, None),
    };
    tx.prepare_cached(
        "UPDATE sessions SET statements = statements + ?2, denied = denied + ?3, reviewed = reviewed + ?4,
            errors = errors + ?5, rows = rows + ?6, bytes = bytes + ?7, last_seq = max(last_seq, ?8),
            end_us = coalesce(?9, end_us), end_reason = coalesce(?10, end_reason)
         WHERE id = ?1",
    )?
    .execute(params![
        s.id,
        to_i64(s.statements),
        to_i64(s.denied),
        to_i64(s.reviewed),
        to_i64(s.errors),
        to_i64(s.rows),
        to_i64(s.bytes),
        to_i64(s.last_seq),
        end_us,
        end_reason
    ])?;
    Ok(())
}

impl AuditStore for SqliteStore {
    fn head(&self) -> Result<Option<ChainHead>, AuditError> {
        let conn = lock(&self.read);
        let row: Option<(i64, String, String)> = conn
            .query_row(
                "SELECT seq, hash, time FROM records ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        row.map(|(seq, hash, time)| {
            let seq = to_u64(seq);
            let time = time.parse().map_err(|_| AuditError::Corrupt {
                seq,
                reason: format!("bad time {time:?}"),
            })?;
            Ok(ChainHead { seq, hash, time })
        })
        .transpose()
    }

    fn first_seq(&self) -> Result<Option<u64>, AuditError> {
        let conn = lock(&self.read);
        let min: Option<i64> = conn.query_row("SELECT min(seq) FROM records", [], |r| r.get(0))?;
        Ok(min.map(to_u64))
    }

    fn append_batch(
        &self,
        records: &[RawRecord],
        sessions: &[SessionUpdate],
    ) -> Result<(), AuditError> {
        let mut j = self.journaled()?;
        j.journal.append(records)?;
        j.records.extend_from_slice(records);
        j.sessions.extend_from_slice(sessions);
        Ok(())
    }

    fn sync(&self) -> Result<(), AuditError> {
        // Appends go on meanwhile: the journal's lock is not held.
        let syncer = self.journaled()?.journal.syncer();
        syncer.sync()?;
        // After the sync: a removal of the database must not pass as durable.
        self.check_file()
    }

    fn maintain(&self) -> Result<(), AuditError> {
        // Indexed without the journal's lock, so appends go on meanwhile.
        // What is indexed may include records appended after the last sync:
        // the database is an index, and the journal keeps them until the
        // database has synced them too.
        let (records, sessions) = {
            let mut j = self.journaled()?;
            (
                std::mem::take(&mut j.records),
                std::mem::take(&mut j.sessions),
            )
        };
        if !(records.is_empty() && sessions.is_empty()) {
            if let Err(e) = self.index(&records, &sessions) {
                // Put them back in order, so a retry indexes them.
                let mut j = self.journaled()?;
                let later = std::mem::replace(&mut j.records, records);
                j.records.extend(later);
                let later = std::mem::replace(&mut j.sessions, sessions);
                j.sessions.extend(later);
                return Err(e);
            }
        }
        let mut j = self.journaled()?;
        if j.journal.len() > journal::ROTATE_BYTES {
            // Rare (once per ROTATE_BYTES): appends wait for the few records
            // that came meanwhile and one WAL sync, then start afresh.
            self.index(&j.records, &j.sessions)?;
            j.records.clear();
            j.sessions.clear();
            self.sync_wal()?;
            j.journal.reset()?;
        }
        Ok(())
    }

    fn close(&self) -> Result<(), AuditError> {
        self.maintain()?;
        let mut j = self.journaled()?;
        if j.journal.len() > 0 {
            self.sync_wal()?;
            j.journal.reset()?;
        }
        Ok(())
    }

    fn records_after(&self, after_seq: u64, limit: usize) -> Result<Vec<RawRecord>, AuditError> {
        let conn = lock(&self.read);
        let sql =
            format!("SELECT {RECORD_COLUMNS} FROM records WHERE seq > ?1 ORDER BY seq LIMIT ?2");
        query_records(&conn, &sql, &[&to_i64(after_seq), &to_i64(limit as u64)])
    }

    fn session_records_after(
        &self,
        session: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<RawRecord>, AuditError> {
        // No per-record session index (it cost a scattered page per active
        // session per commit): scan the session's seq range, which the
        // summary bounds. Ended sessions end at their last_seq; open ones
        // (or unended after a crash) are scanned to the head.
        let conn = lock(&self.read);
        let bounds: Option<(i64, i64, Option<i64>)> = conn
            .prepare_cached("SELECT first_seq, last_seq, end_us FROM sessions WHERE id = ?1")?
            .query_row([session], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let (lo, hi) = match bounds {
            Some((first, last, end)) => {
                let hi = if end.is_some() { last } else { i64::MAX };
                ((first - 1).max(to_i64(after_seq)), hi)
            }
            None => (to_i64(after_seq), i64::MAX),
        };
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE seq > ?1 AND seq <= ?2 AND session = ?3 ORDER BY seq LIMIT ?4"
        );
        query_records(&conn, &sql, &[&lo, &hi, &session, &to_i64(limit as u64)])
    }

    fn checkpoints(&self) -> Result<Vec<RawRecord>, AuditError> {
        let conn = lock(&self.read);
        let sql =
            format!("SELECT {RECORD_COLUMNS} FROM records WHERE kind = 'checkpoint' ORDER BY seq");
        query_records(&conn, &sql, &[])
    }

    fn sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionSummary>, AuditError> {
        let mut sql = String::from(
            "SELECT id, identity, groups, resource, client_addr, application_name, tls, start_us, end_us, end_reason,
                    statements, denied, reviewed, errors, rows, bytes, first_seq, last_seq
             FROM sessions WHERE 1 = 1",
        );
        let mut args: Vec<Box<dyn ToSql>> = Vec::new();
        if let Some(identity) = &filter.identity {
            args.push(Box::new(identity.clone()));
            sql.push_str(&format!(" AND identity = ?{}", args.len()));
        }
        if let Some(resource) = &filter.resource {
            args.push(Box::new(resource.clone()));
            sql.push_str(&format!(" AND resource = ?{}", args.len()));
        }
        if let Some(since) = filter.since {
            args.push(Box::new(since.unix_micros()));
            sql.push_str(&format!(" AND start_us >= ?{}", args.len()));
        }
        sql.push_str(" ORDER BY start_us DESC, first_seq DESC");
        if let Some(limit) = filter.limit {
            args.push(Box::new(to_i64(limit as u64)));
            sql.push_str(&format!(" LIMIT ?{}", args.len()));
        }
        let conn = lock(&self.read);
        let mut stmt = conn.prepare(&sql)?;
        let arg_refs: Vec<&dyn ToSql> = args.iter().map(|a| a.as_ref()).collect();
        let rows = stmt.query_map(arg_refs.as_slice(), |r| {
            let groups: String = r.get(2)?;
            Ok(SessionSummary {
                id: r.get(0)?,
                identity: r.get(1)?,
                groups: serde_json::from_str(&groups).unwrap_or_default(),
                resource: r.get(3)?,
                client_addr: r.get(4)?,
                application_name: r.get(5)?,
                tls: r.get(6)?,
                start: Timestamp::from_unix_micros(r.get(7)?),
                end: r.get::<_, Option<i64>>(8)?.map(Timestamp::from_unix_micros),
                end_reason: r.get(9)?,
                statements: to_u64(r.get(10)?),
                denied: to_u64(r.get(11)?),
                reviewed: to_u64(r.get(12)?),
                errors: to_u64(r.get(13)?),
                rows: to_u64(r.get(14)?),
                bytes: to_u64(r.get(15)?),
                first_seq: to_u64(r.get(16)?),
                last_seq: to_u64(r.get(17)?),
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn first_seq_at_or_after(&self, time: Timestamp) -> Result<Option<u64>, AuditError> {
        // Times are fixed-width RFC 3339, so text order is time order.
        let target = time.to_string();
        let conn = lock(&self.read);
        let bounds: (Option<i64>, Option<i64>) =
            conn.query_row("SELECT min(seq), max(seq) FROM records", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let (Some(mut lo), Some(max)) = bounds else {
            return Ok(None);
        };
        let mut hi = max + 1;
        let mut found = None;
        let mut stmt = conn
            .prepare_cached("SELECT seq, time FROM records WHERE seq >= ?1 ORDER BY seq LIMIT 1")?;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let row: Option<(i64, String)> = stmt
                .query_row([mid], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            match row {
                Some((seq, t)) if t >= target => {
                    found = Some(to_u64(seq));
                    hi = mid;
                }
                Some((seq, _)) => lo = seq + 1,
                None => hi = mid,
            }
        }
        Ok(found)
    }

    fn oldest_session_start_touching(&self, seq: u64) -> Result<Option<u64>, AuditError> {
        let conn = lock(&self.read);
        let min: Option<i64> = conn.query_row(
            "SELECT min(first_seq) FROM sessions WHERE last_seq >= ?1",
            [to_i64(seq)],
            |r| r.get(0),
        )?;
        Ok(min.map(to_u64))
    }

    fn delete_before(&self, before_seq: u64, max_rows: usize) -> Result<u64, AuditError> {
        let mut conn = self.writer()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let min: Option<i64> = tx.query_row("SELECT min(seq) FROM records", [], |r| r.get(0))?;
        let Some(min) = min else { return Ok(0) };
        let upto = to_i64(before_seq).min(min.saturating_add(to_i64(max_rows as u64)));
        let deleted = tx.execute("DELETE FROM records WHERE seq < ?1", [upto])?;
        tx.execute("DELETE FROM sessions WHERE last_seq < ?1", [upto])?;
        tx.commit()?;
        Ok(deleted as u64)
    }

    fn read_head_marker(&self) -> Result<Option<HeadMarker>, AuditError> {
        let path = self.dir.join(HEAD_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                AuditError::io(
                    &path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AuditError::io(&path, e)),
        }
    }

    fn write_head_marker(&self, marker: &HeadMarker) -> Result<(), AuditError> {
        let path = self.dir.join(HEAD_FILE);
        let tmp = self.dir.join(format!("{HEAD_FILE}.tmp"));
        let json = serde_json::to_vec_pretty(marker)?;
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&json)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| AuditError::io(&path, e))
    }
}
