//! Masking is lifted per session by a permit for `Action::"unmask"`, and
//! only by one that names it; anything doubtful keeps values masked.

mod common;

use common::*;
use sluice_core::PolicyRef;
use sluice_policy::{PolicyError, PolicySet, ProblemKind, RequestContext, Unmask};

type R = Result<(), PolicyError>;

const NO_CTX: RequestContext = RequestContext { client_addr: None };

const DBA_UNMASK: &str = r#"
@id("dbas-see-raw-values")
@reason("DBAs may see unmasked data outside production")
permit(principal in Group::"dba", action == Action::"unmask", resource)
unless { resource.hasTag("env") && resource.getTag("env") == "prod" };
"#;

fn unmask(
    set: &PolicySet,
    who: &sluice_core::Identity,
    res: &sluice_policy::ResourceInfo,
) -> Unmask {
    set.may_unmask(&set.scope(who, res, &NO_CTX))
}

fn unmasked_by(id: &str, reason: Option<&str>) -> Unmask {
    Unmask::Unmasked {
        policy: PolicyRef {
            id: id.into(),
            reason: reason.map(str::to_string),
        },
    }
}

#[test]
fn dba_outside_prod_is_unmasked_naming_the_policy_and_reason() -> R {
    let set = PolicySet::from_source("m.cedar", DBA_UNMASK)?;
    let expected = unmasked_by(
        "dbas-see-raw-values",
        Some("DBAs may see unmasked data outside production"),
    );
    assert_eq!(unmask(&set, &dba(), &staging()), expected);
    assert_eq!(unmask(&set, &dba(), &resource("untagged", None)), expected);
    Ok(())
}

#[test]
fn prod_tag_keeps_even_a_dba_masked() -> R {
    let set = PolicySet::from_source("m.cedar", DBA_UNMASK)?;
    assert_eq!(unmask(&set, &dba(), &prod()), Unmask::Masked);
    Ok(())
}

#[test]
fn agents_and_other_identities_stay_masked() -> R {
    let set = PolicySet::from_source("m.cedar", DBA_UNMASK)?;
    for who in [agent(), nobody()] {
        assert_eq!(
            unmask(&set, &who, &staging()),
            Unmask::Masked,
            "{}",
            who.name
        );
    }
    Ok(())
}

#[test]
fn no_policies_for_unmask_means_masked() -> R {
    let set = PolicySet::from_source(
        "m.cedar",
        r#"@id("read") permit(principal, action in Action::"read", resource);"#,
    )?;
    assert_eq!(unmask(&set, &dba(), &staging()), Unmask::Masked);
    Ok(())
}

#[test]
fn a_forbid_wins_over_an_unmask_permit_whatever_its_action_scope() -> R {
    for forbid in [
        r#"@id("no-raw") forbid(principal == Identity::"alice", action == Action::"unmask", resource);"#,
        r#"@id("no-raw") forbid(principal == Identity::"alice", action in [Action::"select", Action::"unmask"], resource);"#,
        // A forbid that does not constrain its action applies to unmask too.
        r#"@id("no-raw") forbid(principal == Identity::"alice", action, resource);"#,
    ] {
        let set = PolicySet::from_sources(&[
            ("m.cedar".into(), DBA_UNMASK.into()),
            ("f.cedar".into(), forbid.into()),
        ])?;
        assert_eq!(unmask(&set, &dba(), &staging()), Unmask::Masked, "{forbid}");
    }
    // A forbid on statement actions only does not touch masking.
    let set = PolicySet::from_sources(&[
        ("m.cedar".into(), DBA_UNMASK.into()),
        (
            "f.cedar".into(),
            r#"@id("no-drop") forbid(principal, action == Action::"drop", resource);"#.into(),
        ),
    ])?;
    assert!(unmask(&set, &dba(), &staging()).is_unmasked());
    Ok(())
}

#[test]
fn catch_all_permit_does_not_unmask() -> R {
    let set = PolicySet::from_source(
        "m.cedar",
        r#"
        @id("allow-all") permit(principal, action, resource);
        @id("dba-read") permit(principal in Group::"dba", action in Action::"read", resource);
        "#,
    )?;
    assert_eq!(unmask(&set, &dba(), &staging()), Unmask::Masked);
    // It still allows statements.
    let d = set.decide(
        &dba(),
        &staging(),
        &stmt(sluice_core::Action::Select, "SELECT 1"),
        &NO_CTX,
    );
    assert!(d.is_allow());
    Ok(())
}

#[test]
fn unmask_listed_with_statement_actions_unmasks() -> R {
    let set = PolicySet::from_source(
        "m.cedar",
        r#"
        @id("dba-read-raw") @reason("DBAs read raw")
        permit(principal in Group::"dba", action in [Action::"select", Action::"unmask"], resource);
        "#,
    )?;
    assert_eq!(
        unmask(&set, &dba(), &staging()),
        unmasked_by("dba-read-raw", Some("DBAs read raw"))
    );
    Ok(())
}

#[test]
fn first_permit_in_load_order_is_named() -> R {
    let set = PolicySet::from_source(
        "m.cedar",
        r#"
        @id("first") permit(principal in Group::"dba", action == Action::"unmask", resource);
        @id("second") @reason("also") permit(principal, action == Action::"unmask", resource);
        "#,
    )?;
    assert_eq!(unmask(&set, &dba(), &staging()), unmasked_by("first", None));
    Ok(())
}

#[test]
fn client_address_is_in_the_unmask_context() -> R {
    let set = PolicySet::from_source(
        "m.cedar",
        r#"
        @id("vpn-raw") permit(principal in Group::"dba", action == Action::"unmask", resource)
        when { context has client_addr && context.client_addr.isInRange(ip("10.0.0.0/8")) };
        "#,
    )?;
    let at = |a: &str| RequestContext {
        client_addr: a.parse().ok(),
    };
    let res = staging();
    let scope = |ctx: &RequestContext| set.scope(&dba(), &res, ctx);
    assert!(set.may_unmask(&scope(&at("10.1.2.3"))).is_unmasked());
    assert!(set.may_unmask(&scope(&at("::ffff:10.1.2.3"))).is_unmasked());
    assert_eq!(set.may_unmask(&scope(&at("192.168.1.1"))), Unmask::Masked);
    assert_eq!(set.may_unmask(&scope(&NO_CTX)), Unmask::Masked);
    Ok(())
}

/// Cedar skips a policy whose evaluation errors; were it a forbid, that
/// would unmask. Any error keeps the session masked.
#[test]
fn evaluation_error_keeps_values_masked() -> R {
    let set = PolicySet::from_sources(&[
        ("m.cedar".into(), DBA_UNMASK.into()),
        (
            "f.cedar".into(),
            r#"@id("broken") forbid(principal, action == Action::"unmask", resource)
            when { 9223372036854775807 + 1 > 0 };"#
                .into(),
        ),
    ])?;
    assert_eq!(unmask(&set, &dba(), &staging()), Unmask::Masked);
    Ok(())
}

#[test]
fn review_on_an_unmask_permit_is_a_load_error_with_file_and_line() {
    for src in [
        "@id(\"ok\")\npermit(principal, action == Action::\"select\", resource);\n\n@id(\"raw-review\")\n@review(\"dba\")\npermit(principal, action == Action::\"unmask\", resource);\n",
        "@id(\"ok\")\npermit(principal, action == Action::\"select\", resource);\n\n@id(\"raw-review\")\n@review(\"dba\") @quorum(\"2\")\npermit(principal, action in [Action::\"select\", Action::\"unmask\"], resource);\n",
    ] {
        let err = PolicySet::from_source("m.cedar", src).err();
        let problems = err.as_ref().map(PolicyError::problems).unwrap_or_default();
        assert_eq!(problems.len(), 1, "{problems:?}");
        let p = &problems[0];
        assert_eq!(
            (p.kind, p.file.as_str(), p.line, p.policy_id.as_deref()),
            (ProblemKind::BadAnnotation, "m.cedar", 4, Some("raw-review"))
        );
        assert!(p.message.contains("unmask"), "{p}");
        assert!(p.to_string().starts_with("m.cedar:4:1: "), "{p}");
    }
}

#[test]
fn review_permit_without_action_scope_still_loads() -> R {
    let set = PolicySet::from_source(
        "m.cedar",
        r#"@id("review-all") @review("dba") permit(principal, action, resource);"#,
    )?;
    assert_eq!(unmask(&set, &dba(), &staging()), Unmask::Masked);
    Ok(())
}

/// A policy written for statements that does not constrain its action is
/// also checked for `unmask`, whose context is an empty statement: it loads
/// as it always did, and its statement conditions do not hold for unmask.
#[test]
fn an_unconstrained_policy_on_statement_attributes_loads_and_does_not_block_unmask() -> R {
    let set = PolicySet::from_sources(&[
        ("m.cedar".into(), DBA_UNMASK.into()),
        (
            "f.cedar".into(),
            r#"@id("no-secrets") forbid(principal, action, resource)
            when { context.tables.contains("secrets") };"#
                .into(),
        ),
    ])?;
    assert!(unmask(&set, &dba(), &staging()).is_unmasked());
    Ok(())
}

#[test]
fn shipped_defaults_unmask_dbas_outside_prod_only() -> R {
    let set = defaults()?;
    assert_eq!(
        unmask(&set, &dba(), &staging()),
        unmasked_by(
            "dbas-see-raw-values",
            Some("DBAs may see unmasked data outside production")
        )
    );
    assert_eq!(unmask(&set, &dba(), &prod()), Unmask::Masked);
    assert_eq!(unmask(&set, &agent(), &staging()), Unmask::Masked);
    assert_eq!(unmask(&set, &nobody(), &staging()), Unmask::Masked);
    Ok(())
}
