//! CTE name resolution: `FROM x` names the CTE `x` when one is in scope.
//!
//! Getting this wrong either way matters: reporting a CTE as a table gives
//! false denials, and hiding a real table behind a CTE of the same name
//! (`SELECT * FROM (WITH secrets AS (SELECT 1) SELECT * FROM secrets) a,
//! secrets`) would hide a table from policy. Each statement that owns a WITH
//! clause is a scope; names written inside it are resolved when it ends and
//! what stays unresolved moves to the enclosing scope. Inside the WITH clause
//! itself a CTE sees only the CTEs before it (all of them, itself included,
//! when the clause is RECURSIVE). Schema-qualified names, DML targets and
//! `INTO` targets are always tables.

#[derive(Debug, Default)]
pub(super) struct Scope {
    ctes: Vec<String>,
    recursive: bool,
    /// Inside this scope's WITH clause.
    pub in_with: bool,
    /// The CTE whose definition is being walked (index into `ctes`).
    current: Option<usize>,
    pending: Vec<Pending>,
}

#[derive(Debug)]
struct Pending {
    name: String,
    /// Always a table (qualified, or a DML/INTO target).
    real: bool,
    /// Written inside the definition of this scope's CTE number `n`.
    in_cte: Option<usize>,
    location: i32,
}

impl Scope {
    /// A name written in this scope (or left unresolved by a nested one).
    pub fn reference(&mut self, name: String, real: bool, location: i32) {
        let in_cte = if self.in_with { self.current } else { None };
        self.pending.push(Pending {
            name,
            real,
            in_cte,
            location,
        });
    }

    /// A CTE definition starts.
    pub fn define(&mut self, name: String) {
        self.current = Some(self.ctes.len());
        self.ctes.push(name);
    }

    pub fn set_recursive(&mut self) {
        self.recursive = true;
    }

    pub fn with_done(&mut self) {
        self.in_with = false;
        self.current = None;
    }

    /// The names that are not CTEs of this scope, with whether they are
    /// certainly tables (that must survive enclosing scopes too) and where.
    pub fn unresolved(self) -> Vec<(String, bool, i32)> {
        let Scope {
            ctes,
            recursive,
            pending,
            ..
        } = self;
        pending
            .into_iter()
            .filter(|p| {
                if p.real {
                    return true;
                }
                let visible = match p.in_cte {
                    None => &ctes[..],
                    Some(_) if recursive => &ctes[..],
                    Some(n) => ctes.get(..n).unwrap_or(&[]),
                };
                !visible.contains(&p.name)
            })
            .map(|p| (p.name, p.real, p.location))
            .collect()
    }
}
