//! `sluice-approvals`: human approval of statements that policy sends to
//! `review`.
//!
//! The gateway [`create`](Approvals::create)s a request for the held
//! statement; people [`approve`](Approvals::approve) or
//! [`deny`](Approvals::deny) it; once enough distinct approvers agree, a
//! [`Grant`] bound to the exact statement ([`fingerprint`]) is signed with
//! Ed25519 and stored, and it can be used exactly once.
//!
//! # API
//!
//! - [`fingerprint`]`(resource, identity, text, params) -> Fingerprint`
//! - [`Approvals::open`]`(data_dir, SigningKey, ApprovalsConfig)` opens
//!   `data_dir/approvals.db` ([`DB_FILE`]); cheap to clone, `Send + Sync`.
//!   [`Approvals::with_events`] sets the [`EventSink`] that receives every
//!   [`ApprovalEvent`].
//! - requests: [`create`](Approvals::create)`(NewRequest) -> Request`,
//!   [`get`](Approvals::get)`(id) -> Option<Request>`,
//!   [`list`](Approvals::list)`(ListFilter) -> Vec<Request>` (newest first).
//! - decisions: [`approve`](Approvals::approve)`(id, &Identity, comment)`,
//!   [`deny`](Approvals::deny)`(id, &Identity, reason)`,
//!   [`withdraw`](Approvals::withdraw)`(id, reason)`; each returns the
//!   updated [`Request`] or an [`ApprovalError`] saying exactly why not.
//! - use: [`consume`](Approvals::consume)`(&Fingerprint, requester,
//!   resource) -> Option<Grant>` (deferred mode),
//!   [`consume_request`](Approvals::consume_request)`(id, &Fingerprint,
//!   requester, resource) -> Grant` (wait mode); [`Grant::verify`] checks a
//!   grant against [`Approvals::verifying_key`].
//! - [`wait`](Approvals::wait)`(id)`: a `'static` future resolving to the
//!   [`Outcome`] once the request leaves `pending`.
//! - [`notify`]: webhook and Slack delivery of events
//!   ([`notify::Notifier::spawn`], [`notify::NotifierHandle::notify`],
//!   [`notify::sign_webhook`], [`notify::verify_webhook`]).
//!
//! # Rules
//!
//! - Nobody decides their own request; members of
//!   [`ApprovalsConfig::agent_groups`] never decide; only members of the
//!   request's approver group vote; each person votes once.
//! - `quorum` distinct approvals approve; a single denial (with a reason)
//!   denies. A request past `expires_at` is `expired` (marked lazily, before
//!   any operation, and by waiters' timers).
//! - A grant expires `grant_ttl` after approval, independently of the
//!   request; it is refused if its signature does not hold
//!   ([`ApprovalError::TamperedGrant`]).
//!
//! # What the signature does not cover
//!
//! Someone able to write `approvals.db` cannot create or widen a grant, but
//! can clear a `consumed_at` mark to let a real grant run again within its
//! expiry, or delete rows. Consumption is also reported as an event, so the
//! audit log shows every use.
//!
//! # Restarts
//!
//! Pending requests survive a restart (WAL, `synchronous=FULL`). Waiting
//! sessions do not: their clients got an error and can re-run the statement
//! after approval, which then goes through [`Approvals::consume`].

mod approvals;
mod canonical;
mod clock;
mod config;
mod consume;
mod error;
mod event;
mod fingerprint;
mod grant;
pub mod notify;
mod request;
mod store;
mod wait;
mod waiters;

pub use approvals::Approvals;
pub use clock::{BadTimestamp, Timestamp};
pub use config::ApprovalsConfig;
pub use error::ApprovalError;
pub use event::{ApprovalEvent, EventKind, EventSink};
pub use fingerprint::{fingerprint, fingerprint_in, Fingerprint};
pub use grant::{Grant, APPROVED};
pub use request::{ListFilter, Mode, NewRequest, Outcome, Request, Status, Vote, VoteDecision};
pub use store::DB_FILE;
pub use wait::outcome_of;
