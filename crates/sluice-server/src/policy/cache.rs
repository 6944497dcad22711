//! A session's decisions, made once per statement shape.

use sluice_core::{Action, Decision, KubeRequest, S3Request, Statement};
use sluice_policy::{PolicySet, Scope};
use std::collections::HashMap;
use std::sync::Arc;

/// Decisions already made in this session, valid for one policy set.
pub(crate) struct DecisionCache {
    policies: Arc<PolicySet>,
    entries: HashMap<DecisionKey, Decision>,
}

/// Bounds a session's cache: a client sending endless distinct shapes
/// only makes it start over.
const DECISION_CACHE_ENTRIES: usize = 1024;

/// Everything a decision can depend on within one scope (the statement
/// text only when a policy reads `context.sql`).
#[derive(PartialEq, Eq, Hash)]
pub(super) struct DecisionKey {
    action: Action,
    tables: Vec<String>,
    has_where: bool,
    functions: Vec<String>,
    calls_volatile: bool,
    locks_rows: bool,
    error: Option<String>,
    text: Option<String>,
    kubernetes: Option<KubeRequest>,
    /// Every attribute an S3 part's context carries: the parts of one
    /// request share their text, not their object.
    s3: Option<S3Request>,
}

impl DecisionCache {
    pub(crate) fn new(policies: Arc<PolicySet>) -> Self {
        DecisionCache {
            policies,
            entries: HashMap::new(),
        }
    }

    /// The decision for `statement` under the current policies, evaluated
    /// only the first time this session sees its shape.
    pub(crate) fn decide(
        &mut self,
        current: Arc<PolicySet>,
        scope: &Scope,
        statement: &Statement,
    ) -> Decision {
        if !Arc::ptr_eq(&self.policies, &current) {
            self.policies = current;
            self.entries.clear();
        }
        let key = DecisionKey {
            action: statement.action,
            tables: statement.tables.clone(),
            has_where: statement.has_where,
            functions: statement.functions.clone(),
            calls_volatile: statement.calls_volatile,
            locks_rows: statement.locks_rows,
            error: statement.error.clone(),
            text: self.policies.reads_sql().then(|| statement.text.clone()),
            kubernetes: statement.kubernetes.clone(),
            s3: statement.s3.clone(),
        };
        if let Some(d) = self.entries.get(&key) {
            return d.clone();
        }
        let decision = self.policies.decide_in(scope, statement);
        if self.entries.len() >= DECISION_CACHE_ENTRIES {
            self.entries.clear();
        }
        self.entries.insert(key, decision.clone());
        decision
    }
}
