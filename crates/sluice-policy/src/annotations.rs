//! The annotations Sluice reads on a policy: `@id` (required, unique),
//! `@reason` (shown to the client), `@review("<approver group>")` and
//! `@quorum("<n>")` (permits only). They are checked at load, so a decision
//! never meets a malformed one.

use crate::error::ProblemKind;
use cedar_policy::Effect;

/// Ids Sluice itself puts in decisions; a policy may not take them, so a
/// decision's policy list is never ambiguous.
pub(crate) const DEFAULT_DENY_ID: &str = "default-deny";
pub(crate) const FAIL_CLOSED_ID: &str = "fail-closed";

/// Annotations Sluice understands. Anything else is rejected: a typo such as
/// `@reveiw("dba")` would otherwise silently turn a review into an allow.
const KNOWN_ANNOTATIONS: [&str; 5] = ["id", "reason", "review", "quorum", "description"];

/// What a decision needs to know about a policy beyond its Cedar semantics.
#[derive(Debug, Clone)]
pub(crate) struct PolicyMeta {
    pub id: String,
    pub reason: Option<String>,
    pub review: Option<Review>,
    /// Position in load order (files in pattern/glob order, then source
    /// order), used to list deciding policies deterministically.
    pub order: usize,
}

/// A permit's `@review("group")` / `@quorum("N")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Review {
    pub group: String,
    pub quorum: u32,
}

pub(crate) type AnnotationError = (ProblemKind, Option<String>, String);

/// Reads and checks `@id`, `@reason`, `@review`, `@quorum`.
pub(crate) fn policy_meta(
    annotations: &[(&str, &str)],
    effect: Effect,
    order: usize,
) -> Result<PolicyMeta, AnnotationError> {
    let get = |key: &str| annotations.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let id = match get("id") {
        None => {
            return Err((
                ProblemKind::MissingId,
                None,
                "policy has no @id(\"...\") annotation".into(),
            ))
        }
        Some(id) if id.trim().is_empty() || id.trim() != id => {
            let msg = format!("@id(\"{id}\") must be non-empty, without surrounding spaces");
            return Err((ProblemKind::BadAnnotation, None, msg));
        }
        Some(id) => id.to_string(),
    };
    let bad = |msg: String| (ProblemKind::BadAnnotation, Some(id.clone()), msg);
    if id == DEFAULT_DENY_ID || id == FAIL_CLOSED_ID {
        return Err(bad(format!(
            "@id(\"{id}\") is reserved for Sluice's own decisions"
        )));
    }
    if let Some((key, _)) = annotations
        .iter()
        .find(|(k, _)| !KNOWN_ANNOTATIONS.contains(k))
    {
        let known = KNOWN_ANNOTATIONS.map(|k| format!("@{k}")).join(", ");
        return Err(bad(format!("unknown annotation @{key} (known: {known})")));
    }
    let review = match (get("review"), get("quorum")) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(bad(
                "@quorum needs @review(\"<approver group>\") on the same policy".into(),
            ))
        }
        (Some(_), _) if effect == Effect::Forbid => {
            return Err(bad(
                "@review applies to permit policies only (a forbid always denies)".into(),
            ))
        }
        (Some(group), _) if group.trim().is_empty() || group.trim() != group => {
            return Err(bad(format!(
                "@review(\"{group}\") must name the approver group"
            )))
        }
        (Some(group), quorum) => {
            let quorum = match quorum {
                None => 1,
                Some(q) => match q.parse::<u32>() {
                    Ok(n) if n >= 1 => n,
                    _ => {
                        return Err(bad(format!(
                            "@quorum(\"{q}\") must be a whole number of approvers, at least 1"
                        )))
                    }
                },
            };
            Some(Review {
                group: group.to_string(),
                quorum,
            })
        }
    };
    let reason = get("reason").filter(|r| !r.is_empty()).map(str::to_string);
    Ok(PolicyMeta {
        id,
        reason,
        review,
        order,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_rules() {
        let m = policy_meta(
            &[("id", "a"), ("review", "dba"), ("quorum", "2")],
            Effect::Permit,
            0,
        );
        assert_eq!(
            m.ok().and_then(|m| m.review),
            Some(Review {
                group: "dba".into(),
                quorum: 2
            })
        );
        for bad in [
            vec![("id", "a"), ("review", "dba"), ("quorum", "0")],
            vec![("id", "a"), ("review", "dba"), ("quorum", "two")],
            vec![("id", "a"), ("quorum", "2")],
            vec![("id", "a"), ("review", "")],
            vec![("id", "a"), ("reveiw", "dba")],
            vec![("id", "default-deny")],
            vec![("id", " a")],
        ] {
            let r = policy_meta(&bad, Effect::Permit, 0);
            assert!(
                matches!(r, Err((ProblemKind::BadAnnotation, _, _))),
                "{bad:?}"
            );
        }
        let r = policy_meta(&[("id", "a"), ("review", "dba")], Effect::Forbid, 0);
        assert!(matches!(r, Err((ProblemKind::BadAnnotation, _, _))));
        let r = policy_meta(&[("reason", "x")], Effect::Permit, 0);
        assert!(matches!(r, Err((ProblemKind::MissingId, None, _))));
    }
}
