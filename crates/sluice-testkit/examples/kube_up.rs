//! Starts a throwaway API server and prints how to reach it (for trying
//! Sluice's Kubernetes front by hand); it stops after N seconds (default 5).
fn main() {
    let k = sluice_testkit::KubeServer::start();
    println!(
        "url={} ca={} dir={}",
        k.url(),
        k.ca_path().display(),
        k.dir().display()
    );
    println!("{}", k.kubectl_ok(&["get", "ns"]));
    std::thread::sleep(std::time::Duration::from_secs(
        std::env::args()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    ));
}
