//! A resource's functions, views and operators as its catalog describes
//! them: what the protocol crate reads over its catalog connection and the
//! SQL crate judges (which of them only read). Plain data, so neither crate
//! depends on the other.

use serde::{Deserialize, Serialize};

/// PostgreSQL's `provolatile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Volatility {
    Immutable,
    Stable,
    Volatile,
}

impl Volatility {
    /// From `pg_proc.provolatile`; anything unexpected is volatile.
    pub fn from_code(code: &str) -> Volatility {
        match code {
            "i" => Volatility::Immutable,
            "s" => Volatility::Stable,
            _ => Volatility::Volatile,
        }
    }
}

/// One `pg_proc` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionDef {
    pub schema: String,
    pub name: String,
    pub volatility: Volatility,
    /// `pg_language.lanname`: `sql`, `plpgsql`, `c`, `internal`, ...
    pub language: String,
    pub security_definer: bool,
    /// `pg_proc.prokind`: `f` function, `a` aggregate, `w` window, `p`
    /// procedure.
    pub kind: char,
    /// Takes one argument that a row can be passed as (a composite, a
    /// domain or a pseudo-type such as `record`): `t.name` calls it.
    #[serde(default)]
    pub takes_row: bool,
    /// The body, for the SQL and PL/pgSQL functions whose body decides
    /// whether they only read (stable or immutable user functions).
    pub body: Option<String>,
}

/// One user view and its definition (`pg_get_viewdef`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewDef {
    pub schema: String,
    pub name: String,
    pub definition: String,
}

/// One user-defined operator and the function that implements it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorDef {
    pub schema: String,
    /// The operator's symbol (`===`).
    pub name: String,
    /// The implementing function, `schema.name`.
    pub function: String,
}

/// Everything read from one resource's catalog about code that can run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routines {
    pub functions: Vec<FunctionDef>,
    pub views: Vec<ViewDef>,
    pub operators: Vec<OperatorDef>,
}
