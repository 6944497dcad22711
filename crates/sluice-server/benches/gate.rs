//! What policy costs per statement on the data path: classify + decide
//! through the real `PolicyGate` (what every session calls for each Query or
//! Parse), under the shipped default policies (`examples/policies/*.cedar`),
//! for an identity in group "agents" on a resource tagged env=bench (not
//! prod: agents' writes are allowed, so every statement here is forwarded).
//!
//! - `gate_first_sight/*`: a statement text the gateway has never seen (a
//!   changing constant, alias or comment per iteration), so the classifier's
//!   cache misses: pg_query parses it (on the caller's thread when short and
//!   shallow, else on the classifier's parser pool), the tree is walked and
//!   the result cached (evicting once the cache is full). The session has
//!   already decided a statement of the same shape (action, tables, WHERE,
//!   functions), so its decision cache answers without Cedar. This is what
//!   pgbench `-M simple` does: it inlines its random keys, so almost every
//!   statement is new text of a known shape. Target: median under 20 µs.
//! - `gate_first_sight_new_session/*`: new text in a session that has
//!   decided nothing yet: classification miss and a Cedar evaluation.
//! - `gate_repeated/*`: the same text again (classification cache hit,
//!   decision cache hit). Target: under 2 µs.
//! - `gate_txn/*`: a whole pgbench TPC-B transaction (BEGIN, 3 UPDATEs,
//!   SELECT, INSERT, END), one `decide` per statement as with `-M simple`:
//!   BEGIN/END repeated, the other five first sight (as with pgbench) or
//!   repeated.
//! - `parts/*`: the pieces measured alone (`Classifier::classify` cache
//!   miss and hit, `SqlSession::resolve`, `PolicySet::decide_in` i.e. Cedar without
//!   the session's decision cache, building the `Command`, opening a
//!   session), to see where the time goes.
//!
//! Run: `cargo bench -p sluice-server --bench gate`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use sluice_core::{Command, CommandOrigin, Identity, ResourceId};
use sluice_pg::{Gate, GateFactory, SessionInfo, UnitContext, Verdict};
use sluice_policy::{PolicySet, RequestContext, ResourceInfo};
use sluice_server::policy::{PolicyGate, PolicyGates};
use sluice_sql::{Classifier, ClassifierConfig, SqlSession};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

/// Typical OLTP statements. `{}` is replaced by a number that changes every
/// iteration for first sight; the repeated benches use a fixed one.
const OLTP: &[(&str, &str)] = &[
    ("pgbench_select", "SELECT abalance FROM pgbench_accounts WHERE aid = {};"),
    (
        "pgbench_update",
        "UPDATE pgbench_accounts SET abalance = abalance + -1234 WHERE aid = {};",
    ),
    (
        "pgbench_insert",
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, {}, -1234, CURRENT_TIMESTAMP);",
    ),
    (
        "join_where",
        "SELECT o.id, o.amount, u.name AS n{} FROM orders o JOIN users u ON u.id = o.user_id \
         WHERE o.status = $1 AND o.created_at > now() - interval '1 day' ORDER BY o.created_at DESC LIMIT 20",
    ),
    (
        "insert_multirow_params",
        "INSERT INTO order_items (order_id, product_id, qty, price) VALUES \
         ($1, $2, $3, $4), ($5, $6, $7, $8), ($9, $10, $11, $12) RETURNING id AS id{}",
    ),
    // Nothing to vary in BEGIN/COMMIT but a comment: the cache is keyed by
    // the exact text, so `BEGIN /* 17 */` is a miss all the same.
    ("begin", "BEGIN /* {} */"),
    ("commit", "COMMIT /* {} */"),
];

/// pgbench's built-in TPC-B-like script, as `-M simple` sends it.
const TPCB: &[&str] = &[
    "BEGIN;",
    "UPDATE pgbench_accounts SET abalance = abalance + {d} WHERE aid = {a};",
    "SELECT abalance FROM pgbench_accounts WHERE aid = {a};",
    "UPDATE pgbench_tellers SET tbalance = tbalance + {d} WHERE tid = {t};",
    "UPDATE pgbench_branches SET bbalance = bbalance + {d} WHERE bid = {b};",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ({t}, {b}, {a}, {d}, CURRENT_TIMESTAMP);",
    "END;",
];

fn text(template: &str, n: u64) -> String {
    template.replace("{}", &n.to_string())
}

fn tpcb_text(template: &str, n: u64) -> String {
    // Like pgbench at scale 10: aid in 1..=1_000_000, tid 1..=100, bid 1..=10.
    template
        .replace("{a}", &(n % 1_000_000 + 1).to_string())
        .replace("{t}", &(n % 100 + 1).to_string())
        .replace("{b}", &(n % 10 + 1).to_string())
        .replace("{d}", &((n % 10_000) as i64 - 5000).to_string())
}

fn command(sql: String) -> Command {
    Command::new(CommandOrigin::SimpleQuery, sql)
}

fn policies() -> PolicySet {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies");
    PolicySet::load(&dir, &["*.cedar".into()]).expect("the shipped default policies load")
}

fn resource() -> ResourceInfo {
    ResourceInfo {
        name: "app".into(),
        kind: "postgres".into(),
        tags: BTreeMap::from([("env".to_string(), "bench".to_string())]),
    }
}

fn identity() -> Identity {
    Identity::new("bench", vec!["agents".into()])
}

struct Fixture {
    gates: PolicyGates,
    identity: Identity,
    resource_id: ResourceId,
}

impl Fixture {
    fn new() -> Fixture {
        let resource = resource();
        let resource_id = ResourceId(resource.name.clone());
        let gates = PolicyGates::new(
            policies(),
            HashMap::from([(resource.name.clone(), resource)]),
        );
        Fixture {
            gates,
            identity: identity(),
            resource_id,
        }
    }

    fn open(&self) -> PolicyGate {
        self.gates.open(&SessionInfo {
            session: sluice_core::SessionInfo {
                identity: &self.identity,
                resource: self.resource_id.as_str(),
                peer: "127.0.0.1:40000".parse().unwrap(),
                tls: false,
                client: None,
            },
            parameters: &[],
        })
    }
}

fn forward(gate: &mut PolicyGate, commands: &[Command]) {
    if let Verdict::Deny { at, .. } = gate.decide(commands, &UnitContext::default()) {
        panic!("the default policies refused {:?}", commands[at].text);
    }
}

fn first_sight(c: &mut Criterion) {
    let fx = Fixture::new();
    let mut gate = fx.open();
    let mut n: u64 = 1_000_000_000;
    let mut group = c.benchmark_group("gate_first_sight");
    for (name, template) in OLTP {
        forward(&mut gate, &[command(text(template, 1))]);
        group.bench_function(*name, |b| {
            b.iter_batched_ref(
                || {
                    n += 1;
                    [command(text(template, n))]
                },
                |commands| black_box(gate.decide(commands, &UnitContext::default())),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// First sight in a new session: the text is new to the classifier and the
/// session's decision cache is empty, so Cedar evaluates the policies too
/// (the gate is opened in the untimed setup).
fn first_sight_new_session(c: &mut Criterion) {
    let fx = Fixture::new();
    let mut n: u64 = 2_000_000_000;
    let mut group = c.benchmark_group("gate_first_sight_new_session");
    for (name, template) in OLTP {
        group.bench_function(*name, |b| {
            b.iter_batched_ref(
                || {
                    n += 1;
                    (fx.open(), [command(text(template, n))])
                },
                |(gate, commands)| black_box(gate.decide(commands, &UnitContext::default())),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn repeated(c: &mut Criterion) {
    let fx = Fixture::new();
    let mut gate = fx.open();
    let mut group = c.benchmark_group("gate_repeated");
    for (name, template) in OLTP {
        let commands = [command(text(template, 42))];
        forward(&mut gate, &commands);
        group.bench_function(*name, |b| {
            b.iter(|| black_box(gate.decide(black_box(&commands), &UnitContext::default())))
        });
    }
    group.finish();
}

fn transaction(c: &mut Criterion) {
    let fx = Fixture::new();
    let mut gate = fx.open();
    let mut group = c.benchmark_group("gate_txn");
    let mut n: u64 = 0;
    let txn =
        |n: u64| -> Vec<[Command; 1]> { TPCB.iter().map(|t| [command(tpcb_text(t, n))]).collect() };
    for commands in txn(0) {
        forward(&mut gate, &commands);
    }
    group.bench_function("tpcb_first_sight", |b| {
        b.iter_batched_ref(
            || {
                // A new key for each transaction, as pgbench draws them (the
                // same key within one transaction, as pgbench does too).
                n += 7919;
                txn(n)
            },
            |statements| {
                for commands in statements.iter() {
                    black_box(gate.decide(commands, &UnitContext::default()));
                }
            },
            BatchSize::SmallInput,
        )
    });
    let fixed = txn(42);
    group.bench_function("tpcb_repeated", |b| {
        b.iter(|| {
            for commands in &fixed {
                black_box(gate.decide(black_box(commands), &UnitContext::default()));
            }
        })
    });
    group.finish();
}

/// The gate in pieces: `PolicyGate::decide` = for each command,
/// `Classifier::classify` (cache lookup) + `SqlSession::resolve` (clones the
/// statements) + per statement the session's decision cache, which calls
/// `PolicySet::decide_in` (Cedar) on a miss.
fn parts(c: &mut Criterion) {
    let classifier = Classifier::new(ClassifierConfig::default());
    let set = policies();
    let scope = set.scope(
        &identity(),
        &resource(),
        &RequestContext {
            client_addr: Some("127.0.0.1".parse().unwrap()),
        },
    );
    let mut session = SqlSession::default();
    let mut n: u64 = 3_000_000_000;
    let mut group = c.benchmark_group("parts");
    for (name, template) in OLTP {
        group.bench_function(format!("classify_miss/{name}"), |b| {
            b.iter_batched_ref(
                || {
                    n += 1;
                    text(template, n)
                },
                |sql| black_box(classifier.classify(sql)),
                BatchSize::SmallInput,
            )
        });
        let sql = text(template, 42);
        let classified = classifier.classify(&sql);
        assert_eq!(classified.len(), 1, "{sql}");
        let resolved = session.resolve(&classifier, &classified);
        let statement = resolved[0].clone();
        assert!(set.decide_in(&scope, &statement).is_allow(), "{sql}");
        group.bench_function(format!("classify_hit/{name}"), |b| {
            b.iter(|| black_box(classifier.classify(black_box(&sql))))
        });
        group.bench_function(format!("resolve/{name}"), |b| {
            b.iter(|| black_box(session.resolve(&classifier, black_box(&classified))))
        });
        group.bench_function(format!("decide_in/{name}"), |b| {
            b.iter(|| black_box(set.decide_in(&scope, black_box(&statement))))
        });
    }
    let sql = text(OLTP[0].1, 42);
    group.bench_function("command_new/pgbench_select", |b| {
        b.iter(|| black_box(command(black_box(sql.as_str()).to_owned())))
    });
    group.bench_function("open_session", |b| {
        let fx = Fixture::new();
        b.iter(|| black_box(fx.open()))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = first_sight, first_sight_new_session, repeated, transaction, parts
}
criterion_main!(benches);
