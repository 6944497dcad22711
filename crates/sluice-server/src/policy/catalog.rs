//! One session's view of its resource's catalog: the names masking needs,
//! and which functions and views only read (so a call to one is no `call`).
//!
//! Every session of a resource reads the newest catalog any of them has
//! (function verdicts are judged once per catalog read, not per session),
//! and a catalog older than [`FRESH_FOR`] is read again in the background,
//! so a long session sees a function replaced outside Sluice within about
//! that long.
//!
//! The view goes stale when the session runs a statement that can define
//! code (CREATE FUNCTION, CREATE VIEW, DO, ...): until the catalog is read
//! again nothing is proven. Inside the transaction block that ran it the
//! change is invisible to the gateway's catalog connection anyway; once the
//! session is settled (the change committed, nothing in flight) it pauses
//! before its next message while the catalog is read again.

use arc_swap::ArcSwap;
use sluice_core::Statement;
use sluice_pg::mask::{Catalog, CatalogRefresh, FRESH_FOR};
use sluice_pg::Pause;
use sluice_sql::FunctionCatalog;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The newest catalog read per resource, shared by every session.
#[derive(Default, Clone)]
pub(crate) struct Verdicts {
    by_resource: Arc<Mutex<HashMap<String, Arc<Shared>>>>,
}

impl Verdicts {
    fn of(&self, resource: &str) -> Arc<Shared> {
        let mut map = self
            .by_resource
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(resource.to_owned()).or_default().clone()
    }
}

#[derive(Default)]
struct Shared {
    current: ArcSwap<Option<Loaded>>,
    /// A read of the catalog is under way.
    refreshing: AtomicBool,
}

struct Loaded {
    catalog: Arc<Catalog>,
    /// `None`: the catalog's functions could not be read.
    functions: Option<Arc<FunctionCatalog>>,
}

impl Shared {
    /// Makes `catalog` the current one unless a newer one is; a failed
    /// read never replaces a good one (the next read tries again).
    fn publish(&self, catalog: Arc<Catalog>) {
        let Some(at) = catalog.loaded_at else {
            if self.current.load().is_none() {
                self.current.store(Arc::new(Some(Loaded {
                    catalog,
                    functions: None,
                })));
            }
            return;
        };
        let current = self.current.load();
        if let Some(loaded) = current.as_ref() {
            if loaded.catalog.loaded_at.is_some_and(|seen| seen >= at) {
                return;
            }
        }
        let functions = catalog
            .routines
            .as_deref()
            .map(|r| Arc::new(FunctionCatalog::build(r)));
        self.current
            .store(Arc::new(Some(Loaded { catalog, functions })));
    }

    /// Reads the catalog again in a task of its own (a session that ends
    /// meanwhile does not cancel it); `None` if a read is under way.
    fn reread(self: &Arc<Self>, refresh: &CatalogRefresh) -> Option<tokio::task::JoinHandle<()>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return None;
        }
        let (shared, refresh) = (self.clone(), refresh.clone());
        Some(runtime.spawn(async move {
            let catalog = refresh().await;
            shared.publish(catalog);
            shared.refreshing.store(false, Ordering::Release);
        }))
    }
}

pub(crate) struct CatalogView {
    shared: Arc<Shared>,
    refresh: Option<CatalogRefresh>,
    /// Code may have changed since the catalog was read.
    stale: bool,
}

impl CatalogView {
    pub(crate) fn new(resource: &str, verdicts: &Verdicts) -> CatalogView {
        CatalogView {
            shared: verdicts.of(resource),
            refresh: None,
            stale: false,
        }
    }

    pub(crate) fn set(&mut self, catalog: Arc<Catalog>, refresh: CatalogRefresh) {
        self.shared.publish(catalog);
        self.refresh = Some(refresh);
    }

    /// The catalog for masking decisions, and how to read it again.
    pub(crate) fn masking(&self) -> Option<(Arc<Catalog>, CatalogRefresh)> {
        let current = self.shared.current.load();
        let loaded = current.as_ref().as_ref()?;
        Some((loaded.catalog.clone(), self.refresh.clone()?))
    }

    /// Completes the classification of `statement` with the catalog.
    pub(crate) fn resolve(&mut self, statement: &mut Statement) {
        let current = self.shared.current.load();
        let loaded = current.as_ref().as_ref();
        let old = loaded
            .and_then(|l| l.catalog.loaded_at)
            .is_none_or(|at| at.elapsed() >= FRESH_FOR);
        if old {
            if let Some(refresh) = &self.refresh {
                // Not waited for: this statement is judged on what is known.
                drop(self.shared.reread(refresh));
            }
        }
        let functions = loaded
            .and_then(|l| l.functions.as_deref())
            .filter(|_| !self.stale);
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
        if !self.stale || !settled {
            return None;
        }
        let refresh = self.refresh.clone()?;
        self.stale = false;
        let shared = self.shared.clone();
        Some(Box::pin(async move {
            match shared.reread(&refresh) {
                Some(task) => drop(task.await),
                // Another session's read is under way, and may have started
                // before the change: read once more after it.
                None => {
                    while shared.refreshing.load(Ordering::Acquire) {
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    }
                    if let Some(task) = shared.reread(&refresh) {
                        drop(task.await);
                    }
                }
            }
        }))
    }
}
