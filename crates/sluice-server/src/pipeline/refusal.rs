//! What the client is told when policy does not let a command run.

use super::Front;
use sluice_core::{Action, Decision, Outcome, Refusal, RefusalKind, Statement};
use sluice_policy::ResourceInfo;

pub(crate) fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Allow => "allow",
        Outcome::Review { .. } => "review",
        Outcome::Deny => "deny",
    }
}

pub(crate) fn policy_ids(decision: &Decision) -> String {
    decision
        .policies
        .iter()
        .map(|p| p.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the client is told when a command does not run.
pub(super) fn refusal(
    decision: &Decision,
    statement: &Statement,
    resource: &ResourceInfo,
    front: Front,
) -> Refusal {
    let first = decision.policies.first();
    let id = first.map_or(sluice_policy::DEFAULT_DENY_ID, |p| p.id.as_str());
    let reason = first.and_then(|p| p.reason.clone()).unwrap_or_else(|| {
        format!(
            "no policy permits {} on resource \"{}\"",
            statement.action, resource.name
        )
    });
    let mut detail = format!("action: {}", statement.action);
    if let Some(s3) = &statement.s3 {
        detail.push_str(&format!("; object: {}", s3.url()));
    }
    if statement.action == Action::Unknown {
        if let Some(e) = &statement.error {
            detail.push_str(&format!("; not understood: {e}"));
        }
    }
    if decision.policies.len() > 1 {
        detail.push_str(&format!("; policies: {}", policy_ids(decision)));
    }
    let noun = front.noun();
    match &decision.outcome {
        Outcome::Review { approver_group, quorum } => Refusal::new(
            RefusalKind::Denied,
            format!("{noun} requires review by \"{approver_group}\" (policy \"{id}\"): {reason}"),
        )
        .with_detail(format!("{detail}; approvals needed: {quorum}"))
        .with_hint("This gateway holds no approvals (no approval store); ask an approver to run it, or for a policy that permits it."),
        _ => Refusal::new(RefusalKind::Denied, format!("denied by policy \"{id}\": {reason}"))
            .with_detail(detail)
            .with_hint(match front {
                Front::Sql => format!(
                    "The statement did not reach the database. `sluice policy check --identity <you> --resource {} \"<sql>\"` shows why.",
                    resource.name
                ),
                Front::Kubernetes => "The request did not reach the API server.".to_owned(),
                Front::S3 => "The request did not reach the object store.".to_owned(),
            }),
    }
}
