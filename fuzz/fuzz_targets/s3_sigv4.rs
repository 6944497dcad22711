//! The S3 front's signature check (SigV2 refusal, then s3s's SigV4
//! verification as the front configures it) on arbitrary requests: a
//! method line, a URI line, header lines up to an empty line, then the
//! body. Must never panic or hang; a request nobody signed never reaches
//! the route as signed (the fuzzer does not know the secret).
//! Run: `cargo fuzz run s3_sigv4 -- -max_total_time=300` (RUSTC_BOOTSTRAP=1
//! on a stable toolchain).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_s3::fuzzing::{Reached, Verifier};
use std::sync::OnceLock;

const KEY: &str = "SLUICEFUZZKEY0000001";

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| Verifier::new(KEY, "a-secret-the-fuzzer-does-not-know", Some("s3.test")))
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static R: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    R.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn request(data: &[u8]) -> Option<http::Request<s3s::Body>> {
    let split = data.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &b""[..]),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split('\n');
    let method = http::Method::from_bytes(lines.next()?.as_bytes()).ok()?;
    let uri: http::Uri = lines.next()?.parse().ok()?;
    let mut b = http::Request::builder().method(method).uri(uri);
    for line in lines {
        let (k, v) = line.split_once(':')?;
        b = b.header(k.trim(), v.trim());
    }
    b.body(s3s::Body::from(body.to_vec())).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some(req) = request(data) else {
        return;
    };
    let (_status, reached) = runtime().block_on(verifier().call(req));
    assert!(
        !matches!(reached, Reached::Signed(_)),
        "an unsigned request reached the route as signed"
    );
});
