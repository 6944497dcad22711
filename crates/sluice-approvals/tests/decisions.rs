//! Who may decide, and what a decision does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use sluice_approvals::{
    ApprovalError, ApprovalEvent, EventKind, ListFilter, Outcome, Status, VoteDecision,
};
use sluice_core::Identity;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn a_new_request_is_pending_with_an_unguessable_id_and_expiry() {
    let (_dir, approvals) = store();
    let a = create(&approvals, 1);
    let b = create(&approvals, 1);
    assert_eq!(a.status, Status::Pending);
    assert!(a.id.starts_with("apr_") && a.id.len() == 20, "{}", a.id);
    assert_ne!(a.id, b.id);
    assert!(a.expires_at > a.created_at);
    assert_eq!(approvals.get(&a.id).unwrap(), Some(a));
}

#[test]
fn quorum_of_two_needs_two_distinct_approvers() {
    let (_dir, approvals) = store();
    let request = create(&approvals, 2);
    let after_one = approvals
        .approve(&request.id, &dba("alice"), Some("looks fine".into()))
        .unwrap();
    assert_eq!(after_one.status, Status::Pending);
    let again = approvals.approve(&request.id, &dba("alice"), None);
    assert!(
        matches!(again, Err(ApprovalError::AlreadyVoted { .. })),
        "{again:?}"
    );
    let after_two = approvals.approve(&request.id, &dba("bob"), None).unwrap();
    assert_eq!(after_two.status, Status::Approved);
    assert_eq!(after_two.approvers(), vec!["alice", "bob"]);
    assert_eq!(after_two.votes[0].comment.as_deref(), Some("looks fine"));
}

#[test]
fn the_requester_cannot_approve_their_own_request() {
    let (_dir, approvals) = store();
    let request = create(&approvals, 1);
    // Even when also in the approver group and not an agent.
    let me = Identity::new("agent-1", vec!["dba".into()]);
    let err = approvals.approve(&request.id, &me, None).unwrap_err();
    assert!(matches!(err, ApprovalError::SelfApproval { .. }), "{err}");
    let err = approvals.deny(&request.id, &me, "no".into()).unwrap_err();
    assert!(matches!(err, ApprovalError::SelfApproval { .. }), "{err}");
}

#[test]
fn members_of_an_agent_group_can_never_decide() {
    let (_dir, approvals) = store();
    let request = create(&approvals, 1);
    let other_agent = Identity::new("agent-2", vec!["agents".into(), "dba".into()]);
    let err = approvals
        .approve(&request.id, &other_agent, None)
        .unwrap_err();
    assert!(
        matches!(&err, ApprovalError::AgentApprover { group, .. } if group == "agents"),
        "{err}"
    );
    assert_eq!(approvals.get(&request.id).unwrap().unwrap().votes, vec![]);
}

#[test]
fn an_approver_outside_the_approver_group_is_refused() {
    let (_dir, approvals) = store();
    let request = create(&approvals, 1);
    let dev = Identity::new("carol", vec!["developers".into()]);
    let err = approvals.approve(&request.id, &dev, None).unwrap_err();
    assert!(
        matches!(err, ApprovalError::NotInApproverGroup { .. }),
        "{err}"
    );
    let err = approvals.deny(&request.id, &dev, "no".into()).unwrap_err();
    assert!(
        matches!(err, ApprovalError::NotInApproverGroup { .. }),
        "{err}"
    );
}

#[test]
fn a_denial_without_a_reason_is_refused() {
    let (_dir, approvals) = store();
    let request = create(&approvals, 1);
    for reason in ["", "   "] {
        let err = approvals
            .deny(&request.id, &dba("alice"), reason.into())
            .unwrap_err();
        assert!(matches!(err, ApprovalError::ReasonRequired), "{err}");
    }
    assert_eq!(
        approvals.get(&request.id).unwrap().unwrap().status,
        Status::Pending
    );
}

#[test]
fn a_single_denial_ends_a_request_that_needed_several_approvals() {
    let (_dir, approvals) = store();
    let request = create(&approvals, 3);
    approvals.approve(&request.id, &dba("alice"), None).unwrap();
    let denied = approvals
        .deny(&request.id, &dba("bob"), "wrong table".into())
        .unwrap();
    assert_eq!(denied.status, Status::Denied);
    let denial = denied.denial().unwrap();
    assert_eq!(
        (denial.approver.as_str(), denial.decision),
        ("bob", VoteDecision::Deny)
    );
    assert_eq!(
        sluice_approvals::outcome_of(&denied),
        Some(Outcome::Denied {
            by: "bob".into(),
            reason: "wrong table".into()
        })
    );
    let err = approvals
        .approve(&request.id, &dba("carol"), None)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ApprovalError::NotPending {
                status: Status::Denied,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn an_unknown_request_is_named_in_the_error() {
    let (_dir, approvals) = store();
    let err = approvals
        .approve("apr_nope", &dba("alice"), None)
        .unwrap_err();
    assert!(matches!(&err, ApprovalError::UnknownRequest(id) if id == "apr_nope"));
    assert_eq!(approvals.get("apr_nope").unwrap(), None);
}

#[test]
fn a_request_past_its_expiry_cannot_be_approved_and_reads_expired() {
    let (_dir, approvals) = store();
    let mut new = new_request(1);
    new.ttl = Some(Duration::from_millis(30));
    let request = approvals.create(new).unwrap();
    std::thread::sleep(Duration::from_millis(60));
    let err = approvals
        .approve(&request.id, &dba("alice"), None)
        .unwrap_err();
    assert!(matches!(err, ApprovalError::Expired { .. }), "{err}");
    let stored = approvals.get(&request.id).unwrap().unwrap();
    assert_eq!(stored.status, Status::Expired);
    assert!(stored.decided_at.is_some());
}

#[test]
fn withdrawing_ends_a_pending_request_only() {
    let (_dir, approvals) = store();
    let request = create(&approvals, 1);
    let withdrawn = approvals
        .withdraw(&request.id, Some("client disconnected".into()))
        .unwrap();
    assert_eq!(withdrawn.status, Status::Withdrawn);
    assert_eq!(
        withdrawn.withdraw_reason.as_deref(),
        Some("client disconnected")
    );
    let err = approvals.withdraw(&request.id, None).unwrap_err();
    assert!(matches!(err, ApprovalError::NotPending { .. }), "{err}");
    let err = approvals
        .approve(&request.id, &dba("alice"), None)
        .unwrap_err();
    assert!(matches!(err, ApprovalError::NotPending { .. }), "{err}");
}

#[test]
fn a_pending_request_survives_reopening_the_store_and_can_still_be_approved() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let approvals = open_at(dir.path());
        create(&approvals, 1).id
    };
    assert!(dir.path().join(sluice_approvals::DB_FILE).exists());
    let reopened = open_at(dir.path());
    assert_eq!(reopened.get(&id).unwrap().unwrap().status, Status::Pending);
    let approved = reopened.approve(&id, &dba("alice"), None).unwrap();
    assert_eq!(approved.status, Status::Approved);
    assert!(reopened
        .consume(&statement_fingerprint(), "agent-1", RESOURCE)
        .unwrap()
        .is_some());
}

#[test]
fn list_is_newest_first_and_filters_by_status() {
    let (_dir, approvals) = store();
    let first = create(&approvals, 1);
    let second = create(&approvals, 1);
    let third = create(&approvals, 1);
    approvals.approve(&second.id, &dba("alice"), None).unwrap();
    let all = approvals.list(ListFilter::default()).unwrap();
    let ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        vec![third.id.as_str(), second.id.as_str(), first.id.as_str()]
    );
    let pending = approvals
        .list(ListFilter {
            status: Some(Status::Pending),
            limit: 10,
        })
        .unwrap();
    assert_eq!(pending.len(), 2);
    let one = approvals
        .list(ListFilter {
            status: None,
            limit: 1,
        })
        .unwrap();
    assert_eq!(one[0].id, third.id);
}

#[test]
fn every_step_is_reported_to_the_event_sink() {
    let (_dir, approvals) = store();
    let seen: Arc<Mutex<Vec<ApprovalEvent>>> = Arc::default();
    let sink_seen = Arc::clone(&seen);
    let approvals = approvals.with_events(Arc::new(move |e: &ApprovalEvent| {
        sink_seen.lock().unwrap().push(e.clone());
    }));
    let request = create(&approvals, 2);
    approvals
        .approve(&request.id, &dba("alice"), Some("ok".into()))
        .unwrap();
    approvals.approve(&request.id, &dba("bob"), None).unwrap();
    approvals
        .consume(&statement_fingerprint(), "agent-1", RESOURCE)
        .unwrap()
        .unwrap();
    let denied = create(&approvals, 1);
    approvals
        .deny(&denied.id, &dba("alice"), "no".into())
        .unwrap();
    let withdrawn = create(&approvals, 1);
    approvals.withdraw(&withdrawn.id, None).unwrap();
    let mut short = new_request(1);
    short.ttl = Some(Duration::from_millis(1));
    let expired = approvals.create(short).unwrap();
    std::thread::sleep(Duration::from_millis(10));
    approvals.list(ListFilter::default()).unwrap();

    let seen = seen.lock().unwrap();
    let kinds: Vec<(EventKind, Option<&str>)> =
        seen.iter().map(|e| (e.event, e.actor.as_deref())).collect();
    assert_eq!(
        kinds,
        vec![
            (EventKind::Requested, Some("agent-1")),
            (EventKind::Vote, Some("alice")),
            (EventKind::Approved, Some("bob")),
            (EventKind::Consumed, Some("agent-1")),
            (EventKind::Requested, Some("agent-1")),
            (EventKind::Denied, Some("alice")),
            (EventKind::Requested, Some("agent-1")),
            (EventKind::Withdrawn, Some("agent-1")),
            (EventKind::Requested, Some("agent-1")),
            (EventKind::Expired, None),
        ]
    );
    assert_eq!(seen[1].comment.as_deref(), Some("ok"));
    assert_eq!(seen[3].request.status, Status::Consumed);
    assert_eq!(seen[9].request_id, expired.id);
}

#[test]
fn requests_serialise_as_json_with_readable_times_and_statuses() {
    let (_dir, approvals) = store();
    let request = create(&approvals, 1);
    let json = serde_json::to_value(&request).unwrap();
    assert_eq!(json["status"], "pending");
    assert_eq!(json["mode"], "deferred");
    assert_eq!(json["requester"]["name"], "agent-1");
    assert!(json["created_at"].as_str().unwrap().ends_with('Z'));
    let back: sluice_approvals::Request = serde_json::from_value(json).unwrap();
    assert_eq!(back, request);
}

#[test]
fn an_invalid_request_is_refused_before_it_is_stored() {
    let (_dir, approvals) = store();
    let mut zero = new_request(0);
    assert!(matches!(
        approvals.create(zero.clone()),
        Err(ApprovalError::InvalidRequest(_))
    ));
    zero.quorum = 1;
    zero.approver_group = " ".into();
    assert!(matches!(
        approvals.create(zero),
        Err(ApprovalError::InvalidRequest(_))
    ));
    assert!(approvals.list(ListFilter::default()).unwrap().is_empty());
}

#[test]
fn the_store_handle_can_be_shared_across_threads_and_tasks() {
    fn shared<T: Send + Sync + Clone + 'static>() {}
    shared::<sluice_approvals::Approvals>();
    shared::<sluice_approvals::notify::NotifierHandle>();
}
