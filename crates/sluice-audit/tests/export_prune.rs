//! Export → verify_export, tampered exports, prune, and the CLI queries.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use sluice_audit::*;
use std::path::Path;

fn export(log: &AuditLog, path: &Path, since: Option<Timestamp>) -> u64 {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    log.export_jsonl(&mut file, since, &|_, _| {}).unwrap()
}

fn rewrite_lines(path: &Path, f: impl FnOnce(&mut Vec<String>)) {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    f(&mut lines);
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn export_verifies_and_tampered_exports_fail_naming_the_record() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    let log = AuditLog::open_read_only(dir.path()).unwrap();
    let key = log.public_key().unwrap().to_owned();
    let path = dir.path().join("export.jsonl");
    let n = export(&log, &path, None);
    assert_eq!(n, max_seq(&db(dir.path())));

    let report = verify_export(&path, Some(&key), &|_, _| {}).unwrap();
    assert!(report.is_valid(), "{report:?}");
    assert_eq!(report.records, n);
    assert_eq!(report.start, ChainStart::Genesis);
    assert!(report.key_trusted);
    assert_eq!(report.unsigned_tail(), 0);
    // Without a key it still checks consistency, and says so.
    let untrusted = verify_export(&path, None, &|_, _| {}).unwrap();
    assert!(untrusted.is_valid() && !untrusted.key_trusted);
    // A foreign key is refused at the first checkpoint.
    let other = tempfile::tempdir().unwrap();
    let other_key = keys::Signer::load_or_create(other.path()).unwrap();
    let foreign = verify_export(&path, Some(other_key.public_hex()), &|_, _| {}).unwrap();
    assert!(
        matches!(foreign.problem, Some(Problem::UntrustedKey { seq: 11, .. })),
        "{foreign:?}"
    );

    // Every line is one record, byte-exact with what the store hashed.
    let first = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["seq"], 1);
    assert_eq!(v["kind"], "session_start");
    assert_eq!(v["body"]["identity"], "user0");
    assert_eq!(v["prev_hash"], chain::ZERO_HASH);

    let check = |f: &dyn Fn(&mut Vec<String>), want: Problem| {
        let tampered = dir.path().join("tampered.jsonl");
        std::fs::copy(&path, &tampered).unwrap();
        rewrite_lines(&tampered, |l| f(l));
        let report = verify_export(&tampered, Some(&key), &|_, _| {}).unwrap();
        assert_eq!(report.problem, Some(want));
    };
    check(
        &|l| l[9] = l[9].replace("accounts", "payments"),
        Problem::Edited { seq: 10 },
    );
    check(
        &|l| drop(l.remove(14)),
        Problem::Deleted {
            after_seq: 14,
            missing: 1,
        },
    );
    check(
        &|l| l.swap(20, 21),
        Problem::Reordered {
            seq: 21,
            original_seq: 22,
        },
    );
    check(&|l| l.insert(5, l[5].clone()), Problem::Inserted { seq: 6 });
    check(
        &|l| l[3] = "{not json".into(),
        Problem::Malformed {
            line: 4,
            reason: "key must be a string at line 1 column 2".into(),
        },
    );
}

#[test]
fn partial_export_since_a_time_verifies_unanchored() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), config()).unwrap();
    session(&log, "old", 5);
    log.flush().unwrap();
    sleep_ms(20);
    let since = Timestamp::now();
    sleep_ms(5);
    session(&log, "new", 5);
    log.flush().unwrap();
    let path = dir.path().join("since.jsonl");
    let n = export(&log, &path, Some(since));
    let report = verify_export(&path, log.public_key(), &|_, _| {}).unwrap();
    assert!(report.is_valid(), "{report:?}");
    assert_eq!(report.records, n);
    assert!(matches!(report.start, ChainStart::Unanchored { first_seq } if first_seq > 1));
    let first = std::fs::read_to_string(&path).unwrap();
    assert!(first
        .lines()
        .next()
        .unwrap()
        .contains("\"identity\":\"new\""));
}

#[test]
fn prune_removes_old_sessions_keeps_open_ones_and_the_chain_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), config()).unwrap();
    let old = session(&log, "old", 6);
    // Open before the cut and still open: must survive.
    let open = new_session_id();
    let open_start = log.append(&open, start("open")).unwrap();
    log.flush().unwrap();
    sleep_ms(20);
    let cut_time = Timestamp::now();
    sleep_ms(5);
    let young = session(&log, "young", 3);
    log.append(&open, statement("SELECT 1", true)).unwrap();
    log.flush().unwrap();

    let report = log.prune(cut_time, &|_, _| {}).unwrap();
    assert_eq!(report.first_retained_seq, Some(open_start));
    assert_eq!(report.deleted, open_start - 1);
    assert!(report.checkpoint_seq.is_some());
    assert!(log.session_records(&old).unwrap().is_empty());
    assert_eq!(log.session_records(&open).unwrap().len(), 2);
    assert_eq!(log.session_records(&young).unwrap().len(), 8);
    let listed: Vec<String> = log
        .sessions(&SessionFilter::default())
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(!listed.contains(&old) && listed.contains(&open) && listed.contains(&young));

    let verified = log.verify(&|_, _| {}).unwrap();
    assert!(verified.is_valid(), "{verified:?}");
    assert_eq!(
        verified.start,
        ChainStart::Pruned {
            checkpoint_seq: report.checkpoint_seq.unwrap(),
            first_seq: open_start
        }
    );

    // Once the open session ends, a second prune takes it.
    log.append(&open, end(1)).unwrap();
    log.flush().unwrap();
    sleep_ms(20);
    let second = log.prune(Timestamp::now(), &|_, _| {}).unwrap();
    assert!(second.deleted > 0);
    session(&log, "later", 1);
    log.close().unwrap();
    assert!(verify(dir.path()).is_valid());
    // An export of the pruned log verifies too, anchored by the checkpoint.
    let path = dir.path().join("pruned.jsonl");
    export(&AuditLog::open_read_only(dir.path()).unwrap(), &path, None);
    let exported = verify_export(&path, log.public_key(), &|_, _| {}).unwrap();
    assert!(exported.is_valid(), "{exported:?}");
    assert!(matches!(exported.start, ChainStart::Pruned { .. }));

    // Deleting the first retained record after a prune is still caught.
    let conn = db(dir.path());
    let first: i64 = conn
        .query_row("SELECT min(seq) FROM records", [], |r| r.get(0))
        .unwrap();
    conn.execute("DELETE FROM records WHERE seq = ?1", [first])
        .unwrap();
    // (Here the first retained record is the prune checkpoint itself, so the
    // proof that earlier records were pruned legitimately goes with it.)
    match problem(dir.path()) {
        Problem::Deleted { after_seq, missing } => assert_eq!(after_seq + missing, first as u64),
        other => panic!("{other:?}"),
    }
}

#[test]
fn prune_never_splits_a_session() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), config()).unwrap();
    session(&log, "before", 2);
    let straddling = new_session_id();
    let straddle_start = log.append(&straddling, start("straddling")).unwrap();
    log.flush().unwrap();
    sleep_ms(20);
    let cut_time = Timestamp::now();
    log.append(&straddling, statement("SELECT 2", true))
        .unwrap();
    log.append(&straddling, end(1)).unwrap();
    log.flush().unwrap();
    let report = log.prune(cut_time, &|_, _| {}).unwrap();
    assert_eq!(report.first_retained_seq, Some(straddle_start));
    assert_eq!(log.session_records(&straddling).unwrap().len(), 3);
    assert!(log.verify(&|_, _| {}).unwrap().is_valid());
    // Nothing older than the log: no-op, no checkpoint.
    let none = log
        .prune(Timestamp::from_unix_micros(0), &|_, _| {})
        .unwrap();
    assert_eq!((none.deleted, none.checkpoint_seq), (0, None));
}

#[test]
fn queries_for_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let ids = filled(dir.path());
    let log = AuditLog::open_read_only(dir.path()).unwrap();

    let all = log.sessions(&SessionFilter::default()).unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].id, ids[3], "newest first");
    let s = &all[3];
    assert_eq!(
        (
            s.identity.as_str(),
            s.resource.as_str(),
            s.client_addr.as_str()
        ),
        ("user0", "prod", "127.0.0.1:5555")
    );
    assert_eq!((s.statements, s.denied, s.rows, s.bytes), (8, 2, 8, 160));
    assert_eq!(s.end_reason.as_deref(), Some("client_terminate"));
    assert!(s.end.is_some() && s.tls && s.groups == vec!["devs".to_string()]);

    let one = log
        .sessions(&SessionFilter {
            identity: Some("user2".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].id, ids[2]);
    assert!(log
        .sessions(&SessionFilter {
            resource: Some("staging".into()),
            ..Default::default()
        })
        .unwrap()
        .is_empty());
    let future = Timestamp::now().minus(std::time::Duration::from_secs(0));
    assert!(log
        .sessions(&SessionFilter {
            since: Some(future),
            ..Default::default()
        })
        .unwrap()
        .is_empty());
    assert_eq!(
        log.sessions(&SessionFilter {
            limit: Some(2),
            ..Default::default()
        })
        .unwrap()
        .len(),
        2
    );

    // Replay: the session's records in order, typed.
    let records = log.session_records(&ids[1]).unwrap();
    assert_eq!(records.len(), 1 + 16 + 1);
    assert!(records.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(matches!(&records[0].body, Body::SessionStart(s) if s.identity == "user1"));
    match (&records[1].body, &records[2].body) {
        (Body::Statement(st), Body::Response(r)) => {
            assert_eq!(st.text, "SELECT * FROM accounts WHERE id = 0");
            assert_eq!(
                st.params,
                vec![Some("42".into()), None, Some("\\x0102".into())]
            );
            assert_eq!(r.statement_seq, records[1].seq);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&records[17].body, Body::SessionEnd(e) if e.statements == 8));
    // A record serializes exactly like its export line.
    let line = serde_json::to_string(&records[1]).unwrap();
    assert_eq!(
        RawRecord::from_json_line(&line).unwrap(),
        records[1].to_raw()
    );

    // Paging for --follow.
    let page = log.records_after(5, 3).unwrap();
    assert_eq!(
        page.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![6, 7, 8]
    );
    assert!(log
        .records_after(max_seq(&db(dir.path())), 10)
        .unwrap()
        .is_empty());
}
