//! Policy decisions for Sluice: Cedar policies, validated against a schema
//! Sluice ships, decide whether a classified statement is allowed, sent to
//! review, or denied — before any byte of it reaches the target.
//!
//! A [`PolicySet`] is immutable once loaded; a reload loads a new one and
//! swaps it in (e.g. behind an `ArcSwap`), so a failed reload leaves the last
//! good set in place and no decision ever sees a half-loaded set.
//!
//! Decision semantics (see [`PolicySet::decide`]):
//! - a `forbid` that applies → deny, carrying the forbids' `@id`/`@reason`;
//! - else a `permit` annotated `@review("group")` that applies → review by
//!   that group (quorum from `@quorum`, default 1), even if a plain permit
//!   applies too: the stricter reading wins;
//! - else a plain `permit` → allow;
//! - nothing applies → deny, as policy `default-deny`;
//! - a policy whose evaluation errored turns any would-be allow or review
//!   into a deny naming it (Cedar itself just skips such a policy, which
//!   could skip a forbid).
//!
//! Masking asks a separate, per-session question, [`PolicySet::may_unmask`]
//! (Cedar action `unmask`): only a permit that names that action lifts
//! masking, and any doubt keeps values masked (see [`Unmask`]).

mod annotations;
mod decide;
mod error;
mod load;
mod unmask;

pub use decide::Scope;
pub use error::{PolicyError, Problem, ProblemKind};
pub use unmask::{Unmask, UNMASK_ACTION};

use annotations::PolicyMeta;
use cedar_policy::{Authorizer, PolicyId, Validator};
use decide::{Engine, Vocabulary};
use sluice_core::{Decision, Identity, Statement};
use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};

/// The Cedar schema every policy is validated against (Cedar's
/// human-readable schema format).
pub const SCHEMA: &str = include_str!("sluice.cedarschema");

/// The policy id of "no policy permits this" denies.
pub const DEFAULT_DENY_ID: &str = annotations::DEFAULT_DENY_ID;
/// The policy id of denies caused by Sluice failing to build a request (a
/// defect, never expected); evaluation errors of a policy name that policy.
pub const FAIL_CLOSED_ID: &str = annotations::FAIL_CLOSED_ID;

/// A protected target as policy sees it: `Resource::"<name>"` with attribute
/// `kind` and the config's tags as Cedar entity tags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ResourceInfo {
    pub name: String,
    /// E.g. `postgres`.
    pub kind: String,
    pub tags: BTreeMap<String, String>,
}

/// What the gateway knows about the request besides the statement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// The client's address; `None` for a Unix socket. Policies test it with
    /// `context has client_addr && context.client_addr.isInRange(ip("10.0.0.0/8"))`.
    pub client_addr: Option<IpAddr>,
}

/// Above this many distinct (identity, resource, client address) triples the scope cache is
/// cleared rather than grown: it only saves work, and an unbounded map keyed
/// by client-chosen names would be a memory leak.
const SCOPE_CACHE_LIMIT: usize = 1024;

/// A loaded, validated set of policies.
pub struct PolicySet {
    /// Per action, indexed like [`sluice_core::Action::ALL`]: the policies
    /// whose action scope can match it.
    by_action: Vec<cedar_policy::PolicySet>,
    /// The policies of the `unmask` question (see [`unmask::index`]).
    unmask: cedar_policy::PolicySet,
    context_use: decide::ContextUse,
    meta: HashMap<PolicyId, PolicyMeta>,
    ids: Vec<String>,
    warnings: Vec<Problem>,
    vocab: Vocabulary,
    authorizer: Authorizer,
    /// Scopes for [`PolicySet::decide`] callers that do not keep their own.
    scopes: RwLock<HashMap<u64, Arc<Scope>>>,
}

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet")
            .field("ids", &self.ids)
            .finish_non_exhaustive()
    }
}

impl PolicySet {
    /// Loads and validates every file matched by the patterns (globs such as
    /// `policies/*.cedar`, relative to `base_dir` unless absolute). Files are
    /// read in pattern order, each pattern's matches sorted by path. All
    /// problems are reported together ([`PolicyError::Invalid`]), each naming
    /// the file, line and column. A pattern that matches no file is an error:
    /// an empty set would deny everything for a reason nobody would guess.
    pub fn load(base_dir: &Path, patterns: &[String]) -> Result<PolicySet, PolicyError> {
        let files = load::expand(base_dir, patterns)?;
        let mut sources = Vec::with_capacity(files.len());
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::Io {
                path: path.clone(),
                source,
            })?;
            sources.push((path.display().to_string(), text));
        }
        Self::from_sources(&sources)
    }

    /// Loads policies from one string; `name` stands for the file name in
    /// errors. For tests and `sluice policy check`.
    pub fn from_source(name: &str, source: &str) -> Result<PolicySet, PolicyError> {
        Self::from_sources(&[(name.to_string(), source.to_string())])
    }

    /// Loads policies from `(name, text)` pairs, as if each were a file.
    pub fn from_sources(sources: &[(String, String)]) -> Result<PolicySet, PolicyError> {
        let (schema, _warnings) = cedar_policy::Schema::from_cedarschema_str(SCHEMA)
            .map_err(|e| PolicyError::Schema(e.to_string()))?;
        let vocab = Vocabulary::new(&schema).map_err(PolicyError::Schema)?;
        let validator = Validator::new(schema);
        let compiled = load::compile(sources, &validator)?;
        let mut by_action = Vec::with_capacity(vocab.action_uids().len());
        for action in vocab.action_uids() {
            let mut subset = cedar_policy::PolicySet::new();
            for p in compiled.policies.policies() {
                if vocab.may_apply(&p.action_constraint(), action) {
                    subset
                        .add(p.clone())
                        .map_err(|e| PolicyError::Index(e.to_string()))?;
                }
            }
            by_action.push(subset);
        }
        let unmask = unmask::index(&compiled.policies, &vocab).map_err(PolicyError::Index)?;
        let context_use = decide::ContextUse::of(compiled.policies.policies());
        Ok(PolicySet {
            by_action,
            unmask,
            context_use,
            meta: compiled.meta,
            ids: compiled.ids,
            warnings: compiled.warnings,
            vocab,
            authorizer: Authorizer::new(),
            scopes: RwLock::new(HashMap::new()),
        })
    }

    /// Whether any policy reads `context.sql`. When none does, statements
    /// with the same action, tables, WHERE, functions and volatility get
    /// the same decision within a scope, so a session may cache decisions
    /// by those alone (a repeated statement with new constants then costs
    /// no policy evaluation).
    pub fn reads_sql(&self) -> bool {
        self.context_use.sql()
    }

    /// The `@id`s of all policies, in load order.
    pub fn policy_ids(&self) -> Vec<String> {
        self.ids.clone()
    }

    /// The validator's warnings (e.g. a policy that can never apply); they do
    /// not stop loading but `sluice policy validate` should show them.
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }

    /// Prepares what a session's decisions share (identity, resource, client
    /// address) once, for callers that decide many statements for the same
    /// session. A scope stays valid across reloads: it depends on the shipped
    /// schema only.
    pub fn scope(
        &self,
        identity: &Identity,
        resource: &ResourceInfo,
        ctx: &RequestContext,
    ) -> Scope {
        Scope::new(&self.vocab, identity, resource, ctx)
    }

    /// Decides one statement. Uses an internal cache of scopes; a caller that
    /// holds a [`Scope`] (a session) can use [`PolicySet::decide_in`] and
    /// skip the lookup.
    pub fn decide(
        &self,
        identity: &Identity,
        resource: &ResourceInfo,
        statement: &Statement,
        ctx: &RequestContext,
    ) -> Decision {
        let scope = self.cached_scope(identity, resource, ctx);
        self.decide_in(&scope, statement)
    }

    /// Decides all statements of one query string: the strictest outcome wins
    /// (deny > review > allow). Decisions of equal strictness are merged:
    /// their policies are all listed, and of several reviews the highest
    /// quorum (with its own group) is asked for. An empty slice (nothing to
    /// run) is an allow with no policies.
    pub fn decide_all(
        &self,
        identity: &Identity,
        resource: &ResourceInfo,
        statements: &[Statement],
        ctx: &RequestContext,
    ) -> Decision {
        if statements.is_empty() {
            return Decision::allow(Vec::new());
        }
        let scope = self.cached_scope(identity, resource, ctx);
        self.decide_all_in(&scope, statements)
    }

    /// [`PolicySet::decide`] with a scope the caller keeps.
    pub fn decide_in(&self, scope: &Scope, statement: &Statement) -> Decision {
        self.engine().decide(scope, statement)
    }

    /// [`PolicySet::decide_all`] with a scope the caller keeps.
    pub fn decide_all_in(&self, scope: &Scope, statements: &[Statement]) -> Decision {
        let engine = self.engine();
        decide::combine(statements.iter().map(|s| engine.decide(scope, s)))
    }

    /// Whether the session `scope` describes sees unmasked values: asked once
    /// per session, not per statement (a reload changes the answer for new
    /// sessions; a session keeps the answer it started with unless the
    /// caller asks again).
    ///
    /// [`Unmask::Unmasked`] needs a permit whose action scope names
    /// `Action::"unmask"` (`action == Action::"unmask"` or
    /// `action in [..., Action::"unmask"]`); a permit that does not constrain
    /// its action never unmasks. Any forbid that applies (whatever its action
    /// scope), a policy that cannot be evaluated, or no such permit:
    /// [`Unmask::Masked`]. The request context is the session's:
    /// `context.client_addr` when the client has an address.
    pub fn may_unmask(&self, scope: &Scope) -> Unmask {
        unmask::evaluate(
            &self.unmask,
            &self.meta,
            &self.vocab,
            &self.authorizer,
            scope,
        )
    }

    fn engine(&self) -> Engine<'_> {
        Engine {
            by_action: &self.by_action,
            context_use: self.context_use,
            meta: &self.meta,
            vocab: &self.vocab,
            authorizer: &self.authorizer,
        }
    }

    fn cached_scope(
        &self,
        identity: &Identity,
        resource: &ResourceInfo,
        ctx: &RequestContext,
    ) -> Arc<Scope> {
        let key = scope_key(identity, resource, ctx);
        // A poisoned lock only means another thread panicked mid-insert; the
        // map is still a valid cache, so keep using it.
        let read = self.scopes.read().unwrap_or_else(|p| p.into_inner());
        if let Some(scope) = read
            .get(&key)
            .filter(|s| s.matches(identity, resource, ctx))
        {
            return Arc::clone(scope);
        }
        drop(read);
        let scope = Arc::new(self.scope(identity, resource, ctx));
        let mut write = self.scopes.write().unwrap_or_else(|p| p.into_inner());
        if write.len() >= SCOPE_CACHE_LIMIT {
            write.clear();
        }
        write.insert(key, Arc::clone(&scope));
        scope
    }
}

fn scope_key(identity: &Identity, resource: &ResourceInfo, ctx: &RequestContext) -> u64 {
    let mut h = DefaultHasher::new();
    identity.name.hash(&mut h);
    identity.groups.hash(&mut h);
    resource.hash(&mut h);
    ctx.client_addr.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests;
