//! How long after an approver's `POST /v1/approvals/{id}/approve` returns
//! does the held statement reach PostgreSQL? Target: p99 under 20 ms.
//!
//! ```sh
//! cargo bench -p sluice --bench approval_delay              # N = 200
//! APPROVAL_DELAY_N=1000 cargo bench -p sluice --bench approval_delay
//! ```
//!
//! Cargo builds the `sluice` binary (bench profile = release) before the
//! bench and names it in `CARGO_BIN_EXE_sluice`; `SLUICE_BIN` overrides it.
//!
//! Setup: a throwaway PostgreSQL ([`sluice_testkit::PgServer`]) with
//! `t(id int primary key, reached timestamptz)`, and the real gateway
//! process in front of it: resource `app` in `approval_mode = "wait"`, a
//! policy that sends every update to review by group `dba`, the approval
//! API on `[server] admin_listen`, log level info.
//!
//! Per iteration:
//! 1. a tokio-postgres client (identity `agent`, group `agents`) sends
//!    `update t set reached = clock_timestamp() where id = 1`; the gateway
//!    holds it;
//! 2. the bench polls `GET /v1/approvals?status=pending` (approver key,
//!    group `dba`) until the request shows up;
//! 3. it sends `POST /v1/approvals/{id}/approve` and takes
//!    `t0 = SystemTime::now()` as soon as the response arrives;
//! 4. once the client's update has completed, it reads `reached` from
//!    PostgreSQL directly (not through the gateway).
//!
//! delay = reached − t0, both from the same machine's realtime clock
//! (PostgreSQL's `clock_timestamp()` is `gettimeofday`). The path measured
//! is the real one: HTTP API → approval store → the waiting session woken →
//! the statement forwarded to the backend → executed up to
//! `clock_timestamp()`. A negative delay means the statement reached the
//! backend before the approver's HTTP response did. The delay from the
//! moment the approve request was sent is printed too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use sluice_testkit::{free_port, PgServer};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TARGET_P99_MS: f64 = 20.0;
const UPDATE: &str = "update t set reached = clock_timestamp() where id = 1";
const POLICY: &str = "@id(\"allow-rest\")\npermit(principal, action, resource) unless { action == Action::\"update\" };\n\
     @id(\"updates-need-a-dba\")\n@review(\"dba\")\n@quorum(\"1\")\n\
     permit(principal, action == Action::\"update\", resource);\n";

fn sluice_bin() -> PathBuf {
    let bin = std::env::var_os("SLUICE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sluice")));
    if !bin.is_file() {
        panic!(
            "the sluice binary is not at {}: run `cargo build --release --bin sluice` or set SLUICE_BIN",
            bin.display()
        );
    }
    bin
}

/// The gateway process; killed on drop.
struct Gateway {
    dir: tempfile::TempDir,
    config: PathBuf,
    bin: PathBuf,
    port: u16,
    admin: u16,
    child: Option<Child>,
}

impl Gateway {
    fn start(pg: &PgServer) -> Gateway {
        let bin = sluice_bin();
        let dir = tempfile::tempdir().unwrap();
        let (port, admin) = (free_port(), free_port());
        std::fs::write(dir.path().join("policies.cedar"), POLICY).unwrap();
        let config = dir.path().join("sluice.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\
                 data_dir = \"data\"\nshutdown_grace_secs = 1\n\n\
                 [approvals]\nwait_timeout_secs = 60\n\n\
                 [[resource]]\nname = \"app\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\n\
                 database = \"app\"\nuser = \"scram_user\"\npassword_env = \"PW\"\n\
                 approval_mode = \"wait\"\ntags = {{ env = \"bench\" }}\n\n\
                 [policy]\nfiles = [\"policies.cedar\"]\n",
                pg.port()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("sluice.log")).unwrap();
        let child = Command::new(&bin)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path())
            .env("PW", "scram_pw")
            .env("SLUICE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut gw = Gateway {
            dir,
            config,
            bin,
            port,
            admin,
            child: Some(child),
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", gw.admin)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", gw.port)).is_err()
        {
            if let Some(status) = gw.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("sluice exited with {status}:\n{}", gw.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "sluice did not listen:\n{}",
                gw.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        gw
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sluice.log")).unwrap_or_default()
    }

    fn create_key(&self, identity: &str, groups: &str) -> String {
        let out = Command::new(&self.bin)
            .args(["keys", "create", "--identity", identity, "--groups", groups])
            .arg("--config")
            .arg(&self.config)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "keys create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .to_owned()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn micros(t: SystemTime) -> i64 {
    i64::try_from(t.duration_since(UNIX_EPOCH).unwrap().as_micros()).unwrap()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(name: &str, samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let p99 = percentile(&s, 99.0);
    println!(
        "{name:<28} min {:>7.2}  p50 {:>7.2}  p90 {:>7.2}  p99 {:>7.2}  max {:>7.2}  mean {:>7.2}  (ms)",
        s[0],
        percentile(&s, 50.0),
        percentile(&s, 90.0),
        p99,
        s[s.len() - 1],
        s.iter().sum::<f64>() / s.len() as f64
    );
    p99
}

struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    /// Polls the pending list until exactly one request is there.
    async fn pending_id(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list: Value = self
                .http
                .get(format!("{}/v1/approvals?status=pending", self.base))
                .bearer_auth(&self.key)
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap()
                .json()
                .await
                .unwrap();
            let requests = list["requests"].as_array().unwrap();
            assert!(requests.len() < 2, "{list}");
            if let Some(r) = requests.first() {
                return r["id"].as_str().unwrap().to_owned();
            }
            assert!(Instant::now() < deadline, "no request became pending");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Approves; returns (sent, returned) times.
    async fn approve(&self, id: &str) -> (SystemTime, SystemTime) {
        let request = self
            .http
            .post(format!("{}/v1/approvals/{id}/approve", self.base))
            .bearer_auth(&self.key)
            .json(&serde_json::json!({"comment": "bench"}));
        let sent = SystemTime::now();
        let response = request.send().await.unwrap();
        let returned = SystemTime::now();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{status} {body}");
        assert_eq!(body["status"], "approved", "{body}");
        (sent, returned)
    }
}

async fn run(n: usize, warmup: usize) {
    let pg = PgServer::start();
    pg.psql(
        "app",
        "create table t (id int primary key, reached timestamptz); \
         insert into t values (1, null); alter table t owner to scram_user;",
    );
    let gw = Gateway::start(&pg);
    let agent = gw.create_key("agent", "agents");
    let approver = gw.create_key("alice", "dba");

    let (client, conn) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} dbname=app user=agent password={agent} sslmode=disable",
            gw.port
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let client = std::sync::Arc::new(client);
    let (direct, conn) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} dbname=app user=scram_user password=scram_pw",
            pg.port()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{}", gw.admin),
        key: approver,
    };

    let mut from_return = Vec::with_capacity(n);
    let mut from_send = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let c = std::sync::Arc::clone(&client);
        let held = tokio::spawn(async move { c.execute(UPDATE, &[]).await });
        let id = api.pending_id().await;
        let (sent, returned) = api.approve(&id).await;
        let updated = tokio::time::timeout(Duration::from_secs(10), held)
            .await
            .expect("the held update completes after approval")
            .unwrap()
            .unwrap_or_else(|e| panic!("{e:?}\n{}", gw.log()));
        assert_eq!(updated, 1);
        let reached: i64 = direct
            .query_one(
                "select (extract(epoch from reached) * 1000000)::int8 from t where id = 1",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if i >= warmup {
            from_return.push((reached - micros(returned)) as f64 / 1000.0);
            from_send.push((reached - micros(sent)) as f64 / 1000.0);
        }
    }

    println!(
        "approval release delay: N = {n} (after {warmup} warm-up), wait mode, one held statement at a time"
    );
    let p99 = summary("approve returned -> backend", &from_return);
    summary("approve sent -> backend", &from_send);
    let negative = from_return.iter().filter(|d| **d < 0.0).count();
    println!(
        "{negative} of {n} reached the backend before the approve response reached the approver"
    );
    let verdict = if p99 < TARGET_P99_MS { "MET" } else { "MISSED" };
    println!("target p99 < {TARGET_P99_MS} ms: {verdict} (p99 {p99:.2} ms)");
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument that is not ours
    // (e.g. when cargo bench runs every bench with a name filter) skips.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(filter) = args.iter().find(|a| !a.starts_with('-')) {
        if !"approval_delay".contains(filter.as_str()) {
            return;
        }
    }
    if args.iter().any(|a| a == "--list") {
        println!("approval_delay: bench");
        return;
    }
    // Without `--bench` (`cargo test --benches`): a smoke run, like
    // criterion's test mode.
    let (n, warmup) = if args.iter().any(|a| a == "--bench") {
        let n = std::env::var("APPROVAL_DELAY_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200);
        (n, 5)
    } else {
        (3, 0)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(n.max(1), warmup));
}
