//! The catalog names masking rules need. A RowDescription carries a table
//! OID, a column number and a type OID, not names; rather than look them up
//! per query, the rules' tables and types are resolved to OIDs once per
//! resource on a gateway-owned backend connection, and cached.

use crate::backend::{self, BackendTarget};
use crate::codec::Reader;
use crate::error::PgError;
use crate::frames::FrameReader;
use bytes::{BufMut, BytesMut};
use sluice_core::routines::Routines;
use sluice_mask::ValueKind;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tracing::warn;

pub(crate) const JSON: u32 = 114;
pub(crate) const JSONB: u32 = 3802;

/// Built-in types by OID (fixed across PostgreSQL versions): text-like
/// ones are masked in place, JSON by its values, the rest are opaque.
const BUILTIN: &[(u32, &str, ValueKind)] = &[
    (16, "bool", ValueKind::Opaque),
    (17, "bytea", ValueKind::Opaque),
    (18, "char", ValueKind::Text),
    (19, "name", ValueKind::Text),
    (20, "int8", ValueKind::Opaque),
    (21, "int2", ValueKind::Opaque),
    (23, "int4", ValueKind::Opaque),
    (25, "text", ValueKind::Text),
    (26, "oid", ValueKind::Opaque),
    (JSON, "json", ValueKind::Json),
    (142, "xml", ValueKind::Text),
    (650, "cidr", ValueKind::Opaque),
    (700, "float4", ValueKind::Opaque),
    (701, "float8", ValueKind::Opaque),
    (705, "unknown", ValueKind::Text),
    (829, "macaddr", ValueKind::Opaque),
    (869, "inet", ValueKind::Opaque),
    (1009, "_text", ValueKind::Text),
    (1015, "_varchar", ValueKind::Text),
    (1042, "bpchar", ValueKind::Text),
    (1043, "varchar", ValueKind::Text),
    (1082, "date", ValueKind::Opaque),
    (1083, "time", ValueKind::Opaque),
    (1114, "timestamp", ValueKind::Opaque),
    (1184, "timestamptz", ValueKind::Opaque),
    (1186, "interval", ValueKind::Opaque),
    (1700, "numeric", ValueKind::Opaque),
    (2950, "uuid", ValueKind::Opaque),
    (JSONB, "jsonb", ValueKind::Json),
];

/// Most columns read from a catalog: beyond it, the rest are unknown (and
/// COPY of their tables is refused in masked sessions).
const MAX_COLUMNS: usize = 200_000;

/// One schema's table of a name: the schema and (column, type OID) pairs.
type SchemaTable = (String, Vec<(String, u32)>);

/// Names by OID for one resource.
#[derive(Debug, Default)]
pub struct Catalog {
    /// (table OID, column number) → (schema, table, column) for the
    /// columns of user tables, views and foreign tables.
    columns: HashMap<(u32, i16), (String, String, String)>,
    /// Table name → (schema, its columns with their type OIDs).
    tables: HashMap<String, Vec<SchemaTable>>,
    /// The lookup failed: table names are unknown.
    pub unavailable: bool,
    /// Types outside the built-in list (extensions: citext, ...): name, and
    /// whether PostgreSQL files it under string types.
    types: HashMap<u32, (String, bool)>,
    /// The resource's functions and views, for proving calls read-only
    /// (`None`: they could not be read, and nothing is proven).
    pub routines: Option<Arc<Routines>>,
    /// When it was read (`None`: the lookup failed).
    pub loaded_at: Option<Instant>,
}

impl Catalog {
    /// The catalog of a resource whose lookup failed.
    pub(crate) fn unavailable() -> Catalog {
        Catalog {
            unavailable: true,
            ..Catalog::default()
        }
    }

    pub(crate) fn column(&self, table_oid: u32, attnum: i16) -> Option<&(String, String, String)> {
        if table_oid == 0 {
            return None;
        }
        self.columns.get(&(table_oid, attnum))
    }

    /// The columns of every table `name` can mean (`schema.table`, or a bare
    /// name in any schema); `None` if the catalog does not know it.
    pub fn table_columns<'a>(
        &'a self,
        name: &str,
    ) -> Option<Vec<(&'a str, &'a str, &'a str, u32)>> {
        let (schema, table) = match name.rsplit_once('.') {
            Some((s, t)) => (Some(s), t),
            None => (None, name),
        };
        let (table, found) = self.tables.get_key_value(table)?;
        let columns: Vec<_> = found
            .iter()
            .filter(|(s, _)| schema.is_none_or(|want| want == s))
            .flat_map(|(s, cols)| {
                cols.iter()
                    .map(move |(c, t)| (s.as_str(), table.as_str(), c.as_str(), *t))
            })
            .collect();
        (!columns.is_empty()).then_some(columns)
    }

    pub fn type_name(&self, oid: u32) -> Option<&str> {
        BUILTIN
            .iter()
            .find(|(o, _, _)| *o == oid)
            .map(|(_, name, _)| *name)
            .or_else(|| self.types.get(&oid).map(|(name, _)| name.as_str()))
    }

    /// How a value of type `oid` may be rewritten; an unknown type is
    /// opaque (a replacement could not be parsed).
    pub(crate) fn kind(&self, oid: u32) -> ValueKind {
        if let Some((_, _, kind)) = BUILTIN.iter().find(|(o, _, _)| *o == oid) {
            return *kind;
        }
        match self.types.get(&oid) {
            Some((_, true)) => ValueKind::Text,
            _ => ValueKind::Opaque,
        }
    }
}

/// How long a resolved catalog is used before it is looked up again (a
/// table recreated under the same name gets a new OID).
pub const FRESH_FOR: Duration = Duration::from_secs(10);

/// Resolved catalogs per resource.
#[derive(Default)]
pub struct CatalogCache {
    /// Held across a lookup: sessions starting together wait for one
    /// lookup instead of each opening its own backend connection.
    entries: tokio::sync::Mutex<HashMap<String, Entry>>,
}

struct Entry {
    at: Instant,
    catalog: Arc<Catalog>,
    /// A lookup in the background is under way.
    refreshing: bool,
}

impl CatalogCache {
    /// The catalog of `resource`: looked up when missing; when stale, the
    /// stale one is returned and a lookup starts in the background (a
    /// session start never waits for one once the resource was seen).
    pub async fn get(self: &Arc<Self>, resource: &str, target: &BackendTarget) -> Arc<Catalog> {
        let mut entries = self.entries.lock().await;
        if let Some(entry) = entries.get_mut(resource) {
            if entry.at.elapsed() >= FRESH_FOR && !entry.refreshing {
                entry.refreshing = true;
                let (cache, resource, target) = (self.clone(), resource.to_owned(), target.clone());
                tokio::spawn(async move {
                    cache.refresh(&resource, &target).await;
                });
            }
            return entry.catalog.clone();
        }
        Self::load(&mut entries, resource, target).await
    }

    /// Looks the catalog up now (a table the cached one does not know may
    /// have been created since, or DDL ran that can change a function).
    pub async fn refresh(&self, resource: &str, target: &BackendTarget) -> Arc<Catalog> {
        let mut entries = self.entries.lock().await;
        Self::load(&mut entries, resource, target).await
    }

    /// A lookup that fails gives a catalog marked unavailable, not cached:
    /// the session then masks every column a table rule might name and
    /// proves no call read-only (fail closed), and the next session tries
    /// again.
    async fn load(
        entries: &mut HashMap<String, Entry>,
        resource: &str,
        target: &BackendTarget,
    ) -> Arc<Catalog> {
        match lookup(target).await {
            Ok(c) => {
                let catalog = Arc::new(c);
                let entry = Entry {
                    at: Instant::now(),
                    catalog: catalog.clone(),
                    refreshing: false,
                };
                entries.insert(resource.to_owned(), entry);
                catalog
            }
            Err(e) => {
                if let Some(entry) = entries.get_mut(resource) {
                    entry.refreshing = false;
                }
                warn!(resource, error = %e, "catalog lookup failed; every column a table rule could name is masked and no function call is proven read-only");
                Arc::new(Catalog::unavailable())
            }
        }
    }
}

async fn lookup(target: &BackendTarget) -> Result<Catalog, PgError> {
    let columns_sql = format!(
        "SELECT c.oid, a.attnum, n.nspname, c.relname, a.attname, a.atttypid FROM pg_attribute a \
         JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
         AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
         ORDER BY c.oid, a.attnum LIMIT {MAX_COLUMNS}"
    );
    let types_sql = "SELECT oid, typname, typcategory = 'S' FROM pg_type WHERE oid >= 16384 AND typtype IN ('b', 'd', 'e') LIMIT 10000";
    let mut conn = backend::connect(target, &[], 64 * 1024 * 1024).await?;
    let mut catalog = Catalog {
        loaded_at: Some(Instant::now()),
        ..Catalog::default()
    };
    for row in simple_query(&mut conn, &columns_sql).await? {
        if let [oid, attnum, schema, table, column, type_oid] = row.as_slice() {
            if let (Ok(oid), Ok(attnum), Ok(type_oid)) =
                (oid.parse(), attnum.parse(), type_oid.parse())
            {
                catalog.columns.insert(
                    (oid, attnum),
                    (schema.clone(), table.clone(), column.clone()),
                );
                let schemas = catalog.tables.entry(table.clone()).or_default();
                match schemas.iter_mut().find(|(s, _)| s == schema) {
                    Some((_, cols)) => cols.push((column.clone(), type_oid)),
                    None => schemas.push((schema.clone(), vec![(column.clone(), type_oid)])),
                }
            }
        }
    }
    for row in simple_query(&mut conn, types_sql).await? {
        if let [oid, name, string] = row.as_slice() {
            if let Ok(oid) = oid.parse() {
                catalog.types.insert(oid, (name.clone(), string == "t"));
            }
        }
    }
    catalog.routines = match super::routines::lookup(&mut conn).await {
        Ok(routines) => Some(Arc::new(routines)),
        Err(e) => {
            warn!(error = %e, "catalog: functions and views could not be read; no function call is proven read-only");
            None
        }
    };
    let mut out = BytesMut::new();
    crate::messages::frontend::terminate(&mut out);
    let _ = conn.stream.write_all(&out).await;
    Ok(catalog)
}

/// Runs one query and returns its rows as text (NULL as empty).
pub(super) async fn simple_query(
    conn: &mut backend::Backend,
    sql: &str,
) -> Result<Vec<Vec<String>>, PgError> {
    let mut out = BytesMut::new();
    out.put_u8(b'Q');
    out.put_i32(i32::try_from(sql.len() + 5).unwrap_or(i32::MAX));
    out.put_slice(sql.as_bytes());
    out.put_u8(0);
    conn.stream
        .write_all(&out)
        .await
        .map_err(PgError::BackendIo)?;
    let mut reader = FrameReader::new(64 * 1024 * 1024);
    let mut rows = Vec::new();
    let mut failure = None;
    loop {
        let (tag, body) = reader
            .next(&mut conn.stream)
            .await
            .map_err(|e| PgError::BackendAuth(format!("catalog query: {e}")))?;
        match tag {
            b'D' => {
                let mut r = Reader::new(&body);
                let n = r.i16().map_err(PgError::BackendProtocol)?;
                let mut row = Vec::new();
                for _ in 0..n {
                    let len = r.i32().map_err(PgError::BackendProtocol)?;
                    let value = match usize::try_from(len) {
                        Ok(len) => {
                            String::from_utf8_lossy(r.bytes(len).map_err(PgError::BackendProtocol)?)
                                .into_owned()
                        }
                        Err(_) => String::new(),
                    };
                    row.push(value);
                }
                rows.push(row);
            }
            b'E' => failure = Some(backend::error_message(&body)),
            b'Z' => break,
            _ => {}
        }
    }
    match failure {
        Some(message) => Err(PgError::BackendAuth(format!(
            "catalog query failed: {message}"
        ))),
        None => Ok(rows),
    }
}
