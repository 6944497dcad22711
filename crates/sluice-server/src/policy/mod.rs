//! Policy on the data path: every statement is classified (`sluice-sql`)
//! and decided (`sluice-policy`) before it is forwarded. The policies can
//! be swapped at run time (SIGHUP) without touching open sessions; a failed
//! reload keeps the last good set.

use crate::approvals::ApprovalService;
use crate::config::{AuditSettings, Config, ConfigError};
use crate::pipeline::record::{durability, Answer, Commit, Durability, Recorder};
use crate::pipeline::review::ReviewStep;
use crate::pipeline::{Front, Pending, Pipeline};
use arc_swap::ArcSwap;
use sluice_audit::AuditLog;
use sluice_core::{Action, Command, CommandOrigin, Refusal, Statement};
use sluice_pg::{
    answers, sqlstate, Durable, Gate, GateFactory, MaskRules, PgErrorReply, Response, SessionInfo,
    UnitContext, Verdict,
};
use sluice_policy::{PolicySet, ResourceInfo};
use sluice_sql::{Classifier, ClassifierConfig, SessionState, SqlSession};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tracing::info;

mod cache;
mod catalog;

pub(crate) use cache::DecisionCache;
use catalog::{CatalogView, Verdicts};

/// Loads the policies the config names. No `[policy]` section means no
/// policy, and no policy permits anything.
pub fn load_policies(config: &Config) -> Result<PolicySet, ConfigError> {
    let loaded = match &config.policy {
        Some(p) => PolicySet::load(&config.base_dir, &p.files),
        None => PolicySet::from_sources(&[]),
    };
    loaded.map_err(|e| config.error(format!("[policy] {e}")))
}

/// The resources as policy sees them: name, kind and tags.
pub fn resource_infos(config: &Config) -> HashMap<String, ResourceInfo> {
    config
        .resources
        .iter()
        .map(|r| {
            let info = ResourceInfo {
                name: r.name.clone(),
                kind: r.kind.clone(),
                tags: r.tags.clone(),
            };
            (r.name.clone(), info)
        })
        .collect()
}

/// What every session's gate shares.
#[derive(Clone)]
pub struct PolicyGates {
    classifier: Arc<Classifier>,
    pub(crate) policies: Arc<ArcSwap<PolicySet>>,
    pub(crate) resources: Arc<HashMap<String, ResourceInfo>>,
    pub(crate) audit: Option<(AuditLog, AuditSettings)>,
    pub(crate) approvals: Option<ApprovalService>,
    /// Masking rules per resource (none: masking off).
    pub(crate) masks: Arc<HashMap<String, MaskRules>>,
    verdicts: Verdicts,
}

impl PolicyGates {
    pub fn new(policies: PolicySet, resources: HashMap<String, ResourceInfo>) -> Self {
        Self {
            classifier: Arc::new(Classifier::new(ClassifierConfig::default())),
            policies: Arc::new(ArcSwap::from_pointee(policies)),
            resources: Arc::new(resources),
            audit: None,
            approvals: None,
            masks: Arc::new(HashMap::new()),
            verdicts: Verdicts::default(),
        }
    }

    /// Records every session and command in `log` (the gateway always
    /// does; benchmarks of the decision path alone do not).
    pub fn with_audit(mut self, log: AuditLog, settings: AuditSettings) -> Self {
        self.audit = Some((log, settings));
        self
    }

    /// Holds `review` statements for approval (without it, review is
    /// refused).
    pub fn with_approvals(mut self, approvals: ApprovalService) -> Self {
        self.approvals = Some(approvals);
        self
    }

    /// Masks every session's results with its resource's rules, unless
    /// policy permits `unmask`.
    pub fn with_masking(mut self, masks: HashMap<String, MaskRules>) -> Self {
        self.masks = Arc::new(masks);
        self
    }

    /// Replaces the policies for every statement decided from now on.
    pub fn swap(&self, policies: PolicySet) {
        info!(policies = policies.policy_ids().len(), "policies reloaded");
        self.policies.store(Arc::new(policies));
    }
}

impl GateFactory for PolicyGates {
    type Gate = PolicyGate;

    fn open(&self, session: &SessionInfo<'_>) -> PolicyGate {
        let (pipeline, mask) = self.pipeline(&session.session, Front::Sql);
        PolicyGate {
            classifier: self.classifier.clone(),
            pipeline,
            sql: SqlSession::default(),
            mask,
            catalog: CatalogView::new(session.session.resource, &self.verdicts),
            awaiting: VecDeque::new(),
            state: SessionState::at_startup(session.parameters),
            outside_transaction: false,
        }
    }
}

/// One session's gate: the SQL front's view of the shared pipeline, with
/// what only SQL has — its SQL-level prepared statements (so `EXECUTE name`
/// is judged by what was prepared), transaction state and catalog.
pub struct PolicyGate {
    classifier: Arc<Classifier>,
    pipeline: Pipeline,
    sql: SqlSession,
    /// Statement records of the commands that ran, in order, waiting for
    /// their responses (`None`: ran unrecorded under `fail_open_reads`).
    awaiting: VecDeque<(Option<u64>, bool)>,
    /// The settings approvals are bound to, as far as Sluice follows them.
    state: SessionState,
    /// The unit being decided runs certainly outside a transaction block.
    outside_transaction: bool,
    /// How this session's results are masked (`None`: raw values).
    mask: Option<MaskRules>,
    /// The resource's catalog: names for masking, functions for proving
    /// calls read-only.
    catalog: CatalogView,
}

/// The pipeline's wait, as the PostgreSQL session awaits it.
fn pg(pending: Pending) -> Durable {
    Box::pin(async move { pending.await.map_err(PgErrorReply::from) })
}

impl PolicyGate {
    /// Holds the unit until the catalog is read again and the COPY's tables
    /// are judged on it (and its records are durable).
    fn recheck_copy(&self, tables: Vec<String>, recorded: Option<u64>) -> Verdict {
        let (Some(mask), Some((_, refresh))) = (self.mask.clone(), self.catalog.masking()) else {
            return Verdict::Deny {
                at: 0,
                reply: crate::masking::copy_refused(
                    "the table",
                    "Sluice does not know its columns".into(),
                ),
            };
        };
        let durable = self.pipeline.before_forwarding(recorded);
        Verdict::ForwardWhenDurable(Box::pin(async move {
            let catalog = refresh().await;
            match crate::masking::copy_verdict(&mask.masker, Some(&catalog), &tables) {
                crate::masking::CopyVerdict::Allowed => {}
                crate::masking::CopyVerdict::Refused(reply) => return Err(reply),
                crate::masking::CopyVerdict::Unknown => {
                    return Err(crate::masking::copy_refused(
                        &tables.join(", "),
                        "Sluice does not know its columns".into(),
                    ))
                }
            }
            match durable {
                Some(d) => d.await.map_err(PgErrorReply::from),
                None => Ok(()),
            }
        }))
    }
}

impl PolicyGate {
    /// Decides and records one command of a unit, adding what it needs to
    /// `needs` (a refusal included). `Err`: the audit store failed and
    /// nothing of the unit may run.
    fn decide_one(
        &mut self,
        at: usize,
        command: &Command,
        needs: &mut UnitNeeds,
    ) -> Result<(), PgErrorReply> {
        let statements = self.statements(command);
        let (decision, culprit) = self.pipeline.decide(&statements);
        let review = self.pipeline.reviews(&decision);
        // A Parse runs nothing: review happens at its Execute, with the
        // parameters the approval is bound to.
        if review && command.origin == CommandOrigin::Parse {
            return Ok(());
        }
        let mut approval = None;
        let mut refused = None;
        if review && self.runs_sql_prepared(command, &statements) {
            // An approval binds to the text the client sends; `EXECUTE name`
            // does not show what it runs, and the name can be prepared again.
            refused = Some(PgErrorReply::error(
                sqlstate::INSUFFICIENT_PRIVILEGE,
                "a statement that needs approval cannot run through SQL-level EXECUTE",
            )
            .with_hint("Send the statement itself (parameters through the extended protocol are fine): the approval is bound to its exact text."));
        } else if review {
            let session_state = self.state.describe();
            match self
                .pipeline
                .review(command, &statements, &decision, &session_state)
            {
                Some(ReviewStep::Approved(r)) => approval = Some(r),
                Some(ReviewStep::Refuse { reply, request }) => {
                    approval = request;
                    refused = Some(reply.into());
                }
                Some(ReviewStep::Hold {
                    request,
                    fingerprint,
                    notice,
                }) => {
                    if needs.hold.is_some() {
                        refused = Some(
                            PgErrorReply::error(
                                sqlstate::FEATURE_NOT_SUPPORTED,
                                "only one statement of a batch can wait for approval",
                            )
                            .with_hint(
                                "Send the statements that need approval one batch at a time.",
                            ),
                        );
                    } else {
                        needs.hold = Some((request.request_id.clone(), fingerprint, notice));
                        needs.hold_at = (at, self.awaiting.len());
                    }
                    approval = Some(request);
                }
                None => {}
            }
        }
        if refused.is_none() && (decision.is_allow() || review) {
            refused = self.copy_check(&statements, needs);
        }
        let runs = refused.is_none() && (decision.is_allow() || review);
        // A Parse runs nothing: what runs is recorded per Execute (with its
        // parameters). A refused Parse is recorded as such.
        let mut seq = None;
        if command.origin != CommandOrigin::Parse || !runs {
            let read_like = runs && statements.iter().all(|s| durability(s).is_read_like());
            seq = self
                .pipeline
                .record(command, &statements, &decision, approval, read_like)
                .map_err(PgErrorReply::from)?;
        }
        needs.recorded = seq.or(needs.recorded);
        if runs {
            for statement in &statements {
                match durability(statement) {
                    Durability::Read => {}
                    Durability::NoChange => needs.all_reads = false,
                    Durability::Transactional => needs.transactional = true,
                    Durability::Wait => needs.wait = true,
                }
                needs.ends_or_starts_transaction |= statement.action == Action::Tcl;
            }
            let mut changes_state = false;
            if command.origin != CommandOrigin::Parse {
                // Settings follow exactly only for a lone statement outside
                // a transaction block (one that may roll back is not).
                let outside = self.outside_transaction
                    && statements.len() == 1
                    && statements.iter().all(|s| s.action != Action::Tcl);
                for statement in &statements {
                    self.catalog.ran(statement);
                    changes_state |= self.state.ran(statement, !outside);
                }
            }
            if answers(command) && self.pipeline.recorder.is_some() {
                self.awaiting.push_back((seq, changes_state));
            }
            return Ok(());
        }
        let reply = refused.unwrap_or_else(|| {
            let unknown = Statement::unknown("", "no statement");
            let statement = statements.get(culprit).unwrap_or(&unknown);
            self.pipeline.refusal(&decision, statement).into()
        });
        needs.refused = Some(reply);
        Ok(())
    }

    /// COPY TO STDOUT carries no column names, so column rules cannot be
    /// applied to its data: in a masked session, a COPY of a table with a
    /// masked column is refused; the tables the catalog does not know (made
    /// since it was read) are checked again, before the COPY runs.
    /// Content detectors still apply to every COPY.
    fn copy_check(&self, statements: &[Statement], needs: &mut UnitNeeds) -> Option<PgErrorReply> {
        let mask = self.mask.as_ref()?;
        let tables: Vec<String> = statements
            .iter()
            .filter(|s| s.action == Action::CopyOut || s.copies_out)
            .flat_map(|s| s.tables.iter().cloned())
            .collect();
        if tables.is_empty() {
            return None;
        }
        let catalog = self.catalog.masking().map(|(c, _)| c.clone());
        match crate::masking::copy_verdict(&mask.masker, catalog.as_deref(), &tables) {
            crate::masking::CopyVerdict::Allowed => None,
            crate::masking::CopyVerdict::Refused(reply) => Some(reply),
            crate::masking::CopyVerdict::Unknown => {
                needs.copy_recheck.extend(tables);
                None
            }
        }
    }

    /// Whether a statement of the command runs a SQL-level prepared
    /// statement (`EXECUTE name`): its own classification is `prepare`,
    /// resolved it is what was prepared.
    fn runs_sql_prepared(&self, command: &Command, resolved: &[Statement]) -> bool {
        if command.text.is_empty() {
            return false;
        }
        let own = self.classifier.classify(&command.text);
        own.iter().zip(resolved).any(|(own, resolved)| {
            own.action == Action::Prepare && resolved.action != Action::Prepare
        })
    }

    /// The statements of a command, classified and resolved in this session.
    fn statements(&mut self, command: &Command) -> Vec<Statement> {
        match command.origin {
            // A fast-path call names a function by OID: nothing to judge.
            CommandOrigin::FunctionCall => vec![Statement::unknown(
                "",
                "fast-path function call (no SQL text)",
            )],
            CommandOrigin::Http => vec![Statement::unknown(
                &command.text,
                "an HTTP request on a PostgreSQL session",
            )],
            CommandOrigin::Execute if command.text.is_empty() => vec![Statement::unknown(
                "",
                "Execute of a portal Sluice did not see bound",
            )],
            CommandOrigin::SimpleQuery | CommandOrigin::Parse | CommandOrigin::Execute => {
                let classified = self.classifier.classify(&command.text);
                let mut statements = self.sql.resolve(&self.classifier, &classified);
                for statement in &mut statements {
                    self.catalog.resolve(statement);
                }
                statements
            }
        }
    }
}

/// What one unit's decisions add up to.
#[derive(Default)]
struct UnitNeeds {
    /// The last record appended for the unit.
    recorded: Option<u64>,
    wait: bool,
    transactional: bool,
    all_reads: bool,
    ends_or_starts_transaction: bool,
    /// A command of the unit waits for approval: request id, fingerprint,
    /// what the client is told meanwhile.
    hold: Option<(String, sluice_approvals::Fingerprint, Refusal)>,
    /// The held command's index, and the responses awaited before it.
    hold_at: (usize, usize),
    /// The command just decided may not run: what the client is told.
    refused: Option<PgErrorReply>,
    /// Tables COPY reads that the catalog did not know: checked again
    /// before the unit is forwarded.
    copy_recheck: Vec<String>,
}

impl Gate for PolicyGate {
    fn decide(&mut self, commands: &[Command], unit: &UnitContext) -> Verdict {
        // A Parse runs nothing: a lone Execute (with its Parse) is alone.
        self.outside_transaction = unit.outside_transaction
            && commands
                .iter()
                .filter(|c| c.origin != CommandOrigin::Parse)
                .count()
                == 1;
        let awaiting_before = self.awaiting.len();
        let mut needs = UnitNeeds {
            all_reads: true,
            ..UnitNeeds::default()
        };
        for (at, command) in commands.iter().enumerate() {
            if let Err(reply) = self.decide_one(at, command, &mut needs) {
                self.awaiting.truncate(awaiting_before);
                return Verdict::Deny { at: 0, reply };
            }
            if let Some(reply) = needs.refused.take() {
                // A command held for approval never runs because a later
                // one is refused: the unit stops at the held one, whose
                // request is withdrawn.
                let at = match needs.hold.take() {
                    Some((request, _, _)) => {
                        self.pipeline.withdraw_request(
                            &request,
                            "a later statement of its batch was refused",
                        );
                        self.awaiting.truncate(needs.hold_at.1);
                        needs.hold_at.0
                    }
                    None => at,
                };
                // The commands before this one run: their records first.
                if let (true, Some(recorder), Some(seq)) =
                    (at > 0, self.pipeline.recorder.as_ref(), needs.recorded)
                {
                    if let Err(unrecorded) = recorder.wait(seq) {
                        self.awaiting.truncate(awaiting_before);
                        return Verdict::Deny {
                            at: 0,
                            reply: unrecorded.into(),
                        };
                    }
                }
                return Verdict::Deny { at, reply };
            }
        }
        if let Some((request, fingerprint, notice)) = needs.hold.take() {
            let until = pg(self.pipeline.hold(request.clone(), fingerprint));
            let notice = PgErrorReply::from(notice).into_notice();
            return Verdict::HoldForApproval {
                notice,
                until,
                request,
            };
        }
        if !needs.copy_recheck.is_empty() {
            return self.recheck_copy(std::mem::take(&mut needs.copy_recheck), needs.recorded);
        }
        let p = &self.pipeline;
        let seq = needs.recorded;
        // Inside a transaction block a data change waits for COMMIT, unless
        // the unit itself may end the block (ROLLBACK; UPDATE ...).
        let deferred_to_commit = unit.in_transaction && !needs.ends_or_starts_transaction;
        let verdict = if needs.wait || (needs.transactional && !deferred_to_commit) {
            p.before_forwarding(seq)
                .map(|d| Verdict::ForwardWhenDurable(pg(d)))
        } else if needs.transactional {
            p.before_results(seq, Commit::Lazy, false)
                .map(|d| Verdict::ForwardHoldingData(pg(d)))
        } else if needs.all_reads {
            p.before_results(seq, Commit::Now, true)
                .map(|d| Verdict::ForwardHoldingResults(pg(d)))
        } else {
            p.before_results(seq, Commit::Lazy, true)
                .map(|d| Verdict::ForwardHoldingData(pg(d)))
        };
        verdict.unwrap_or(Verdict::Forward)
    }

    fn mask_rules(&self) -> Option<MaskRules> {
        self.mask.clone()
    }

    fn set_catalog(
        &mut self,
        catalog: Arc<sluice_pg::mask::Catalog>,
        refresh: sluice_pg::mask::CatalogRefresh,
    ) {
        self.catalog.set(catalog, refresh);
    }

    fn pause(&mut self, settled: bool) -> Option<sluice_pg::Pause> {
        self.catalog.pause(settled)
    }

    fn responses(&self) -> Option<usize> {
        self.pipeline.recorder.as_ref().map(Recorder::content_cap)
    }

    fn on_response(&mut self, response: Response) {
        let (seq, changed_state) = self.awaiting.pop_front().unwrap_or((None, false));
        if changed_state && matches!(response.completion, sluice_pg::Completion::Error { .. }) {
            self.state.failed();
        }
        self.pipeline.respond(seq, answer(response));
    }

    fn withdraw(&mut self, reason: &str) {
        self.pipeline.withdraw(reason);
    }

    fn expedite(&mut self) {
        if let Some(recorder) = self.pipeline.recorder.as_ref() {
            recorder.expedite();
        }
    }

    fn on_end(&mut self, reason: &str) {
        self.pipeline.end(reason);
    }
}

/// A PostgreSQL response in the audit log's words.
fn answer(response: Response) -> Answer {
    use sluice_audit::ResponseStatus;
    use sluice_pg::Completion;
    let status = match response.completion {
        Completion::Tags(tags) => ResponseStatus::CommandTag(tags),
        Completion::Error { sqlstate, message } => ResponseStatus::Error { sqlstate, message },
        Completion::Empty => ResponseStatus::Empty,
        Completion::Suspended => ResponseStatus::Suspended,
        Completion::Skipped => ResponseStatus::Skipped,
    };
    Answer {
        status,
        rows: response.rows,
        bytes: response.bytes,
        duration: response.duration,
        content: response.content,
        truncated: response.truncated,
    }
}
