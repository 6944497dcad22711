//! Cost of one policy decision with the default policies plus a few more
//! (a dozen in all), for the statements a typical OLTP session sends.
//! Target: well under 10 µs per statement.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sluice_core::{Action, Identity, Statement};
use sluice_policy::{PolicySet, RequestContext, ResourceInfo};
use std::path::PathBuf;

const EXTRA: &str = r#"
@id("no-secrets") @reason("secrets are off limits")
forbid (principal in Group::"agents", action, resource) when { context has tables && context.tables.contains("secrets") };

@id("no-sleep") @reason("no pg_sleep")
forbid (principal, action, resource)
when { context has functions && context.functions.contains("pg_sleep") };

@id("vpn-only") @reason("connect through the VPN")
forbid (principal in Group::"dba", action, resource)
unless { context has client_addr && context.client_addr.isInRange(ip("10.0.0.0/8")) };

@id("big-deletes") @reason("deletes on orders need two approvers") @review("dba") @quorum("2")
permit (principal in Group::"agents", action == Action::"delete", resource)
when { context.tables.contains("orders") };
"#;

fn policies(with_extra: bool) -> PolicySet {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies");
    let mut sources: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cedar"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    if with_extra {
        sources.push(("extra.cedar".into(), EXTRA.into()));
    }
    PolicySet::from_sources(&sources).unwrap()
}

fn stmt(action: Action, text: &str, tables: &[&str], has_where: bool) -> Statement {
    Statement {
        action,
        text: text.into(),
        tables: tables.iter().map(|t| t.to_string()).collect(),
        has_where,
        functions: Vec::new(),
        calls_volatile: false,
        fingerprint: String::new(),
        commits: false,
        copies_out: false,
        locks_rows: false,
        defines_code: false,
        unproven: None,
        field_names: Vec::new(),
        kubernetes: None,
        s3: None,
        error: None,
    }
}

fn bench(c: &mut Criterion) {
    let set = policies(true);
    assert_eq!(set.policy_ids().len(), 12);
    let defaults = policies(false);
    let agent = Identity::new("agent-1", vec!["agents".into()]);
    let mut prod = ResourceInfo {
        name: "app".into(),
        kind: "postgres".into(),
        ..Default::default()
    };
    prod.tags.insert("env".into(), "prod".into());
    prod.tags.insert("team".into(), "payments".into());
    let ctx = RequestContext {
        client_addr: "10.1.2.3".parse().ok(),
    };

    let select = stmt(
        Action::Select,
        "SELECT id, name FROM users WHERE id = $1",
        &["users"],
        true,
    );
    let insert = stmt(
        Action::Insert,
        "INSERT INTO orders (user_id, total) VALUES ($1, $2)",
        &["orders"],
        true,
    );
    let update = stmt(
        Action::Update,
        "UPDATE users SET name = $1 WHERE id = $2",
        &["users"],
        true,
    );
    let drop = stmt(Action::Drop, "DROP TABLE users", &["users"], true);

    let scope = set.scope(&agent, &prod, &ctx);
    let mut g = c.benchmark_group("decide_in (kept scope)");
    for (name, s) in [
        ("select/allow", &select),
        ("insert/review", &insert),
        ("update/review", &update),
        ("drop/deny", &drop),
    ] {
        g.bench_function(name, |b| b.iter(|| set.decide_in(&scope, black_box(s))));
    }
    g.finish();

    let default_scope = defaults.scope(&agent, &prod, &ctx);
    let mut g = c.benchmark_group("decide_in (default policies only)");
    for (name, s) in [
        ("select/allow", &select),
        ("update/review", &update),
        ("drop/deny", &drop),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| defaults.decide_in(&default_scope, black_box(s)))
        });
    }
    g.finish();

    c.bench_function("decide (cached scope lookup)/select", |b| {
        b.iter(|| set.decide(&agent, &prod, black_box(&select), &ctx))
    });
    c.bench_function("decide_all/3 statements", |b| {
        let all = [select.clone(), update.clone(), insert.clone()];
        b.iter(|| set.decide_all(&agent, &prod, black_box(&all), &ctx))
    });
    c.bench_function("scope (build entities)", |b| {
        b.iter(|| set.scope(black_box(&agent), &prod, &ctx))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
