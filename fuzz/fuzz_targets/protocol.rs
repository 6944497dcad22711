//! The PostgreSQL protocol decoder on arbitrary bytes: as a startup packet,
//! and as a stream of tagged messages from a client or a backend. Must never
//! panic, never read past the input, and never accept a frame longer than
//! the limit or than the bytes present.
//! Run: `cargo +nightly fuzz run protocol -- -max_total_time=300`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_pg::codec::{self, peek_frame};

const MAX: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    if data.len() >= 4 {
        let _ = codec::parse_startup(data);
    }
    let mut extended = sluice_pg::extended::Extended::default();
    let mut rest = data;
    while let Ok(Some(h)) = peek_frame(rest, MAX) {
        assert!(h.len >= 5 && h.len <= rest.len() && h.len <= MAX);
        let body = h.body(rest);
        match h.tag {
            b'Q' => {
                let _ = codec::query_text(body);
            }
            b'P' | b'B' | b'C' | b'E' => {
                let _ = codec::parse_message(body);
                let _ = extended.on_message(h.tag, body);
            }
            b'E' | b'N' => {
                let _ = sluice_pg::backend::error_message(body);
            }
            _ => {
                let mut r = codec::Reader::new(body);
                while r.u8().is_ok() {}
            }
        }
        rest = &rest[h.len..];
    }
});
