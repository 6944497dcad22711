//! The approval store: requests, votes and the rules for who may decide.

use crate::clock::Timestamp;
use crate::config::ApprovalsConfig;
use crate::error::ApprovalError;
use crate::event::{ApprovalEvent, EventKind, EventSink};
use crate::grant::{Grant, APPROVED};
use crate::request::{ListFilter, NewRequest, Request, Status, Vote, VoteDecision};
use crate::store::{rows, Store};
use crate::waiters::Waiters;
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::RngCore;
use rusqlite::Connection;
use sluice_core::Identity;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock};

/// A handle on the approval store. Clones share one connection, one set of
/// waiters and one event sink.
#[derive(Clone)]
pub struct Approvals {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    key: SigningKey,
    pub(crate) verifying_key: VerifyingKey,
    pub(crate) config: ApprovalsConfig,
    pub(crate) waiters: Arc<Waiters>,
    events: RwLock<Option<EventSink>>,
}

impl fmt::Debug for Approvals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Approvals")
            .field("config", &self.inner.config)
            .field(
                "verifying_key",
                &hex::encode(self.inner.verifying_key.as_bytes()),
            )
            .finish_non_exhaustive()
    }
}

fn new_request_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("apr_{}", hex::encode(bytes))
}

impl Approvals {
    /// Opens `data_dir/approvals.db` (creating it). Requests still pending
    /// from an earlier process stay decidable; a session that was waiting
    /// in that process is gone, so its client re-runs the statement after
    /// approval and gets through [`Approvals::consume`].
    pub fn open(
        data_dir: &Path,
        signing_key: SigningKey,
        config: ApprovalsConfig,
    ) -> Result<Approvals, ApprovalError> {
        let store = Store::open(data_dir)?;
        let verifying_key = signing_key.verifying_key();
        Ok(Approvals {
            inner: Arc::new(Inner {
                store,
                key: signing_key,
                verifying_key,
                config,
                waiters: Arc::new(Waiters::default()),
                events: RwLock::new(None),
            }),
        })
    }

    /// Every request, vote, decision, withdrawal, expiry and consumption is
    /// reported to `sink` (for the audit log and notifications). Applies to
    /// every clone of this handle.
    pub fn with_events(self, sink: EventSink) -> Self {
        *self.inner.events.write().unwrap_or_else(|p| p.into_inner()) = Some(sink);
        self
    }

    /// The key grants are checked with.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.inner.verifying_key
    }

    pub fn config(&self) -> &ApprovalsConfig {
        &self.inner.config
    }

    pub fn create(&self, new: NewRequest) -> Result<Request, ApprovalError> {
        if new.quorum == 0 {
            return Err(ApprovalError::InvalidRequest(
                "quorum must be at least 1".into(),
            ));
        }
        if new.approver_group.trim().is_empty() {
            return Err(ApprovalError::InvalidRequest(
                "approver group is empty".into(),
            ));
        }
        if new.requester.name.is_empty() {
            return Err(ApprovalError::InvalidRequest(
                "requester has no name".into(),
            ));
        }
        let ttl = new.ttl.unwrap_or(self.inner.config.default_ttl);
        let now = Timestamp::now();
        let request = Request {
            id: new_request_id(),
            requester: new.requester,
            resource: new.resource,
            text: new.text,
            params: new.params,
            session_state: new.session_state,
            fingerprint: new.fingerprint,
            actions: new.actions,
            policy_id: new.policy_id,
            reason: new.reason,
            approver_group: new.approver_group,
            quorum: new.quorum,
            mode: new.mode,
            status: Status::Pending,
            created_at: now,
            expires_at: now.plus(ttl),
            decided_at: None,
            withdraw_reason: None,
            votes: Vec::new(),
        };
        self.inner
            .store
            .write(|tx| rows::insert_request(tx, &request))?;
        self.emit(vec![ApprovalEvent {
            request_id: request.id.clone(),
            event: EventKind::Requested,
            actor: Some(request.requester.name.clone()),
            comment: request.reason.clone(),
            request: request.clone(),
        }]);
        Ok(request)
    }

    pub fn get(&self, id: &str) -> Result<Option<Request>, ApprovalError> {
        self.expire_due()?;
        self.inner.store.read(|conn| rows::load_request(conn, id))
    }

    /// Newest first.
    pub fn list(&self, filter: ListFilter) -> Result<Vec<Request>, ApprovalError> {
        self.expire_due()?;
        self.inner
            .store
            .read(|conn| rows::list_requests(conn, &filter))
    }

    /// Records an approval; when it makes the quorum, the request becomes
    /// `approved` and a signed grant valid for `grant_ttl` is stored.
    pub fn approve(
        &self,
        id: &str,
        approver: &Identity,
        comment: Option<String>,
    ) -> Result<Request, ApprovalError> {
        self.expire_due()?;
        let event = self.inner.store.write(|tx| {
            let now = Timestamp::now();
            let request = self.decidable(tx, id, approver, now)?;
            let vote = Vote {
                approver: approver.name.clone(),
                decision: VoteDecision::Approve,
                comment: comment.clone(),
                at: now,
            };
            rows::insert_vote(tx, id, &vote)?;
            let mut approvers = request.approvers();
            approvers.push(approver.name.clone());
            let reached = approvers.len() >= usize::try_from(request.quorum).unwrap_or(usize::MAX);
            if reached {
                rows::transition(tx, id, Status::Pending, Status::Approved, Some(now), None)?;
                let grant = Grant {
                    request_id: request.id.clone(),
                    fingerprint: request.fingerprint.clone(),
                    requester: request.requester.name.clone(),
                    resource: request.resource.clone(),
                    approvers,
                    decision: APPROVED.to_string(),
                    expires_at: now.plus(self.inner.config.grant_ttl),
                    signature: String::new(),
                }
                .sign(&self.inner.key);
                rows::insert_grant(tx, &grant, now)?;
            }
            Ok(ApprovalEvent {
                request_id: id.to_string(),
                event: if reached {
                    EventKind::Approved
                } else {
                    EventKind::Vote
                },
                actor: Some(approver.name.clone()),
                comment,
                request: load(tx, id)?,
            })
        })?;
        let request = event.request.clone();
        self.emit(vec![event]);
        Ok(request)
    }

    /// One denial ends the request, whatever the quorum.
    pub fn deny(
        &self,
        id: &str,
        approver: &Identity,
        reason: String,
    ) -> Result<Request, ApprovalError> {
        if reason.trim().is_empty() {
            return Err(ApprovalError::ReasonRequired);
        }
        self.expire_due()?;
        let event = self.inner.store.write(|tx| {
            let now = Timestamp::now();
            self.decidable(tx, id, approver, now)?;
            let vote = Vote {
                approver: approver.name.clone(),
                decision: VoteDecision::Deny,
                comment: Some(reason.clone()),
                at: now,
            };
            rows::insert_vote(tx, id, &vote)?;
            rows::transition(tx, id, Status::Pending, Status::Denied, Some(now), None)?;
            Ok(ApprovalEvent {
                request_id: id.to_string(),
                event: EventKind::Denied,
                actor: Some(approver.name.clone()),
                comment: Some(reason),
                request: load(tx, id)?,
            })
        })?;
        let request = event.request.clone();
        self.emit(vec![event]);
        Ok(request)
    }

    /// The requester gave up (client disconnected or cancelled while
    /// waiting). Only a pending request can be withdrawn: an approved one
    /// keeps its grant until the grant expires.
    pub fn withdraw(&self, id: &str, reason: Option<String>) -> Result<Request, ApprovalError> {
        self.expire_due()?;
        let event = self.inner.store.write(|tx| {
            let now = Timestamp::now();
            let request = load(tx, id)?;
            ensure_pending(&request, now)?;
            rows::transition(
                tx,
                id,
                Status::Pending,
                Status::Withdrawn,
                Some(now),
                reason.as_deref(),
            )?;
            Ok(ApprovalEvent {
                request_id: id.to_string(),
                event: EventKind::Withdrawn,
                actor: Some(request.requester.name),
                comment: reason,
                request: load(tx, id)?,
            })
        })?;
        let request = event.request.clone();
        self.emit(vec![event]);
        Ok(request)
    }

    /// The pending request `approver` may vote on, or why not.
    fn decidable(
        &self,
        conn: &Connection,
        id: &str,
        approver: &Identity,
        now: Timestamp,
    ) -> Result<Request, ApprovalError> {
        let request = load(conn, id)?;
        ensure_pending(&request, now)?;
        if approver.name == request.requester.name {
            return Err(ApprovalError::SelfApproval {
                id: id.to_string(),
                approver: approver.name.clone(),
            });
        }
        if let Some(group) = self
            .inner
            .config
            .agent_groups
            .iter()
            .find(|g| approver.in_group(g))
        {
            return Err(ApprovalError::AgentApprover {
                approver: approver.name.clone(),
                group: group.clone(),
            });
        }
        if !approver.in_group(&request.approver_group) {
            return Err(ApprovalError::NotInApproverGroup {
                id: id.to_string(),
                approver: approver.name.clone(),
                group: request.approver_group.clone(),
            });
        }
        if request.votes.iter().any(|v| v.approver == approver.name) {
            return Err(ApprovalError::AlreadyVoted {
                id: id.to_string(),
                approver: approver.name.clone(),
            });
        }
        Ok(request)
    }

    /// Marks pending requests whose time is up as expired. Runs before
    /// every operation so a reader never sees a stale `pending`; a cheap
    /// indexed read when nothing is due.
    pub(crate) fn expire_due(&self) -> Result<(), ApprovalError> {
        let now = Timestamp::now();
        let due = self
            .inner
            .store
            .read(|conn| rows::due_for_expiry(conn, now))?;
        if due.is_empty() {
            return Ok(());
        }
        let events = self.inner.store.write(|tx| {
            let mut events = Vec::new();
            for id in rows::due_for_expiry(tx, now)? {
                if rows::transition(tx, &id, Status::Pending, Status::Expired, Some(now), None)? {
                    events.push(ApprovalEvent {
                        request: load(tx, &id)?,
                        request_id: id,
                        event: EventKind::Expired,
                        actor: None,
                        comment: None,
                    });
                }
            }
            Ok(events)
        })?;
        self.emit(events);
        Ok(())
    }

    /// After the commit, with no lock held: wake waiters, log, tell the sink.
    pub(crate) fn emit(&self, events: Vec<ApprovalEvent>) {
        if events.is_empty() {
            return;
        }
        let sink = self
            .inner
            .events
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for event in events {
            tracing::info!(
                request_id = %event.request_id,
                event = %event.event,
                actor = event.actor.as_deref().unwrap_or(""),
                status = %event.request.status,
                resource = %event.request.resource,
                requester = %event.request.requester.name,
                "approval event"
            );
            self.inner.waiters.wake(&event.request_id);
            if let Some(sink) = &sink {
                sink(&event);
            }
        }
    }
}

pub(crate) fn load(conn: &Connection, id: &str) -> Result<Request, ApprovalError> {
    rows::load_request(conn, id)?.ok_or_else(|| ApprovalError::UnknownRequest(id.to_string()))
}

/// A request past its expiry reads as expired even in the instant before
/// the sweep has marked it.
fn ensure_pending(request: &Request, now: Timestamp) -> Result<(), ApprovalError> {
    let expired = request.status == Status::Expired
        || (request.status == Status::Pending && request.expires_at <= now);
    if expired {
        return Err(ApprovalError::Expired {
            id: request.id.clone(),
            expires_at: request.expires_at,
        });
    }
    if request.status != Status::Pending {
        return Err(ApprovalError::NotPending {
            id: request.id.clone(),
            status: request.status,
        });
    }
    Ok(())
}
