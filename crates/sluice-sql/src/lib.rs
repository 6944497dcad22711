//! SQL classification for Sluice, on top of `pg_query` (the real PostgreSQL
//! parser, so there is no parser differential to slip a write past the
//! gateway).
//!
//! [`Classifier::classify`] turns a query string into one
//! [`sluice_core::Statement`] per statement: its action, the tables it
//! touches, whether an UPDATE/DELETE is restricted by a WHERE, the functions
//! it calls, and a normalized fingerprint (Sluice's own, computed from the
//! parse tree: see `fingerprint`; not `pg_query::fingerprint`). It fails closed: what cannot be
//! parsed or is not understood is `Action::Unknown` with the reason.
//! [`SqlSession`] resolves SQL-level `EXECUTE name` to what `PREPARE name`
//! held in the same session.
//!
//! Classification decisions (see the README of this crate for the list):
//! wrappers are seen through (`EXPLAIN ANALYZE x` is `x`; a data-modifying
//! CTE makes its statement that write), and when one statement does several
//! things the strongest action wins (see `rank`).

mod analyze;
mod cache;
mod classifier;
mod fingerprint;
mod function_lists;
mod functions;
mod kinds;
mod parse;
mod pool;
mod prepared;
mod rank;
mod routines;
mod session;
mod shape;
mod state;
mod walk;

pub use classifier::{Classifier, ClassifierConfig};
pub use functions::call_treatment;
pub use rank::{rank, stronger};
pub use routines::{resolve, FunctionCatalog};
pub use session::{SqlSession, MAX_PREPARED};
pub use sluice_core::{Action, Statement};
pub use state::SessionState;
