use super::*;
use pg_query::ParserOptions;

/// The fingerprint of each statement of `sql`.
fn fps(sql: &str) -> Vec<String> {
    let parsed = pg_query::parse(sql, ParserOptions::DEFAULT).expect("parses");
    parsed
        .protobuf
        .stmts
        .iter()
        .map(|raw| {
            let node = raw.stmt.as_ref().and_then(|n| n.node.as_ref());
            fingerprint(node.expect("a statement")).expect("fingerprints")
        })
        .collect()
}

fn fp(sql: &str) -> String {
    let all = fps(sql);
    assert_eq!(all.len(), 1, "{sql}");
    all.into_iter().next().expect("one")
}

fn same(a: &str, b: &str) {
    assert_eq!(fp(a), fp(b), "{a:?} vs {b:?}");
}

fn differ(a: &str, b: &str) {
    assert_ne!(fp(a), fp(b), "{a:?} vs {b:?}");
}

#[test]
fn is_128_bits_of_lower_case_hex() {
    let f = fp("SELECT 1");
    assert_eq!(f.len(), 32);
    assert!(f
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
}

#[test]
fn is_stable() {
    // Pinned: a change means every stored fingerprint changes (audit logs
    // group by it); only acceptable with a new pg_query tree format.
    assert_eq!(
        fp("SELECT * FROM t WHERE id = 1"),
        "a6f779f9ac1c9c89bfa39220ab33e9bc"
    );
}

#[test]
fn constants_do_not_count() {
    same(
        "SELECT * FROM t WHERE id = 1",
        "SELECT * FROM t WHERE id = 42",
    );
    same(
        "SELECT * FROM t WHERE name = 'a'",
        "SELECT * FROM t WHERE name = 'bob'",
    );
    same(
        "SELECT * FROM t WHERE id = 1",
        "SELECT * FROM t WHERE id = 'x'",
    );
    same(
        "SELECT * FROM t WHERE f = 1.5",
        "SELECT * FROM t WHERE f = NULL",
    );
    same(
        "SELECT * FROM t WHERE b = true",
        "SELECT * FROM t WHERE b = false",
    );
    same("SELECT * FROM t LIMIT 10", "SELECT * FROM t LIMIT 20");
    same(
        "SELECT * FROM t WHERE id = $1",
        "SELECT * FROM t WHERE id = $2",
    );
    same(
        "INSERT INTO t (a, b) VALUES (1, 'x')",
        "INSERT INTO t (a, b) VALUES (2, 'y'), (3, 'z'), (4, NULL)",
    );
    same(
        "SELECT * FROM t WHERE id IN (1)",
        "SELECT * FROM t WHERE id IN (1, 2, 3)",
    );
    same(
        "SELECT * FROM t WHERE id IN ($1, $2)",
        "SELECT * FROM t WHERE id IN ($1)",
    );
    same("SELECT '2024-01-01'::date", "SELECT '1999-12-31'::date");
}

#[test]
fn whitespace_comments_and_keyword_case_do_not_count() {
    same(
        "SELECT id FROM users WHERE id = 1",
        "  select\n\tid   from USERS /* c */ where ID = 1 -- x",
    );
    same("DELETE FROM t WHERE a = 1", "delete/**/from t where a=1");
    // A statement's position in a multi-statement string does not count.
    let both = fps("SELECT * FROM t WHERE id = 1; DELETE FROM t WHERE id = 2");
    assert_eq!(both[0], fp("SELECT * FROM t WHERE id = 7"));
    assert_eq!(both[1], fp("DELETE FROM t WHERE id = 7"));
}

#[test]
fn shape_counts() {
    let base = "SELECT a FROM t WHERE b = 1";
    differ(base, "SELECT a FROM u WHERE b = 1"); // table
    differ(base, "SELECT a FROM s.t WHERE b = 1"); // schema
    differ(base, "SELECT a FROM \"T\" WHERE b = 1"); // quoted identifier
    differ(base, "SELECT c FROM t WHERE b = 1"); // selected column
    differ(base, "SELECT a FROM t WHERE c = 1"); // filtered column
    differ(base, "SELECT a FROM t WHERE b < 1"); // operator
    differ(base, "SELECT a FROM t WHERE b = $1"); // constant vs parameter
    differ(base, "SELECT a FROM t WHERE b = 1 OR b = 2"); // boolean shape
    differ(base, "SELECT a FROM t"); // no WHERE
    differ(base, "SELECT a, c FROM t WHERE b = 1"); // more columns
    differ(base, "SELECT lower(a) FROM t WHERE b = 1"); // function
    differ("SELECT lower(a) FROM t", "SELECT upper(a) FROM t");
    differ("SELECT a, b FROM t", "SELECT b, a FROM t"); // order
    differ(
        "SELECT a FROM t WHERE b = 1",
        "SELECT a FROM t WHERE b IS NULL",
    );
    // Statement kind.
    differ("SELECT * FROM t WHERE id = 1", "DELETE FROM t WHERE id = 1");
    differ("DELETE FROM t", "TRUNCATE t");
    differ("UPDATE t SET a = 1", "UPDATE t SET b = 1");
    differ("UPDATE t SET a = 1 WHERE id = 1", "UPDATE t SET a = 1");
    differ("EXPLAIN SELECT 1", "SELECT 1");
    differ("PREPARE p AS SELECT 1", "PREPARE q AS SELECT 1");
    // Not fooled by adjacent strings.
    differ("SELECT ab FROM c", "SELECT a FROM bc");
    differ("SELECT a.b FROM a", "SELECT \"a.b\" FROM a");
}

#[test]
fn only_consecutive_equal_list_elements_collapse() {
    differ("SELECT a, b FROM t", "SELECT a FROM t");
    differ("SELECT a, b, a FROM t", "SELECT a, b FROM t");
    same("SELECT a, a, b FROM t", "SELECT a, b FROM t");
    differ(
        "SELECT * FROM t WHERE x IN (1, $1)",
        "SELECT * FROM t WHERE x IN (1)",
    );
}

#[test]
fn refuses_deep_trees() {
    let sql = format!("SELECT {}1{}", "(SELECT ".repeat(10), ")".repeat(10));
    let parsed = pg_query::parse(&sql, ParserOptions::DEFAULT).expect("parses");
    let node = parsed.protobuf.stmts[0].stmt.as_ref().expect("a statement");
    assert!(fingerprint(node).is_ok());
    let e = fingerprint_with_limit(node, 20).expect_err("too deep");
    assert!(e.to_string().contains("nested too deeply"), "{e}");
}

/// Statements with position fields of every kind the tree has (`location`,
/// `arg_location`, `list_start`, `payload_location`, ...): moved by a comment
/// and spaces, their fingerprint stays.
#[test]
fn positions_do_not_count() {
    for sql in [
        "SELECT a, b.c, lower(d) AS e FROM s.t x JOIN u ON u.id = x.id WHERE a IN (1, 2) AND b = ANY(ARRAY[1, 2])",
        "SELECT ARRAY[a, b], '{1,2}'::int[], a[1:2] FROM t WHERE a BETWEEN 1 AND 2 OR b IS NULL",
        "WITH w AS (DELETE FROM t WHERE id = $1 RETURNING *) INSERT INTO u SELECT * FROM w ON CONFLICT (id) DO UPDATE SET a = EXCLUDED.a",
        "UPDATE t SET (a, b) = (1, 2) FROM u WHERE t.id = u.id",
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.a)",
        "CREATE TABLE t (id int PRIMARY KEY, v varchar(20) DEFAULT 'x' CHECK (v <> ''))",
        "COPY t (a, b) FROM STDIN WITH (FORMAT csv, HEADER true)",
        "NOTIFY chan, 'payload'",
        "SET search_path = a, b",
        "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM t",
        "PREPARE p (int) AS SELECT * FROM t WHERE id = $1",
        "EXECUTE p(1)",
        "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p",
        "SELECT * FROM JSON_TABLE(j, '$[*]' AS root COLUMNS (a int PATH '$.a')) jt",
        "SELECT count(*) FILTER (WHERE a > 1) OVER (PARTITION BY b ORDER BY c ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM t",
    ] {
        same(sql, &format!("/* moved */   {}", sql.replace(", ", " ,  ").replace(" = ", "=")));
    }
}
