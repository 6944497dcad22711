//! The resource's functions and views, read over the catalog connection
//! (PostgreSQL 14 or later: `prosqlbody`), for proving calls read-only.
//! Judging them is the SQL crate's business; this only reads rows.

use super::catalog::simple_query;
use crate::backend::Backend;
use crate::error::PgError;
use sluice_core::routines::{FunctionDef, Routines, ViewDef, Volatility};

/// Most functions and views read; a catalog with more is not trusted
/// (nothing is proven) rather than judged on part of it.
const MAX_ROWS: usize = 200_000;

/// Bodies are read only where they decide the verdict: user functions that
/// are stable or immutable, plain, in SQL or PL/pgSQL, not SECURITY DEFINER.
const FUNCTIONS_SQL: &str = "SELECT n.nspname, p.proname, p.provolatile, l.lanname, p.prosecdef, p.prokind, \
     p.pronargs = 1 AND EXISTS (SELECT 1 FROM pg_type t WHERE t.oid = p.proargtypes[0] \
                                AND t.typtype IN ('c', 'd', 'p')), \
     CASE WHEN n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.provolatile <> 'v' \
          AND l.lanname IN ('sql', 'plpgsql') AND NOT p.prosecdef AND p.prokind = 'f' \
     THEN CASE WHEN p.prosqlbody IS NOT NULL THEN pg_get_function_sqlbody(p.oid) ELSE p.prosrc END END \
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang \
     LIMIT 200001";

const VIEWS_SQL: &str = "SELECT n.nspname, c.relname, pg_get_viewdef(c.oid) FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind = 'v' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
     LIMIT 200001";

pub(super) async fn lookup(conn: &mut Backend) -> Result<Routines, PgError> {
    let mut routines = Routines::default();
    let rows = simple_query(conn, FUNCTIONS_SQL).await?;
    if rows.len() > MAX_ROWS {
        return Err(too_many("functions"));
    }
    for row in rows {
        if let [schema, name, volatility, language, definer, kind, takes_row, body] = row.as_slice()
        {
            routines.functions.push(FunctionDef {
                schema: schema.clone(),
                name: name.clone(),
                volatility: Volatility::from_code(volatility),
                language: language.clone(),
                security_definer: definer == "t",
                kind: kind.chars().next().unwrap_or('?'),
                takes_row: takes_row == "t",
                body: Some(body.clone()),
            });
        }
    }
    let rows = simple_query(conn, VIEWS_SQL).await?;
    if rows.len() > MAX_ROWS {
        return Err(too_many("views"));
    }
    for row in rows {
        if let [schema, name, definition] = row.as_slice() {
            routines.views.push(ViewDef {
                schema: schema.clone(),
                name: name.clone(),
                definition: definition.clone(),
            });
        }
    }
    Ok(routines)
}

fn too_many(what: &str) -> PgError {
    PgError::BackendAuth(format!(
        "catalog: more than {MAX_ROWS} {what}; none is trusted"
    ))
}
