//! The enforcement path every protocol front shares.
//!
//! A front turns wire bytes into a [`Command`] and its classified
//! [`Statement`]s (SQL through `sluice-sql`, a Kubernetes request through
//! `sluice-kube`'s request-info parser) and renders what comes back in its
//! own protocol. Everything in between is here, written once:
//!
//! 1. **decide** ([`Pipeline::decide`]): policy, strictest of the parts;
//! 2. **review** ([`Pipeline::review`]): when policy says review, use the
//!    grant for exactly this command or ask for one (hold or defer);
//! 3. **record** ([`Pipeline::record`]): the command's audit record, before
//!    anything is forwarded (denied commands too);
//! 4. **wait** ([`Pipeline::before_forwarding`], [`Pipeline::before_results`],
//!    [`Pipeline::hold`]): what the front awaits before it forwards, or
//!    before it releases results;
//! 5. **respond** ([`Pipeline::respond`]): the response record.
//!
//! [`Pipeline::ask`] runs 1–3 for a front whose commands arrive one at a
//! time (HTTP). The SQL front calls the phases itself, per command of a
//! batch, with its SQL-only checks between them (COPY of masked tables,
//! SQL-level EXECUTE under review).
//!
//! What the client is told is a [`Refusal`]; each front renders it.

pub(crate) mod record;
pub(crate) mod refusal;
pub(crate) mod review;

use crate::policy::{DecisionCache, PolicyGates};
use record::{Answer, Commit, Recorder};
use review::{Asker, ReviewStep};
use sluice_approvals::Fingerprint;
use sluice_audit::ApprovalRef;
use sluice_core::{Command, Decision, Outcome, Refusal, SessionInfo, Statement};
use sluice_pg::MaskRules;
use sluice_policy::{RequestContext, ResourceInfo, Scope, Unmask};
use std::future::Future;
use std::pin::Pin;
use tracing::{info, warn};

/// Resolves when the front may go on (a record is durable, an approval
/// arrived); the error is what the client is told instead.
pub(crate) type Pending = Pin<Box<dyn Future<Output = Result<(), Refusal>> + Send>>;

/// Which front a session came through: how its commands are named to the
/// client, and what they reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Front {
    Sql,
    Kubernetes,
    S3,
}

impl Front {
    /// What the client calls one command.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Front::Sql => "statement",
            Front::Kubernetes | Front::S3 => "request",
        }
    }
}

/// One client session's pass through the pipeline.
pub(crate) struct Pipeline {
    pub(crate) shared: PolicyGates,
    pub(crate) scope: Scope,
    decisions: DecisionCache,
    pub(crate) recorder: Option<Recorder>,
    /// The approval request the session's held command waits for.
    pending_approval: Option<String>,
    front: Front,
}

/// What [`Pipeline::ask`] says about one command.
pub(crate) enum Step {
    /// Forward it once `durable` resolves (its record, and for an approved
    /// command the approval, are durable).
    Run { seq: Option<u64> },
    /// Waits for a human: tell the client `notice` (if the protocol can),
    /// forward once `until` resolves.
    Hold {
        seq: Option<u64>,
        /// The approval request it waits for.
        request: String,
        notice: Refusal,
        until: Pending,
    },
    /// Does not run; `seq` is its record.
    Refused { seq: Option<u64>, refusal: Refusal },
}

impl PolicyGates {
    /// Starts a session's pass: its policy scope, whether it sees raw
    /// values, its audit session. `None` masking: raw values (none
    /// configured, or a policy unmasks this identity).
    pub(crate) fn pipeline(
        &self,
        meta: &SessionInfo<'_>,
        front: Front,
    ) -> (Pipeline, Option<MaskRules>) {
        let resource = self
            .resources
            .get(meta.resource)
            .cloned()
            .unwrap_or_else(|| ResourceInfo {
                name: meta.resource.to_owned(),
                ..ResourceInfo::default()
            });
        let ctx = RequestContext {
            client_addr: Some(meta.peer.ip()),
        };
        let policies = self.policies.load_full();
        let scope = policies.scope(meta.identity, &resource, &ctx);
        let unmasked_by = match policies.may_unmask(&scope) {
            Unmask::Unmasked { policy } if self.masks.contains_key(&resource.name) => {
                info!(policy = %policy.id, "unmasked session: policy lets it see raw values");
                Some(policy.id)
            }
            _ => None,
        };
        let mask = match unmasked_by {
            Some(_) => None,
            None => self.masks.get(&resource.name).cloned(),
        };
        let recorder = self
            .audit
            .clone()
            .map(|(log, settings)| Recorder::start(log, settings, meta, unmasked_by));
        let pipeline = Pipeline {
            shared: self.clone(),
            scope,
            decisions: DecisionCache::new(policies),
            recorder,
            pending_approval: None,
            front,
        };
        (pipeline, mask)
    }
}

impl Pipeline {
    /// Phase 1: the strictest decision over the command's parts, and the
    /// index of the part that decided it.
    pub(crate) fn decide(&mut self, statements: &[Statement]) -> (Decision, usize) {
        let policies = self.shared.policies.load_full();
        let mut strictest: Option<(Decision, usize)> = None;
        for (i, statement) in statements.iter().enumerate() {
            let decision = self
                .decisions
                .decide(policies.clone(), &self.scope, statement);
            if strictest
                .as_ref()
                .is_none_or(|(d, _)| decision.strictness() > d.strictness())
            {
                strictest = Some((decision, i));
            }
        }
        strictest.unwrap_or_else(|| (Decision::allow(Vec::new()), 0))
    }

    /// Whether a review decision can be acted on here (an approval store
    /// is configured); without one, review is refused like a deny.
    pub(crate) fn reviews(&self, decision: &Decision) -> bool {
        matches!(decision.outcome, Outcome::Review { .. }) && self.shared.approvals.is_some()
    }

    /// Phase 2, for a command policy sends to review: an approval for
    /// exactly this command (its text, parameters and `binding`) is used
    /// once; otherwise one is asked for.
    pub(crate) fn review(
        &self,
        command: &Command,
        statements: &[Statement],
        decision: &Decision,
        binding: &str,
    ) -> Option<ReviewStep> {
        let service = self.shared.approvals.as_ref()?;
        let asker = Asker {
            identity: self.scope.identity(),
            resource: &self.scope.resource().name,
            session_state: binding,
            noun: self.front.noun(),
        };
        Some(review::review(
            service, &asker, command, statements, decision,
        ))
    }

    /// Phase 3: appends the command's record; `Ok(None)` when there is no
    /// audit log, or (for a command that changes nothing, under
    /// `fail_open_reads`) when the log cannot write.
    pub(crate) fn record(
        &mut self,
        command: &Command,
        statements: &[Statement],
        decision: &Decision,
        approval: Option<ApprovalRef>,
        read_like: bool,
    ) -> Result<Option<u64>, Refusal> {
        let Some(recorder) = self.recorder.as_mut() else {
            return Ok(None);
        };
        match recorder.statement(command, statements, decision, approval) {
            Ok(seq) => Ok(Some(seq)),
            Err(_) if read_like && recorder.fail_open_reads() => {
                tracing::error!(command = %command.text, "audit log cannot write: read forwarded UNRECORDED (fail_open_reads)");
                Ok(None)
            }
            Err(refusal) => Err(refusal),
        }
    }

    /// What the client is told when policy refuses part `culprit`.
    pub(crate) fn refusal(&self, decision: &Decision, statement: &Statement) -> Refusal {
        warn!(
            action = %statement.action,
            outcome = refusal::outcome_name(&decision.outcome),
            policies = %refusal::policy_ids(decision),
            command = %statement.text,
            "{} refused", self.front.noun()
        );
        refusal::refusal(decision, statement, self.scope.resource(), self.front)
    }

    /// Phases 1–3 for one command on its own: decided, reviewed, recorded.
    /// The parts before `decided_from` continue a command already decided
    /// (an upload's parts): recorded with it, not decided again.
    /// `read_like`: it changes nothing, so `fail_open_reads` may let it run
    /// unrecorded.
    pub(crate) fn ask(
        &mut self,
        command: &Command,
        statements: &[Statement],
        decided_from: usize,
        binding: &str,
        read_like: bool,
    ) -> Result<Step, Refusal> {
        let decided = statements.get(decided_from..).unwrap_or_default();
        let (decision, culprit) = self.decide(decided);
        let culprit = culprit + decided_from;
        let mut approval = None;
        let mut refused = None;
        let mut hold = None;
        if self.reviews(&decision) {
            match self.review(command, statements, &decision, binding) {
                Some(ReviewStep::Approved(r)) => approval = Some(r),
                Some(ReviewStep::Refuse { reply, request }) => {
                    approval = request;
                    refused = Some(reply);
                }
                Some(ReviewStep::Hold {
                    request,
                    fingerprint,
                    notice,
                }) => {
                    hold = Some((request.request_id.clone(), fingerprint, notice));
                    approval = Some(request);
                }
                None => {}
            }
        } else if !decision.is_allow() {
            let unknown = Statement::unknown("", "nothing to decide");
            let statement = statements.get(culprit).unwrap_or(&unknown);
            refused = Some(self.refusal(&decision, statement));
        }
        let runs = refused.is_none();
        let seq = self.record(
            command,
            statements,
            &decision,
            approval.clone(),
            runs && read_like,
        )?;
        if let Some(refusal) = refused {
            return Ok(Step::Refused { seq, refusal });
        }
        if let Some((request, fingerprint, notice)) = hold {
            let until = self.hold(request.clone(), fingerprint);
            return Ok(Step::Hold {
                seq,
                request,
                notice,
                until,
            });
        }
        Ok(Step::Run { seq })
    }

    /// Phase 4 for a held command: resolves once it is approved, its grant
    /// used and the approval recorded durably.
    pub(crate) fn hold(&mut self, request: String, fingerprint: Fingerprint) -> Pending {
        let Some(service) = self.shared.approvals.clone() else {
            return Box::pin(async {
                Err(Refusal::new(
                    sluice_core::RefusalKind::Internal,
                    "held for approval without an approval store",
                ))
            });
        };
        self.pending_approval = Some(request.clone());
        review::wait(review::Wait {
            service,
            request_id: request,
            fingerprint,
            requester: self.scope.identity().name.clone(),
            resource: self.scope.resource().name.clone(),
            noun: self.front.noun(),
            audit: self.recorder.as_ref().map(Recorder::audit_parts),
        })
    }

    /// Phase 4: resolves once record `seq` survives a power loss.
    pub(crate) fn before_forwarding(&self, seq: Option<u64>) -> Option<Pending> {
        Some(self.recorder.as_ref()?.before_forwarding(seq?))
    }

    /// Phase 4: resolves once record `seq` may let results reach the client.
    pub(crate) fn before_results(
        &self,
        seq: Option<u64>,
        commit: Commit,
        read_like: bool,
    ) -> Option<Pending> {
        Some(
            self.recorder
                .as_ref()?
                .before_results(seq?, commit, read_like),
        )
    }

    /// Phase 5: what came back for record `seq`.
    pub(crate) fn respond(&mut self, seq: Option<u64>, answer: Answer) {
        if let (Some(recorder), Some(seq)) = (self.recorder.as_mut(), seq) {
            recorder.response(seq, answer);
        }
    }

    /// Phase 5 for a command that streams (exec): bytes that passed on one
    /// of its streams. Input waits for its record before it is forwarded:
    /// the returned wait resolves once it may.
    pub(crate) fn stream(
        &mut self,
        seq: Option<u64>,
        stream: &str,
        inbound: bool,
        data: &[u8],
    ) -> Option<Pending> {
        let (recorder, seq) = (self.recorder.as_mut()?, seq?);
        match recorder.stream(seq, stream, inbound, data) {
            Ok(at) if inbound => Some(recorder.before_results(at, Commit::Now, false)),
            Ok(_) => None,
            Err(refusal) => Some(Box::pin(async move { Err(refusal) })),
        }
    }

    /// The client left or cancelled while a command waited for approval.
    pub(crate) fn withdraw(&mut self, reason: &str) {
        if let Some(id) = self.pending_approval.take() {
            self.withdraw_request(&id, reason);
        }
    }

    /// The approval that a command of a batch waits for is withdrawn (a
    /// later command of the batch was refused).
    pub(crate) fn withdraw_request(&self, id: &str, reason: &str) {
        if let Some(service) = &self.shared.approvals {
            match service.store.withdraw(id, Some(reason.to_owned())) {
                Ok(_) => info!(request = %id, reason, "approval request withdrawn"),
                Err(e) => warn!(request = %id, error = %e, "approval request not withdrawn"),
            }
        }
    }

    /// The session is over.
    pub(crate) fn end(&mut self, reason: &str) {
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.end(reason);
        }
    }
}
