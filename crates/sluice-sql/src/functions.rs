//! What calling a function does, as far as policy is concerned.
//!
//! PostgreSQL functions can write, read server files, signal backends or run
//! SQL given as text. The classifier cannot know what a user-defined function
//! does, so it is optimistic about nothing: only builtins on the read-only
//! allowlist are read-only; every other call sets `calls_volatile`. A few
//! builtins are dangerous enough that they change the statement's action
//! (escalation): they are matched by their bare name whatever schema was
//! written, which can only over-report.

use crate::function_lists::{ADMIN, LOCKS, READ_ONLY, RUNS_SQL_TEXT, WRITES};
use sluice_core::Action;
use std::collections::HashSet;
use std::sync::OnceLock;

/// What one call means for the statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Effect {
    /// Known not to write anything (a builtin on the allowlist).
    pub read_only: bool,
    /// The action the call makes the statement at least.
    pub escalate: Option<Action>,
}

/// Configuration parameters whose change is a change of identity.
const ROLE_SETTINGS: &[&str] = &["role", "session_authorization"];

fn read_only_set() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| READ_ONLY.iter().copied().collect())
}

/// Whether setting this configuration parameter changes the role
/// (parameter names are case-insensitive in PostgreSQL).
pub(crate) fn is_role_setting(name: &str) -> bool {
    ROLE_SETTINGS.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// Whether a builtin of this name changes the statement's action whatever
/// its volatility says (for the catalog's verdict on a function's body).
pub(crate) fn escalates(name: &str) -> bool {
    effect(Some("pg_catalog"), name, None).escalate.is_some()
}

/// Whether a builtin of this name is on the curated read-only list (which
/// holds volatile builtins that change nothing, like `random()`).
pub(crate) fn curated_read_only(name: &str) -> bool {
    read_only_set().contains(name)
}

/// How a call written `written` (`name` or `schema.name`) is treated
/// without a catalog, and why: `None` is a read. For `sluice policy check`
/// and the audit of decisions.
pub fn call_treatment(written: &str) -> (Option<Action>, &'static str) {
    let (schema, name) = match written.rsplit_once('.') {
        Some((schema, name)) => (Some(schema.rsplit('.').next().unwrap_or(schema)), name),
        None => (None, written),
    };
    let effect = effect(schema, name, None);
    let why = match effect.escalate {
        Some(_) if name == "set_config" => "changes a setting (role, unless the name is a constant other setting)",
        Some(Action::Listen) => "sends a notification",
        Some(Action::Update) => "changes a sequence or a large object",
        Some(Action::Admin) if LOCKS.contains(&name) => "takes or releases an advisory lock",
        Some(Action::Admin) => "reaches outside the database (server files, signals, replication, remote connections)",
        Some(_) => "runs SQL given to it as text, which Sluice cannot see",
        None if effect.read_only && schema.is_none() => {
            "a builtin that changes nothing (a call when a user function of the same name that is not proven read-only exists)"
        }
        None if effect.read_only => "a builtin that changes nothing",
        None => "not a builtin Sluice knows only reads: the gateway proves it from the resource's catalog (immutable or stable SQL/PL/pgSQL whose body only reads), else it is a call",
    };
    let action = match effect.escalate {
        Some(action) => Some(action),
        None if effect.read_only => None,
        None => Some(Action::Call),
    };
    (action, why)
}

/// The effect of calling `schema.name(first_arg, ...)`. `first_arg` is the
/// first argument when it is a string constant (only looked at for
/// `set_config`).
pub(crate) fn effect(schema: Option<&str>, name: &str, first_arg: Option<&str>) -> Effect {
    let escalate = if name == "set_config" {
        // A non-constant parameter name could be 'role': assume it is.
        match first_arg {
            Some(setting) if !is_role_setting(setting) => Some(Action::Session),
            _ => Some(Action::Role),
        }
    } else if name == "pg_notify" {
        Some(Action::Listen)
    } else if WRITES.contains(&name) {
        Some(Action::Update)
    } else if ADMIN.contains(&name) || LOCKS.contains(&name) || name.starts_with("dblink") {
        Some(Action::Admin)
    } else if RUNS_SQL_TEXT.contains(&name) {
        Some(Action::Procedural)
    } else {
        None
    };
    let builtin = matches!(schema, None | Some("pg_catalog"));
    Effect {
        read_only: escalate.is_none() && builtin && read_only_set().contains(name),
        escalate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_read_only_only_unqualified_or_in_pg_catalog() {
        assert!(effect(None, "lower", None).read_only);
        assert!(effect(Some("pg_catalog"), "lower", None).read_only);
        assert!(!effect(Some("public"), "lower", None).read_only);
        assert!(!effect(None, "nextval", None).read_only);
        assert!(!effect(None, "my_func", None).read_only);
    }

    #[test]
    fn set_config_escalates_by_parameter() {
        assert_eq!(
            effect(None, "set_config", Some("ROLE")).escalate,
            Some(Action::Role)
        );
        assert_eq!(
            effect(None, "set_config", Some("search_path")).escalate,
            Some(Action::Session)
        );
        assert_eq!(
            effect(None, "set_config", None).escalate,
            Some(Action::Role)
        );
    }

    #[test]
    fn dangerous_builtins_escalate_whatever_the_schema() {
        assert_eq!(
            effect(Some("x"), "pg_read_file", None).escalate,
            Some(Action::Admin)
        );
        assert_eq!(
            effect(None, "dblink_exec", None).escalate,
            Some(Action::Admin)
        );
        assert_eq!(
            effect(None, "ts_stat", None).escalate,
            Some(Action::Procedural)
        );
    }

    #[test]
    fn sequence_large_object_and_lock_builtins_are_not_reads() {
        assert_eq!(effect(None, "nextval", None).escalate, Some(Action::Update));
        assert_eq!(effect(None, "setval", None).escalate, Some(Action::Update));
        assert_eq!(
            effect(None, "lo_unlink", None).escalate,
            Some(Action::Update)
        );
        assert_eq!(effect(None, "lo_put", None).escalate, Some(Action::Update));
        assert_eq!(
            effect(None, "pg_advisory_lock", None).escalate,
            Some(Action::Admin)
        );
        assert_eq!(
            effect(None, "pg_try_advisory_xact_lock_shared", None).escalate,
            Some(Action::Admin)
        );
        assert!(escalates("nextval") && escalates("set_config") && !escalates("lower"));
    }
}
