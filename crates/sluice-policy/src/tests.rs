//! Unit tests of the internals: the shipped schema, the request shape and
//! decision combination. Behaviour over the default policies lives in
//! `tests/`.

use super::*;
use crate::decide::{combine, context, ContextUse};
use sluice_core::{Action, Outcome, PolicyRef};

fn stmt(action: Action) -> Statement {
    Statement {
        action,
        text: "x".into(),
        tables: vec!["public.t".into()],
        has_where: true,
        functions: vec!["now".into()],
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

#[test]
fn schema_parses_and_declares_every_action() -> Result<(), Box<dyn std::error::Error>> {
    let (schema, _) = cedar_policy::Schema::from_cedarschema_str(SCHEMA)?;
    Vocabulary::new(&schema)?;
    Ok(())
}

/// The context Sluice builds conforms to the schema for every action, with
/// and without a client address (decisions skip this check for speed).
#[test]
fn request_conforms_to_schema() -> Result<(), Box<dyn std::error::Error>> {
    let (schema, _) = cedar_policy::Schema::from_cedarschema_str(SCHEMA)?;
    let p: cedar_policy::EntityUid = r#"Identity::"a""#.parse()?;
    let r: cedar_policy::EntityUid = r#"Resource::"app""#.parse()?;
    let addrs: [Option<IpAddr>; 3] = [
        None,
        Some("10.1.2.3".parse()?),
        Some("::ffff:10.1.2.3".parse()?),
    ];
    for action in Action::ALL
        .iter()
        .map(|a| a.as_str())
        .chain([UNMASK_ACTION])
    {
        for addr in addrs {
            let scope = Scope::new(
                &Vocabulary::new(&schema)?,
                &Identity::new("a", vec![]),
                &ResourceInfo::default(),
                &RequestContext { client_addr: addr },
            );
            let ctx = if action == UNMASK_ACTION {
                crate::unmask::session_context(&scope)?
            } else {
                context(
                    &stmt(Action::Select),
                    scope.client_addr_expr(),
                    ContextUse::ALL,
                )?
            };
            let a: cedar_policy::EntityUid = format!(r#"Action::"{action}""#).parse()?;
            cedar_policy::Request::new(p.clone(), a, r.clone(), ctx, Some(&schema))?;
        }
    }
    Ok(())
}

/// No action group contains `unmask`, so `action in Action::"read"` style
/// permits can never lift masking.
#[test]
fn unmask_is_in_no_action_group() -> Result<(), Box<dyn std::error::Error>> {
    let (schema, _) = cedar_policy::Schema::from_cedarschema_str(SCHEMA)?;
    let vocab = Vocabulary::new(&schema)?;
    assert!(!vocab.in_a_group(vocab.unmask_uid()));
    // The check itself sees groups: select is in `read`.
    assert!(vocab.action_uids().iter().any(|a| vocab.in_a_group(a)));
    Ok(())
}

fn d(outcome: Outcome, id: &str) -> Decision {
    Decision {
        outcome,
        policies: vec![PolicyRef {
            id: id.into(),
            reason: None,
        }],
    }
}

fn review(group: &str, quorum: u32) -> Outcome {
    Outcome::Review {
        approver_group: group.into(),
        quorum,
    }
}

#[test]
fn combine_strictest_wins_and_merges_ties() {
    assert_eq!(combine([]), Decision::allow(vec![]));
    let c = combine([
        d(Outcome::Allow, "a"),
        d(review("dba", 1), "r1"),
        d(Outcome::Allow, "b"),
    ]);
    assert_eq!(c, d(review("dba", 1), "r1"));
    let c = combine([
        d(review("dba", 1), "r1"),
        d(review("sec", 2), "r2"),
        d(review("ops", 2), "r3"),
    ]);
    assert_eq!(c.outcome, review("sec", 2));
    assert_eq!(
        c.policies.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["r1", "r2", "r3"]
    );
    let c = combine([
        d(Outcome::Deny, "f1"),
        d(review("dba", 3), "r"),
        d(Outcome::Deny, "f1"),
        d(Outcome::Deny, "f2"),
    ]);
    assert_eq!(c.outcome, Outcome::Deny);
    assert_eq!(
        c.policies.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["f1", "f2"]
    );
}

#[test]
fn scope_cache_distinguishes_pairs() -> Result<(), PolicyError> {
    let set = PolicySet::from_source(
        "t.cedar",
        r#"@id("p") permit(principal in Group::"agents", action, resource) when { resource.kind == "postgres" };"#,
    )?;
    let agent = Identity::new("a", vec!["agents".into()]);
    let other = Identity::new("a", vec![]);
    let pg = ResourceInfo {
        name: "app".into(),
        kind: "postgres".into(),
        ..Default::default()
    };
    let s3 = ResourceInfo {
        name: "app".into(),
        kind: "s3".into(),
        ..Default::default()
    };
    let ctx = RequestContext::default();
    for _ in 0..2 {
        assert!(set
            .decide(&agent, &pg, &stmt(Action::Select), &ctx)
            .is_allow());
        assert!(!set
            .decide(&other, &pg, &stmt(Action::Select), &ctx)
            .is_allow());
        assert!(!set
            .decide(&agent, &s3, &stmt(Action::Select), &ctx)
            .is_allow());
    }
    Ok(())
}

#[test]
fn context_use_follows_the_policies() -> Result<(), Box<dyn std::error::Error>> {
    let set: cedar_policy::PolicySet = r#"
        permit(principal, action, resource) when { context.has_where };
        forbid(principal, action, resource) when { context has client_addr && context["functions"].contains("f") };
    "#
    .parse()?;
    let used = ContextUse::of(set.policies());
    let expected = ContextUse::ALL;
    assert_ne!(used, expected);
    let s = stmt(Action::Select);
    let addr = Scope::new(
        &Vocabulary::new(&cedar_policy::Schema::from_cedarschema_str(SCHEMA)?.0)?,
        &Identity::new("a", vec![]),
        &ResourceInfo::default(),
        &RequestContext {
            client_addr: Some("10.0.0.1".parse()?),
        },
    );
    let ctx = context(&s, addr.client_addr_expr(), used)?;
    let mut keys: Vec<String> = ctx.into_iter().map(|(k, _)| k).collect();
    keys.sort();
    assert_eq!(keys, ["client_addr", "functions", "has_where"]);
    Ok(())
}
