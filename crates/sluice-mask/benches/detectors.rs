//! Masking throughput over realistic result rows, all detectors on.
//!
//! Rows mix the columns a production table returns: names, addresses, free
//! text notes, JSON documents, ids, timestamps, prices; about one value in
//! twenty holds something sensitive. Throughput is in bytes of row data.
#![allow(clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sluice_mask::{MaskConfig, Masker, ValueKind};

/// Deterministic pseudo-random numbers (no `rand` dependency for a bench).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() as usize) % items.len()]
    }
}

const NAMES: &[&str] = &[
    "Ann Smith",
    "Bob García",
    "Carla Müller",
    "Deepak Patel",
    "Eve Okafor",
    "Hiro Tanaka",
    "Inès Dubois",
];
const STREETS: &[&str] = &[
    "12 Main St, Springfield, IL 62704",
    "221B Baker Street, London NW1 6XE",
    "5 Rue de Rivoli, 75001 Paris",
    "Unter den Linden 77, 10117 Berlin",
];
const NOTES: &[&str] = &[
    "Customer called about a delayed delivery; promised a refund of 12.50 EUR if the parcel does not arrive by Friday. Escalated to tier 2 on 2024-03-14 10:22.",
    "Order 88412093 shipped via UPS 1Z999AA10123456784, two boxes, weight 4.2 kg. Signature required on delivery.",
    "Meeting notes: migrate the billing service to the new cluster, keep the old one read-only for 30 days, review costs in Q3.",
    "Returned item (size M) exchanged for size L; the replacement left the warehouse on 2024-02-02.",
    "Please reach out to the account owner before renewing; the contract ends 2025-01-31 and the price goes up by 4%.",
];
const SECRET_NOTES: &[&str] = &[
    "Customer asked us to update the email to ann.smith@example.com and the phone to (555) 123-4567.",
    "Paid with card 4111 1111 1111 1111, exp 12/27; refund to IBAN DE89 3704 0044 0532 0130 00.",
    "Deploy used postgres://app:s3cr3t-pw@db.internal:5432/app and AKIAIOSFODNN7EXAMPLE by mistake.",
    "Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
];
const JSON_DOCS: &[&str] = &[
    r#"{"id": 918273, "status": "shipped", "items": [{"sku": "SKU-AB-10293", "qty": 2, "price": 19.99}, {"sku": "SKU-CD-55512", "qty": 1, "price": 5.49}], "created_at": "2024-03-14T10:22:31Z", "tags": ["priority", "gift"]}"#,
    r#"{"user": {"name": "Hiro Tanaka", "locale": "ja-JP", "preferences": {"newsletter": false, "theme": "dark"}}, "last_login": "2024-02-01T08:00:00Z", "plan": "basic", "seats": 12}"#,
    r#"{"event": "checkout", "amount": 129.5, "currency": "EUR", "session": "c3f1a2b4-5d6e-4f70-8a9b-0c1d2e3f4a5b", "ua": "Mozilla/5.0 (X11; Linux x86_64)"}"#,
];
const SECRET_JSON: &[&str] = &[
    r#"{"db": {"host": "db.internal", "port": 5432, "db_password": "hunter2"}, "contact": "ops@example.com"}"#,
    r#"{"customer": {"name": "Ann Smith", "ssn": "123-45-6789", "card": "5555-5555-5555-4444"}, "note": "verified"}"#,
];

/// One row: (value, kind) per column.
fn rows(n: usize) -> Vec<Vec<(String, ValueKind)>> {
    let mut rng = Lcg(42);
    (0..n)
        .map(|i| {
            let secret = rng.next().is_multiple_of(20);
            let note = if secret {
                rng.pick(SECRET_NOTES)
            } else {
                rng.pick(NOTES)
            };
            let doc = if secret && rng.next().is_multiple_of(2) {
                rng.pick(SECRET_JSON)
            } else {
                rng.pick(JSON_DOCS)
            };
            vec![
                (format!("{}", 100000 + i), ValueKind::Opaque),
                (rng.pick(NAMES).to_string(), ValueKind::Text),
                (rng.pick(STREETS).to_string(), ValueKind::Text),
                (
                    format!(
                        "2024-03-{:02} 10:{:02}:00+00",
                        1 + rng.next() % 28,
                        rng.next() % 60
                    ),
                    ValueKind::Opaque,
                ),
                (
                    format!("{}.{:02}", rng.next() % 1000, rng.next() % 100),
                    ValueKind::Opaque,
                ),
                (note.to_string(), ValueKind::Text),
                (doc.to_string(), ValueKind::Json),
            ]
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let masker = Masker::new(MaskConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let data = rows(2000);
    let bytes: usize = data.iter().flatten().map(|(v, _)| v.len()).sum();
    let mut group = c.benchmark_group("mask");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("rows_all_detectors", |b| {
        b.iter(|| {
            let mut changed = 0usize;
            for row in &data {
                for (value, kind) in row {
                    changed += usize::from(
                        masker
                            .mask(black_box(value.as_bytes()), *kind, None)
                            .is_changed(),
                    );
                }
            }
            changed
        })
    });
    let text: Vec<&str> = data
        .iter()
        .flatten()
        .filter(|(_, k)| *k == ValueKind::Text)
        .map(|(v, _)| v.as_str())
        .collect();
    let text_bytes: usize = text.iter().map(|v| v.len()).sum();
    group.throughput(Throughput::Bytes(text_bytes as u64));
    group.bench_function("text_columns_only", |b| {
        b.iter(|| {
            text.iter()
                .filter(|v| {
                    masker
                        .mask(black_box(v.as_bytes()), ValueKind::Text, None)
                        .is_changed()
                })
                .count()
        })
    });
    let json: Vec<&str> = data
        .iter()
        .flatten()
        .filter(|(_, k)| *k == ValueKind::Json)
        .map(|(v, _)| v.as_str())
        .collect();
    let json_bytes: usize = json.iter().map(|v| v.len()).sum();
    group.throughput(Throughput::Bytes(json_bytes as u64));
    group.bench_function("json_columns_only", |b| {
        b.iter(|| {
            json.iter()
                .filter(|v| {
                    masker
                        .mask(black_box(v.as_bytes()), ValueKind::Json, None)
                        .is_changed()
                })
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
