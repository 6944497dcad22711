//! Classification cost of typical OLTP statements: first sight (a cache
//! miss: parse on the pool, walk, fingerprint) and repeated (a cache hit).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sluice_sql::{Classifier, ClassifierConfig};
use std::sync::atomic::{AtomicU64, Ordering};

const OLTP: &[(&str, &str)] = &[
    ("select_pk", "SELECT id, name, email FROM users WHERE id = $1"),
    ("insert", "INSERT INTO orders (user_id, amount, status) VALUES ($1, $2, 'new') RETURNING id"),
    ("update", "UPDATE accounts SET balance = balance - $1 WHERE id = $2"),
    ("join", "SELECT o.id, o.amount, u.name FROM orders o JOIN users u ON u.id = o.user_id WHERE o.status = $1 ORDER BY o.created_at DESC LIMIT 20"),
];

fn first_sight(c: &mut Criterion) {
    let classifier = Classifier::new(ClassifierConfig::default());
    let counter = AtomicU64::new(0);
    let mut group = c.benchmark_group("first_sight");
    for (name, sql) in OLTP {
        group.bench_function(*name, |b| {
            b.iter_batched(
                // A unique comment makes every text new to the cache while
                // the parse work stays the same.
                || format!("{sql} /* {} */", counter.fetch_add(1, Ordering::Relaxed)),
                |text| black_box(classifier.classify(&text)),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn repeated(c: &mut Criterion) {
    let classifier = Classifier::new(ClassifierConfig::default());
    let mut group = c.benchmark_group("repeated");
    for (name, sql) in OLTP {
        classifier.classify(sql);
        group.bench_function(*name, |b| {
            b.iter(|| black_box(classifier.classify(black_box(sql))))
        });
    }
    group.finish();
}

criterion_group!(benches, first_sight, repeated);
criterion_main!(benches);
