//! The default policies in `examples/policies` against representative
//! statements: every rule they promise, in both directions.

mod common;

use common::*;
use sluice_core::{Action, Outcome, Statement};
use sluice_policy::{PolicyError, RequestContext, DEFAULT_DENY_ID};

type R = Result<(), PolicyError>;

const NO_CTX: RequestContext = RequestContext { client_addr: None };

fn dba_review() -> Outcome {
    Outcome::Review {
        approver_group: "dba".into(),
        quorum: 1,
    }
}

#[test]
fn defaults_load_without_warnings() -> R {
    let set = defaults()?;
    assert!(set.warnings().is_empty(), "{:?}", set.warnings());
    let mut ids = set.policy_ids();
    ids.sort();
    assert_eq!(
        ids,
        [
            "agents-connect-nonprod",
            "agents-connect-prod-review",
            "agents-no-drop",
            "agents-no-kube-system-writes",
            "agents-no-truncate",
            "agents-no-unbounded-write",
            "agents-read",
            "agents-s3-no-pii",
            "agents-s3-write-scratch-only",
            "agents-session",
            "agents-write-nonprod",
            "agents-write-prod-review",
            "dba-all",
            "dbas-see-raw-values",
        ]
    );
    Ok(())
}

#[test]
fn agents_read_everywhere() -> R {
    let set = defaults()?;
    for res in [prod(), staging(), resource("untagged", None)] {
        for (action, sql) in [
            (Action::Select, "SELECT * FROM users WHERE id = 1"),
            (Action::CopyOut, "COPY users TO STDOUT"),
            (Action::Explain, "EXPLAIN SELECT 1"),
        ] {
            let d = set.decide(&agent(), &res, &stmt(action, sql), &NO_CTX);
            assert_eq!(d.outcome, Outcome::Allow, "{action} on {}", res.name);
        }
    }
    let d = set.decide(
        &agent(),
        &prod(),
        &stmt(Action::Select, "SELECT 1"),
        &NO_CTX,
    );
    assert_eq!(ids(&d), ["agents-read"]);
    assert_eq!(d.policies[0].reason.as_deref(), Some("agents may read"));
    Ok(())
}

#[test]
fn agents_write_prod_needs_dba_review() -> R {
    let set = defaults()?;
    for action in [
        Action::Insert,
        Action::Update,
        Action::Delete,
        Action::Merge,
        Action::CopyIn,
    ] {
        let d = set.decide(&agent(), &prod(), &stmt(action, "write"), &NO_CTX);
        assert_eq!(d.outcome, dba_review(), "{action}");
        assert_eq!(ids(&d), ["agents-write-prod-review"]);
        assert_eq!(
            d.policies[0].reason.as_deref(),
            Some("writes to production need a DBA's approval")
        );
    }
    Ok(())
}

#[test]
fn agents_write_elsewhere_allowed() -> R {
    let set = defaults()?;
    for res in [staging(), resource("untagged", None)] {
        for action in [
            Action::Insert,
            Action::Update,
            Action::Delete,
            Action::Merge,
            Action::CopyIn,
        ] {
            let d = set.decide(&agent(), &res, &stmt(action, "write"), &NO_CTX);
            assert_eq!(d.outcome, Outcome::Allow, "{action} on {}", res.name);
            assert_eq!(ids(&d), ["agents-write-nonprod"]);
        }
    }
    Ok(())
}

#[test]
fn a_call_of_a_function_not_proven_read_only_is_treated_as_a_write() -> R {
    let set = defaults()?;
    let s = volatile(
        stmt(Action::Call, "SELECT archive_orders()"),
        "archive_orders",
    );
    assert_eq!(
        set.decide(&agent(), &prod(), &s, &NO_CTX).outcome,
        dba_review()
    );
    assert_eq!(
        set.decide(&agent(), &staging(), &s, &NO_CTX).outcome,
        Outcome::Allow
    );
    // A read never needs a condition on calls: a call is not a read.
    let read = stmt(Action::Select, "SELECT lower(name) FROM users");
    assert_eq!(
        set.decide(&agent(), &prod(), &read, &NO_CTX).outcome,
        Outcome::Allow
    );
    Ok(())
}

#[test]
fn agents_forbidden_drop_truncate_unbounded_writes() -> R {
    let set = defaults()?;
    let cases: [(Statement, &str, &str); 4] = [
        (
            stmt(Action::Drop, "DROP TABLE users"),
            "agents-no-drop",
            "agents may not drop database objects",
        ),
        (
            stmt(Action::Truncate, "TRUNCATE users"),
            "agents-no-truncate",
            "agents may not truncate tables",
        ),
        (
            without_where(stmt(Action::Update, "UPDATE users SET a = 1")),
            "agents-no-unbounded-write",
            "UPDATE or DELETE",
        ),
        (
            without_where(stmt(Action::Delete, "DELETE FROM users")),
            "agents-no-unbounded-write",
            "UPDATE or DELETE",
        ),
    ];
    // Forbids win on every resource, prod (where a review permit applies)
    // and staging (where a plain permit applies) alike.
    for res in [prod(), staging()] {
        for (s, id, reason) in &cases {
            let d = set.decide(&agent(), &res, s, &NO_CTX);
            assert_eq!(d.outcome, Outcome::Deny, "{}", s.text);
            assert_eq!(ids(&d), [*id]);
            let got = d.policies[0].reason.as_deref().unwrap_or_default();
            assert!(got.starts_with(reason), "{got}");
        }
    }
    Ok(())
}

#[test]
fn unknown_admin_role_denied_for_agents_by_default() -> R {
    let set = defaults()?;
    let unknown = Statement::unknown("SELEC 1", "syntax error at or near \"SELEC\"");
    for s in [
        unknown.clone(),
        stmt(Action::Admin, "ALTER SYSTEM SET x = 1"),
        stmt(Action::Role, "SET ROLE postgres"),
    ] {
        for res in [prod(), staging()] {
            let d = set.decide(&agent(), &res, &s, &NO_CTX);
            assert_eq!(d.outcome, Outcome::Deny, "{}", s.text);
            assert_eq!(ids(&d), [DEFAULT_DENY_ID]);
        }
    }
    let d = set.decide(&agent(), &prod(), &unknown, &NO_CTX);
    let reason = d.policies[0].reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("no policy permits `unknown` on resource `app` for identity `agent-1`"),
        "{reason}"
    );
    assert!(reason.contains("syntax error"), "{reason}");
    Ok(())
}

#[test]
fn agents_other_actions() -> R {
    let set = defaults()?;
    for action in [
        Action::Tcl,
        Action::Session,
        Action::Prepare,
        Action::Listen,
        Action::Explain,
    ] {
        assert_eq!(
            set.decide(&agent(), &prod(), &stmt(action, "x"), &NO_CTX)
                .outcome,
            Outcome::Allow,
            "{action}"
        );
    }
    for action in [Action::Ddl, Action::Grant, Action::Procedural] {
        let d = set.decide(&agent(), &staging(), &stmt(action, "x"), &NO_CTX);
        assert_eq!(d.outcome, Outcome::Deny, "{action}");
        assert_eq!(ids(&d), [DEFAULT_DENY_ID]);
    }
    Ok(())
}

#[test]
fn dba_may_do_anything_classified() -> R {
    let set = defaults()?;
    let sql = Action::ALL
        .into_iter()
        .filter(|a| *a != Action::Unknown && !a.is_kubernetes() && !a.is_s3());
    for action in sql {
        let s = without_where(stmt(action, "x"));
        let d = set.decide(&dba(), &prod(), &s, &NO_CTX);
        assert_eq!(d.outcome, Outcome::Allow, "{action}");
        assert_eq!(ids(&d), ["dba-all"]);
    }
    let d = set.decide(
        &dba(),
        &prod(),
        &Statement::unknown("??", "cannot parse"),
        &NO_CTX,
    );
    assert_eq!(d.outcome, Outcome::Deny);
    Ok(())
}

#[test]
fn strangers_are_denied() -> R {
    let set = defaults()?;
    for action in Action::ALL {
        let d = set.decide(&nobody(), &staging(), &stmt(action, "x"), &NO_CTX);
        assert_eq!(d.outcome, Outcome::Deny, "{action}");
        assert_eq!(ids(&d), [DEFAULT_DENY_ID]);
    }
    Ok(())
}

#[test]
fn strictest_statement_decides_the_query_string() -> R {
    let set = defaults()?;
    let read = stmt(Action::Select, "SELECT 1");
    let write = stmt(Action::Insert, "INSERT INTO users VALUES (1)");
    let drop = stmt(Action::Drop, "DROP TABLE users");
    let begin = stmt(Action::Tcl, "BEGIN");

    let d = set.decide_all(&agent(), &prod(), &[], &NO_CTX);
    assert_eq!(d.outcome, Outcome::Allow);
    assert!(d.policies.is_empty());

    let d = set.decide_all(&agent(), &prod(), &[begin.clone(), read.clone()], &NO_CTX);
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(ids(&d), ["agents-session", "agents-read"]);

    let d = set.decide_all(
        &agent(),
        &prod(),
        &[read.clone(), write.clone(), begin.clone()],
        &NO_CTX,
    );
    assert_eq!(d.outcome, dba_review());
    assert_eq!(ids(&d), ["agents-write-prod-review"]);

    let d = set.decide_all(
        &agent(),
        &prod(),
        &[read.clone(), write.clone(), drop.clone(), read],
        &NO_CTX,
    );
    assert_eq!(d.outcome, Outcome::Deny);
    assert_eq!(ids(&d), ["agents-no-drop"]);

    // The same string on staging: the write alone would be allowed.
    let d = set.decide_all(&agent(), &staging(), &[write, drop], &NO_CTX);
    assert_eq!(d.outcome, Outcome::Deny);
    Ok(())
}

#[test]
fn decide_with_a_kept_scope_matches_decide() -> R {
    let set = defaults()?;
    let scope = set.scope(&agent(), &prod(), &NO_CTX);
    for action in Action::ALL {
        let s = stmt(action, "x");
        assert_eq!(
            set.decide_in(&scope, &s),
            set.decide(&agent(), &prod(), &s, &NO_CTX),
            "{action}"
        );
    }
    // A scope is independent of the policies: it stays valid after a reload.
    let reloaded = defaults()?;
    let s = stmt(Action::Insert, "x");
    assert_eq!(reloaded.decide_in(&scope, &s).outcome, dba_review());
    Ok(())
}
