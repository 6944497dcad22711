//! The shared, cached classifier.

use crate::cache::Cache;
use crate::parse::{classify_query, classify_shareable};
use crate::pool::{default_threads, Pool};
use crate::prepared::{prepared_op, PreparedOp};
use crate::shape::{Shape, Shapes, Template};
use sluice_core::Statement;
use std::sync::Arc;

/// Statements at most this long, with few parentheses, are parsed on the
/// caller's thread: they cannot nest deeply enough to threaten a stack
/// (a 1 KiB operator chain is a few hundred levels; the C parser checks its
/// own depth and the walk is depth-limited), and skipping the hand-off to a
/// parser thread halves the cost of a first sight.
const INLINE_MAX_BYTES: usize = 1024;
const INLINE_MAX_PARENS: usize = 16;

fn parse_inline(sql: &str) -> bool {
    sql.len() <= INLINE_MAX_BYTES
        && sql.bytes().filter(|&b| b == b'(' || b == b'[').count() <= INLINE_MAX_PARENS
}

/// Limits of a [`Classifier`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifierConfig {
    /// Query strings whose classification is kept (0: no cache).
    pub cache_entries: usize,
    /// Longest query string classified; a longer one is `Unknown`.
    pub max_statement_bytes: usize,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig {
            cache_entries: 10_000,
            max_statement_bytes: 1024 * 1024,
        }
    }
}

/// Classifies SQL. One per gateway, shared by all sessions (`Send + Sync`).
///
/// Parsing runs on a small pool of large-stack threads (so a hostile,
/// deeply nested statement cannot overflow a caller's stack); a repeated
/// query string is answered from the cache on the caller's thread.
pub struct Classifier {
    config: ClassifierConfig,
    cache: Cache<Arc<[Statement]>>,
    /// Statements that differ from a classified one only in literals.
    shapes: Shapes,
    prepared: Cache<Arc<PreparedOp>>,
    pool: Pool,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Classifier {
    pub fn new(config: ClassifierConfig) -> Self {
        Classifier {
            cache: Cache::new(config.cache_entries),
            shapes: Shapes::new(config.cache_entries),
            prepared: Cache::new(config.cache_entries / 10),
            pool: Pool::new(default_threads()),
            config,
        }
    }

    /// Classifies each statement of a query string (one per statement, in
    /// order; an empty or comment-only string yields none, as PostgreSQL
    /// answers it with EmptyQueryResponse). Never fails: what cannot be
    /// parsed, exceeds the size cap or is not a known construct is a single
    /// `Unknown` statement carrying the error (a parse error makes the whole
    /// string one `Unknown`: the server would run none of it either).
    ///
    /// Cached by the exact text, and by shape (the text without its
    /// literals, see `shape`) for a single SELECT/INSERT/UPDATE/DELETE;
    /// each statement's `text` is its exact slice of `sql` (surrounding
    /// whitespace trimmed).
    pub fn classify(&self, sql: &str) -> Arc<[Statement]> {
        if sql.len() > self.config.max_statement_bytes {
            let error = format!(
                "query is {} bytes, more than the {} bytes the classifier accepts",
                sql.len(),
                self.config.max_statement_bytes
            );
            return Arc::from(vec![Statement::unknown(sql, error)]);
        }
        if let Some(hit) = self.cache.get(sql) {
            return hit;
        }
        if parse_inline(sql) {
            // Only short strings: the scan is cheap next to their parse, and
            // a long one is rarely repeated with other literals.
            let shape = Shape::of(sql);
            if let Some(shape) = &shape {
                if let Some(statement) = self.shapes.get(shape, sql) {
                    return Arc::from(vec![statement]);
                }
            }
            let (statements, shareable) = classify_shareable(sql);
            let statements: Arc<[Statement]> = Arc::from(statements);
            self.cache.insert(sql, Arc::clone(&statements));
            if let (Some(shape), Some(shareable), [statement]) = (shape, shareable, &*statements) {
                let template = Template::new(
                    &shape,
                    sql,
                    statement,
                    shareable.text_at,
                    &shareable.constants,
                );
                if let Some(template) = template {
                    self.shapes.insert(&shape, template);
                }
            }
            return statements;
        }
        let owned = sql.to_owned();
        let statements: Arc<[Statement]> = match self.pool.run(move || classify_query(&owned)) {
            Some(statements) => Arc::from(statements),
            None => {
                // Not cached: the pool may recover (it does not today, but a
                // transient failure must not be remembered).
                return Arc::from(vec![Statement::unknown(sql, "classifier unavailable")]);
            }
        };
        self.cache.insert(sql, Arc::clone(&statements));
        statements
    }

    /// The prepared-statement operation of one statement's text (cached).
    pub(crate) fn prepared_op(&self, text: &str) -> Arc<PreparedOp> {
        if let Some(hit) = self.prepared.get(text) {
            return hit;
        }
        let owned = text.to_owned();
        let op = match self.pool.run(move || prepared_op(&owned)) {
            Some(op) => Arc::new(op),
            None => return Arc::new(PreparedOp::None),
        };
        self.prepared.insert(text, Arc::clone(&op));
        op
    }
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier::new(ClassifierConfig::default())
    }
}

#[cfg(test)]
#[path = "shape_tests.rs"]
mod shape_tests;
