//! Holding a session until its request is decided.

use crate::approvals::Approvals;
use crate::clock::Timestamp;
use crate::error::ApprovalError;
use crate::request::{Outcome, Request, Status};
use std::future::Future;
use std::time::Duration;

/// Never sleep less than this between re-reads, so a clock that reads
/// "not yet" right after the expiry sleep cannot spin.
const MIN_SLEEP: Duration = Duration::from_millis(5);

impl Approvals {
    /// Resolves when request `id` leaves `pending`. Wakes on a decision
    /// through this process's handles at once, on expiry by its own timer,
    /// and re-reads the store every `wait_poll` in case another process
    /// decided. Dropping the future is the way to stop waiting (the caller
    /// then [`withdraw`](Approvals::withdraw)s if the client left).
    pub fn wait(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Outcome, ApprovalError>> + Send + 'static {
        let this = self.clone();
        let id = id.to_string();
        async move { this.wait_for(&id).await }
    }

    async fn wait_for(&self, id: &str) -> Result<Outcome, ApprovalError> {
        loop {
            let mut wake = self.inner.waiters.subscribe(id);
            let request = self
                .get(id)?
                .ok_or_else(|| ApprovalError::UnknownRequest(id.to_string()))?;
            if let Some(outcome) = outcome_of(&request) {
                return Ok(outcome);
            }
            let until_expiry = request
                .expires_at
                .remaining_from(Timestamp::now())
                .max(MIN_SLEEP);
            let poll = self.inner.config.wait_poll.max(MIN_SLEEP);
            tokio::select! {
                () = wake.changed() => {}
                () = tokio::time::sleep(until_expiry) => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Waiter entries held in memory; zero when nobody waits.
    pub fn waiting(&self) -> usize {
        self.inner.waiters.len()
    }
}

/// What a request's state means to a waiter; `None` while pending.
pub fn outcome_of(request: &Request) -> Option<Outcome> {
    Some(match request.status {
        Status::Pending => return None,
        Status::Approved => Outcome::Approved,
        Status::Denied => {
            let (by, reason) = request
                .denial()
                .map(|v| (v.approver.clone(), v.comment.clone().unwrap_or_default()))
                .unwrap_or_default();
            Outcome::Denied { by, reason }
        }
        Status::Expired => Outcome::Expired,
        Status::Withdrawn => Outcome::Withdrawn {
            reason: request.withdraw_reason.clone(),
        },
        Status::Consumed => Outcome::Consumed,
    })
}
