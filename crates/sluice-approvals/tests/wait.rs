//! A waiting session learns the outcome as soon as there is one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use sluice_approvals::{ApprovalError, Outcome, Status};
use std::time::Duration;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn wait_resolves_when_another_task_approves() {
    // A poll far beyond the test's limit: only the wake-up can end the wait.
    let (_dir, approvals) = store_with(sluice_approvals::ApprovalsConfig {
        wait_poll: Duration::from_secs(3600),
        ..config()
    });
    let request = create(&approvals, 1);
    let waiter = tokio::spawn(approvals.wait(&request.id));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiter.is_finished());
    let approver = approvals.clone();
    let id = request.id.clone();
    tokio::spawn(async move { approver.approve(&id, &dba("alice"), None) })
        .await
        .unwrap()
        .unwrap();
    let outcome = timeout(Duration::from_millis(500), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(outcome, Outcome::Approved);
    approvals
        .consume_request(&request.id, &statement_fingerprint(), "agent-1", RESOURCE)
        .unwrap();
    assert_eq!(approvals.waiting(), 0);
}

#[tokio::test]
async fn wait_resolves_denied_with_who_and_why() {
    let (_dir, approvals) = store();
    let request = create(&approvals, 2);
    let waiter = tokio::spawn(approvals.wait(&request.id));
    tokio::time::sleep(Duration::from_millis(20)).await;
    approvals.approve(&request.id, &dba("alice"), None).unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        !waiter.is_finished(),
        "one of two approvals must not end the wait"
    );
    approvals
        .deny(&request.id, &dba("bob"), "not today".into())
        .unwrap();
    let outcome = timeout(LIMIT, waiter).await.unwrap().unwrap().unwrap();
    assert_eq!(
        outcome,
        Outcome::Denied {
            by: "bob".into(),
            reason: "not today".into()
        }
    );
}

#[tokio::test]
async fn wait_resolves_expired_when_nobody_decides_in_time() {
    let (_dir, approvals) = store();
    let mut new = new_request(1);
    new.ttl = Some(Duration::from_millis(100));
    let request = approvals.create(new).unwrap();
    let started = tokio::time::Instant::now();
    let outcome = timeout(LIMIT, approvals.wait(&request.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome, Outcome::Expired);
    assert!(started.elapsed() >= Duration::from_millis(90));
    assert_eq!(
        approvals.get(&request.id).unwrap().unwrap().status,
        Status::Expired
    );
    let err = approvals
        .approve(&request.id, &dba("alice"), None)
        .unwrap_err();
    assert!(matches!(err, ApprovalError::Expired { .. }), "{err}");
    assert_eq!(approvals.waiting(), 0);
}

#[tokio::test]
async fn wait_resolves_withdrawn_with_the_reason() {
    let (_dir, approvals) = store();
    let request = create(&approvals, 1);
    let waiter = tokio::spawn(approvals.wait(&request.id));
    tokio::time::sleep(Duration::from_millis(20)).await;
    approvals
        .withdraw(&request.id, Some("cancelled".into()))
        .unwrap();
    let outcome = timeout(LIMIT, waiter).await.unwrap().unwrap().unwrap();
    assert_eq!(
        outcome,
        Outcome::Withdrawn {
            reason: Some("cancelled".into())
        }
    );
}

#[tokio::test]
async fn wait_on_a_decided_request_returns_at_once_and_on_an_unknown_one_errors() {
    let (_dir, approvals) = store();
    let request = approved(&approvals);
    let outcome = timeout(Duration::from_millis(100), approvals.wait(&request.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome, Outcome::Approved);
    let err = approvals.wait("apr_missing").await.unwrap_err();
    assert!(matches!(err, ApprovalError::UnknownRequest(_)), "{err}");
}

#[tokio::test]
async fn wait_sees_a_decision_made_through_another_handle_on_the_same_file() {
    let (dir, approvals) = store();
    let request = create(&approvals, 1);
    let waiter = tokio::spawn(approvals.wait(&request.id));
    let other = open_at(dir.path());
    other.approve(&request.id, &dba("alice"), None).unwrap();
    // Found by the poll (50 ms in the test config), not a wake-up.
    let outcome = timeout(LIMIT, waiter).await.unwrap().unwrap().unwrap();
    assert_eq!(outcome, Outcome::Approved);
}

#[tokio::test]
async fn abandoned_and_finished_waits_leave_no_entries_behind() {
    let (_dir, approvals) = store();
    let request = create(&approvals, 1);
    let a = tokio::spawn(approvals.wait(&request.id));
    let b = tokio::spawn(approvals.wait(&request.id));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(approvals.waiting(), 1, "both waiters share one entry");
    a.abort();
    let _ = a.await;
    assert_eq!(approvals.waiting(), 1, "b still waits");
    b.abort();
    let _ = b.await;
    assert_eq!(approvals.waiting(), 0);

    let waiter = tokio::spawn(approvals.wait(&request.id));
    tokio::time::sleep(Duration::from_millis(20)).await;
    approvals
        .deny(&request.id, &dba("alice"), "no".into())
        .unwrap();
    timeout(LIMIT, waiter).await.unwrap().unwrap().unwrap();
    assert_eq!(approvals.waiting(), 0);
}
