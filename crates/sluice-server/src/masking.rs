//! The masking rules of each resource, built once from `[masking]`: the
//! secure default (every content detector on), the resource's detectors
//! turned off, the column rules, and what of the catalog they need.

use crate::config::{Config, ConfigError};
use sluice_mask::{DetectorSet, MaskConfig, Masker};
use sluice_pg::mask::Catalog;
use sluice_pg::{sqlstate, MaskRules, PgErrorReply};
use std::collections::HashMap;
use std::sync::Arc;
use tracing::warn;

/// Rules per resource name; empty when masking is off.
pub fn mask_rules(config: &Config) -> Result<HashMap<String, MaskRules>, ConfigError> {
    let m = &config.masking;
    if !m.enabled {
        warn!("[masking] enabled = false: results reach clients UNMASKED");
        return Ok(HashMap::new());
    }
    let hmac_key = config
        .secret(
            "[masking] hash_key",
            m.hash_key_env.as_deref(),
            m.hash_key_file.as_deref(),
        )?
        .map(String::into_bytes);
    let mut rules = HashMap::new();
    for r in &config.resources {
        let off = DetectorSet::from_names(&r.masking_detectors_off).map_err(|e| {
            config.error(format!(
                "[[resource]] \"{}\": masking_detectors_off: {e}",
                r.name
            ))
        })?;
        let mut detectors = DetectorSet::all();
        for d in off.iter() {
            detectors = detectors.without(d);
        }
        let defaults = MaskConfig::default();
        let mask_config = MaskConfig {
            detectors,
            columns: m.columns.clone(),
            key_names: m.key_names.clone().unwrap_or(defaults.key_names),
            key_named_columns: m.key_named_columns,
            style: m.style,
            hmac_key: hmac_key.clone(),
        };
        let masker = Masker::new(mask_config)
            .map_err(|e| config.error(format!("[masking] (resource \"{}\"): {e}", r.name)))?;
        rules.insert(
            r.name.clone(),
            MaskRules {
                masker: Arc::new(masker),
            },
        );
    }
    Ok(rules)
}

/// What a COPY TO STDOUT in a masked session may do.
pub(crate) enum CopyVerdict {
    Allowed,
    Refused(PgErrorReply),
    /// A table the catalog does not know.
    Unknown,
}

/// COPY carries no column names: a table with a column a column rule masks
/// cannot be copied out in a masked session.
pub(crate) fn copy_verdict(
    masker: &Masker,
    catalog: Option<&Catalog>,
    tables: &[String],
) -> CopyVerdict {
    let Some(catalog) = catalog else {
        return CopyVerdict::Unknown;
    };
    for table in tables {
        let Some(columns) = catalog.table_columns(table) else {
            return CopyVerdict::Unknown;
        };
        for (schema, name, column, type_oid) in columns {
            let info = sluice_mask::ColumnInfo {
                name: column,
                schema: Some(schema),
                table: Some(name),
                type_name: catalog.type_name(type_oid),
            };
            if let Some(rule) = masker.column(&info) {
                return CopyVerdict::Refused(copy_refused(
                    table,
                    format!("its column {column} is masked (rule \"{}\")", rule.rule),
                ));
            }
        }
    }
    CopyVerdict::Allowed
}

pub(crate) fn copy_refused(table: &str, why: String) -> PgErrorReply {
    warn!(table, reason = %why, "COPY refused: masked columns");
    PgErrorReply::error(
        sqlstate::INSUFFICIENT_PRIVILEGE,
        format!("COPY TO STDOUT of {table} is refused: {why}"),
    )
    .with_hint("COPY carries no column names, so masked columns cannot be masked in it; SELECT the rows instead (masked per column).")
}
