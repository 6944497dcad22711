//! What a session does when policy says `review`: use an approval that
//! exists for this exact statement, or ask for one, then either hold the
//! statement until a human decides (`wait`) or refuse it with the request
//! id so the client re-runs it later (`deferred`).

use super::record::encode_param_value;
use super::Pending;
use crate::approvals::ApprovalService;
use crate::config::ApprovalMode;
use sluice_approvals::{
    fingerprint_in, ApprovalError, Fingerprint, ListFilter, Mode, NewRequest, Outcome, Status,
};
use sluice_audit::{ApprovalRef, AuditLog};
use sluice_core::{
    Command, Decision, Identity, Outcome as PolicyOutcome, Refusal, RefusalKind, Statement,
};
use tracing::{info, warn};

/// How one reviewed command proceeds.
pub(crate) enum ReviewStep {
    /// An approval for exactly this statement existed and is now used up:
    /// the command runs, recorded with it.
    Approved(ApprovalRef),
    /// Refused now (deferred mode, or the approval could not be used).
    Refuse {
        reply: Refusal,
        request: Option<ApprovalRef>,
    },
    /// Held until decided (wait mode); `notice` is what the client may be
    /// told meanwhile.
    Hold {
        request: ApprovalRef,
        fingerprint: Fingerprint,
        notice: Refusal,
    },
}

/// Who asks, for what, where, and what else the approval is bound to: for
/// SQL the session state (see [`sluice_sql::SessionState::describe`]), for
/// an HTTP request its body's digest.
pub(crate) struct Asker<'a> {
    pub identity: &'a Identity,
    pub resource: &'a str,
    pub session_state: &'a str,
    /// What the client calls the command in messages: "statement", "request".
    pub noun: &'static str,
}

pub(crate) fn review(
    service: &ApprovalService,
    asker: &Asker<'_>,
    command: &Command,
    statements: &[Statement],
    decision: &Decision,
) -> ReviewStep {
    let PolicyOutcome::Review {
        approver_group,
        quorum,
    } = &decision.outcome
    else {
        return refuse(internal(
            "review of a command policy did not send to review",
        ));
    };
    let fp = fingerprint_in(
        asker.session_state,
        asker.resource,
        &asker.identity.name,
        &command.text,
        &command.params,
    );
    // An approval that already exists is used exactly once, in either mode.
    match service
        .store
        .consume(&fp, &asker.identity.name, asker.resource)
    {
        Ok(Some(grant)) => {
            info!(request = %grant.request_id, approvers = ?grant.approvers, "running an approved statement");
            return ReviewStep::Approved(ApprovalRef {
                request_id: grant.request_id,
                approvers: grant.approvers,
            });
        }
        Ok(None) => {}
        Err(e) => {
            service.record_refusal("-", &asker.identity.name, "grant", &e.to_string());
            return refuse(unusable(&e, asker.noun));
        }
    }
    // An approval for the same text under other settings does not count:
    // say so, and ask again for these settings.
    let mismatch = approved_under_other_state(service, asker, command);
    let mode = service.mode(&asker.identity.name, asker.resource);
    if mode == ApprovalMode::Deferred {
        if let Some(id) = pending_request(service, &fp, asker) {
            return deferred(service, asker.noun, id, approver_group, *quorum, mismatch);
        }
    }
    let first = decision.policies.first();
    let new = NewRequest {
        requester: asker.identity.clone(),
        resource: asker.resource.to_owned(),
        text: command.text.clone(),
        params: command.params.iter().map(encode_param_value).collect(),
        session_state: asker.session_state.to_owned(),
        fingerprint: fp.clone(),
        actions: statements
            .iter()
            .map(|s| s.action.as_str().to_owned())
            .collect(),
        policy_id: first.map_or_else(String::new, |p| p.id.clone()),
        reason: first.and_then(|p| p.reason.clone()),
        approver_group: approver_group.clone(),
        quorum: *quorum,
        mode: match mode {
            ApprovalMode::Wait => Mode::Wait,
            ApprovalMode::Deferred => Mode::Deferred,
        },
        ttl: Some(match mode {
            ApprovalMode::Wait => service.wait_timeout,
            ApprovalMode::Deferred => service.request_ttl,
        }),
    };
    let request = match service.store.create(new) {
        Ok(r) => r,
        Err(e) => return refuse(store_failed(&e, asker.noun)),
    };
    info!(request = %request.id, mode = ?mode, group = %approver_group, "approval requested");
    match mode {
        ApprovalMode::Deferred => deferred(
            service,
            asker.noun,
            request.id,
            approver_group,
            *quorum,
            mismatch,
        ),
        ApprovalMode::Wait => {
            let why = request
                .reason
                .as_deref()
                .map_or_else(String::new, |r| format!(": {r}"));
            let notice = Refusal::new(
                RefusalKind::ApprovalRequired,
                format!(
                    "{} held for approval: request {} (policy \"{}\"{why}); waiting up to {} s",
                    asker.noun,
                    request.id,
                    request.policy_id,
                    service.wait_timeout.as_secs()
                ),
            )
            .with_detail(with_mismatch(
                format!("approvals needed: {quorum} from group \"{approver_group}\""),
                mismatch.as_deref(),
            ))
            .with_hint(service.how_to_approve(&request.id));
            ReviewStep::Hold {
                request: pending_ref(request.id),
                fingerprint: fp,
                notice,
            }
        }
    }
}

/// An approved, unused request for this exact statement from this identity
/// whose session state differs: the approver approved what the text meant
/// there, so it does not run here. Recorded; returns what the client is
/// told.
fn approved_under_other_state(
    service: &ApprovalService,
    asker: &Asker<'_>,
    command: &Command,
) -> Option<String> {
    let params: Vec<Option<String>> = command.params.iter().map(encode_param_value).collect();
    let other = requests_of(service, Status::Approved, asker).find(|r| {
        r.text == command.text && r.params == params && r.session_state != asker.session_state
    })?;
    let shown = |state: &str| {
        if state.is_empty() {
            "the session defaults".to_owned()
        } else {
            state.to_owned()
        }
    };
    let states = format!(
        "approved under: {}; this session: {}",
        shown(&other.session_state),
        shown(asker.session_state)
    );
    warn!(request = %other.id, %states, "approved statement run under another session state: not used");
    service.record_refusal(&other.id, &asker.identity.name, "session_state", &states);
    Some(format!(
        "approval {} was granted for this statement under other session settings ({states}) and does not apply here",
        other.id
    ))
}

/// A pending request of this identity for this exact statement: an agent
/// that retries does not file a new request each time.
fn pending_request(
    service: &ApprovalService,
    fp: &Fingerprint,
    asker: &Asker<'_>,
) -> Option<String> {
    requests_of(service, Status::Pending, asker)
        .find(|r| &r.fingerprint == fp)
        .map(|r| r.id)
}

/// The asker's requests on this resource with `status` (none if the store
/// cannot be read: the caller then files a new request).
fn requests_of(
    service: &ApprovalService,
    status: Status,
    asker: &Asker<'_>,
) -> impl Iterator<Item = sluice_approvals::Request> {
    let (identity, resource) = (asker.identity.name.clone(), asker.resource.to_owned());
    service
        .store
        .list(ListFilter {
            status: Some(status),
            limit: 10_000,
        })
        .unwrap_or_default()
        .into_iter()
        .filter(move |r| r.requester.name == identity && r.resource == resource)
}

fn with_mismatch(detail: String, mismatch: Option<&str>) -> String {
    match mismatch {
        Some(m) => format!("{m}. {detail}"),
        None => detail,
    }
}

fn deferred(
    service: &ApprovalService,
    noun: &str,
    id: String,
    group: &str,
    quorum: u32,
    mismatch: Option<String>,
) -> ReviewStep {
    let reply = Refusal::new(
        RefusalKind::ApprovalRequired,
        format!("{noun} requires approval: request {id} is pending"),
    )
    .with_detail(with_mismatch(
        format!("approvals needed: {quorum} from group \"{group}\""),
        mismatch.as_deref(),
    ))
    .with_hint(format!(
        "Re-run the same {noun} (exactly the same) once request {id} is approved: it then runs exactly once. {}",
        service.how_to_approve(&id)
    ));
    ReviewStep::Refuse {
        reply,
        request: Some(pending_ref(id)),
    }
}

fn pending_ref(request_id: String) -> ApprovalRef {
    ApprovalRef {
        request_id,
        approvers: Vec::new(),
    }
}

fn refuse(reply: Refusal) -> ReviewStep {
    ReviewStep::Refuse {
        reply,
        request: None,
    }
}

fn internal(message: &str) -> Refusal {
    Refusal::new(RefusalKind::Internal, message.to_owned())
}

fn store_failed(e: &ApprovalError, noun: &str) -> Refusal {
    warn!(error = %e, "approval store failed: refusing the {noun}");
    Refusal::new(
        RefusalKind::ApprovalRefused,
        format!(
            "{noun} requires approval, but the approval store cannot be used, so it was not run"
        ),
    )
    .with_hint("The gateway log has the cause.")
}

/// An approval exists but may not be used (tampered, expired...).
fn unusable(e: &ApprovalError, noun: &str) -> Refusal {
    warn!(error = %e, "an approval for this {noun} was refused");
    Refusal::new(
        RefusalKind::ApprovalRefused,
        format!("the approval for this {noun} cannot be used: {e}"),
    )
    .with_hint(format!("The {noun} did not run. Ask for a new approval."))
}

/// Everything the wait needs, owned (the future outlives the gate call).
pub(crate) struct Wait {
    pub service: ApprovalService,
    pub request_id: String,
    pub fingerprint: Fingerprint,
    pub requester: String,
    pub resource: String,
    pub noun: &'static str,
    /// The session's audit log and id: the approval is recorded there,
    /// durably, before the statement is forwarded.
    pub audit: Option<(AuditLog, String)>,
}

/// Resolves when the statement may run (approved, grant used, recorded),
/// or with the error the client gets instead.
pub(crate) fn wait(w: Wait) -> Pending {
    Box::pin(async move {
        let id = w.request_id.clone();
        let noun = w.noun;
        let outcome = w
            .service
            .store
            .wait(&id)
            .await
            .map_err(|e| store_failed(&e, noun))?;
        match outcome {
            Outcome::Approved => {}
            Outcome::Denied { by, reason } => {
                return Err(Refusal::new(
                    RefusalKind::ApprovalRefused,
                    format!("{noun} denied by {by} (request {id}): {reason}"),
                )
                .with_hint(format!("The {noun} did not reach the target.")));
            }
            Outcome::Expired => {
                return Err(Refusal::new(
                    RefusalKind::ApprovalEnded,
                    format!(
                        "approval request {id} timed out after {} s: the {noun} did not run",
                        w.service.wait_timeout.as_secs()
                    ),
                )
                .with_hint("Nobody approved it in time. Ask an approver, then run it again."));
            }
            Outcome::Withdrawn { reason } => {
                return Err(Refusal::new(
                    RefusalKind::ApprovalEnded,
                    format!(
                        "approval request {id} was withdrawn{}: the {noun} did not run",
                        reason.map_or_else(String::new, |r| format!(" ({r})"))
                    ),
                ));
            }
            Outcome::Consumed => {
                return Err(Refusal::new(
                    RefusalKind::ApprovalRefused,
                    format!("the approval of request {id} was already used: the {noun} did not run here"),
                ));
            }
        }
        let store = w.service.store.clone();
        let (fp, requester, resource) = (w.fingerprint, w.requester, w.resource);
        let consume_id = id.clone();
        let grant = tokio::task::spawn_blocking(move || {
            store.consume_request(&consume_id, &fp, &requester, &resource)
        })
        .await
        .map_err(|_| internal("the approval check did not finish"))?
        .map_err(|e| unusable(&e, noun))?;
        info!(request = %id, approvers = ?grant.approvers, "approved statement released");
        if let Some((log, session)) = w.audit {
            let event = sluice_audit::ApprovalEvent {
                request_id: id,
                event: "approved".to_owned(),
                actor: grant.approvers.join(", "),
                comment: None,
            };
            let seq = log
                .append(&session, event)
                .map_err(|e| super::record::unrecorded(&e))?;
            log.durable(seq)
                .await
                .map_err(|e| super::record::unrecorded(&e))?;
        }
        Ok(())
    })
}
