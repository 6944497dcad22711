//! Object masking on arbitrary bodies cut at arbitrary points, for every
//! kind, and listing masking on arbitrary XML. Must never panic; a masked
//! CSV keeps its header line; text keeps its line count.
//! Run: `cargo fuzz run s3_mask -- -max_total_time=300` (RUSTC_BOOTSTRAP=1
//! on a stable toolchain).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_mask::{ColumnPattern, ColumnRule, MaskConfig, Masker};
use sluice_s3::mask::{listing, Kind, ObjectMasker};
use std::sync::{Arc, OnceLock};

fn masker() -> Arc<Masker> {
    static M: OnceLock<Arc<Masker>> = OnceLock::new();
    M.get_or_init(|| {
        let mut config = MaskConfig::default();
        if let Ok(p) = ColumnPattern::parse("ssn") {
            config.columns.push(ColumnRule::new(p));
        }
        Arc::new(Masker::new(config).expect("masker"))
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let [selector, cut, body @ ..] = data else {
        return;
    };
    let kind = [Kind::Csv, Kind::Json, Kind::JsonLines, Kind::Text][usize::from(selector % 4)];
    let step = usize::from(*cut).max(1);
    let mut m = ObjectMasker::new(masker(), kind, 1 << 16);
    let mut out = Vec::new();
    let mut failed = false;
    for chunk in body.chunks(step) {
        match m.push(chunk) {
            Ok(o) => out.extend(o),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    if !failed {
        if let Ok(o) = m.finish() {
            out.extend(o);
            if kind == Kind::Text && std::str::from_utf8(body).is_ok() {
                let lines = |b: &[u8]| b.iter().filter(|c| **c == b'\n').count();
                assert_eq!(lines(&out), lines(body), "text lost or gained lines");
            }
        }
    }
    let _ = listing(&masker(), body, selector & 4 != 0);
});
