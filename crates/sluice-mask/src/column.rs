//! Column rules: which result columns are masked as a whole, decided once per
//! column from the RowDescription (name, source table, type), not per value.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{MaskError, Style};

/// What the gateway knows about one result column.
#[derive(Debug, Clone, Copy, Default)]
pub struct ColumnInfo<'a> {
    /// The column name as the client will see it (may be an alias).
    pub name: &'a str,
    /// Schema of the source table, when the column comes straight from one.
    pub schema: Option<&'a str>,
    /// Source table, when the column comes straight from one.
    pub table: Option<&'a str>,
    /// PostgreSQL type name (`text`, `inet`, `jsonb`...).
    pub type_name: Option<&'a str>,
}

/// The decision that a whole column is masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnMask {
    /// The rule that matched, as written (for logs and `sluice policy check`).
    pub rule: String,
    /// How its values are replaced.
    pub style: Style,
}

/// Which columns a rule selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnPattern {
    /// A glob (`*`, `?`) matched case-insensitively against the column name.
    Name(String),
    /// A column of a given table: `schema.table.column` or `table.column`
    /// (each part may be a glob).
    Qualified {
        /// Schema; `None` matches any schema.
        schema: Option<String>,
        /// Table name.
        table: String,
        /// Column name.
        column: String,
    },
    /// Every column of a PostgreSQL type (`type:inet`).
    Type(String),
}

impl ColumnPattern {
    /// Parses `type:<name>`, `schema.table.column`, `table.column` or a name glob.
    pub fn parse(s: &str) -> Result<ColumnPattern, MaskError> {
        let bad = |reason| MaskError::BadPattern {
            pattern: s.to_string(),
            reason,
        };
        let s = s.trim();
        if s.is_empty() {
            return Err(bad("empty pattern"));
        }
        if let Some(ty) = s.strip_prefix("type:") {
            let ty = ty.trim();
            if ty.is_empty() {
                return Err(bad("type name missing"));
            }
            return Ok(ColumnPattern::Type(ty.to_ascii_lowercase()));
        }
        let parts: Vec<&str> = s.split('.').map(str::trim).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad("empty part between dots"));
        }
        let lower = |p: &str| p.to_ascii_lowercase();
        match parts.as_slice() {
            [name] => Ok(ColumnPattern::Name(lower(name))),
            [table, column] => Ok(ColumnPattern::Qualified {
                schema: None,
                table: lower(table),
                column: lower(column),
            }),
            [schema, table, column] => Ok(ColumnPattern::Qualified {
                schema: Some(lower(schema)),
                table: lower(table),
                column: lower(column),
            }),
            _ => Err(bad("more than three dotted parts")),
        }
    }

    /// Whether the column matches. A qualified rule whose schema is given
    /// matches a column of unknown schema: failing closed costs a redaction,
    /// failing open leaks the column.
    pub fn matches(&self, col: &ColumnInfo<'_>) -> bool {
        match self {
            ColumnPattern::Name(glob) => glob_match(glob, col.name),
            ColumnPattern::Qualified {
                schema,
                table,
                column,
            } => {
                let Some(col_table) = col.table else {
                    return false;
                };
                let schema_ok = match (schema, col.schema) {
                    (Some(want), Some(have)) => glob_match(want, have),
                    _ => true,
                };
                schema_ok && glob_match(table, col_table) && glob_match(column, col.name)
            }
            ColumnPattern::Type(want) => col.type_name.is_some_and(|have| {
                let have = have.trim();
                let base = have
                    .strip_suffix("[]")
                    .or_else(|| have.strip_prefix('_'))
                    .unwrap_or(have);
                base.eq_ignore_ascii_case(want) || have.eq_ignore_ascii_case(want)
            }),
        }
    }
}

impl ColumnPattern {
    /// For a table-qualified pattern, whether it can select columns of
    /// `table` as a statement writes it (`schema.table` or a bare name; a
    /// schema the statement does not write does not rule the pattern out).
    /// `None` for name and type patterns, which apply to any table.
    pub fn may_apply_to_table(&self, table: &str) -> Option<bool> {
        let ColumnPattern::Qualified {
            schema,
            table: want,
            ..
        } = self
        else {
            return None;
        };
        let (written_schema, written_table) = match table.rsplit_once('.') {
            Some((s, t)) => (Some(s), t),
            None => (None, table),
        };
        let schema_ok = match (schema, written_schema) {
            (Some(want), Some(have)) => glob_match(want, have),
            _ => true,
        };
        Some(schema_ok && glob_match(want, written_table))
    }
}

impl fmt::Display for ColumnPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnPattern::Name(n) => f.write_str(n),
            ColumnPattern::Qualified {
                schema: Some(s),
                table,
                column,
            } => write!(f, "{s}.{table}.{column}"),
            ColumnPattern::Qualified {
                schema: None,
                table,
                column,
            } => write!(f, "{table}.{column}"),
            ColumnPattern::Type(t) => write!(f, "type:{t}"),
        }
    }
}

impl Serialize for ColumnPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ColumnPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        ColumnPattern::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A column rule: the pattern and how matching values are replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnRule {
    /// Which columns.
    pub pattern: ColumnPattern,
    /// Replacement style; `None` means [`Style::Full`].
    pub style: Option<Style>,
}

impl ColumnRule {
    /// A rule with the default (full) style.
    pub fn new(pattern: ColumnPattern) -> ColumnRule {
        ColumnRule {
            pattern,
            style: None,
        }
    }
}

/// Accepts `"users.ssn"` or `{ pattern = "users.ssn", style = "hash" }`.
impl<'de> Deserialize<'de> for ColumnRule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Short(ColumnPattern),
            Long {
                pattern: ColumnPattern,
                #[serde(default)]
                style: Option<Style>,
            },
        }
        Ok(match Repr::deserialize(deserializer)? {
            Repr::Short(pattern) => ColumnRule::new(pattern),
            Repr::Long { pattern, style } => ColumnRule { pattern, style },
        })
    }
}

/// Case-insensitive glob with `*` (any run) and `?` (one character).
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi].eq_ignore_ascii_case(&t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn col<'a>(name: &'a str, schema: Option<&'a str>, table: Option<&'a str>) -> ColumnInfo<'a> {
        ColumnInfo {
            name,
            schema,
            table,
            type_name: Some("text"),
        }
    }

    #[test]
    fn parse_distinguishes_types_qualified_names_and_globs() {
        assert_eq!(
            ColumnPattern::parse("type:INET").unwrap(),
            ColumnPattern::Type("inet".into())
        );
        assert_eq!(
            ColumnPattern::parse("public.users.ssn").unwrap(),
            ColumnPattern::Qualified {
                schema: Some("public".into()),
                table: "users".into(),
                column: "ssn".into()
            }
        );
        assert_eq!(
            ColumnPattern::parse("users.ssn").unwrap(),
            ColumnPattern::Qualified {
                schema: None,
                table: "users".into(),
                column: "ssn".into()
            }
        );
        assert_eq!(
            ColumnPattern::parse("*_token").unwrap(),
            ColumnPattern::Name("*_token".into())
        );
    }

    #[test]
    fn parse_rejects_empty_parts_and_too_many_dots() {
        assert!(ColumnPattern::parse("").is_err());
        assert!(ColumnPattern::parse("a..b").is_err());
        assert!(ColumnPattern::parse("a.b.c.d").is_err());
        assert!(ColumnPattern::parse("type:").is_err());
    }

    #[test]
    fn name_globs_match_case_insensitively() {
        let p = ColumnPattern::parse("*_token").unwrap();
        assert!(p.matches(&col("Refresh_TOKEN", None, None)));
        assert!(!p.matches(&col("token_count", None, None)));
        assert!(ColumnPattern::parse("e?ail")
            .unwrap()
            .matches(&col("EMAIL", None, None)));
    }

    #[test]
    fn qualified_rules_need_the_table_and_tolerate_unknown_schema() {
        let p = ColumnPattern::parse("public.users.ssn").unwrap();
        assert!(p.matches(&col("ssn", Some("public"), Some("users"))));
        assert!(p.matches(&col("ssn", None, Some("users"))));
        assert!(!p.matches(&col("ssn", Some("audit"), Some("users"))));
        assert!(!p.matches(&col("ssn", Some("public"), None)));
    }

    #[test]
    fn type_rules_match_arrays_of_the_type() {
        let p = ColumnPattern::parse("type:inet").unwrap();
        let mut c = col("addr", None, None);
        c.type_name = Some("_inet");
        assert!(p.matches(&c));
        c.type_name = Some("text");
        assert!(!p.matches(&c));
    }

    #[test]
    fn rules_deserialize_from_a_string_or_a_table() {
        let rules: Vec<ColumnRule> =
            serde_json::from_str(r#"["email", {"pattern": "users.ssn", "style": "hash"}]"#)
                .unwrap();
        assert_eq!(
            rules[0],
            ColumnRule::new(ColumnPattern::Name("email".into()))
        );
        assert_eq!(rules[1].style, Some(Style::Hash));
    }
}
