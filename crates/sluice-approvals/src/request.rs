//! An approval request and the votes on it, as the API shows them.

use crate::clock::Timestamp;
use crate::fingerprint::Fingerprint;
use serde::{Deserialize, Serialize};
use sluice_core::Identity;
use std::fmt;
use std::time::Duration;

/// How the client whose statement is held gets its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The session stays open and waits ([`crate::Approvals::wait`]); on
    /// approval the held statement runs.
    Wait,
    /// The client gets an error naming the request and re-runs the exact
    /// statement after approval ([`crate::Approvals::consume`]).
    Deferred,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Wait => "wait",
            Mode::Deferred => "deferred",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "wait" => Some(Mode::Wait),
            "deferred" => Some(Mode::Deferred),
            _ => None,
        }
    }
}

/// Where a request is in its life. Only `Pending` can change by a vote;
/// `Approved` can only become `Consumed`; the rest are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Approved,
    Denied,
    Expired,
    Withdrawn,
    Consumed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Expired => "expired",
            Status::Withdrawn => "withdrawn",
            Status::Consumed => "consumed",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Status::Pending,
            "approved" => Status::Approved,
            "denied" => Status::Denied,
            "expired" => Status::Expired,
            "withdrawn" => Status::Withdrawn,
            "consumed" => Status::Consumed,
            _ => return None,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteDecision {
    Approve,
    Deny,
}

impl VoteDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            VoteDecision::Approve => "approve",
            VoteDecision::Deny => "deny",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "approve" => Some(VoteDecision::Approve),
            "deny" => Some(VoteDecision::Deny),
            _ => None,
        }
    }
}

/// One human's answer. A denial always carries its reason in `comment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub approver: String,
    pub decision: VoteDecision,
    pub comment: Option<String>,
    pub at: Timestamp,
}

/// What the gateway knows when policy says `review`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRequest {
    pub requester: Identity,
    pub resource: String,
    /// The exact statement text, shown to approvers.
    pub text: String,
    /// Parameters in display form (`None` = NULL), encoded by the caller the
    /// way the audit log records them.
    pub params: Vec<Option<String>>,
    /// The session state the statement would run under, as
    /// [`crate::fingerprint_in`] describes it (empty: the defaults); shown
    /// to approvers.
    pub session_state: String,
    /// Must be [`crate::fingerprint_in`] of the same statement and state;
    /// the grant is bound to it.
    pub fingerprint: Fingerprint,
    pub actions: Vec<String>,
    /// The policy that asked for review.
    pub policy_id: String,
    pub reason: Option<String>,
    /// Only members of this group may vote.
    pub approver_group: String,
    /// Distinct approvals needed (at least 1).
    pub quorum: u32,
    pub mode: Mode,
    /// How long approvers have; `None` takes the store's `default_ttl`.
    pub ttl: Option<Duration>,
}

/// A stored request with its votes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// `apr_` and 16 hex digits from the OS random source: knowing one id
    /// tells nothing about another.
    pub id: String,
    pub requester: Identity,
    pub resource: String,
    pub text: String,
    pub params: Vec<Option<String>>,
    /// The session state it would run under (empty: the defaults).
    #[serde(default)]
    pub session_state: String,
    pub fingerprint: Fingerprint,
    pub actions: Vec<String>,
    pub policy_id: String,
    pub reason: Option<String>,
    pub approver_group: String,
    pub quorum: u32,
    pub mode: Mode,
    pub status: Status,
    pub created_at: Timestamp,
    /// Votes after this instant are refused and the request reads `expired`.
    pub expires_at: Timestamp,
    /// When it left `pending` (approved, denied, expired or withdrawn).
    pub decided_at: Option<Timestamp>,
    /// Why it was withdrawn (client disconnected, cancelled).
    pub withdraw_reason: Option<String>,
    /// In the order they were cast.
    pub votes: Vec<Vote>,
}

impl Request {
    /// The approvers whose approvals count (distinct, in vote order).
    pub fn approvers(&self) -> Vec<String> {
        self.votes
            .iter()
            .filter(|v| v.decision == VoteDecision::Approve)
            .map(|v| v.approver.clone())
            .collect()
    }

    /// The denial that ended the request, if one did.
    pub fn denial(&self) -> Option<&Vote> {
        self.votes.iter().find(|v| v.decision == VoteDecision::Deny)
    }
}

/// Which requests [`crate::Approvals::list`] returns, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub limit: usize,
}

impl Default for ListFilter {
    fn default() -> Self {
        ListFilter {
            status: None,
            limit: 100,
        }
    }
}

/// How a wait ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Approved: the waiter consumes the grant with
    /// [`crate::Approvals::consume_request`] and runs the statement.
    Approved,
    Denied {
        by: String,
        reason: String,
    },
    Expired,
    Withdrawn {
        reason: Option<String>,
    },
    /// The grant was already used (the client re-ran the statement on
    /// another connection): nothing is left to run here.
    Consumed,
}
