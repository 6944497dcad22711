//! `sluice policy`: see what the gateway would decide, and check policy
//! files before a reload.

use crate::ConfigArg;
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde::Serialize;
use sluice_core::{Decision, Identity, Outcome, Statement};
use sluice_policy::{RequestContext, ResourceInfo};
use sluice_server::policy::{load_policies, resource_infos};
use sluice_server::Config;
use sluice_sql::{Classifier, ClassifierConfig, SqlSession};
use std::net::IpAddr;

mod masking;

#[derive(Subcommand)]
pub(crate) enum PolicyCommand {
    /// Classify a query string and decide it as the gateway would, and show
    /// what masking does to the identity's session on the resource.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        identity: String,
        /// The resource (as clients name it in dbname).
        #[arg(long)]
        resource: String,
        /// Groups of the identity; default: those of its active keys.
        #[arg(long, value_delimiter = ',')]
        groups: Option<Vec<String>>,
        /// The client address to decide for.
        #[arg(long, default_value = "127.0.0.1")]
        client_addr: IpAddr,
        #[arg(long)]
        json: bool,
        /// The query string (one or more statements).
        sql: String,
    },
    /// Load the policies the config names and check them against the schema.
    Validate {
        #[command(flatten)]
        config: ConfigArg,
    },
}

pub(crate) fn run(command: PolicyCommand) -> Result<()> {
    match command {
        PolicyCommand::Check {
            config,
            identity,
            resource,
            groups,
            client_addr,
            json,
            sql,
        } => check(
            &Config::load(&config.config)?,
            identity,
            &resource,
            groups,
            client_addr,
            json,
            &sql,
        ),
        PolicyCommand::Validate { config } => validate(&Config::load(&config.config)?),
    }
}

#[derive(Serialize)]
struct StatementReport<'a> {
    #[serde(flatten)]
    statement: &'a Statement,
    decision: &'a Decision,
    /// How each function called is treated, and why.
    function_treatment: Vec<FunctionTreatment<'a>>,
}

#[derive(Serialize)]
struct FunctionTreatment<'a> {
    function: &'a str,
    /// `read`, or the action the call makes the statement at least.
    treated_as: &'static str,
    why: &'static str,
}

fn treatments(statement: &Statement) -> Vec<FunctionTreatment<'_>> {
    statement
        .functions
        .iter()
        .map(|function| {
            let (action, why) = sluice_sql::call_treatment(function);
            FunctionTreatment {
                function,
                treated_as: action.map_or("read", |a| a.as_str()),
                why,
            }
        })
        .collect()
}

#[derive(Serialize)]
struct CheckReport<'a> {
    identity: &'a Identity,
    resource: &'a str,
    statements: Vec<StatementReport<'a>>,
    /// The decision for the whole query string: the strictest.
    decision: Decision,
    /// What masking does to this identity's session on the resource.
    masking: masking::MaskingReport,
}

fn check(
    config: &Config,
    identity: String,
    resource: &str,
    groups: Option<Vec<String>>,
    client_addr: IpAddr,
    json: bool,
    sql: &str,
) -> Result<()> {
    let policies = load_policies(config)?;
    let infos = resource_infos(config);
    let Some(info) = infos.get(resource) else {
        bail!(
            "{}: no [[resource]] named \"{resource}\"",
            config.file.display()
        );
    };
    let groups = match groups {
        Some(g) => g,
        None => groups_of(config, &identity)?,
    };
    let identity = Identity::new(identity, groups);
    let classifier = Classifier::new(ClassifierConfig::default());
    let statements = SqlSession::default().resolve(&classifier, &classifier.classify(sql));
    let ctx = RequestContext {
        client_addr: Some(client_addr),
    };
    let decisions: Vec<Decision> = statements
        .iter()
        .map(|s| policies.decide(&identity, info, s, &ctx))
        .collect();
    // As the gateway decides a query string (and records it): the first of
    // its strictest statements' decisions, with the policies that made it.
    let overall = decisions
        .iter()
        .cloned()
        .reduce(Decision::stricter)
        .unwrap_or_else(|| Decision::allow(Vec::new()));
    let mut tables: Vec<String> = Vec::new();
    for t in statements.iter().flat_map(|s| &s.tables) {
        if !tables.contains(t) {
            tables.push(t.clone());
        }
    }
    let masking = masking::report(config, &policies, &identity, info, &ctx, &tables);
    let report = CheckReport {
        identity: &identity,
        resource,
        statements: statements
            .iter()
            .zip(&decisions)
            .map(|(statement, decision)| StatementReport {
                function_treatment: treatments(statement),
                statement,
                decision,
            })
            .collect(),
        decision: overall,
        masking,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, info);
    }
    Ok(())
}

/// The union of the groups on an identity's active keys.
fn groups_of(config: &Config, identity: &str) -> Result<Vec<String>> {
    let store = crate::keys::open_keys(&config.file)?;
    let credentials = store
        .credentials(identity)
        .context("reading the key store")?;
    let mut groups: Vec<String> = credentials
        .keys
        .into_iter()
        .flat_map(|k| k.groups)
        .collect();
    groups.sort();
    groups.dedup();
    Ok(groups)
}

fn outcome(decision: &Decision) -> String {
    match &decision.outcome {
        Outcome::Allow => "allow".into(),
        Outcome::Review {
            approver_group,
            quorum,
        } => format!("review by \"{approver_group}\" (quorum {quorum})"),
        Outcome::Deny => "deny".into(),
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

fn print_report(report: &CheckReport<'_>, resource: &ResourceInfo) {
    let tags: Vec<String> = resource
        .tags
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!(
        "identity {} (groups: {}) on resource {} (tags: {})",
        report.identity.name,
        list(&report.identity.groups),
        resource.name,
        list(&tags)
    );
    if report.statements.is_empty() {
        println!("no statements (an empty query)");
    }
    for (i, s) in report.statements.iter().enumerate() {
        let st = s.statement;
        println!("\nstatement {}: {}", i + 1, st.text.trim());
        println!("  action:     {}", st.action);
        println!("  tables:     {}", list(&st.tables));
        println!("  has_where:  {}", st.has_where);
        println!("  functions:  {}", list(&st.functions));
        for t in &s.function_treatment {
            println!("    {}: {} ({})", t.function, t.treated_as, t.why);
        }
        if st.locks_rows {
            println!("  locks_rows: true (FOR UPDATE / SHARE)");
        }
        if let Some(e) = &st.error {
            println!("  error:      {e}");
        }
        println!("  decision:   {}", outcome(s.decision));
        for p in &s.decision.policies {
            println!(
                "    policy {}{}",
                p.id,
                p.reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
        }
    }
    let ids: Vec<String> = report
        .decision
        .policies
        .iter()
        .map(|p| p.id.clone())
        .collect();
    println!(
        "\ndecision: {} (policies: {})",
        outcome(&report.decision),
        list(&ids)
    );
    masking::print(&report.masking, &report.identity.name, &resource.name);
}

fn validate(config: &Config) -> Result<()> {
    if config.policy.is_none() {
        bail!(
            "{}: no [policy] section: nothing would be permitted",
            config.file.display()
        );
    }
    let policies = load_policies(config)?;
    for w in policies.warnings() {
        eprintln!("warning: {w}");
    }
    println!(
        "{} policies valid: {}",
        policies.policy_ids().len(),
        policies.policy_ids().join(", ")
    );
    Ok(())
}
