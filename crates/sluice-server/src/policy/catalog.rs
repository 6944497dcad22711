//! One session's view of its resource's catalog: the names masking needs,
//! and which functions and views only read (so a call to one is no `call`).
//!
//! The view goes stale when the session runs a statement that can define
//! code (CREATE FUNCTION, CREATE VIEW, DO, ...). Until the catalog is read
//! again nothing is proven: inside the transaction block that ran it, the
//! change is invisible to the gateway's catalog connection anyway. Once the
//! session is settled (the change committed, nothing in flight) it pauses
//! before its next message while the catalog is read again.

use sluice_core::Statement;
use sluice_pg::mask::{Catalog, CatalogRefresh};
use sluice_pg::Pause;
use sluice_sql::FunctionCatalog;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// Function verdicts per catalog load, shared by every session: judging
/// bodies and views is done once per load, not once per session.
#[derive(Default, Clone)]
pub(crate) struct Verdicts {
    by_resource: Arc<Mutex<HashMap<String, (Weak<Catalog>, Arc<FunctionCatalog>)>>>,
}

impl Verdicts {
    fn of(&self, resource: &str, catalog: &Arc<Catalog>) -> Option<Arc<FunctionCatalog>> {
        let routines = catalog.routines.as_ref()?;
        let mut memo = self
            .by_resource
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((seen, verdicts)) = memo.get(resource) {
            if seen.upgrade().is_some_and(|seen| Arc::ptr_eq(&seen, catalog)) {
                return Some(verdicts.clone());
            }
        }
        let verdicts = Arc::new(FunctionCatalog::build(routines));
        memo.insert(
            resource.to_owned(),
            (Arc::downgrade(catalog), verdicts.clone()),
        );
        Some(verdicts)
    }
}

pub(crate) struct CatalogView {
    resource: String,
    verdicts: Verdicts,
    /// The catalog and how to read it again (none yet: nothing proven).
    catalog: Option<(Arc<Catalog>, CatalogRefresh)>,
    functions: Option<Arc<FunctionCatalog>>,
    /// Code may have changed since the catalog was read.
    stale: bool,
    /// Where a catalog read again after a change lands.
    reread: Arc<Mutex<Option<Arc<Catalog>>>>,
}

impl CatalogView {
    pub(crate) fn new(resource: &str, verdicts: Verdicts) -> CatalogView {
        CatalogView {
            resource: resource.to_owned(),
            verdicts,
            catalog: None,
            functions: None,
            stale: false,
            reread: Arc::default(),
        }
    }

    pub(crate) fn set(&mut self, catalog: Arc<Catalog>, refresh: CatalogRefresh) {
        self.functions = self.verdicts.of(&self.resource, &catalog);
        self.catalog = Some((catalog, refresh));
    }

    /// The catalog for masking decisions, and how to read it again.
    pub(crate) fn masking(&self) -> Option<&(Arc<Catalog>, CatalogRefresh)> {
        self.catalog.as_ref()
    }

    /// Completes the classification of `statement` with the catalog.
    pub(crate) fn resolve(&mut self, statement: &mut Statement) {
        self.take_reread();
        let functions = self.functions.as_deref().filter(|_| !self.stale);
        sluice_sql::resolve(functions, statement);
    }

    /// `statement` runs: if it can define code, what is known goes stale.
    pub(crate) fn ran(&mut self, statement: &Statement) {
        if statement.defines_code {
            self.stale = true;
        }
    }

    /// After a change, once settled: read the catalog again first.
    pub(crate) fn pause(&mut self, settled: bool) -> Option<Pause> {
        self.take_reread();
        if !self.stale || !settled {
            return None;
        }
        let (_, refresh) = self.catalog.as_ref()?;
        let (refresh, slot) = (refresh.clone(), self.reread.clone());
        self.stale = false;
        Some(Box::pin(async move {
            let catalog = refresh().await;
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(catalog);
        }))
    }

    fn take_reread(&mut self) {
        let fresh = self
            .reread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let (Some(fresh), Some((_, refresh))) = (fresh, self.catalog.clone()) {
            self.set(fresh, refresh);
        }
    }
}
