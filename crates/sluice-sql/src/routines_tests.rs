use super::*;
use crate::Classifier;
use sluice_core::routines::{FunctionDef, ViewDef};

fn builtin(name: &str, volatility: Volatility) -> FunctionDef {
    FunctionDef {
        schema: "pg_catalog".into(),
        name: name.into(),
        volatility,
        language: "internal".into(),
        security_definer: false,
        kind: 'f',
        takes_row: false,
        body: None,
    }
}

fn user(name: &str, volatility: Volatility, language: &str, body: &str) -> FunctionDef {
    FunctionDef {
        schema: "public".into(),
        name: name.into(),
        volatility,
        language: language.into(),
        security_definer: false,
        kind: 'f',
        takes_row: false,
        body: Some(body.into()),
    }
}

fn catalog() -> FunctionCatalog {
    use Volatility::*;
    let mut definer = user("definer_reads", Stable, "sql", "SELECT 1");
    let mut zap = user("zap", Volatile, "sql", "DELETE FROM t RETURNING 1");
    zap.takes_row = true;
    definer.security_definer = true;
    FunctionCatalog::build(&Routines {
        functions: vec![
            builtin("lower", Immutable),
            builtin("count", Immutable),
            builtin("now", Stable),
            builtin("random", Volatile),
            builtin("pg_stat_clear_snapshot", Volatile),
            builtin("nextval", Volatile),
            builtin("pg_sleep", Volatile),
            user("wipe", Volatile, "sql", "DELETE FROM t RETURNING 1"),
            user("tax", Immutable, "sql", "SELECT $1 * 1.2"),
            user("total", Stable, "sql", "SELECT count(*) FROM orders"),
            user(
                "sneaky",
                Stable,
                "plpgsql",
                "BEGIN PERFORM wipe(); RETURN 1; END",
            ),
            user(
                "sneakier",
                Stable,
                "plpgsql",
                "BEGIN PERFORM public.WIPE(); RETURN 1; END",
            ),
            user(
                "dynamic",
                Stable,
                "plpgsql",
                "BEGIN EXECUTE 'SELECT 1'; RETURN 1; END",
            ),
            user("layered", Stable, "sql", "SELECT total() + tax(1)"),
            user("ping", Stable, "sql", "SELECT pong()"),
            user("pong", Stable, "sql", "SELECT ping()"),
            user(
                "branches",
                Stable,
                "plpgsql",
                "BEGIN IF (1 > 0) THEN RETURN now(); END IF; END",
            ),
            user("reads_view", Stable, "sql", "SELECT * FROM bad_view"),
            user(
                "lower",
                Volatile,
                "plpgsql",
                "BEGIN DELETE FROM t; RETURN 1; END",
            ),
            user("in_c", Immutable, "c", "in_c"),
            definer,
            zap,
            user("by_field", Stable, "sql", "SELECT a.zap FROM t a"),
            user("escaped", Stable, "sql", "SELECT U&\"\\0077ipe\"()"),
        ],
        views: vec![
            ViewDef {
                schema: "public".into(),
                name: "good_view".into(),
                definition: "SELECT tax(price) FROM orders".into(),
            },
            ViewDef {
                schema: "public".into(),
                name: "bad_view".into(),
                definition: "SELECT wipe()".into(),
            },
        ],
        operators: Vec::new(),
    })
}

fn resolved(catalog: Option<&FunctionCatalog>, sql: &str) -> Statement {
    let mut statement = Classifier::default().classify(sql)[0].clone();
    resolve(catalog, &mut statement);
    statement
}

#[test]
fn immutable_and_stable_sql_functions_that_read_are_reads() {
    let c = catalog();
    for sql in [
        "SELECT tax(1)",
        "SELECT total()",
        "SELECT layered()",
        "SELECT branches()",
    ] {
        let s = resolved(Some(&c), sql);
        assert_eq!(s.action, Action::Select, "{sql}");
        assert!(!s.calls_volatile, "{sql}");
    }
}

#[test]
fn a_stable_function_that_calls_a_volatile_writer_is_a_call() {
    let c = catalog();
    for sql in [
        "SELECT sneaky()",
        "SELECT sneakier()",
        "SELECT dynamic()",
        "SELECT ping()",
        "SELECT reads_view()",
        "SELECT wipe()",
        "SELECT in_c(1)",
        "SELECT definer_reads()",
        "SELECT no_such_function()",
        "SELECT by_field()",
        "SELECT escaped()",
        "SELECT a.zap FROM t a",
        "SELECT (a).zap FROM (SELECT t AS a FROM t) s",
    ] {
        assert_eq!(resolved(Some(&c), sql).action, Action::Call, "{sql}");
    }
}

#[test]
fn builtins_read_by_volatility_or_the_curated_list() {
    let c = catalog();
    assert_eq!(
        resolved(Some(&c), "SELECT now(), random(), count(*) FROM t").action,
        Action::Select
    );
    assert_eq!(
        resolved(Some(&c), "SELECT pg_stat_clear_snapshot()").action,
        Action::Call
    );
    assert_eq!(
        resolved(Some(&c), "SELECT nextval('s')").action,
        Action::Update
    );
}

#[test]
fn a_builtin_shadowed_by_a_user_function_of_its_name_is_a_call() {
    let c = catalog();
    assert_eq!(resolved(Some(&c), "SELECT lower(5)").action, Action::Call);
    assert_eq!(
        resolved(Some(&c), "SELECT pg_catalog.lower('x')").action,
        Action::Select
    );
}

#[test]
fn a_view_whose_definition_calls_a_writer_is_a_call() {
    let c = catalog();
    assert_eq!(
        resolved(Some(&c), "SELECT * FROM good_view").action,
        Action::Select
    );
    assert_eq!(
        resolved(Some(&c), "SELECT * FROM bad_view").action,
        Action::Call
    );
    assert_eq!(
        resolved(Some(&c), "SELECT * FROM public.bad_view").action,
        Action::Call
    );
    assert_eq!(
        resolved(Some(&c), "EXPLAIN SELECT * FROM bad_view").action,
        Action::Explain
    );
}

#[test]
fn without_a_catalog_nothing_unqualified_is_proven() {
    assert_eq!(resolved(None, "SELECT tax(1)").action, Action::Call);
    assert_eq!(
        resolved(None, "SELECT count(*) FROM t").action,
        Action::Call
    );
    assert_eq!(
        resolved(None, "SELECT pg_catalog.lower('x')").action,
        Action::Select
    );
    assert_eq!(resolved(None, "SELECT 1").action, Action::Select);
}

#[test]
fn unproven_calls_make_the_unresolved_statement_a_call() {
    let s = Classifier::default().classify("DELETE FROM t WHERE id = tax(1)")[0].clone();
    assert_eq!(s.action, Action::Call);
    let mut s2 = s.clone();
    resolve(Some(&catalog()), &mut s2);
    assert_eq!(s2.action, Action::Delete);
}
