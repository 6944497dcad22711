//! The masking part of `sluice policy check`: whether the identity's session
//! on the resource would be masked, and if so by which detectors and which
//! column rules could apply to the statement's tables. There is no database
//! connection, so columns are not read: the rules are listed instead.

use serde::Serialize;
use sluice_core::{Identity, PolicyRef};
use sluice_policy::{PolicySet, RequestContext, ResourceInfo, Unmask};
use sluice_server::masking::mask_rules;
use sluice_server::Config;

/// What masking does to the identity's session on the resource.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum MaskingReport {
    /// `[masking] enabled = false`: `{"enabled": false}`.
    Disabled { enabled: bool },
    /// The `[masking]` section could not be compiled (a missing hash key, an
    /// unknown detector name): `{"error": "..."}`.
    Error { error: String },
    /// A policy lets the identity see raw values.
    Unmasked { unmasked_by: PolicyRef },
    /// Values are masked.
    Masked {
        /// Content detectors on for the resource.
        detectors: Vec<String>,
        /// Style of detector hits.
        style: String,
        /// Column rules that could apply to the statement's tables.
        column_rules: Vec<ColumnRuleReport>,
        /// Whether columns named like a secret key are masked whole.
        key_named_columns: bool,
        /// Not in the JSON: text output only.
        #[serde(skip)]
        key_names: Vec<String>,
        /// Not in the JSON: qualified rules for tables the statement does
        /// not touch.
        #[serde(skip)]
        other_tables: usize,
    },
}

#[derive(Serialize)]
pub(super) struct ColumnRuleReport {
    /// The pattern as written (`public.users.ssn`, `email`, `type:inet`).
    rule: String,
    style: String,
    /// The statement's table the rule names, or `any table`.
    applies_to: String,
    /// Not in the JSON: how a rule for any table is matched.
    #[serde(skip)]
    matched_by: &'static str,
}

const ANY_TABLE: &str = "any table";

/// The masking part for the whole query string (masking is decided per
/// session, not per statement); `tables` are the statements' tables.
pub(super) fn report(
    config: &Config,
    policies: &PolicySet,
    identity: &Identity,
    resource: &ResourceInfo,
    ctx: &RequestContext,
    tables: &[String],
) -> MaskingReport {
    if !config.masking.enabled {
        return MaskingReport::Disabled { enabled: false };
    }
    let rules = match mask_rules(config) {
        Ok(rules) => rules,
        Err(e) => {
            return MaskingReport::Error {
                error: e.to_string(),
            }
        }
    };
    let Some(rules) = rules.get(&resource.name) else {
        return MaskingReport::Error {
            error: format!("no masking rules for resource \"{}\"", resource.name),
        };
    };
    if let Unmask::Unmasked { policy } =
        policies.may_unmask(&policies.scope(identity, resource, ctx))
    {
        return MaskingReport::Unmasked {
            unmasked_by: policy,
        };
    }
    let description = rules.masker.describe();
    let mut column_rules = Vec::new();
    let mut other_tables = 0;
    for column in &description.columns {
        let style = style_name(&column.style);
        let pattern = sluice_mask::ColumnPattern::parse(&column.rule).ok();
        let any = |how| (vec![ANY_TABLE.into()], how);
        let (applies_to, matched_by): (Vec<String>, _) = match &pattern {
            Some(p @ sluice_mask::ColumnPattern::Qualified { .. }) => (
                tables
                    .iter()
                    .filter(|t| p.may_apply_to_table(t) != Some(false))
                    .cloned()
                    .collect(),
                "source table",
            ),
            Some(sluice_mask::ColumnPattern::Type(_)) => any("column type"),
            _ => any("result column name"),
        };
        if applies_to.is_empty() {
            other_tables += 1;
        }
        for applies_to in applies_to {
            column_rules.push(ColumnRuleReport {
                rule: column.rule.clone(),
                style: style.clone(),
                applies_to,
                matched_by,
            });
        }
    }
    MaskingReport::Masked {
        detectors: description
            .detectors
            .iter()
            .map(|d| d.to_string())
            .collect(),
        style: style_name(&description.style),
        column_rules,
        key_named_columns: description.key_named_columns,
        key_names: description.key_names.clone(),
        other_tables,
    }
}

/// A style's name as written in the config (`full`, `partial`, `hash`).
fn style_name<S: Serialize>(style: &S) -> String {
    match serde_json::to_value(style) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "full".into(),
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// The text form, after the decision.
pub(super) fn print(report: &MaskingReport, identity: &str, resource: &str) {
    match report {
        MaskingReport::Disabled { .. } => {
            println!(
                "\nmasking: disabled ([masking] enabled = false): results reach clients unmasked"
            );
        }
        MaskingReport::Error { error } => {
            println!("\nmasking: cannot be described: {error}");
        }
        MaskingReport::Unmasked { unmasked_by } => {
            println!(
                "\nmasking: unmasked by policy \"{}\"{}",
                unmasked_by.id,
                unmasked_by
                    .reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
        }
        MaskingReport::Masked {
            detectors,
            style,
            column_rules,
            key_named_columns,
            key_names,
            other_tables,
        } => {
            println!("\nmasking: on ({identity} may not unmask on {resource})");
            println!("  detectors:  {}", list(detectors));
            println!("  style:      {style} (of detector hits)");
            if column_rules.is_empty() {
                println!("  column rules: none apply to the statement's tables");
            } else {
                println!("  column rules that could apply:");
                let width = column_rules.iter().map(|r| r.rule.len()).max().unwrap_or(0);
                for r in column_rules {
                    let on = if r.applies_to == ANY_TABLE {
                        format!("any table (by {})", r.matched_by)
                    } else {
                        r.applies_to.clone()
                    };
                    println!("    {:width$}  {:7}  {on}", r.rule, r.style);
                }
            }
            if *other_tables > 0 {
                println!(
                    "  ({other_tables} rule{} for other tables not listed)",
                    if *other_tables == 1 { "" } else { "s" }
                );
            }
            if *key_named_columns {
                println!(
                    "  key-named columns: masked whole (full), any table: a column named like {}",
                    list(key_names)
                );
            } else {
                println!("  key-named columns: off");
            }
            println!(
                "  (no database connection: name rules and key names are matched against \
                 result column names at run time, qualified rules against each result \
                 column's source table, type rules against its type)"
            );
        }
    }
}
