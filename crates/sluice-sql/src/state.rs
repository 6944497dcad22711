//! The session settings that decide what a statement's names mean and
//! with whose privileges it runs: an approval is bound to them, so
//! `DELETE FROM users WHERE id = 5` approved under one `search_path` or
//! role cannot run under another.
//!
//! Only changes made in SQL are seen (`SET`, `RESET`, `SET ROLE`, `SET
//! SESSION AUTHORIZATION`, `DISCARD ALL`); the session starts at "the
//! defaults" (whatever the login role and database configure). A change
//! Sluice cannot follow exactly gets a value no other session or moment can
//! have (a random tag): a `SET LOCAL`, a change inside a transaction block
//! (it may roll back), a `set_config` call, a statement that failed after
//! changing something, or code Sluice cannot see into (DO, CALL, a function
//! that is not proven read-only). So a state string is equal only where the
//! settings certainly are.

use crate::parse;
use pg_query::protobuf::{node::Node as N, DiscardMode, VariableSetKind};
use sluice_core::{Action, Statement};
use std::collections::BTreeMap;

/// The settings that change name resolution, privileges or what rows a
/// statement touches (`transform_null_equals` changes `x = NULL`;
/// `session_replication_role = replica` turns triggers off; date and time
/// settings change what a literal means).
const TRACKED: &[&str] = &[
    "search_path",
    "role",
    "session_authorization",
    "session_replication_role",
    "transform_null_equals",
    "standard_conforming_strings",
    "datestyle",
    "timezone",
    "intervalstyle",
    "row_security",
];

/// Longest SET statement parsed to follow; a longer one is not followed.
const MAX_SET_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Set(String),
    /// Changed in a way Sluice cannot follow: why, and a tag unique to it.
    Unknown {
        why: &'static str,
        tag: String,
    },
}

/// One session's tracked settings (only those changed from the defaults).
#[derive(Debug, Default, Clone)]
pub struct SessionState {
    changed: BTreeMap<&'static str, Value>,
}

impl SessionState {
    /// The state of a session whose startup packet set `parameters` (the
    /// tracked ones count as changed from the defaults).
    pub fn at_startup(parameters: &[(String, String)]) -> SessionState {
        let mut state = SessionState::default();
        for (name, value) in parameters {
            if let Some(name) = tracked(name) {
                let value =
                    serde_json::Value::Array(vec![serde_json::Value::String(value.clone())]);
                state.changed.insert(name, Value::Set(value.to_string()));
            }
        }
        state
    }

    /// The canonical description: empty for the defaults, else one
    /// `name = value` per changed setting, in name order. What approvers are
    /// shown and what the approval is bound to.
    pub fn describe(&self) -> String {
        self.changed
            .iter()
            .map(|(name, value)| match value {
                Value::Set(v) => format!("{name} = {v}"),
                Value::Unknown { why, tag } => format!("{name} = unknown ({why}; #{tag})"),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// `statement` ran (was forwarded); `in_transaction`: inside a
    /// transaction block, or in a unit that may open or end one. Returns
    /// whether it may have changed a tracked setting.
    pub fn ran(&mut self, statement: &Statement, in_transaction: bool) -> bool {
        let opaque = matches!(
            statement.action,
            Action::Call | Action::Procedural | Action::Unknown
        ) || statement
            .functions
            .iter()
            .any(|f| f.rsplit('.').next() == Some("set_config"));
        if opaque {
            self.forget_all("changed by code Sluice cannot follow");
            return true;
        }
        if !matches!(statement.action, Action::Session | Action::Role) {
            return false;
        }
        let before = self.changed.clone();
        self.follow(statement, in_transaction);
        self.changed != before
    }

    fn follow(&mut self, statement: &Statement, in_transaction: bool) {
        if statement.text.len() > MAX_SET_BYTES {
            self.forget_all("a setting statement too long to follow");
            return;
        }
        let Ok(parsed) = parse::parse(&statement.text) else {
            self.forget_all("a setting statement Sluice could not read");
            return;
        };
        let Ok(nodes) = parsed.statements(&statement.text) else {
            self.forget_all("a setting statement Sluice could not read");
            return;
        };
        for (_, node) in nodes {
            match node {
                Some(N::VariableSetStmt(v)) => self.set(v, in_transaction),
                Some(N::DiscardStmt(d)) if d.target == DiscardMode::DiscardAll as i32 => {
                    self.changed.clear();
                }
                _ => {}
            }
        }
    }

    /// A statement that changed settings failed: what it changed is not
    /// known.
    pub fn failed(&mut self) {
        let names: Vec<&'static str> = self.changed.keys().copied().collect();
        for name in names {
            self.forget(name, "a statement that changed it failed");
        }
    }

    fn set(&mut self, v: &pg_query::protobuf::VariableSetStmt, in_transaction: bool) {
        let kind = VariableSetKind::try_from(v.kind).unwrap_or(VariableSetKind::Undefined);
        if kind == VariableSetKind::VarResetAll {
            // RESET ALL leaves the role and session authorization alone.
            self.changed
                .retain(|name, _| matches!(*name, "role" | "session_authorization"));
            if in_transaction {
                self.forget_all("RESET ALL inside a transaction block");
            }
            return;
        }
        let Some(name) = tracked(&v.name) else {
            return;
        };
        if v.is_local {
            self.forget(name, "SET LOCAL");
            return;
        }
        if in_transaction {
            self.forget(name, "set inside a transaction block");
            return;
        }
        match kind {
            VariableSetKind::VarSetValue => {
                self.changed.insert(name, Value::Set(render(&v.args)));
            }
            VariableSetKind::VarSetDefault | VariableSetKind::VarReset => {
                self.changed.remove(name);
            }
            _ => self.forget(name, "SET ... FROM CURRENT"),
        }
        if name == "session_authorization" {
            // It also resets the role.
            self.changed.remove("role");
        }
    }

    fn forget(&mut self, name: &'static str, why: &'static str) {
        self.changed
            .insert(name, Value::Unknown { why, tag: tag() });
    }

    fn forget_all(&mut self, why: &'static str) {
        for name in TRACKED {
            self.forget(name, why);
        }
    }
}

fn tracked(name: &str) -> Option<&'static str> {
    let name = match name.to_ascii_lowercase().as_str() {
        // `SET TIME ZONE x`, `SET SCHEMA 'x'`.
        "time zone" => "timezone".to_owned(),
        other => other.to_owned(),
    };
    TRACKED.iter().copied().find(|t| *t == name)
}

/// The SET arguments as a JSON array of their values (so `a, b` and
/// `"a, b"` differ).
fn render(args: &[pg_query::protobuf::Node]) -> String {
    let values: Vec<serde_json::Value> = args
        .iter()
        .map(|arg| {
            let value = serde_json::to_value(arg).unwrap_or_default();
            let mut strings = Vec::new();
            leaf_values(&value, &mut strings);
            serde_json::Value::String(strings.join(" "))
        })
        .collect();
    serde_json::Value::Array(values).to_string()
}

/// The string and number leaves of a constant (`sval`, `ival`, ...).
fn leaf_values(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("sval" | "fval" | "bsval", serde_json::Value::String(s)) => {
                        out.push(s.clone());
                    }
                    ("ival", serde_json::Value::Number(n)) => out.push(n.to_string()),
                    ("boolval", serde_json::Value::Bool(b)) => out.push(b.to_string()),
                    _ => leaf_values(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| leaf_values(i, out)),
        _ => {}
    }
}

/// A tag no other change gets (64 random bits from an OS-seeded CSPRNG).
fn tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Classifier;

    fn run(state: &mut SessionState, sql: &str, in_transaction: bool) {
        for s in Classifier::default().classify(sql).iter() {
            state.ran(s, in_transaction);
        }
    }

    #[test]
    fn set_and_reset_are_followed_exactly() {
        let mut s = SessionState::default();
        assert_eq!(s.describe(), "");
        run(&mut s, "SET search_path TO other, public", false);
        assert_eq!(s.describe(), r#"search_path = ["other","public"]"#);
        run(&mut s, "SET ROLE auditor", false);
        assert_eq!(
            s.describe(),
            r#"role = ["auditor"]; search_path = ["other","public"]"#
        );
        run(&mut s, "RESET search_path", false);
        assert_eq!(s.describe(), r#"role = ["auditor"]"#);
        run(&mut s, "RESET ALL", false);
        assert_eq!(s.describe(), r#"role = ["auditor"]"#);
        run(&mut s, "DISCARD ALL", false);
        assert_eq!(s.describe(), "");
        run(&mut s, "SET work_mem = '1GB'", false);
        assert_eq!(s.describe(), "");
    }

    #[test]
    fn changes_sluice_cannot_follow_never_describe_the_same_twice() {
        for (sql, in_tx) in [
            ("SET LOCAL search_path TO x", false),
            ("SET search_path TO x", true),
            ("SELECT set_config('search_path', 'x', false)", false),
            ("DO $$ BEGIN PERFORM 1; END $$", false),
        ] {
            let (mut a, mut b) = (SessionState::default(), SessionState::default());
            run(&mut a, sql, in_tx);
            run(&mut b, sql, in_tx);
            assert!(a.describe().contains("unknown"), "{sql}: {}", a.describe());
            assert_ne!(a.describe(), b.describe(), "{sql}");
        }
    }

    #[test]
    fn startup_parameters_are_part_of_the_state() {
        let params = [
            ("TimeZone".to_owned(), "Asia/Tokyo".to_owned()),
            ("application_name".to_owned(), "x".to_owned()),
        ];
        let mut started = SessionState::at_startup(&params);
        assert_eq!(started.describe(), r#"timezone = ["Asia/Tokyo"]"#);
        let mut set = SessionState::default();
        run(&mut set, "SET TimeZone = 'Asia/Tokyo'", false);
        assert_eq!(started.describe(), set.describe());
        run(&mut started, "RESET timezone", false);
        assert_eq!(started.describe(), "");
    }

    #[test]
    fn quoting_keeps_values_apart() {
        let (mut a, mut b) = (SessionState::default(), SessionState::default());
        run(&mut a, "SET search_path TO a, b", false);
        run(&mut b, "SET search_path TO \"a, b\"", false);
        assert_ne!(a.describe(), b.describe());
    }
}
