//! The action of a top-level statement, from its node type.
//!
//! This is the fail-closed part: every statement type is listed, and a type
//! that is not listed (a new one in a future parser) is `Unknown`. Nested
//! effects (a DELETE in a CTE, a dangerous function) are added on top of
//! this by `analyze`.

use pg_query::protobuf::{self, node::Node as N, Node};
use sluice_core::Action;

/// What the statement type alone says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Kind {
    pub action: Action,
    /// Whether the statement runs its sub-statements and expressions now
    /// (false for PREPARE and plain EXPLAIN): only then do nested writes and
    /// dangerous functions change the action.
    pub executes: bool,
    /// The SQL-level prepared statement it executes (`EXECUTE name`, also
    /// inside `EXPLAIN ANALYZE` or `CREATE TABLE AS`).
    pub executes_prepared: Option<String>,
    /// Tables named outside of relation nodes (`DROP TABLE a, b`).
    pub tables: Vec<String>,
    pub error: Option<String>,
    /// See [`sluice_core::Statement::commits`].
    pub commits: bool,
    /// See [`sluice_core::Statement::copies_out`].
    pub copies_out: bool,
    /// See [`sluice_core::Statement::defines_code`].
    pub defines_code: bool,
}

impl Kind {
    fn of(action: Action) -> Kind {
        Kind {
            action,
            executes: true,
            executes_prepared: None,
            tables: Vec::new(),
            error: None,
            commits: false,
            copies_out: false,
            defines_code: false,
        }
    }

    fn unsupported(what: &str) -> Kind {
        Kind {
            error: Some(format!("unsupported statement type: {what}")),
            ..Kind::of(Action::Unknown)
        }
    }
}

pub(crate) fn inner(node: &Option<Box<Node>>) -> Option<&N> {
    node.as_ref().and_then(|n| n.node.as_ref())
}

/// Classifies one top-level statement node.
pub(crate) fn kind_of(node: &N) -> Kind {
    let mut kind = kind_of_type(node);
    kind.defines_code |= defines_code(node);
    kind
}

/// Statement types that can create or change what later statements run.
fn defines_code(node: &N) -> bool {
    matches!(
        node,
        N::CreateFunctionStmt(_)
            | N::AlterFunctionStmt(_)
            | N::DefineStmt(_)
            | N::ViewStmt(_)
            | N::RuleStmt(_)
            | N::RenameStmt(_)
            | N::AlterObjectSchemaStmt(_)
            | N::AlterOwnerStmt(_)
            | N::CreateSchemaStmt(_)
            | N::CreateCastStmt(_)
            | N::CreatePlangStmt(_)
            | N::CreateTransformStmt(_)
            | N::CreateExtensionStmt(_)
            | N::AlterExtensionStmt(_)
            | N::AlterExtensionContentsStmt(_)
            | N::AlterOperatorStmt(_)
            | N::CreateOpClassStmt(_)
            | N::CreateOpFamilyStmt(_)
            | N::AlterOpFamilyStmt(_)
            | N::DoStmt(_)
            | N::CallStmt(_)
    )
}

fn kind_of_type(node: &N) -> Kind {
    use Action as A;
    match node {
        N::SelectStmt(s) if s.into_clause.is_some() => Kind::of(A::Ddl), // SELECT INTO
        N::SelectStmt(_) => Kind::of(A::Select),
        N::InsertStmt(_) => Kind::of(A::Insert),
        N::UpdateStmt(_) => Kind::of(A::Update),
        N::DeleteStmt(_) => Kind::of(A::Delete),
        N::MergeStmt(_) => Kind::of(A::Merge),
        N::TruncateStmt(_) => Kind::of(A::Truncate),
        N::DeclareCursorStmt(_) | N::FetchStmt(_) => Kind::of(A::Select),
        N::ClosePortalStmt(_) => Kind::of(A::Session),
        N::ExplainStmt(e) => explain(e),
        N::CopyStmt(c) => Kind {
            copies_out: !c.is_from,
            ..Kind::of(copy(c))
        },
        N::CreateTableAsStmt(c) => wrapped(A::Ddl, inner(&c.query)),
        N::CreateSchemaStmt(c) => schema_elements(&c.schema_elts),
        N::DropStmt(d) => Kind {
            tables: dropped_tables(d),
            ..Kind::of(A::Drop)
        },
        N::DropdbStmt(_)
        | N::DropTableSpaceStmt(_)
        | N::DropOwnedStmt(_)
        | N::DropUserMappingStmt(_)
        | N::DropSubscriptionStmt(_) => Kind::of(A::Drop),
        N::GrantStmt(_) | N::AlterDefaultPrivilegesStmt(_) => Kind::of(A::Grant),
        // Membership in a role is a change of identity, not of a table's ACL.
        N::GrantRoleStmt(_) => Kind::of(A::Role),
        N::CreateRoleStmt(_)
        | N::AlterRoleStmt(_)
        | N::AlterRoleSetStmt(_)
        | N::DropRoleStmt(_)
        | N::ReassignOwnedStmt(_) => Kind::of(A::Role),
        N::VariableSetStmt(v) => Kind::of(variable_set(v)),
        N::VariableShowStmt(_) | N::DiscardStmt(_) | N::ConstraintsSetStmt(_) => {
            Kind::of(A::Session)
        }
        N::TransactionStmt(t) => Kind {
            commits: commits(t),
            ..Kind::of(A::Tcl)
        },
        N::DoStmt(_) | N::CallStmt(_) => Kind::of(A::Procedural),
        N::ListenStmt(_) | N::UnlistenStmt(_) | N::NotifyStmt(_) => Kind::of(A::Listen),
        N::PrepareStmt(_) => Kind {
            executes: false,
            ..Kind::of(A::Prepare)
        },
        N::ExecuteStmt(e) => Kind {
            executes_prepared: Some(e.name.clone()),
            ..Kind::of(A::Select) // neutral: the prepared body decides
        },
        N::DeallocateStmt(_) => Kind::of(A::Prepare),
        // Server-side and instance-wide operations.
        N::AlterSystemStmt(_)
        | N::VacuumStmt(_)
        | N::ClusterStmt(_)
        | N::ReindexStmt(_)
        | N::CheckPointStmt(_)
        | N::LoadStmt(_)
        | N::LockStmt(_)
        | N::CreateTableSpaceStmt(_)
        | N::AlterTableSpaceOptionsStmt(_)
        | N::AlterTableMoveAllStmt(_)
        | N::CreateExtensionStmt(_)
        | N::AlterExtensionStmt(_)
        | N::AlterExtensionContentsStmt(_)
        | N::CreateFdwStmt(_)
        | N::AlterFdwStmt(_)
        | N::CreateForeignServerStmt(_)
        | N::AlterForeignServerStmt(_)
        | N::CreateUserMappingStmt(_)
        | N::AlterUserMappingStmt(_)
        | N::CreateAmStmt(_)
        | N::CreatePlangStmt(_)
        | N::CreateEventTrigStmt(_)
        | N::AlterEventTrigStmt(_)
        | N::CreatePublicationStmt(_)
        | N::AlterPublicationStmt(_)
        | N::CreateSubscriptionStmt(_)
        | N::AlterSubscriptionStmt(_) => Kind::of(A::Admin),
        N::CreateStmt(_)
        | N::AlterTableStmt(_)
        | N::AlterDomainStmt(_)
        | N::AlterCollationStmt(_)
        | N::ReplicaIdentityStmt(_)
        | N::CommentStmt(_)
        | N::SecLabelStmt(_)
        | N::IndexStmt(_)
        | N::CreateFunctionStmt(_)
        | N::AlterFunctionStmt(_)
        | N::RenameStmt(_)
        | N::RuleStmt(_)
        | N::ViewStmt(_)
        | N::CreateSeqStmt(_)
        | N::AlterSeqStmt(_)
        | N::DefineStmt(_)
        | N::CreateDomainStmt(_)
        | N::CreateEnumStmt(_)
        | N::AlterEnumStmt(_)
        | N::CreateRangeStmt(_)
        | N::CompositeTypeStmt(_)
        | N::CreateTrigStmt(_)
        | N::CreatePolicyStmt(_)
        | N::AlterPolicyStmt(_)
        | N::CreateStatsStmt(_)
        | N::AlterStatsStmt(_)
        | N::AlterObjectSchemaStmt(_)
        | N::AlterObjectDependsStmt(_)
        | N::AlterOwnerStmt(_)
        | N::AlterOperatorStmt(_)
        | N::AlterTypeStmt(_)
        | N::CreateOpClassStmt(_)
        | N::CreateOpFamilyStmt(_)
        | N::AlterOpFamilyStmt(_)
        | N::CreateConversionStmt(_)
        | N::CreateCastStmt(_)
        | N::CreateTransformStmt(_)
        | N::AlterTsdictionaryStmt(_)
        | N::AlterTsconfigurationStmt(_)
        | N::CreatedbStmt(_)
        | N::AlterDatabaseStmt(_)
        | N::AlterDatabaseSetStmt(_)
        | N::AlterDatabaseRefreshCollStmt(_)
        | N::CreateForeignTableStmt(_)
        | N::ImportForeignSchemaStmt(_)
        | N::RefreshMatViewStmt(_) => Kind::of(A::Ddl),
        other => Kind::unsupported(&variant_name(other)),
    }
}

/// `EXPLAIN ANALYZE x` runs `x`, so it is `x`; plain EXPLAIN only plans.
fn explain(e: &protobuf::ExplainStmt) -> Kind {
    if runs_analyze(&e.options) {
        match inner(&e.query) {
            Some(query) => kind_of(query),
            None => Kind::unsupported("EXPLAIN without a statement"),
        }
    } else {
        Kind {
            executes: false,
            ..Kind::of(Action::Explain)
        }
    }
}

/// Whether an ANALYZE option is on. Anything but an explicit false-like
/// value counts as on (`EXPLAIN (ANALYZE 'maybe')` is at worst too strict).
fn runs_analyze(options: &[Node]) -> bool {
    options.iter().any(|option| match option.node.as_ref() {
        Some(N::DefElem(d)) if d.defname.eq_ignore_ascii_case("analyze") => {
            !matches!(inner(&d.arg), Some(arg) if is_false(arg))
        }
        _ => false,
    })
}

fn is_false(arg: &N) -> bool {
    match arg {
        N::Boolean(b) => !b.boolval,
        N::Integer(i) => i.ival == 0,
        N::String(s) => ["false", "off", "no", "0"]
            .iter()
            .any(|f| f.eq_ignore_ascii_case(&s.sval)),
        _ => false,
    }
}

/// A statement that contains a query it runs (`CREATE TABLE AS query`):
/// at least `action`, and whatever runs a prepared statement.
fn wrapped(action: Action, query: Option<&N>) -> Kind {
    let executes_prepared = match query {
        Some(N::ExecuteStmt(e)) => Some(e.name.clone()),
        _ => None,
    };
    Kind {
        executes_prepared,
        ..Kind::of(action)
    }
}

/// `CREATE SCHEMA s CREATE TABLE ... GRANT ...`: the strongest element.
fn schema_elements(elements: &[Node]) -> Kind {
    let mut kind = Kind::of(Action::Ddl);
    for element in elements.iter().filter_map(|e| e.node.as_ref()) {
        let element = kind_of(element);
        if element.action == Action::Unknown {
            return element;
        }
        kind.action = crate::rank::stronger(kind.action, element.action);
    }
    kind
}

/// COPY: a server file or program is admin; otherwise the direction.
fn copy(c: &protobuf::CopyStmt) -> Action {
    if c.is_program || !c.filename.is_empty() {
        Action::Admin
    } else if c.is_from {
        Action::CopyIn
    } else {
        Action::CopyOut
    }
}

/// SET/RESET: the role settings change identity, and RESET ALL resets the
/// role too; everything else is session state.
fn variable_set(v: &protobuf::VariableSetStmt) -> Action {
    let reset_all = v.kind == protobuf::VariableSetKind::VarResetAll as i32;
    if reset_all || crate::functions::is_role_setting(&v.name) {
        Action::Role
    } else {
        Action::Session
    }
}

/// `DROP TABLE a, s.b`: the names of dropped relations (they are name lists,
/// not relation nodes, in the parse tree).
fn dropped_tables(d: &protobuf::DropStmt) -> Vec<String> {
    use protobuf::ObjectType as O;
    let relation_like = [
        O::ObjectTable,
        O::ObjectView,
        O::ObjectMatview,
        O::ObjectForeignTable,
        O::ObjectSequence,
        O::ObjectIndex,
    ];
    if !relation_like.iter().any(|t| *t as i32 == d.remove_type) {
        return Vec::new();
    }
    d.objects
        .iter()
        .filter_map(|o| match o.node.as_ref() {
            Some(N::List(list)) => Some(
                list.items
                    .iter()
                    .filter_map(|i| match i.node.as_ref() {
                        Some(N::String(s)) => Some(s.sval.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("."),
            ),
            _ => None,
        })
        .collect()
}

/// The node type's name, for the "unsupported statement type" error (a rare
/// path: formatting the node is acceptable there).
fn variant_name(node: &N) -> String {
    let debug = format!("{node:?}");
    debug
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or("unknown")
        .to_owned()
}

/// Whether a transaction statement makes changes permanent. An unknown kind
/// is assumed to (the safe side: its records are made durable first).
fn commits(t: &pg_query::protobuf::TransactionStmt) -> bool {
    use pg_query::protobuf::TransactionStmtKind as K;
    !matches!(
        K::try_from(t.kind),
        Ok(K::TransStmtBegin
            | K::TransStmtStart
            | K::TransStmtRollback
            | K::TransStmtSavepoint
            | K::TransStmtRelease
            | K::TransStmtRollbackTo)
    )
}
