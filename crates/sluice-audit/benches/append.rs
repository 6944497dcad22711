//! Append throughput with group commit: N concurrent appenders (one per
//! simulated session) each append a statement-sized record and await its
//! durability before the next, as the gateway does for writes. Also the
//! writer's raw capacity: one appender queuing a burst and awaiting the last.
//! And what a read's result waits for: each appender awaits its record
//! *written* (not synced) before the next, as a session does per read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_audit::{new_session_id, AuditConfig, AuditLog, Level, StatementRecord};
use sluice_core::{Action, CommandOrigin, Decision, PolicyRef, Statement};
use std::time::{Duration, Instant};

/// Records per measured iteration.
const ROUND: u64 = 16_384;

fn statement(i: u64) -> StatementRecord {
    let text = format!(
        "UPDATE accounts SET balance = balance - $1, updated_at = now() WHERE id = $2 AND tenant_id = $3 /* {i} */"
    );
    StatementRecord {
        text: text.clone(),
        params: vec![
            Some("125.00".into()),
            Some(i.to_string()),
            Some("acme".into()),
        ],
        origin: CommandOrigin::Parse,
        statements: vec![Statement {
            action: Action::Update,
            text,
            tables: vec!["public.accounts".into()],
            has_where: true,
            functions: vec!["now".into()],
            calls_volatile: false,
            fingerprint: "5d41402abc4b2a76b9719d911017c592".into(),
            error: None,
            commits: false,
            copies_out: false,
            locks_rows: false,
            defines_code: false,
            unproven: None,
            field_names: Vec::new(),
            kubernetes: None,
            s3: None,
        }],
        decision: Decision::allow(vec![PolicyRef {
            id: "devs-write-accounts".into(),
            reason: None,
        }]),
        approval: None,
    }
}

/// `iters` rounds of `n` concurrent appenders, each awaiting its record at
/// `level` before appending the next; ROUND records per round.
fn appenders_round(
    rt: &tokio::runtime::Runtime,
    log: &AuditLog,
    n: u64,
    iters: u64,
    level: Level,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let log = log.clone();
                    tokio::spawn(async move {
                        let session = new_session_id();
                        for i in 0..ROUND / n {
                            let seq = log.append(&session, statement(i)).unwrap();
                            log.reach(seq, level, true).await.unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        }
        start.elapsed()
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), AuditConfig::default()).unwrap();
    let mut group = c.benchmark_group("append_durable");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(ROUND));
    for appenders in [64u64, 256, 1024] {
        group.bench_with_input(
            BenchmarkId::new("appenders", appenders),
            &appenders,
            |b, &n| b.iter_custom(|iters| appenders_round(&rt, &log, n, iters, Level::Synced)),
        );
    }
    group.bench_function("burst_one_appender", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let session = new_session_id();
                let mut last = 0;
                for i in 0..ROUND {
                    last = log.append(&session, statement(i)).unwrap();
                }
                log.wait_durable(last).unwrap();
            }
            start.elapsed()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("append_written");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(ROUND));
    for appenders in [1u64, 8] {
        group.bench_with_input(
            BenchmarkId::new("appenders", appenders),
            &appenders,
            |b, &n| b.iter_custom(|iters| appenders_round(&rt, &log, n, iters, Level::Written)),
        );
    }
    group.finish();
    log.close().unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
