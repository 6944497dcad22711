//! Hostile nesting and sizes: never a crash, always Unknown or a valid
//! classification.

use sluice_core::Action;
use sluice_sql::{Classifier, ClassifierConfig};

fn classify_one(c: &Classifier, sql: &str) -> (Action, Option<String>) {
    let statements = c.classify(sql);
    assert_eq!(statements.len(), 1, "{}", &sql[..sql.len().min(40)]);
    (statements[0].action, statements[0].error.clone())
}

fn unknown_or_select(c: &Classifier, label: &str, sql: &str) {
    let (action, error) = classify_one(c, sql);
    assert!(
        action == Action::Unknown && error.is_some() || action == Action::Select,
        "{label}: {action} {error:?}"
    );
}

#[test]
fn deep_parentheses() {
    let c = Classifier::default();
    for n in [10, 100, 1_000, 10_000, 100_000] {
        let sql = format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n));
        unknown_or_select(&c, &format!("parens {n}"), &sql);
    }
}

#[test]
fn deep_subqueries() {
    let c = Classifier::default();
    for n in [5, 50, 500, 5_000, 50_000] {
        let sql = format!("SELECT {}1{}", "(SELECT ".repeat(n), ")".repeat(n));
        unknown_or_select(&c, &format!("subqueries {n}"), &sql);
    }
    // Shallow nesting is classified, not refused.
    assert_eq!(
        classify_one(
            &c,
            &format!("SELECT {}1{}", "(SELECT ".repeat(10), ")".repeat(10))
        )
        .0,
        Action::Select
    );
}

#[test]
fn long_operator_chains() {
    let c = Classifier::default();
    for n in [10, 40, 100, 10_000, 200_000] {
        unknown_or_select(
            &c,
            &format!("a+ {n}"),
            &format!("SELECT {}", vec!["a"; n].join("+")),
        );
        unknown_or_select(
            &c,
            &format!("not {n}"),
            &format!("SELECT {}true", "NOT ".repeat(n)),
        );
        unknown_or_select(
            &c,
            &format!("array {n}"),
            &format!("SELECT {}1{}", "ARRAY[".repeat(n), "]".repeat(n)),
        );
    }
    assert_eq!(
        classify_one(&c, &format!("SELECT {}", vec!["a"; 40].join("+"))).0,
        Action::Select
    );
}

#[test]
fn deep_nesting_that_hides_a_write_is_unknown_not_select() {
    let c = Classifier::default();
    let n = 5_000;
    let sql = format!(
        "WITH d AS (DELETE FROM t RETURNING 1) SELECT {}1{}",
        "(SELECT ".repeat(n),
        ")".repeat(n)
    );
    assert_eq!(classify_one(&c, &sql).0, Action::Unknown);
}

#[test]
fn deep_nesting_error_says_so() {
    let c = Classifier::default();
    let sql = format!("SELECT {}1{}", "(SELECT ".repeat(100), ")".repeat(100));
    let (action, error) = classify_one(&c, &sql);
    assert_eq!(action, Action::Unknown);
    assert!(error.unwrap_or_default().contains("nested too deeply"));
}

#[test]
fn oversized_query_is_unknown() {
    let c = Classifier::new(ClassifierConfig {
        max_statement_bytes: 100,
        ..Default::default()
    });
    let sql = format!("SELECT '{}'", "x".repeat(200));
    let (action, error) = classify_one(&c, &sql);
    assert_eq!(action, Action::Unknown);
    assert!(error.unwrap_or_default().contains("bytes"));
    assert_eq!(classify_one(&c, "SELECT 1").0, Action::Select);
}

#[test]
fn many_statements_in_one_string() {
    let c = Classifier::default();
    let sql = "SELECT 1;".repeat(10_000);
    assert_eq!(c.classify(&sql).len(), 10_000);
}

#[test]
fn concurrent_sessions_share_one_classifier() {
    let c = std::sync::Arc::new(Classifier::default());
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let c = std::sync::Arc::clone(&c);
            std::thread::spawn(move || {
                for j in 0..200 {
                    let s = c.classify(&format!("DELETE FROM t{i} WHERE id = {}", j % 20));
                    assert_eq!(s[0].action, Action::Delete);
                }
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().is_ok());
    }
}

/// Short statements are parsed on the caller's thread: the worst that fits
/// under the inline limit (the longest operator chain, brackets at the
/// limit) must classify on a thread with tokio's default 2 MiB stack.
#[test]
fn the_deepest_statement_parsed_inline_fits_a_default_worker_stack() {
    let chain = format!("select {}1", "1+".repeat(505));
    let brackets = format!("select {}1{}", "(".repeat(16), ")".repeat(16));
    let mixed = format!(
        "select {}1{} + {}",
        "(".repeat(8),
        ")".repeat(8),
        "a||".repeat(300) + "a"
    );
    let classifier = std::sync::Arc::new(Classifier::default());
    let worker = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            for sql in [chain, brackets, mixed] {
                assert!(sql.len() <= 1024, "{} bytes", sql.len());
                let statements = classifier.classify(&sql);
                assert_eq!(statements.len(), 1, "{sql}");
            }
        });
    assert!(
        worker.is_ok_and(|w| w.join().is_ok()),
        "classification on a 2 MiB stack crashed"
    );
}
