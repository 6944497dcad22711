//! Classifies arbitrary UTF-8, and resolves it through a SQL session: must
//! never crash, and every statement must be classified or carry an error.
//! Run: `cargo +nightly fuzz run classify -- -max_total_time=300`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_sql::{Action, Classifier, ClassifierConfig, SqlSession};
use std::sync::OnceLock;

fn classifier() -> &'static Classifier {
    static CLASSIFIER: OnceLock<Classifier> = OnceLock::new();
    CLASSIFIER.get_or_init(|| Classifier::new(ClassifierConfig::default()))
}

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let statements = classifier().classify(sql);
    for statement in statements.iter() {
        assert!(statement.action != Action::Unknown || statement.error.is_some());
        assert!(sql.contains(statement.text.as_str()) || statement.action == Action::Unknown);
    }
    let mut session = SqlSession::default();
    let resolved = session.resolve(classifier(), &statements);
    assert_eq!(resolved.len(), statements.len());
});
