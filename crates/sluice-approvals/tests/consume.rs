//! A grant runs exactly one statement, once, and only if it is genuine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use sluice_approvals::{fingerprint, ApprovalError, Status, DB_FILE};
use sluice_core::Param;
use std::sync::{Arc, Barrier};

#[test]
fn an_approved_grant_is_consumed_once_and_verifies() {
    let (_dir, approvals) = store();
    let request = approved(&approvals);
    let grant = approvals
        .consume(&statement_fingerprint(), "agent-1", RESOURCE)
        .unwrap()
        .expect("a grant");
    assert_eq!(grant.request_id, request.id);
    assert_eq!(grant.approvers, vec!["alice"]);
    grant.verify(&approvals.verifying_key()).unwrap();
    assert_eq!(
        approvals
            .consume(&statement_fingerprint(), "agent-1", RESOURCE)
            .unwrap(),
        None
    );
    assert_eq!(
        approvals.get(&request.id).unwrap().unwrap().status,
        Status::Consumed
    );
}

#[test]
fn a_pending_request_has_no_grant_to_consume() {
    let (_dir, approvals) = store();
    create(&approvals, 1);
    assert_eq!(
        approvals
            .consume(&statement_fingerprint(), "agent-1", RESOURCE)
            .unwrap(),
        None
    );
}

#[test]
fn a_grant_is_not_returned_for_another_statement_identity_or_resource() {
    let (_dir, approvals) = store();
    approved(&approvals);
    let other_param = fingerprint(RESOURCE, "agent-1", TEXT, &[Param::Text(b"43".to_vec())]);
    let other_text = fingerprint(RESOURCE, "agent-1", "DELETE FROM orders", &[]);
    assert_eq!(
        approvals
            .consume(&other_param, "agent-1", RESOURCE)
            .unwrap(),
        None
    );
    assert_eq!(
        approvals.consume(&other_text, "agent-1", RESOURCE).unwrap(),
        None
    );
    assert_eq!(
        approvals
            .consume(&statement_fingerprint(), "agent-2", RESOURCE)
            .unwrap(),
        None
    );
    assert_eq!(
        approvals
            .consume(&statement_fingerprint(), "agent-1", "prod")
            .unwrap(),
        None
    );
    // Still there for the right caller.
    assert!(approvals
        .consume(&statement_fingerprint(), "agent-1", RESOURCE)
        .unwrap()
        .is_some());
}

#[test]
fn threads_racing_on_one_grant_get_exactly_one_success() {
    let (dir, approvals) = store();
    approved(&approvals);
    // Half the threads share a handle, half use handles of their own on the
    // same file (as another process would).
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let approvals = if i % 2 == 0 {
                approvals.clone()
            } else {
                open_at(dir.path())
            };
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                approvals
                    .consume(&statement_fingerprint(), "agent-1", RESOURCE)
                    .unwrap()
            })
        })
        .collect();
    let wins = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(Option::is_some)
        .count();
    assert_eq!(wins, 1);
}

#[test]
fn two_handles_on_one_file_racing_consume_request_get_exactly_one_success() {
    let (dir, first) = store();
    let request = approved(&first);
    let second = open_at(dir.path());
    let barrier = Arc::new(Barrier::new(2));
    let results: Vec<_> = [first, second]
        .into_iter()
        .map(|approvals| {
            let barrier = Arc::clone(&barrier);
            let id = request.id.clone();
            std::thread::spawn(move || {
                barrier.wait();
                approvals.consume_request(&id, &statement_fingerprint(), "agent-1", RESOURCE)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    assert!(results
        .iter()
        .any(|r| matches!(r, Err(ApprovalError::AlreadyConsumed { .. }))));
}

fn tamper(dir: &std::path::Path, sql: &str) {
    let conn = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
    assert_eq!(conn.execute(sql, []).unwrap(), 1);
}

#[test]
fn a_grant_with_edited_approvers_is_refused_as_tampered() {
    let (dir, approvals) = store();
    let request = approved(&approvals);
    tamper(dir.path(), r#"UPDATE grants SET approvers = '["mallory"]'"#);
    let err = approvals
        .consume(&statement_fingerprint(), "agent-1", RESOURCE)
        .unwrap_err();
    assert!(
        matches!(&err, ApprovalError::TamperedGrant { id } if *id == request.id),
        "{err}"
    );
    // Refused, not used up.
    assert_eq!(
        approvals.get(&request.id).unwrap().unwrap().status,
        Status::Approved
    );
}

#[test]
fn a_grant_moved_to_another_statement_is_refused_as_tampered() {
    let (dir, approvals) = store();
    approved(&approvals);
    let target = fingerprint(RESOURCE, "agent-1", "DROP TABLE orders", &[]);
    tamper(
        dir.path(),
        &format!("UPDATE grants SET fingerprint = '{target}'"),
    );
    tamper(
        dir.path(),
        &format!("UPDATE requests SET fingerprint = '{target}'"),
    );
    let err = approvals.consume(&target, "agent-1", RESOURCE).unwrap_err();
    assert!(matches!(err, ApprovalError::TamperedGrant { .. }), "{err}");
}

#[test]
fn a_grant_with_a_later_expiry_or_a_forged_signature_is_refused_as_tampered() {
    let zero_signature = format!("UPDATE grants SET signature = '{}'", "0".repeat(128));
    for sql in [
        "UPDATE grants SET expires_at = expires_at + 1",
        zero_signature.as_str(),
        "UPDATE grants SET signature = 'not hex'",
    ] {
        let (dir, approvals) = store();
        let request = approved(&approvals);
        tamper(dir.path(), sql);
        let err = approvals
            .consume_request(&request.id, &statement_fingerprint(), "agent-1", RESOURCE)
            .unwrap_err();
        assert!(
            matches!(err, ApprovalError::TamperedGrant { .. }),
            "{sql}: {err}"
        );
    }
}

#[test]
fn a_grant_handed_to_another_identity_is_refused_as_tampered() {
    let (dir, approvals) = store();
    approved(&approvals);
    tamper(dir.path(), "UPDATE grants SET requester = 'agent-2'");
    tamper(dir.path(), "UPDATE requests SET requester = 'agent-2'");
    let err = approvals
        .consume(&statement_fingerprint(), "agent-2", RESOURCE)
        .unwrap_err();
    assert!(matches!(err, ApprovalError::TamperedGrant { .. }), "{err}");
}

#[test]
fn an_approved_request_whose_grant_row_was_deleted_is_refused_as_tampered() {
    let (dir, approvals) = store();
    let request = approved(&approvals);
    tamper(dir.path(), "DELETE FROM grants");
    let err = approvals
        .consume_request(&request.id, &statement_fingerprint(), "agent-1", RESOURCE)
        .unwrap_err();
    assert!(matches!(err, ApprovalError::TamperedGrant { .. }), "{err}");
}

#[test]
fn consume_request_refuses_a_grant_for_another_statement_identity_or_resource() {
    let (_dir, approvals) = store();
    let request = approved(&approvals);
    let other = fingerprint(RESOURCE, "agent-1", "DELETE FROM orders", &[]);
    let err = approvals
        .consume_request(&request.id, &other, "agent-1", RESOURCE)
        .unwrap_err();
    assert!(
        matches!(err, ApprovalError::FingerprintMismatch { .. }),
        "{err}"
    );
    let err = approvals
        .consume_request(&request.id, &statement_fingerprint(), "agent-2", RESOURCE)
        .unwrap_err();
    assert!(
        matches!(err, ApprovalError::RequesterMismatch { .. }),
        "{err}"
    );
    let err = approvals
        .consume_request(&request.id, &statement_fingerprint(), "agent-1", "prod")
        .unwrap_err();
    assert!(
        matches!(err, ApprovalError::ResourceMismatch { .. }),
        "{err}"
    );
    // None of the refusals used it up.
    approvals
        .consume_request(&request.id, &statement_fingerprint(), "agent-1", RESOURCE)
        .unwrap();
    let err = approvals
        .consume_request(&request.id, &statement_fingerprint(), "agent-1", RESOURCE)
        .unwrap_err();
    assert!(
        matches!(err, ApprovalError::AlreadyConsumed { .. }),
        "{err}"
    );
}

#[test]
fn consume_request_refuses_a_request_that_is_not_approved() {
    let (_dir, approvals) = store();
    let request = create(&approvals, 1);
    let err = approvals
        .consume_request(&request.id, &statement_fingerprint(), "agent-1", RESOURCE)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ApprovalError::NotApproved {
                status: Status::Pending,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn an_expired_grant_is_not_consumed() {
    let dir = tempfile::tempdir().unwrap();
    let config = sluice_approvals::ApprovalsConfig {
        grant_ttl: std::time::Duration::from_millis(20),
        ..config()
    };
    let approvals = sluice_approvals::Approvals::open(
        dir.path(),
        ed25519_dalek::SigningKey::from_bytes(&KEY),
        config,
    )
    .unwrap();
    let request = approved(&approvals);
    std::thread::sleep(std::time::Duration::from_millis(40));
    assert_eq!(
        approvals
            .consume(&statement_fingerprint(), "agent-1", RESOURCE)
            .unwrap(),
        None
    );
    let err = approvals
        .consume_request(&request.id, &statement_fingerprint(), "agent-1", RESOURCE)
        .unwrap_err();
    assert!(matches!(err, ApprovalError::GrantExpired { .. }), "{err}");
}

#[test]
fn a_grant_signed_by_another_key_is_refused_as_tampered() {
    let (dir, approvals) = store();
    approved(&approvals);
    drop(approvals);
    let other_key = sluice_approvals::Approvals::open(
        dir.path(),
        ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
        config(),
    )
    .unwrap();
    let err = other_key
        .consume(&statement_fingerprint(), "agent-1", RESOURCE)
        .unwrap_err();
    assert!(matches!(err, ApprovalError::TamperedGrant { .. }), "{err}");
}
