//! kubectl-like load on a Kubernetes API endpoint, for `bench/kube.sh`:
//!
//!     kube_load <url> <ca_file> <concurrency> <seconds>   # token in KUBE_TOKEN
//!
//! `concurrency` clients (each its own HTTPS connection, kept alive) send
//! GETs of `url` back to back for `seconds`; prints one JSON line with the
//! request count, requests per second, p50/p99 latency in ms and errors.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (url, ca, concurrency, seconds) = (
        args[1].clone(),
        std::fs::read(&args[2]).expect("ca file"),
        args[3].parse::<usize>().expect("concurrency"),
        args[4].parse::<u64>().expect("seconds"),
    );
    let token = std::env::var("KUBE_TOKEN").expect("KUBE_TOKEN");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("pem"))
            .pool_max_idle_per_host(1)
            .build()
            .unwrap();
        let (url, token) = (url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let start = Instant::now();
                let r = client.get(&url).bearer_auth(&token).send().await;
                match r {
                    Ok(resp) if resp.status().is_success() => {
                        let _ = resp.bytes().await;
                        latencies.push(start.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{{\"requests\":{},\"rps\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"errors\":{}}}",
        all.len(),
        all.len() as f64 / seconds as f64,
        pct(0.50),
        pct(0.99),
        errors
    );
}
