//! Decision semantics beyond the default policies: review and quorum, how
//! several permits combine, tags and groups, the client address, and failing
//! closed when a policy cannot be evaluated.

mod common;

use common::*;
use sluice_core::{Action, Outcome};
use sluice_policy::{PolicyError, PolicySet, RequestContext, DEFAULT_DENY_ID};

type R = Result<(), PolicyError>;

const NO_CTX: RequestContext = RequestContext { client_addr: None };

fn review(group: &str, quorum: u32) -> Outcome {
    Outcome::Review {
        approver_group: group.into(),
        quorum,
    }
}

#[test]
fn review_with_quorum() -> R {
    let set = PolicySet::from_source(
        "t.cedar",
        r#"
        @id("two-dbas") @reason("deletes need two DBAs") @review("dba") @quorum("2")
        permit(principal, action == Action::"delete", resource);
        "#,
    )?;
    let d = set.decide(
        &agent(),
        &prod(),
        &stmt(Action::Delete, "DELETE FROM t WHERE id = 1"),
        &NO_CTX,
    );
    assert_eq!(d.outcome, review("dba", 2));
    assert_eq!(ids(&d), ["two-dbas"]);
    assert_eq!(
        d.policies[0].reason.as_deref(),
        Some("deletes need two DBAs")
    );
    Ok(())
}

#[test]
fn review_beats_plain_permit_and_highest_quorum_wins() -> R {
    let set = PolicySet::from_source(
        "t.cedar",
        r#"
        @id("allow-all") permit(principal, action, resource);
        @id("ops-review") @review("ops") permit(principal, action in Action::"write", resource);
        @id("sec-review") @review("security") @quorum("3")
        permit(principal, action, resource) when { context has tables && context.tables.contains("secrets") };
        @id("dba-review") @review("dba") @quorum("3")
        permit(principal, action, resource) when { context has tables && context.tables.contains("secrets") };
        "#,
    )?;
    let mut s = stmt(Action::Update, "UPDATE users SET a = 1 WHERE id = 1");
    let d = set.decide(&agent(), &prod(), &s, &NO_CTX);
    assert_eq!(d.outcome, review("ops", 1));
    // The plain permit is not listed: it did not decide.
    assert_eq!(ids(&d), ["ops-review"]);

    s.tables.push("secrets".into());
    let d = set.decide(&agent(), &prod(), &s, &NO_CTX);
    // Highest quorum; on a tie, the first in load order, with its own group.
    assert_eq!(d.outcome, review("security", 3));
    assert_eq!(ids(&d), ["ops-review", "sec-review", "dba-review"]);
    Ok(())
}

#[test]
fn forbid_beats_review_and_carries_all_fired_forbids() -> R {
    let set = PolicySet::from_source(
        "t.cedar",
        r#"
        @id("review") @review("dba") permit(principal, action, resource);
        @id("no-secrets") @reason("secrets are off limits")
        forbid(principal, action, resource) when { context has tables && context.tables.contains("secrets") };
        @id("no-bulk") @reason("add a WHERE clause")
        forbid(principal, action in Action::"write", resource) unless { context.has_where };
        "#,
    )?;
    let mut s = without_where(stmt(Action::Delete, "DELETE FROM secrets"));
    s.tables = vec!["secrets".into()];
    let d = set.decide(&agent(), &prod(), &s, &NO_CTX);
    assert_eq!(d.outcome, Outcome::Deny);
    let got: Vec<_> = d
        .policies
        .iter()
        .map(|p| (p.id.as_str(), p.reason.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("no-secrets", Some("secrets are off limits")),
            ("no-bulk", Some("add a WHERE clause"))
        ]
    );
    Ok(())
}

#[test]
fn tags_and_kind() -> R {
    let set = PolicySet::from_source(
        "t.cedar",
        r#"
        @id("staging-only")
        permit(principal, action, resource)
        when { resource.kind == "postgres" && resource.hasTag("env") && resource.getTag("env") == "staging" };
        "#,
    )?;
    let s = stmt(Action::Select, "SELECT 1");
    assert!(set.decide(&agent(), &staging(), &s, &NO_CTX).is_allow());
    assert!(!set.decide(&agent(), &prod(), &s, &NO_CTX).is_allow());
    // A resource without the tag: the guarded policy simply does not apply.
    let d = set.decide(&agent(), &resource("plain", None), &s, &NO_CTX);
    assert_eq!(ids(&d), [DEFAULT_DENY_ID]);
    let mut other_kind = staging();
    other_kind.kind = "mysql".into();
    assert!(!set.decide(&agent(), &other_kind, &s, &NO_CTX).is_allow());
    Ok(())
}

#[test]
fn groups_and_identity_names() -> R {
    let set = PolicySet::from_source(
        "t.cedar",
        r#"
        @id("analysts") permit(principal in Group::"analysts", action == Action::"select", resource);
        @id("bob") permit(principal == Identity::"bob", action == Action::"insert", resource);
        "#,
    )?;
    let analyst = sluice_core::Identity::new("carol", vec!["staff".into(), "analysts".into()]);
    let bob = sluice_core::Identity::new("bob", vec![]);
    assert!(set
        .decide(&analyst, &prod(), &stmt(Action::Select, "s"), &NO_CTX)
        .is_allow());
    assert!(!set
        .decide(&analyst, &prod(), &stmt(Action::Insert, "i"), &NO_CTX)
        .is_allow());
    assert!(set
        .decide(&bob, &prod(), &stmt(Action::Insert, "i"), &NO_CTX)
        .is_allow());
    assert!(!set
        .decide(&bob, &prod(), &stmt(Action::Select, "s"), &NO_CTX)
        .is_allow());
    Ok(())
}

#[test]
fn action_groups() -> R {
    let set = PolicySet::from_source(
        "t.cedar",
        r#"
        @id("read") permit(principal, action in Action::"read", resource);
        @id("write") @review("dba") permit(principal, action in Action::"write", resource);
        @id("schema") forbid(principal, action in Action::"schema", resource);
        @id("connect") forbid(principal, action in Action::"connect", resource);
        "#,
    )?;
    let expect = |a: Action| match a {
        Action::Select
        | Action::CopyOut
        | Action::Explain
        | Action::Get
        | Action::List
        | Action::Watch
        | Action::Discover
        | Action::GetObject
        | Action::HeadObject
        | Action::GetObjectAttributes
        | Action::ListObjects
        | Action::ListObjectsV2
        | Action::ListObjectVersions
        | Action::ListBuckets
        | Action::HeadBucket
        | Action::GetBucketLocation
        | Action::ListMultipartUploads
        | Action::ListParts
        | Action::GetObjectTagging
        | Action::GetBucketTagging
        | Action::GetBucketVersioning
        | Action::GetObjectAcl
        | Action::GetBucketAcl
        | Action::GetBucketPolicy
        | Action::GetBucketLifecycleConfiguration => Some("read"),
        Action::Insert
        | Action::Update
        | Action::Delete
        | Action::Merge
        | Action::CopyIn
        | Action::Create
        | Action::Patch
        | Action::DeleteCollection
        | Action::PutObject
        | Action::CopyObject
        | Action::CreateMultipartUpload
        | Action::UploadPart
        | Action::UploadPartCopy
        | Action::CompleteMultipartUpload
        | Action::AbortMultipartUpload
        | Action::DeleteObject
        | Action::DeleteObjects
        | Action::PutObjectTagging
        | Action::DeleteObjectTagging
        | Action::PutBucketTagging
        | Action::DeleteBucketTagging => Some("write"),
        Action::Ddl
        | Action::Drop
        | Action::Truncate
        | Action::Grant
        | Action::CreateBucket
        | Action::DeleteBucket => Some("schema"),
        Action::Exec | Action::Attach | Action::PortForward | Action::Proxy => Some("connect"),
        _ => None,
    };
    for a in Action::ALL {
        let d = set.decide(&agent(), &prod(), &stmt(a, "x"), &NO_CTX);
        assert_eq!(ids(&d), [expect(a).unwrap_or(DEFAULT_DENY_ID)], "{a}");
    }
    Ok(())
}

#[test]
fn client_address() -> R {
    let set = PolicySet::from_source(
        "t.cedar",
        r#"
        @id("vpn-only") permit(principal, action, resource)
        when { context has client_addr && context.client_addr.isInRange(ip("10.0.0.0/8")) };
        "#,
    )?;
    let s = stmt(Action::Select, "SELECT 1");
    let at = |a: &str| RequestContext {
        client_addr: a.parse().ok(),
    };
    assert!(set
        .decide(&agent(), &prod(), &s, &at("10.1.2.3"))
        .is_allow());
    assert!(set
        .decide(&agent(), &prod(), &s, &at("::ffff:10.1.2.3"))
        .is_allow());
    assert!(!set
        .decide(&agent(), &prod(), &s, &at("192.168.1.1"))
        .is_allow());
    assert!(!set.decide(&agent(), &prod(), &s, &at("fd00::1")).is_allow());
    assert!(!set.decide(&agent(), &prod(), &s, &NO_CTX).is_allow());
    Ok(())
}

/// A policy that errors at evaluation (here: integer overflow, which the
/// validator cannot rule out) is skipped by Cedar. Were it a forbid, that
/// would turn into an allow: Sluice denies instead and names it.
#[test]
fn evaluation_error_fails_closed() -> R {
    let set = PolicySet::from_source(
        "t.cedar",
        r#"
        @id("allow-all") permit(principal, action, resource);
        @id("broken-forbid") @reason("would deny wide reads")
        forbid(principal, action, resource)
        when { context has tables && context.tables.contains("users") && 9223372036854775807 + 1 > 0 };
        "#,
    )?;
    let d = set.decide(
        &agent(),
        &prod(),
        &stmt(Action::Select, "SELECT * FROM users"),
        &NO_CTX,
    );
    assert_eq!(d.outcome, Outcome::Deny);
    assert_eq!(ids(&d), ["broken-forbid"]);
    let reason = d.policies[0].reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("could not be evaluated") && reason.contains("overflow"),
        "{reason}"
    );
    // Where the erroring condition is not reached, the decision is normal.
    let mut other = stmt(Action::Select, "SELECT * FROM orders");
    other.tables = vec!["orders".into()];
    assert!(set.decide(&agent(), &prod(), &other, &NO_CTX).is_allow());
    Ok(())
}

#[test]
fn evaluation_error_in_a_review_permit_fails_closed() -> R {
    let set = PolicySet::from_source(
        "t.cedar",
        r#"
        @id("allow-all") permit(principal, action, resource);
        @id("broken-review") @review("dba") permit(principal, action, resource)
        when { 9223372036854775807 * 2 > 0 };
        "#,
    )?;
    let d = set.decide(&agent(), &prod(), &stmt(Action::Insert, "INSERT"), &NO_CTX);
    assert_eq!(d.outcome, Outcome::Deny);
    assert_eq!(ids(&d), ["broken-review"]);
    Ok(())
}

#[test]
fn no_policies_for_an_action_denies_with_a_clear_reason() -> R {
    let set = PolicySet::from_source(
        "t.cedar",
        r#"@id("r") permit(principal, action == Action::"select", resource);"#,
    )?;
    let d = set.decide(&agent(), &prod(), &stmt(Action::Insert, "INSERT"), &NO_CTX);
    assert_eq!(d.outcome, Outcome::Deny);
    assert_eq!(ids(&d), [DEFAULT_DENY_ID]);
    assert_eq!(
        d.policies[0].reason.as_deref(),
        Some("no policy permits `insert` on resource `app` for identity `agent-1`")
    );
    Ok(())
}

#[test]
fn policy_set_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PolicySet>();
    assert_send_sync::<sluice_policy::Scope>();
}

#[test]
fn volatile_function_visible_to_policy() -> R {
    let set = PolicySet::from_source(
        "t.cedar",
        r#"
        @id("read") permit(principal, action == Action::"select", resource) unless { context.calls_volatile };
        @id("no-sleep") @reason("no pg_sleep") forbid(principal, action, resource)
        when { context has functions && context.functions.contains("pg_sleep") };
        @id("no-drop-in-text") forbid(principal, action, resource)
        when { context has sql && context.sql like "*pg_terminate_backend*" };
        "#,
    )?;
    let s = stmt(Action::Select, "SELECT nextval('s')");
    assert!(set.decide(&agent(), &prod(), &s, &NO_CTX).is_allow());
    assert!(!set
        .decide(&agent(), &prod(), &volatile(s.clone(), "nextval"), &NO_CTX)
        .is_allow());
    let d = set.decide(&agent(), &prod(), &volatile(s, "pg_sleep"), &NO_CTX);
    assert_eq!(ids(&d), ["no-sleep"]);
    let d = set.decide(
        &agent(),
        &prod(),
        &stmt(Action::Select, "SELECT pg_terminate_backend(1)"),
        &NO_CTX,
    );
    assert_eq!(ids(&d), ["no-drop-in-text"]);
    Ok(())
}
