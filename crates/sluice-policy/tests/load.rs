//! Loading: every problem names the file, line and column and says what is
//! wrong; nothing with a problem loads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use sluice_policy::{PolicyError, PolicySet, Problem, ProblemKind};
use std::path::Path;

fn problems(name: &str, src: &str) -> Vec<Problem> {
    match PolicySet::from_source(name, src) {
        Ok(set) => panic!("loaded {:?}", set.policy_ids()),
        Err(e) => e.problems().to_vec(),
    }
}

fn one(name: &str, src: &str) -> Problem {
    let p = problems(name, src);
    assert_eq!(p.len(), 1, "{p:#?}");
    p.into_iter().next().unwrap()
}

#[test]
fn parse_error_names_file_line_column() {
    let src = "@id(\"ok\")\npermit(principal, action, resource);\n\n@id(\"bad\")\npermit(principal, action resource);\n";
    let p = one("team.cedar", src);
    assert_eq!(p.kind, ProblemKind::Parse);
    assert_eq!((p.file.as_str(), p.line), ("team.cedar", 5));
    assert!(p.column > 1, "{p}");
    assert!(p.to_string().starts_with("team.cedar:5:"), "{p}");
}

#[test]
fn missing_id_rejected_with_location() {
    let src = "@id(\"a\")\npermit(principal, action, resource);\n\n// no id below\n@reason(\"why\")\nforbid(principal, action, resource);\n";
    let p = one("x.cedar", src);
    assert_eq!(p.kind, ProblemKind::MissingId);
    assert_eq!((p.line, p.column), (5, 1));
    assert!(p.message.contains("@id"), "{p}");
}

#[test]
fn duplicate_id_across_files_rejected() {
    let a = (
        "a.cedar".to_string(),
        "@id(\"same\")\npermit(principal, action, resource);".to_string(),
    );
    let b = (
        "b.cedar".to_string(),
        "\n\n@id(\"same\")\nforbid(principal, action, resource);".to_string(),
    );
    let err = PolicySet::from_sources(&[a, b]).err();
    let p = err
        .as_ref()
        .map(|e| e.problems().to_vec())
        .unwrap_or_default();
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(
        (p[0].kind, p[0].file.as_str(), p[0].line),
        (ProblemKind::DuplicateId, "b.cedar", 3)
    );
    assert!(
        p[0].message.contains("first used at a.cedar:1:1"),
        "{}",
        p[0]
    );
}

#[test]
fn typo_in_action_is_a_validation_error() {
    let src = "@id(\"x\")\nforbid(principal, action == Action::\"dorp\", resource);";
    let p = one("t.cedar", src);
    assert_eq!(p.kind, ProblemKind::Validation);
    assert_eq!(p.policy_id.as_deref(), Some("x"));
    assert_eq!(p.line, 2);
    assert!(p.message.contains("dorp"), "{p}");
    assert!(
        p.help.as_deref().unwrap_or_default().contains("drop"),
        "{p}"
    );
}

#[test]
fn typo_in_attribute_is_a_validation_error() {
    let src = "@id(\"x\")\npermit(principal, action, resource)\nwhen { context.has_wher };";
    let p = one("t.cedar", src);
    assert_eq!((p.kind, p.line), (ProblemKind::Validation, 3));
    assert!(p.message.contains("has_wher"), "{p}");
}

#[test]
fn unknown_entity_type_and_unguarded_tag_rejected() {
    let p = one(
        "t.cedar",
        "@id(\"x\")\npermit(principal in Team::\"a\", action, resource);",
    );
    assert_eq!(p.kind, ProblemKind::Validation);
    // Strict validation: getTag needs a hasTag guard, so a missing tag can
    // never make a policy error at decision time.
    let p = one("t.cedar", "@id(\"x\")\npermit(principal, action, resource) when { resource.getTag(\"env\") == \"prod\" };");
    assert_eq!(p.kind, ProblemKind::Validation);
}

#[test]
fn bad_review_and_quorum_rejected() {
    for (src, needle) in [
        (
            "@id(\"x\") @review(\"dba\") @quorum(\"0\") permit(principal, action, resource);",
            "@quorum",
        ),
        (
            "@id(\"x\") @review(\"dba\") @quorum(\"many\") permit(principal, action, resource);",
            "@quorum",
        ),
        (
            "@id(\"x\") @quorum(\"2\") permit(principal, action, resource);",
            "@quorum needs @review",
        ),
        (
            "@id(\"x\") @review permit(principal, action, resource);",
            "approver group",
        ),
        (
            "@id(\"x\") @review(\"dba\") forbid(principal, action, resource);",
            "permit policies only",
        ),
        (
            "@id(\"x\") @reveiw(\"dba\") permit(principal, action, resource);",
            "unknown annotation @reveiw",
        ),
        (
            "@id(\"default-deny\") permit(principal, action, resource);",
            "reserved",
        ),
    ] {
        let p = one("t.cedar", src);
        assert_eq!(p.kind, ProblemKind::BadAnnotation, "{src}");
        assert!(p.message.contains(needle), "{p}");
    }
}

#[test]
fn templates_rejected() {
    let p = one(
        "t.cedar",
        "@id(\"x\") permit(principal == ?principal, action, resource);",
    );
    assert_eq!(p.kind, ProblemKind::Template);
}

#[test]
fn all_problems_reported_together() {
    let src = "permit(principal, action, resource);\n@id(\"y\") forbid(principal, action == Action::\"dorp\", resource);\n";
    let p = problems("t.cedar", src);
    let kinds: Vec<_> = p.iter().map(|p| p.kind).collect();
    assert_eq!(kinds, [ProblemKind::MissingId, ProblemKind::Validation]);
}

#[test]
fn load_from_files_names_the_file() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("policies"))?;
    std::fs::write(
        dir.path().join("policies/a.cedar"),
        "@id(\"a\")\npermit(principal, action, resource);\n",
    )?;
    std::fs::write(
        dir.path().join("policies/b.cedar"),
        "@id(\"b\")\npermit(principal, action, resource)\n",
    )?;
    let err = PolicySet::load(dir.path(), &["policies/*.cedar".into()]).err();
    let p = err
        .as_ref()
        .map(|e| e.problems().to_vec())
        .unwrap_or_default();
    assert_eq!(p.len(), 1, "{err:?}");
    assert!(p[0].file.ends_with("policies/b.cedar"), "{}", p[0]);
    assert_eq!(p[0].kind, ProblemKind::Parse);

    std::fs::write(
        dir.path().join("policies/b.cedar"),
        "@id(\"b\")\nforbid(principal, action, resource);\n",
    )?;
    let set = PolicySet::load(dir.path(), &["policies/*.cedar".into()])?;
    assert_eq!(set.policy_ids(), ["a", "b"]);
    Ok(())
}

#[test]
fn pattern_without_match_is_an_error() {
    let err = PolicySet::load(Path::new("/nonexistent-dir"), &["policies/*.cedar".into()]).err();
    assert!(
        matches!(&err, Some(PolicyError::NoMatch { pattern, .. }) if pattern == "policies/*.cedar"),
        "{err:?}"
    );
    let err = PolicySet::load(Path::new("."), &["[".into()]).err();
    assert!(matches!(err, Some(PolicyError::Pattern { .. })), "{err:?}");
}

#[test]
fn error_message_lists_every_problem() {
    let err = PolicySet::from_source(
        "t.cedar",
        "permit(principal, action, resource);\npermit(principal, action, resource);",
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(err.starts_with("2 problems in the policies"), "{err}");
    assert!(err.contains("\n  t.cedar:1:1: policy has no @id"), "{err}");
    assert!(err.contains("\n  t.cedar:2:1: policy has no @id"), "{err}");
}
