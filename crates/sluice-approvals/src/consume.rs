//! Using a grant: exactly once, only for the statement it was signed for.
//!
//! The consumed mark is a single `UPDATE .. WHERE consumed_at IS NULL`
//! inside an `IMMEDIATE` transaction, checked by its row count: of any
//! number of consumers (threads, clones, handles in other processes on the
//! same file) exactly one sees the row change. The signature is checked
//! before the mark, so an edited row is refused and stays unconsumed for an
//! operator to look at.

use crate::approvals::{load, Approvals};
use crate::clock::Timestamp;
use crate::error::ApprovalError;
use crate::event::{ApprovalEvent, EventKind};
use crate::fingerprint::Fingerprint;
use crate::grant::Grant;
use crate::request::Status;
use crate::store::rows;
use rusqlite::Connection;

impl Approvals {
    /// Deferred mode: the client re-ran a statement; if an approved,
    /// unused, unexpired grant exists for exactly this statement from this
    /// requester on this resource, use it up and return it. `Ok(None)` means
    /// there is nothing to use (the caller asks for approval again).
    pub fn consume(
        &self,
        fingerprint: &Fingerprint,
        requester: &str,
        resource: &str,
    ) -> Result<Option<Grant>, ApprovalError> {
        self.expire_due()?;
        let used = self.inner.store.write(|tx| {
            let now = Timestamp::now();
            let ids = rows::usable_grant_ids(tx, fingerprint, requester, resource, now)?;
            let Some(id) = ids.into_iter().next() else {
                return Ok(None);
            };
            let grant = self.verified_grant(tx, &id)?.grant;
            // The query matched the columns; the signature proves them.
            if &grant.fingerprint != fingerprint
                || grant.requester != requester
                || grant.resource != resource
            {
                return Err(ApprovalError::TamperedGrant { id });
            }
            self.mark(tx, grant, now).map(Some)
        })?;
        Ok(used.map(|(grant, event)| {
            self.emit(vec![event]);
            grant
        }))
    }

    /// Wait mode: the session that waited on request `id` uses its grant.
    /// The grant must be for the statement the session holds: a grant of
    /// the same request id for anything else is refused.
    pub fn consume_request(
        &self,
        id: &str,
        fingerprint: &Fingerprint,
        requester: &str,
        resource: &str,
    ) -> Result<Grant, ApprovalError> {
        self.expire_due()?;
        let (grant, event) = self.inner.store.write(|tx| {
            let now = Timestamp::now();
            let request = load(tx, id)?;
            match request.status {
                Status::Approved => {}
                Status::Consumed => {
                    return Err(ApprovalError::AlreadyConsumed { id: id.to_string() })
                }
                status => {
                    return Err(ApprovalError::NotApproved {
                        id: id.to_string(),
                        status,
                    })
                }
            }
            let stored = self.verified_grant(tx, id)?;
            let grant = stored.grant;
            if &grant.fingerprint != fingerprint {
                return Err(ApprovalError::FingerprintMismatch { id: id.to_string() });
            }
            if grant.requester != requester {
                return Err(ApprovalError::RequesterMismatch {
                    id: id.to_string(),
                    owner: grant.requester,
                    requester: requester.to_string(),
                });
            }
            if grant.resource != resource {
                return Err(ApprovalError::ResourceMismatch {
                    id: id.to_string(),
                    granted: grant.resource,
                    resource: resource.to_string(),
                });
            }
            if stored.consumed_at.is_some() {
                return Err(ApprovalError::AlreadyConsumed { id: id.to_string() });
            }
            if grant.expires_at <= now {
                return Err(ApprovalError::GrantExpired {
                    id: id.to_string(),
                    expires_at: grant.expires_at,
                });
            }
            self.mark(tx, grant, now)
        })?;
        self.emit(vec![event]);
        Ok(grant)
    }

    /// The stored grant of `id`, refused unless its signature holds. An
    /// approved request without a grant row can only come from an edit.
    fn verified_grant(
        &self,
        conn: &Connection,
        id: &str,
    ) -> Result<rows::StoredGrant, ApprovalError> {
        let stored = rows::load_grant(conn, id)?
            .ok_or_else(|| ApprovalError::TamperedGrant { id: id.to_string() })?;
        if let Err(e) = stored.grant.verify(&self.inner.verifying_key) {
            tracing::error!(
                request_id = %id,
                requester = %stored.grant.requester,
                resource = %stored.grant.resource,
                "approval grant fails its signature check; refused"
            );
            return Err(e);
        }
        Ok(stored)
    }

    fn mark(
        &self,
        conn: &Connection,
        grant: Grant,
        now: Timestamp,
    ) -> Result<(Grant, ApprovalEvent), ApprovalError> {
        let id = grant.request_id.clone();
        if !rows::mark_consumed(conn, &id, now)? {
            return Err(ApprovalError::AlreadyConsumed { id });
        }
        rows::transition(conn, &id, Status::Approved, Status::Consumed, None, None)?;
        let event = ApprovalEvent {
            request_id: id.clone(),
            event: EventKind::Consumed,
            actor: Some(grant.requester.clone()),
            comment: None,
            request: load(conn, &id)?,
        };
        Ok((grant, event))
    }
}
