//! Appending: ordering and durability under concurrency, reopening, checkpoint
//! cadence, and failing closed when the store cannot write.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use sluice_audit::*;
use std::collections::HashSet;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_get_gap_free_seqs_and_a_valid_chain() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), AuditConfig::default()).unwrap();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let id = new_session_id();
            let mut seqs = Vec::new();
            for i in 0..300 {
                let seq = log
                    .append(&id, statement(&format!("SELECT {t}, {i}"), true))
                    .unwrap();
                log.durable(seq).await.unwrap();
                assert!(log.durable_seq() >= seq);
                seqs.push(seq);
            }
            seqs
        }));
    }
    let mut threads = Vec::new();
    for t in 0..4 {
        let log = log.clone();
        threads.push(std::thread::spawn(move || {
            let id = new_session_id();
            (0..300)
                .map(|i| {
                    let seq = log
                        .append(
                            &id,
                            statement(&format!("UPDATE t SET x = {t} WHERE id = {i}"), true),
                        )
                        .unwrap();
                    log.wait_durable(seq).unwrap();
                    seq
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let seqs = t.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "one appender's seqs increase"
        );
        all.extend(seqs);
    }
    for t in threads {
        all.extend(t.join().unwrap());
    }
    let unique: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(unique.len(), 20 * 300);
    log.close().unwrap();

    // Every seq from 1 to the end is there exactly once: ours plus checkpoints.
    let conn = db(dir.path());
    let (count, max, checkpoints): (i64, i64, i64) = conn
        .query_row(
            "SELECT count(*), max(seq), sum(kind = 'checkpoint') FROM records",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(count, max);
    assert_eq!(count - checkpoints, 6000);
    assert!(checkpoints >= 6, "one per 1000 records: {checkpoints}");
    let report = verify(dir.path());
    assert!(report.is_valid(), "{report:?}");
    assert_eq!(report.records, max as u64);
}

#[test]
fn the_log_is_shareable() {
    fn assert_shareable<T: Send + Sync + Clone + 'static>() {}
    assert_shareable::<AuditLog>();
    fn assert_store_object(_: &dyn AuditStore) {}
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), config()).unwrap();
    assert_store_object(log.store().as_ref());
}

#[test]
fn reopen_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let log = AuditLog::open(dir.path(), config()).unwrap();
        session(&log, "ann", 3);
        let key = log.public_key().unwrap().to_owned();
        drop(log); // dropping the last handle flushes and stops the writer
        key
    };
    let last_before = max_seq(&db(dir.path()));
    let log = AuditLog::open(dir.path(), config()).unwrap();
    assert_eq!(log.public_key(), Some(first.as_str()), "the key is reused");
    let id = new_session_id();
    let seq = log.append(&id, start("bob")).unwrap();
    assert_eq!(seq, last_before + 1);
    log.wait_durable(seq).unwrap();
    session(&log, "bob", 2);
    log.close().unwrap();
    assert!(matches!(
        log.append(&id, end(0)),
        Err(AuditError::NotWritable(_))
    ));
    let report = verify(dir.path());
    assert!(report.is_valid(), "{report:?}");
    assert!(report.records > last_before + 5);
}

#[test]
fn second_writer_is_refused_but_readers_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), config()).unwrap();
    session(&log, "ann", 1);
    log.flush().unwrap();
    assert!(matches!(
        AuditLog::open(dir.path(), config()),
        Err(AuditError::Locked(_))
    ));
    let reader = AuditLog::open_read_only(dir.path()).unwrap();
    let report = reader.verify(&|_, _| {}).unwrap();
    assert!(report.is_valid(), "{report:?}");
    assert!(matches!(
        reader.append("s", start("x")),
        Err(AuditError::NotWritable(_))
    ));
}

#[test]
fn checkpoints_are_written_by_count_and_time_and_cannot_be_appended() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig {
        checkpoint_every: 5,
        checkpoint_interval: std::time::Duration::from_millis(50),
        ..AuditConfig::default()
    };
    let log = AuditLog::open(dir.path(), config).unwrap();
    let id = new_session_id();
    for i in 0..5 {
        log.append(&id, statement(&format!("SELECT {i}"), true))
            .unwrap();
    }
    // The 6th record is the count checkpoint.
    log.wait_durable(6).unwrap();
    let seq = log.append(&id, statement("SELECT 'late'", true)).unwrap();
    log.wait_durable(seq).unwrap();
    sleep_ms(300);
    let kinds: Vec<String> = log
        .raw_records_after(0, 100)
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(kinds[5], "checkpoint");
    assert_eq!(
        kinds.len(),
        8,
        "a timed checkpoint follows the late record: {kinds:?}"
    );
    assert_eq!(kinds[7], "checkpoint");
    sleep_ms(200);
    assert_eq!(
        log.raw_records_after(0, 100).unwrap().len(),
        8,
        "no checkpoints on an idle log"
    );
    let cp = Checkpoint {
        head_seq: 1,
        head_hash: String::new(),
        signature: String::new(),
        public_key: String::new(),
        pruned_before: None,
    };
    assert!(matches!(log.append(&id, cp), Err(AuditError::ReservedKind)));
    assert!(matches!(
        log.wait_durable(999),
        Err(AuditError::UnknownSeq { seq: 999, .. })
    ));
}

#[test]
fn response_content_is_capped_at_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(
        dir.path(),
        AuditConfig {
            response_content_cap: 8,
            ..config()
        },
    )
    .unwrap();
    let id = new_session_id();
    let mut r = response(1);
    r.content = "0123456789abcdef".into();
    let seq = log.append(&id, r).unwrap();
    log.wait_durable(seq).unwrap();
    match &log.records_after(seq - 1, 1).unwrap()[0].body {
        Body::Response(r) => {
            assert_eq!(r.content, "01234567");
            assert!(r.truncated);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_record_over_the_size_limit_is_refused_and_the_log_stays_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(
        dir.path(),
        AuditConfig {
            max_record_bytes: 4096,
            ..config()
        },
    )
    .unwrap();
    let id = new_session_id();
    // Control characters are escaped six bytes each in the JSON body.
    let huge = format!("SELECT '{}'", "\u{1}".repeat(1000));
    match log.append(&id, statement(&huge, true)) {
        Err(AuditError::RecordTooLarge { bytes, max: 4096 }) => assert!(bytes > 4096),
        other => panic!("{other:?}"),
    }
    log.health().unwrap();
    let seq = log.append(&id, statement("SELECT 1", true)).unwrap();
    log.wait_durable(seq).unwrap();
    log.flush().unwrap();
    let report = log.verify(&|_, _| {}).unwrap();
    assert!(report.problem.is_none(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_write_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = Arc::new(AuditLog::open(&data, config()).unwrap());
    let id = new_session_id();
    let ok = log.append(&id, start("ann")).unwrap();
    log.durable(ok).await.unwrap();

    // The data directory disappears under the running gateway.
    remove_dir_under_writer(&data);
    let seq = log
        .append(&id, statement("DELETE FROM accounts", true))
        .unwrap();
    let err = log.durable(seq).await.unwrap_err();
    assert!(
        matches!(err, AuditError::NotDurable { seq: s, .. } if s == seq),
        "{err}"
    );
    assert!(log.wait_durable(seq).is_err());
    assert_eq!(log.durable_seq(), ok, "never a false durable");
    assert!(matches!(
        log.append(&id, end(1)),
        Err(AuditError::Failed { .. })
    ));
    assert!(log.health().is_err());
    // Earlier records stay durable.
    log.durable(ok).await.unwrap();
}

/// Removes a directory a live writer may still be adding files to (the
/// head marker is rewritten through a temp file): retries until it is gone.
fn remove_dir_under_writer(path: &std::path::Path) {
    for _ in 0..100 {
        match std::fs::remove_dir_all(path) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
    panic!("could not remove {}", path.display());
}
