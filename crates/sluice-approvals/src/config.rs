use std::time::Duration;

/// Settings of the approval store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalsConfig {
    /// Identities in any of these groups can never approve or deny, even if
    /// they are also in a request's approver group: an agent must not be
    /// able to unlock its own (or another agent's) statements.
    pub agent_groups: Vec<String>,
    /// How long approvers have when a request names no TTL.
    pub default_ttl: Duration,
    /// How long a grant can be used after the quorum is reached. Its own
    /// clock, not the request's: an approval at the last second of a
    /// request must still leave a deferred client time to re-run.
    pub grant_ttl: Duration,
    /// How often a waiter re-reads the store in case another process (or
    /// another [`crate::Approvals`] opened on the same file) decided.
    pub wait_poll: Duration,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        ApprovalsConfig {
            agent_groups: Vec::new(),
            default_ttl: Duration::from_secs(15 * 60),
            grant_ttl: Duration::from_secs(15 * 60),
            wait_poll: Duration::from_secs(1),
        }
    }
}
