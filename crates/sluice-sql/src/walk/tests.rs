use super::*;
use pg_query::ParserOptions;

fn walk_sql(sql: &str) -> Walk {
    let parsed = pg_query::parse(sql, ParserOptions::DEFAULT).expect("parses");
    let node = parsed.protobuf.stmts[0]
        .stmt
        .as_ref()
        .and_then(|n| n.node.as_ref())
        .expect("a statement");
    walk(node).expect("walks")
}

#[test]
fn cte_names_are_not_tables() {
    let w = walk_sql("WITH x AS (SELECT * FROM a) SELECT * FROM x, b");
    assert_eq!(w.tables, ["a", "b"]);
}

#[test]
fn a_cte_does_not_hide_a_table_outside_its_scope() {
    let w = walk_sql("SELECT * FROM (WITH s AS (SELECT 1) SELECT * FROM s) q, s");
    assert_eq!(w.tables, ["s"]);
}

#[test]
fn a_non_recursive_cte_body_names_the_real_table() {
    let w = walk_sql("WITH t AS (SELECT * FROM t) SELECT * FROM t");
    assert_eq!(w.tables, ["t"]);
    let w = walk_sql("WITH RECURSIVE t AS (SELECT 1 UNION SELECT * FROM t) SELECT * FROM t");
    assert!(w.tables.is_empty());
}

#[test]
fn dml_targets_are_tables_even_when_a_cte_has_their_name() {
    let w = walk_sql("WITH x AS (SELECT 1), d AS (DELETE FROM x RETURNING *) SELECT * FROM d");
    assert_eq!(w.tables, ["x"]);
    assert_eq!(w.writes.len(), 1);
    assert!(!w.writes[0].restricted);
}

#[test]
fn where_without_columns_does_not_restrict() {
    assert!(!walk_sql("DELETE FROM t WHERE 1 = 1").writes[0].restricted);
    assert!(walk_sql("DELETE FROM t WHERE id = 1").writes[0].restricted);
    assert!(walk_sql("DELETE FROM t WHERE CURRENT OF c").writes[0].restricted);
}

#[test]
fn depth_limit_fails_the_walk() {
    let parsed = pg_query::parse("SELECT ((1 + 2) * 3)", 0).expect("parses");
    let node = parsed.protobuf.stmts[0].stmt.as_ref().expect("stmt");
    assert!(walk_with_limit(node, 5).is_err());
    assert!(walk_with_limit(node, MAX_DEPTH).is_ok());
}
