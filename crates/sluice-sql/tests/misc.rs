//! Caching, fingerprints and exact texts.

use sluice_core::Action;
use sluice_sql::{Classifier, ClassifierConfig};
use std::sync::Arc;

#[test]
fn repeated_query_comes_from_the_cache() {
    let c = Classifier::default();
    let a = c.classify("SELECT * FROM users WHERE id = 1");
    let b = c.classify("SELECT * FROM users WHERE id = 1");
    assert!(Arc::ptr_eq(&a, &b));
}

#[test]
fn no_cache_still_classifies() {
    let c = Classifier::new(ClassifierConfig {
        cache_entries: 0,
        ..Default::default()
    });
    let a = c.classify("SELECT 1");
    let b = c.classify("SELECT 1");
    assert!(!Arc::ptr_eq(&a, &b));
    assert_eq!(a, b);
}

#[test]
fn fingerprint_ignores_constants_but_not_shape() {
    let c = Classifier::default();
    let fp = |sql: &str| c.classify(sql)[0].fingerprint.clone();
    assert_eq!(
        fp("SELECT * FROM t WHERE id = 1"),
        fp("select * from t where id = 42")
    );
    assert_ne!(
        fp("SELECT * FROM t WHERE id = 1"),
        fp("DELETE FROM t WHERE id = 1")
    );
    let both = c.classify("SELECT * FROM t WHERE id = 1; DELETE FROM t WHERE id = 1");
    assert_eq!(both[0].fingerprint, fp("SELECT * FROM t WHERE id = 1"));
    assert_eq!(both[1].fingerprint, fp("DELETE FROM t WHERE id = 1"));
    // Sluice's own fingerprint (from the parse tree): 128 bits of hex.
    let f = fp("SELECT * FROM t WHERE id = 1");
    assert_eq!(f.len(), 32);
    assert!(f.bytes().all(|b| b.is_ascii_hexdigit()));
    // Comments, whitespace, keyword case, parameters vs their numbers.
    assert_eq!(
        fp("UPDATE accounts SET balance = balance - $1 WHERE id = $2"),
        fp("/* app */ update   accounts\n set balance=balance-$2 -- x\n WHERE ID = $1")
    );
    // Table, column, operator, kind.
    let base = fp("UPDATE accounts SET balance = balance - $1 WHERE id = $2");
    for other in [
        "UPDATE accounts2 SET balance = balance - $1 WHERE id = $2",
        "UPDATE accounts SET credit = balance - $1 WHERE id = $2",
        "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
        "UPDATE accounts SET balance = balance - $1 WHERE id > $2",
        "DELETE FROM accounts WHERE id = $2",
    ] {
        assert_ne!(base, fp(other), "{other}");
    }
    // EXECUTE keeps its own fingerprint after resolution; a PREPARE body's
    // is the PREPARE statement's.
    assert_ne!(fp("PREPARE p AS SELECT 1"), fp("SELECT 1"));
}

#[test]
fn texts_keep_the_clients_spelling() {
    let c = Classifier::default();
    let s = c.classify("  DeLeTe   FROM \"T\"  WHERE x = 'a;b' ;  select   1  ");
    assert_eq!(s[0].text, "DeLeTe   FROM \"T\"  WHERE x = 'a;b'");
    assert_eq!(s[1].text, "select   1");
}

#[test]
fn different_texts_never_share_an_entry() {
    let c = Classifier::default();
    assert_eq!(c.classify("SELECT 1 -- x")[0].action, Action::Select);
    assert_eq!(c.classify("SELECT 1 -- x\n; DROP TABLE t").len(), 2);
}

#[test]
fn unknown_carries_the_parse_error_and_is_volatile() {
    let c = Classifier::default();
    let s = &c.classify("SELEKT 1")[0];
    assert_eq!(s.action, Action::Unknown);
    assert!(s.calls_volatile);
    assert!(s.error.as_deref().unwrap_or("").contains("syntax error"));
}

#[test]
fn functions_and_volatility() {
    let c = Classifier::default();
    let s = &c.classify("SELECT lower(name), pg_catalog.upper(x), count(*) FROM t")[0];
    assert_eq!(s.functions, ["lower", "pg_catalog.upper", "count"]);
    assert!(!s.calls_volatile);
    let s = &c.classify("SELECT nextval('s'), extract(year from now())")[0];
    assert_eq!(s.functions, ["nextval", "extract", "now"]);
    assert!(s.calls_volatile);
    assert!(c.classify("SELECT public.lower('x')")[0].calls_volatile);
    assert!(c.classify("SELECT my_audit_fn()")[0].calls_volatile);
}

#[test]
fn classifier_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Classifier>();
    check::<sluice_sql::SqlSession>();
}

#[test]
fn only_statements_that_make_a_transaction_permanent_commit() {
    let c = Classifier::new(ClassifierConfig::default());
    for sql in [
        "COMMIT",
        "commit and chain",
        "END",
        "PREPARE TRANSACTION 'x'",
        "COMMIT PREPARED 'x'",
        "ROLLBACK PREPARED 'x'",
        "PREPARE p AS SELECT 1; EXECUTE p; COMMIT",
    ] {
        let statements = c.classify(sql);
        assert!(statements.iter().any(|s| s.commits), "{sql} commits");
    }
    for sql in [
        "BEGIN",
        "START TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "ROLLBACK",
        "SAVEPOINT a",
        "RELEASE a",
        "ROLLBACK TO a",
        "UPDATE t SET a = 1 WHERE b = 2",
        "SELECT 'commit'",
    ] {
        let statements = c.classify(sql);
        assert!(
            statements.iter().all(|s| !s.commits),
            "{sql} does not commit"
        );
    }
}

#[test]
fn every_copy_to_copies_out_whatever_its_action() {
    let c = Classifier::new(ClassifierConfig::default());
    for sql in [
        "COPY (UPDATE t SET a = 1 RETURNING *) TO STDOUT",
        "COPY (INSERT INTO victims VALUES (99) RETURNING (SELECT string_agg(x, ',') FROM people)) TO STDOUT",
        "COPY (DELETE FROM t WHERE id = 1 RETURNING *) TO STDOUT",
        "COPY (SELECT * FROM people) TO STDOUT",
        "COPY people TO STDOUT",
        "COPY people TO '/tmp/people.csv'",
        "COPY (SELECT 1) TO PROGRAM 'cat'",
    ] {
        let statements = c.classify(sql);
        assert_eq!(statements.len(), 1, "{sql}");
        assert!(statements[0].copies_out, "{sql} copies out");
    }
    for sql in [
        "COPY t FROM STDIN",
        "SELECT 'copy'",
        "UPDATE t SET a = 1 RETURNING *",
        "SELECT * FROM people",
    ] {
        let statements = c.classify(sql);
        assert!(
            statements.iter().all(|s| !s.copies_out),
            "{sql} does not copy out"
        );
    }
    assert!(!sluice_core::Statement::unknown("x", "y").copies_out);
}

#[test]
fn copy_of_a_write_names_every_table_it_reads() {
    let c = Classifier::new(ClassifierConfig::default());
    let s = &c.classify(
        "COPY (INSERT INTO victims VALUES (99) RETURNING (SELECT string_agg(x, ',') FROM people)) TO STDOUT",
    )[0];
    assert!(s.copies_out);
    assert!(s.tables.iter().any(|t| t == "victims"), "{:?}", s.tables);
    assert!(s.tables.iter().any(|t| t == "people"), "{:?}", s.tables);
}
