//! SQL-level PREPARE/EXECUTE resolved through `SqlSession`.

use sluice_core::Action::{self, *};
use sluice_sql::{Classifier, SqlSession};

fn run(classifier: &Classifier, session: &mut SqlSession, sql: &str) -> Vec<Action> {
    let statements = classifier.classify(sql);
    session
        .resolve(classifier, &statements)
        .iter()
        .map(|s| s.action)
        .collect()
}

#[test]
fn execute_is_what_was_prepared() {
    let c = Classifier::default();
    let mut s = SqlSession::default();
    assert_eq!(
        run(
            &c,
            &mut s,
            "PREPARE d (int) AS DELETE FROM users WHERE id = $1"
        ),
        [Prepare]
    );
    assert_eq!(
        run(&c, &mut s, "PREPARE r AS SELECT * FROM users"),
        [Prepare]
    );
    let resolved = s.resolve(&c, &c.classify("EXECUTE d(1)"));
    assert_eq!(resolved[0].action, Delete);
    assert_eq!(resolved[0].tables, ["users"]);
    assert!(resolved[0].has_where);
    assert_eq!(resolved[0].text, "EXECUTE d(1)");
    assert_eq!(
        resolved[0].fingerprint,
        c.classify("EXECUTE d(1)")[0].fingerprint
    );
    assert_eq!(run(&c, &mut s, "execute r"), [Select]);
    assert_eq!(run(&c, &mut s, "/* x */ ExEcUtE \"r\""), [Select]); // evasion
}

#[test]
fn execute_of_an_unknown_name_is_unknown() {
    let c = Classifier::default();
    let mut s = SqlSession::default();
    let resolved = s.resolve(&c, &c.classify("EXECUTE nope"));
    assert_eq!(resolved[0].action, Unknown);
    assert!(resolved[0].error.as_deref().unwrap_or("").contains("nope"));
}

#[test]
fn prepare_and_execute_in_one_string() {
    let c = Classifier::default();
    let mut s = SqlSession::default();
    assert_eq!(
        run(&c, &mut s, "PREPARE x AS DROP TABLE t; EXECUTE x"),
        [Unknown] // DROP cannot be prepared: a syntax error, the whole string
    );
    assert_eq!(run(&c, &mut s, "PREPARE x AS TRUNCATE t"), [Unknown]);
    assert_eq!(
        run(
            &c,
            &mut s,
            "PREPARE x AS UPDATE t SET a = 1; EXECUTE x; DEALLOCATE x; EXECUTE x"
        ),
        [Prepare, Update, Prepare, Update] // DEALLOCATE forgets nothing
    );
}

#[test]
fn wrappers_of_execute_resolve_too() {
    let c = Classifier::default();
    let mut s = SqlSession::default();
    run(&c, &mut s, "PREPARE d AS DELETE FROM t RETURNING *");
    assert_eq!(run(&c, &mut s, "EXPLAIN ANALYZE EXECUTE d"), [Delete]);
    assert_eq!(run(&c, &mut s, "EXPLAIN EXECUTE d"), [Explain]);
    assert_eq!(run(&c, &mut s, "CREATE TABLE saved AS EXECUTE d"), [Ddl]);
    run(&c, &mut s, "PREPARE r AS SELECT 1");
    assert_eq!(
        run(&c, &mut s, "EXECUTE r(set_config('role', 'x', false))"),
        [Role]
    ); // evasion
}

#[test]
fn preparing_a_name_again_keeps_the_stronger_body() {
    let c = Classifier::default();
    let mut s = SqlSession::default();
    run(&c, &mut s, "PREPARE p AS DELETE FROM t");
    // The server refuses this one (p exists), so p is still the DELETE.
    run(&c, &mut s, "PREPARE p AS SELECT 1");
    let resolved = s.resolve(&c, &c.classify("EXECUTE p"));
    assert_eq!(resolved[0].action, Delete);
    assert!(!resolved[0].has_where);
}

#[test]
fn a_deallocated_name_is_still_judged_by_what_it_held() {
    let c = Classifier::default();
    let mut s = SqlSession::default();
    run(
        &c,
        &mut s,
        "PREPARE a AS SELECT 1; PREPARE b AS DELETE FROM t",
    );
    assert_eq!(s.prepared_count(), 2);
    run(&c, &mut s, "DEALLOCATE a");
    run(&c, &mut s, "DEALLOCATE ALL");
    run(&c, &mut s, "DISCARD ALL");
    run(&c, &mut s, "deallocate prepare b");
    assert_eq!(s.prepared_count(), 2);
    assert_eq!(run(&c, &mut s, "EXECUTE a"), [Select]);
    assert_eq!(run(&c, &mut s, "EXECUTE b"), [Delete]);
}

#[test]
fn re_preparing_a_deallocated_name_keeps_the_original_body() {
    // The DEALLOCATE may never run on the server (a Parse never executed, an
    // aborted transaction): the server then refuses the second PREPARE
    // (42P05) and EXECUTE runs the DELETE.
    let c = Classifier::default();
    let mut s = SqlSession::default();
    run(&c, &mut s, "PREPARE s AS DELETE FROM victims");
    run(&c, &mut s, "DEALLOCATE s");
    run(&c, &mut s, "PREPARE s AS SELECT 1");
    let resolved = s.resolve(&c, &c.classify("EXECUTE s"));
    assert_eq!(resolved[0].action, Delete);
    assert!(!resolved[0].has_where);
    assert_eq!(resolved[0].tables, ["victims"]);
}

#[test]
fn a_full_session_does_not_know_new_names() {
    let c = Classifier::default();
    let mut s = SqlSession::default();
    for i in 0..sluice_sql::MAX_PREPARED {
        run(&c, &mut s, &format!("PREPARE p{i} AS SELECT 1"));
    }
    run(&c, &mut s, "DEALLOCATE ALL");
    run(&c, &mut s, "PREPARE extra AS SELECT 1");
    assert_eq!(s.prepared_count(), sluice_sql::MAX_PREPARED);
    assert_eq!(run(&c, &mut s, "EXECUTE extra"), [Unknown]);
    assert_eq!(run(&c, &mut s, "EXECUTE p0"), [Select]);
}

#[test]
fn sessions_are_independent() {
    let c = Classifier::default();
    let mut one = SqlSession::default();
    let mut two = SqlSession::default();
    run(&c, &mut one, "PREPARE p AS SELECT 1");
    assert_eq!(run(&c, &mut one, "EXECUTE p"), [Select]);
    assert_eq!(run(&c, &mut two, "EXECUTE p"), [Unknown]);
}

#[test]
fn statements_without_prepared_statements_pass_through() {
    let c = Classifier::default();
    let mut s = SqlSession::default();
    let statements = c.classify("SELECT 1; SELECT 'execute'; DELETE FROM t WHERE id = 1");
    assert_eq!(s.resolve(&c, &statements), statements.to_vec());
}
