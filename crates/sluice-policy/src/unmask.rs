//! Whether a session sees raw values: the Cedar action `unmask`.
//!
//! Masking hides sensitive values in query results by default; a `permit`
//! for `Action::"unmask"` lifts it for a session. The question is asked once
//! per session (identity, resource, client address), not per statement, so
//! its context is an empty statement with the session's `client_addr`.
//!
//! Fail-safe rules, stricter than Cedar's own reading:
//! - only a permit whose action scope names `Action::"unmask"` (`==`, or in
//!   an `in [...]` list) can unmask; a permit that does not constrain its
//!   action (`permit(principal, action, resource)`) is ignored here, so a
//!   catch-all "allow everything" never reveals masked data by accident;
//! - every forbid that can apply to `unmask`, including one that does not
//!   constrain its action, keeps the session masked;
//! - a policy that cannot be evaluated keeps the session masked;
//! - `@review` / `@quorum` on a permit naming `unmask` is a load error:
//!   nobody could be asked to approve a whole session's view.

use crate::annotations::PolicyMeta;
use crate::decide::{Scope, Vocabulary};
use cedar_policy::{ActionConstraint, Authorizer, Context, Effect, EntityUid, PolicyId, Request};
use sluice_core::PolicyRef;
use std::collections::HashMap;

/// The id of the Cedar action (`Action::"unmask"`).
pub const UNMASK_ACTION: &str = "unmask";

/// Whether a session sees raw values, and the policy that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmask {
    /// Values are masked (the default, and the outcome of any doubt).
    Masked,
    /// A permit naming `Action::"unmask"` applies and nothing forbids it.
    /// `policy` is the first such permit in load order, with its `@reason`.
    Unmasked { policy: PolicyRef },
}

impl Unmask {
    pub fn is_unmasked(&self) -> bool {
        matches!(self, Unmask::Unmasked { .. })
    }
}

/// Whether an action scope names `Action::"unmask"` itself (`==` or an
/// `in` list containing it; no action group contains it).
pub(crate) fn names_unmask(constraint: &ActionConstraint) -> bool {
    let is_unmask = |u: &EntityUid| {
        u.type_name().basename() == "Action"
            && u.type_name().namespace().is_empty()
            && u.id().unescaped() == UNMASK_ACTION
    };
    match constraint {
        ActionConstraint::Any => false,
        ActionConstraint::Eq(u) => is_unmask(u),
        ActionConstraint::In(us) => us.iter().any(is_unmask),
    }
}

/// The load-time check of a policy's annotations against its use for
/// `unmask`; `Err` is the message of a [`crate::ProblemKind::BadAnnotation`].
pub(crate) fn check(meta: &PolicyMeta, policy: &cedar_policy::Policy) -> Result<(), String> {
    if meta.review.is_some() && names_unmask(&policy.action_constraint()) {
        return Err(format!(
            "@review / @quorum cannot apply to Action::\"{UNMASK_ACTION}\": unmasking is \
             decided once per session and nobody is asked to approve it; remove them, or \
             write a separate policy for the statement actions that need review"
        ));
    }
    Ok(())
}

/// The policies that take part in the unmask question: permits that name
/// `unmask`, and every forbid that can apply to it.
pub(crate) fn index(
    policies: &cedar_policy::PolicySet,
    vocab: &Vocabulary,
) -> Result<cedar_policy::PolicySet, String> {
    let mut subset = cedar_policy::PolicySet::new();
    for p in policies.policies() {
        let constraint = p.action_constraint();
        let relevant = match p.effect() {
            Effect::Permit => names_unmask(&constraint),
            Effect::Forbid => vocab.may_apply(&constraint, vocab.unmask_uid()),
        };
        if relevant {
            subset.add(p.clone()).map_err(|e| e.to_string())?;
        }
    }
    Ok(subset)
}

/// The request context of `unmask`: an empty statement (so a condition on
/// statement attributes does not hold) and the session's client address.
pub(crate) fn session_context(scope: &Scope) -> Result<Context, String> {
    let empty = sluice_core::Statement {
        action: sluice_core::Action::Select,
        text: String::new(),
        tables: Vec::new(),
        has_where: true,
        functions: Vec::new(),
        calls_volatile: false,
        fingerprint: String::new(),
        error: None,
        commits: false,
        copies_out: false,
        locks_rows: false,
        defines_code: false,
        unproven: None,
        field_names: Vec::new(),
        kubernetes: None,
        s3: None,
    };
    crate::decide::context(
        &empty,
        scope.client_addr_expr(),
        crate::decide::ContextUse::ALL,
    )
}

/// Evaluates `Action::"unmask"` for a session; see the module rules.
pub(crate) fn evaluate(
    policies: &cedar_policy::PolicySet,
    meta: &HashMap<PolicyId, PolicyMeta>,
    vocab: &Vocabulary,
    authorizer: &Authorizer,
    scope: &Scope,
) -> Unmask {
    let Ok(entities) = scope.entities() else {
        return Unmask::Masked;
    };
    let Ok(context) = session_context(scope) else {
        return Unmask::Masked;
    };
    let Ok(request) = Request::new(
        scope.principal_uid().clone(),
        vocab.unmask_uid().clone(),
        scope.resource_uid().clone(),
        context,
        None,
    ) else {
        return Unmask::Masked;
    };
    let response = authorizer.is_authorized(&request, policies, entities);
    let diagnostics = response.diagnostics();
    if diagnostics.errors().next().is_some() || response.decision() != cedar_policy::Decision::Allow
    {
        return Unmask::Masked;
    }
    // Allow with no errors: only permits fired (a fired forbid would deny).
    let first = diagnostics
        .reason()
        .filter_map(|id| meta.get(id))
        .min_by_key(|m| m.order);
    match first {
        Some(m) => Unmask::Unmasked {
            policy: PolicyRef {
                id: m.id.clone(),
                reason: m.reason.clone(),
            },
        },
        None => Unmask::Masked,
    }
}
