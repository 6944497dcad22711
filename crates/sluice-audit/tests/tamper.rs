//! `verify` on an untouched log, and on each kind of tampering done to the
//! SQLite file directly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use sluice_audit::*;

#[test]
fn untouched_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    let report = verify(dir.path());
    assert!(report.is_valid(), "{report:?}");
    assert_eq!(report.start, ChainStart::Genesis);
    assert!(report.key_trusted);
    assert!(report.checkpoints >= 7, "{report:?}");
    assert_eq!(report.first_seq, Some(1));
    // close() signs the head: nothing unsigned.
    assert_eq!(report.unsigned_tail(), 0, "{report:?}");
    assert_eq!(report.records, max_seq(&db(dir.path())));
}

#[test]
fn edited_body_is_named() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    let conn = db(dir.path());
    let seq = seq_of(&conn, "statement", 5);
    conn.execute(
        "UPDATE records SET body = replace(body, 'SELECT', 'DELETE') WHERE seq = ?1",
        [seq as i64],
    )
    .unwrap();
    let p = problem(dir.path());
    assert_eq!(p, Problem::Edited { seq });
    assert!(
        p.to_string().contains(&format!("record {seq} was edited")),
        "{p}"
    );
}

#[test]
fn deleted_row_is_named() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    let conn = db(dir.path());
    let seq = seq_of(&conn, "statement", 7);
    conn.execute("DELETE FROM records WHERE seq = ?1", [seq as i64])
        .unwrap();
    let p = problem(dir.path());
    assert_eq!(
        p,
        Problem::Deleted {
            after_seq: seq - 1,
            missing: 1
        }
    );
    assert!(
        p.to_string()
            .contains(&format!("seq {seq} to {seq} missing")),
        "{p}"
    );
}

#[test]
fn deleted_prefix_is_named() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    db(dir.path())
        .execute("DELETE FROM records WHERE seq <= 3", [])
        .unwrap();
    assert_eq!(
        problem(dir.path()),
        Problem::Deleted {
            after_seq: 0,
            missing: 3
        }
    );
}

#[test]
fn inserted_forged_row_is_named() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    let conn = db(dir.path());
    let k = seq_of(&conn, "response", 4);
    // Make room after k and insert a self-consistent forgery linked to k.
    conn.execute(
        "UPDATE records SET seq = seq + 1000000 WHERE seq > ?1",
        [k as i64],
    )
    .unwrap();
    conn.execute(
        "UPDATE records SET seq = seq - 999999 WHERE seq > 1000000",
        [],
    )
    .unwrap();
    let (time, session): (String, String) = conn
        .query_row(
            "SELECT time, session FROM records WHERE seq = ?1",
            [k as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let body = serde_json::to_string(&statement("DROP TABLE accounts", true)).unwrap();
    let prev = hash_of(&conn, k);
    let forged = k + 1;
    let hash = chain::record_hash(forged, &time, &session, "statement", &body, &prev);
    conn.execute(
        "INSERT INTO records (seq, time, session, kind, body, prev_hash, hash) VALUES (?1, ?2, ?3, 'statement', ?4, ?5, ?6)",
        rusqlite::params![forged as i64, time, session, body, prev, hash],
    )
    .unwrap();
    let p = problem(dir.path());
    assert_eq!(p, Problem::Inserted { seq: forged });
    assert!(
        p.to_string()
            .contains(&format!("record {forged} was inserted")),
        "{p}"
    );
}

#[test]
fn swapped_rows_are_named() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    let conn = db(dir.path());
    let a = seq_of(&conn, "statement", 3);
    let b = seq_of(&conn, "statement", 9);
    conn.execute("UPDATE records SET seq = -1 WHERE seq = ?1", [a as i64])
        .unwrap();
    conn.execute(
        "UPDATE records SET seq = ?1 WHERE seq = ?2",
        [a as i64, b as i64],
    )
    .unwrap();
    conn.execute("UPDATE records SET seq = ?1 WHERE seq = -1", [b as i64])
        .unwrap();
    let p = problem(dir.path());
    assert_eq!(
        p,
        Problem::Reordered {
            seq: a,
            original_seq: b
        }
    );
    assert!(
        p.to_string()
            .contains(&format!("record {seq} was moved", seq = a)),
        "{p}"
    );
}

#[test]
fn truncated_tail_is_named() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    let conn = db(dir.path());
    let last = max_seq(&conn);
    conn.execute("DELETE FROM records WHERE seq > ?1", [(last - 5) as i64])
        .unwrap();
    let p = problem(dir.path());
    assert_eq!(
        p,
        Problem::Truncated {
            last_seq: last - 5,
            expected_at_least: last
        }
    );
    assert!(
        p.to_string()
            .contains(&format!("ends at record {}", last - 5)),
        "{p}"
    );
}

#[test]
fn forged_checkpoint_signature_is_named() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    let conn = db(dir.path());
    let seq = seq_of(&conn, "checkpoint", 2);
    let body: String = conn
        .query_row(
            "SELECT body FROM records WHERE seq = ?1",
            [seq as i64],
            |r| r.get(0),
        )
        .unwrap();
    let mut cp: Checkpoint = serde_json::from_str(&body).unwrap();
    let mut sig = hex::decode(&cp.signature).unwrap();
    sig[10] ^= 0x55;
    cp.signature = hex::encode(sig);
    conn.execute(
        "UPDATE records SET body = ?1 WHERE seq = ?2",
        rusqlite::params![serde_json::to_string(&cp).unwrap(), seq as i64],
    )
    .unwrap();
    rechain_from(&conn, seq);
    let p = problem(dir.path());
    assert_eq!(p, Problem::BadSignature { seq });
    assert!(
        p.to_string().contains(&format!("checkpoint record {seq}")),
        "{p}"
    );
}

#[test]
fn edit_with_recomputed_chain_is_caught_by_the_next_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    let conn = db(dir.path());
    let seq = seq_of(&conn, "statement", 5);
    conn.execute(
        "UPDATE records SET body = replace(body, 'SELECT', 'DELETE') WHERE seq = ?1",
        [seq as i64],
    )
    .unwrap();
    rechain_from(&conn, seq);
    let before: i64 = conn
        .query_row(
            "SELECT max(seq) FROM records WHERE kind = 'checkpoint' AND seq < ?1",
            [seq as i64],
            |r| r.get(0),
        )
        .unwrap();
    let after = conn
        .query_row(
            "SELECT min(seq) FROM records WHERE kind = 'checkpoint' AND seq > ?1",
            [seq as i64],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as u64;
    match problem(dir.path()) {
        Problem::Rewritten {
            after_seq,
            up_to_seq,
        } => {
            assert_eq!(up_to_seq, after);
            assert_eq!(after_seq, before as u64, "the last good checkpoint");
            assert!(after_seq < seq && seq < up_to_seq);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn removed_head_marker_and_foreign_key_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    let other = tempfile::tempdir().unwrap();
    let other_key = keys::Signer::load_or_create(other.path()).unwrap();
    let log = AuditLog::open_read_only(dir.path()).unwrap();
    let report = log
        .verify_with_key(Some(other_key.public_hex()), &|_, _| {})
        .unwrap();
    assert!(
        matches!(report.problem, Some(Problem::BadHeadMarker { .. })),
        "{report:?}"
    );

    std::fs::remove_file(dir.path().join("audit-head.json")).unwrap();
    let last = max_seq(&db(dir.path()));
    assert_eq!(
        problem(dir.path()),
        Problem::MissingHeadMarker { last_seq: last }
    );
}

#[test]
fn progress_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    let calls = std::cell::Cell::new((0u64, 0u64));
    let log = AuditLog::open_read_only(dir.path()).unwrap();
    log.verify(&|done, total| calls.set((done, total))).unwrap();
    let last = max_seq(&db(dir.path()));
    assert_eq!(calls.get(), (last, last));
}
