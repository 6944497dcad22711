//! Turning a statement into a Cedar request and Cedar's answer into a
//! [`Decision`].
//!
//! Cedar only knows permit/forbid; Sluice adds review (a permit annotated
//! `@review`) and fails closed where Cedar would quietly skip a policy whose
//! evaluation errored.

use crate::annotations::{PolicyMeta, Review, DEFAULT_DENY_ID, FAIL_CLOSED_ID};
use crate::{RequestContext, ResourceInfo};
use cedar_policy::{
    ActionConstraint, Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicyId, Request, RestrictedExpression,
};
use sluice_core::{Action, Decision, Identity, Outcome, PolicyRef, Statement};
use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

/// What stays the same for all statements of a session: the identity, the
/// resource and the request context, prepared for Cedar — the principal and
/// its groups, the resource with its tags and the schema's action hierarchy
/// as entities, and the client address as a Cedar `ipaddr` expression.
/// Building these (Cedar computes a transitive closure; constructing an
/// `ip(...)` call parses its name) costs more than a decision, so a session
/// builds one `Scope` and reuses it.
///
/// A scope only depends on the shipped schema, never on the policies, so it
/// stays valid across policy reloads.
#[derive(Debug, Clone)]
pub struct Scope {
    identity: Identity,
    resource: ResourceInfo,
    ctx: RequestContext,
    principal_uid: EntityUid,
    resource_uid: EntityUid,
    /// `Err` when Cedar refused the entities (should not happen: they are
    /// built from plain strings); every decision in this scope then denies.
    entities: Result<Entities, String>,
    client_addr: Option<RestrictedExpression>,
}

impl Scope {
    pub(crate) fn new(
        vocab: &Vocabulary,
        identity: &Identity,
        resource: &ResourceInfo,
        ctx: &RequestContext,
    ) -> Scope {
        let principal_uid = uid(&vocab.identity, &identity.name);
        let resource_uid = uid(&vocab.resource, &resource.name);
        let entities = build_entities(vocab, identity, resource, &principal_uid, &resource_uid);
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d;
        // policies write IPv4 ranges, so it is compared as IPv4.
        let client_addr = ctx
            .client_addr
            .map(|a| RestrictedExpression::new_ip(a.to_canonical().to_string()));
        Scope {
            identity: identity.clone(),
            resource: resource.clone(),
            ctx: *ctx,
            principal_uid,
            resource_uid,
            entities,
            client_addr,
        }
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn resource(&self) -> &ResourceInfo {
        &self.resource
    }

    pub(crate) fn client_addr_expr(&self) -> Option<&RestrictedExpression> {
        self.client_addr.as_ref()
    }

    pub(crate) fn principal_uid(&self) -> &EntityUid {
        &self.principal_uid
    }

    pub(crate) fn resource_uid(&self) -> &EntityUid {
        &self.resource_uid
    }

    /// The identity/resource/action entities, or why Cedar refused them.
    pub(crate) fn entities(&self) -> Result<&Entities, &str> {
        self.entities.as_ref().map_err(String::as_str)
    }

    pub fn request_context(&self) -> &RequestContext {
        &self.ctx
    }

    pub(crate) fn matches(
        &self,
        identity: &Identity,
        resource: &ResourceInfo,
        ctx: &RequestContext,
    ) -> bool {
        self.identity == *identity && self.resource == *resource && self.ctx == *ctx
    }
}

/// The schema's fixed names, parsed once per load: entity types, the uid of
/// each classification's action, and the action entities (their `in` edges
/// are what makes `action in Action::"write"` true at evaluation time).
#[derive(Debug)]
pub(crate) struct Vocabulary {
    identity: EntityTypeName,
    group: EntityTypeName,
    resource: EntityTypeName,
    /// Indexed like [`Action::ALL`].
    action_uids: Vec<EntityUid>,
    /// `Action::"unmask"`, asked once per session (see [`crate::Unmask`]).
    unmask_uid: EntityUid,
    action_entities: Vec<Entity>,
    /// The same, as a store, to answer "is this action in that group".
    action_hierarchy: Entities,
}

impl Vocabulary {
    pub(crate) fn new(schema: &cedar_policy::Schema) -> Result<Vocabulary, String> {
        let ty = |name: &str| {
            EntityTypeName::from_str(name).map_err(|e| format!("entity type {name}: {e}"))
        };
        let action = ty("Action")?;
        let action_hierarchy = schema.action_entities().map_err(|e| e.to_string())?;
        let action_entities: Vec<Entity> = action_hierarchy.iter().cloned().collect();
        let action_uids: Vec<EntityUid> = Action::ALL
            .iter()
            .map(|a| uid(&action, a.as_str()))
            .collect();
        let unmask_uid = uid(&action, crate::unmask::UNMASK_ACTION);
        for u in action_uids.iter().chain([&unmask_uid]) {
            if !action_entities.iter().any(|e| e.uid() == *u) {
                return Err(format!("the schema does not declare {u}"));
            }
        }
        Ok(Vocabulary {
            identity: ty("Identity")?,
            group: ty("Group")?,
            resource: ty("Resource")?,
            action_uids,
            unmask_uid,
            action_entities,
            action_hierarchy,
        })
    }

    /// The uids of the classification's actions, indexed like [`Action::ALL`].
    pub(crate) fn action_uids(&self) -> &[EntityUid] {
        &self.action_uids
    }

    /// `Action::"unmask"`.
    pub(crate) fn unmask_uid(&self) -> &EntityUid {
        &self.unmask_uid
    }

    /// Whether `action` is in an action group (an ancestor in the schema's
    /// action hierarchy).
    #[cfg(test)]
    pub(crate) fn in_a_group(&self, action: &EntityUid) -> bool {
        self.action_entities
            .iter()
            .any(|e| e.uid() != *action && self.action_hierarchy.is_ancestor_of(&e.uid(), action))
    }

    /// Whether a policy with this action scope can apply to `action`.
    pub(crate) fn may_apply(&self, constraint: &ActionConstraint, action: &EntityUid) -> bool {
        let within = |group: &EntityUid| {
            group == action || self.action_hierarchy.is_ancestor_of(group, action)
        };
        match constraint {
            ActionConstraint::Any => true,
            ActionConstraint::Eq(uid) => uid == action,
            ActionConstraint::In(groups) => groups.iter().any(within),
        }
    }
}

fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}

fn build_entities(
    vocab: &Vocabulary,
    identity: &Identity,
    resource: &ResourceInfo,
    principal_uid: &EntityUid,
    resource_uid: &EntityUid,
) -> Result<Entities, String> {
    let groups: BTreeSet<&str> = identity.groups.iter().map(String::as_str).collect();
    let group_uids: Vec<EntityUid> = groups.iter().map(|g| uid(&vocab.group, g)).collect();
    let mut all: Vec<Entity> =
        Vec::with_capacity(vocab.action_entities.len() + group_uids.len() + 2);
    all.push(Entity::new_no_attrs(
        principal_uid.clone(),
        group_uids.iter().cloned().collect(),
    ));
    all.extend(group_uids.into_iter().map(Entity::with_uid));
    let attrs = [(
        "kind".to_string(),
        RestrictedExpression::new_string(resource.kind.clone()),
    )];
    let tags = resource
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), RestrictedExpression::new_string(v.clone())));
    all.push(
        Entity::new_with_tags(resource_uid.clone(), attrs, [], tags).map_err(|e| e.to_string())?,
    );
    all.extend(vocab.action_entities.iter().cloned());
    Entities::from_entities(all, None).map_err(|e| e.to_string())
}

/// Which context attributes any policy reads. A policy can only observe an
/// attribute by spelling its name (`context.sql`, `context has sql`,
/// `context["sql"]`; strict validation rejects comparing `context` with a
/// record literal that does not have exactly its attributes), so the ones no
/// policy names are left out of the request: building them — a copy of the
/// SQL text, sets of tables and functions, an `ip(...)` call Cedar evaluates
/// each time — is a large part of a decision's cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContextUse {
    sql: bool,
    tables: bool,
    has_where: bool,
    functions: bool,
    calls_volatile: bool,
    locks_rows: bool,
    client_addr: bool,
}

impl ContextUse {
    pub(crate) fn sql(&self) -> bool {
        self.sql
    }

    pub(crate) const ALL: ContextUse = ContextUse {
        sql: true,
        tables: true,
        has_where: true,
        functions: true,
        calls_volatile: true,
        locks_rows: true,
        client_addr: true,
    };

    pub(crate) fn of<'a>(policies: impl Iterator<Item = &'a cedar_policy::Policy>) -> ContextUse {
        let mut used = ContextUse {
            sql: false,
            tables: false,
            has_where: false,
            functions: false,
            calls_volatile: false,
            locks_rows: false,
            client_addr: false,
        };
        for p in policies {
            let text = p.to_string();
            used.sql |= text.contains("sql");
            used.tables |= text.contains("tables");
            used.has_where |= text.contains("has_where");
            used.functions |= text.contains("functions");
            used.calls_volatile |= text.contains("calls_volatile");
            used.locks_rows |= text.contains("locks_rows");
            used.client_addr |= text.contains("client_addr");
        }
        used
    }
}

/// The request context for one statement (schema type `Statement`), with the
/// attributes some policy reads.
pub(crate) fn context(
    statement: &Statement,
    client_addr: Option<&RestrictedExpression>,
    used: ContextUse,
) -> Result<Context, String> {
    let strings = |v: &[String]| {
        RestrictedExpression::new_set(
            v.iter()
                .map(|s| RestrictedExpression::new_string(s.clone())),
        )
    };
    let mut pairs = Vec::with_capacity(6);
    if used.sql {
        pairs.push((
            "sql".to_string(),
            RestrictedExpression::new_string(statement.text.clone()),
        ));
    }
    if used.tables {
        pairs.push(("tables".to_string(), strings(&statement.tables)));
    }
    if used.has_where {
        pairs.push((
            "has_where".to_string(),
            RestrictedExpression::new_bool(statement.has_where),
        ));
    }
    if used.functions {
        pairs.push(("functions".to_string(), strings(&statement.functions)));
    }
    if used.calls_volatile {
        pairs.push((
            "calls_volatile".to_string(),
            RestrictedExpression::new_bool(statement.calls_volatile),
        ));
    }
    if used.locks_rows {
        pairs.push((
            "locks_rows".to_string(),
            RestrictedExpression::new_bool(statement.locks_rows),
        ));
    }
    if let Some(addr) = client_addr.filter(|_| used.client_addr) {
        pairs.push(("client_addr".to_string(), addr.clone()));
    }
    if let Some(kube) = &statement.kubernetes {
        kube_context(kube, &mut pairs);
    }
    if let Some(s3) = &statement.s3 {
        s3_context(s3, &mut pairs);
    }
    Context::from_pairs(pairs).map_err(|e| e.to_string())
}

/// The Kubernetes attributes of a request (always built: a Kubernetes
/// request is decided once, not at pgbench rates).
fn kube_context(kube: &sluice_core::KubeRequest, pairs: &mut Vec<(String, RestrictedExpression)>) {
    let mut text = |name: &str, value: &str| {
        pairs.push((
            name.to_string(),
            RestrictedExpression::new_string(value.to_owned()),
        ))
    };
    if !kube.resource_request {
        text("path", &kube.path);
        return;
    }
    text("api_group", &kube.api_group);
    text("api_version", &kube.api_version);
    text("k8s_resource", &kube.resource);
    if let Some(ns) = &kube.namespace {
        text("namespace", ns);
    }
    if let Some(sub) = &kube.subresource {
        text("subresource", sub);
    }
    if let Some(name) = &kube.name {
        text("name", name);
    }
    if let Some(connect) = &kube.connect {
        if let Some(c) = &connect.container {
            text("container", c);
        }
        if !connect.command.is_empty() {
            text("command", &connect.command.join(" "));
        }
    }
    pairs.push((
        "dry_run".to_string(),
        RestrictedExpression::new_bool(kube.dry_run),
    ));
}

/// The S3 attributes of one operation's part (always built, as for
/// Kubernetes).
fn s3_context(s3: &sluice_core::S3Request, pairs: &mut Vec<(String, RestrictedExpression)>) {
    let texts = [
        ("bucket", &s3.bucket),
        ("key", &s3.key),
        ("prefix", &s3.prefix),
        ("version_id", &s3.version_id),
    ];
    for (name, value) in texts {
        if let Some(v) = value {
            pairs.push((
                name.to_string(),
                RestrictedExpression::new_string(v.clone()),
            ));
        }
    }
    if let Some(size) = s3.size {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        pairs.push(("size".to_string(), RestrictedExpression::new_long(size)));
    }
}

/// Everything `decide` needs besides the scope.
pub(crate) struct Engine<'a> {
    /// Per action (indexed like [`Action::ALL`]), the policies whose action
    /// scope can match it: the others would evaluate to false anyway, and
    /// Cedar's per-policy cost is what dominates a decision.
    pub by_action: &'a [cedar_policy::PolicySet],
    /// The context attributes some policy reads.
    pub context_use: ContextUse,
    pub meta: &'a HashMap<PolicyId, PolicyMeta>,
    pub vocab: &'a Vocabulary,
    pub authorizer: &'a Authorizer,
}

impl Engine<'_> {
    pub(crate) fn decide(&self, scope: &Scope, statement: &Statement) -> Decision {
        let action = statement.action;
        let idx = Action::ALL.iter().position(|a| *a == action);
        let (Some(action_uid), Some(policies)) = (
            idx.and_then(|i| self.vocab.action_uids.get(i)),
            idx.and_then(|i| self.by_action.get(i)),
        ) else {
            return fail_closed(format!("no Cedar action for `{action}`"));
        };
        let entities = match &scope.entities {
            Ok(entities) => entities,
            Err(e) => {
                return fail_closed(format!("cannot build the identity/resource entities: {e}"))
            }
        };
        let context = match context(statement, scope.client_addr.as_ref(), self.context_use) {
            Ok(c) => c,
            Err(e) => return fail_closed(format!("cannot build the request context: {e}")),
        };
        let request = match Request::new(
            scope.principal_uid.clone(),
            action_uid.clone(),
            scope.resource_uid.clone(),
            context,
            None,
        ) {
            Ok(r) => r,
            Err(e) => return fail_closed(format!("cannot build the request: {e}")),
        };
        let response = self.authorizer.is_authorized(&request, policies, entities);
        let diagnostics = response.diagnostics();
        let mut fired: Vec<&PolicyMeta> = diagnostics
            .reason()
            .filter_map(|id| self.meta.get(id))
            .collect();
        fired.sort_by_key(|m| m.order);
        // Cedar reports errors in no particular order; list them in load
        // order so the same request always yields the same decision.
        let mut errors: Vec<(usize, PolicyRef)> = diagnostics
            .errors()
            .map(|e| {
                let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = e;
                let meta = self.meta.get(e.policy_id());
                let id = meta.map_or_else(|| e.policy_id().to_string(), |m| m.id.clone());
                let reason = format!(
                    "policy could not be evaluated, failing closed: {}",
                    e.inner()
                );
                (
                    meta.map_or(usize::MAX, |m| m.order),
                    PolicyRef {
                        id,
                        reason: Some(reason),
                    },
                )
            })
            .collect();
        errors.sort_by_key(|(order, _)| *order);
        let errors: Vec<PolicyRef> = errors.into_iter().map(|(_, r)| r).collect();

        match response.decision() {
            cedar_policy::Decision::Deny if !fired.is_empty() => Decision::deny(refs(&fired)),
            cedar_policy::Decision::Deny => {
                let mut reason = format!(
                    "no policy permits `{}` on resource `{}` for identity `{}`",
                    action, scope.resource.name, scope.identity.name
                );
                if let Some(e) = &statement.error {
                    reason.push_str(&format!(" (the statement could not be classified: {e})"));
                }
                let mut policies = vec![PolicyRef {
                    id: DEFAULT_DENY_ID.to_string(),
                    reason: Some(reason),
                }];
                policies.extend(errors);
                Decision::deny(policies)
            }
            // A policy that errored might have been a forbid (or a review):
            // never let Cedar's "skip erroring policies" turn into an allow.
            cedar_policy::Decision::Allow if !errors.is_empty() => Decision::deny(errors),
            cedar_policy::Decision::Allow => {
                let reviews: Vec<&PolicyMeta> = fired
                    .iter()
                    .copied()
                    .filter(|m| m.review.is_some())
                    .collect();
                match strictest_review(&reviews) {
                    Some(outcome) => Decision {
                        outcome,
                        policies: refs(&reviews),
                    },
                    None => Decision::allow(refs(&fired)),
                }
            }
        }
    }
}

/// The review to ask for when several review permits fired: the highest
/// quorum together with that policy's own approver group (mixing one
/// policy's group with another's quorum would ask for something no policy
/// said); on a tie, the first such policy in load order.
fn strictest_review(reviews: &[&PolicyMeta]) -> Option<Outcome> {
    let mut best: Option<&Review> = None;
    for r in reviews.iter().filter_map(|m| m.review.as_ref()) {
        if best.is_none_or(|b| r.quorum > b.quorum) {
            best = Some(r);
        }
    }
    best.map(|r| Outcome::Review {
        approver_group: r.group.clone(),
        quorum: r.quorum,
    })
}

fn refs(policies: &[&PolicyMeta]) -> Vec<PolicyRef> {
    policies
        .iter()
        .map(|m| PolicyRef {
            id: m.id.clone(),
            reason: m.reason.clone(),
        })
        .collect()
}

fn fail_closed(reason: String) -> Decision {
    Decision::deny(vec![PolicyRef {
        id: FAIL_CLOSED_ID.to_string(),
        reason: Some(reason),
    }])
}

/// Combines the decisions of the statements of one query string: the
/// strictest outcome wins (deny > review > allow); decisions of equal
/// strictness are merged — the policies of all of them (first occurrence
/// kept), and for reviews the highest quorum with its approver group (the
/// earlier statement's on a tie).
pub(crate) fn combine(decisions: impl IntoIterator<Item = Decision>) -> Decision {
    let mut acc = Decision::allow(Vec::new());
    for d in decisions {
        if d.strictness() > acc.strictness() {
            acc = d;
            continue;
        }
        if d.strictness() < acc.strictness() {
            continue;
        }
        if let (Outcome::Review { quorum: q_acc, .. }, Outcome::Review { quorum: q_new, .. }) =
            (&acc.outcome, &d.outcome)
        {
            if q_new > q_acc {
                acc.outcome = d.outcome.clone();
            }
        }
        for p in d.policies {
            if !acc.policies.contains(&p) {
                acc.policies.push(p);
            }
        }
    }
    acc
}
