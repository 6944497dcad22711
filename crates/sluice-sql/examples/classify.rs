//! Prints the classification of each argument: `cargo run -p sluice-sql --example classify -- "SELECT 1"`.
fn main() {
    let classifier = sluice_sql::Classifier::default();
    for sql in std::env::args().skip(1) {
        for s in classifier.classify(&sql).iter() {
            println!(
                "{:<10} {:?} where={} fns={:?} vol={} fp={} err={:?} text={:?}",
                s.action.as_str(),
                s.tables,
                s.has_where,
                s.functions,
                s.calls_volatile,
                s.fingerprint,
                s.error,
                s.text
            );
        }
    }
}
