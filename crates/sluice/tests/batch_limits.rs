//! What the gateway holds for one extended-protocol batch is bounded: it is
//! released as soon as the client's input is drained, and many Executes of
//! one long statement (each carries a copy of the text for its decision and
//! record) end the session with FATAL 54000 instead of growing without limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::raw::{bind, cstr, execute, msg, parse, sync, Raw};
use common::Gateway;
use sluice_testkit::PgServer;

fn connect(gw: &Gateway) -> Raw {
    let key = gw.create_key("agent-1", "dev");
    Raw::connect(gw.port, "agent-1", &key)
}

/// A held batch is released whenever the client has sent all it has for
/// now (PostgreSQL runs messages as they arrive), so a batch of very many
/// tiny messages streams through in pieces, never held whole, and answers
/// as PostgreSQL does.
#[test]
fn a_batch_of_very_many_messages_streams_through_in_pieces_and_answers_in_full() {
    let pg = PgServer::start();
    let gw = Gateway::start_for(&pg);
    let mut raw = connect(&gw);
    let describe = msg(b'D', &[b"S".to_vec(), cstr("")].concat());
    let mut batch = parse("select 1");
    for _ in 0..100_001 {
        batch.extend_from_slice(&describe);
    }
    batch.extend(sync());
    raw.send(&batch);
    let replies = raw.replies(1);
    assert_eq!(replies.first().map(String::as_str), Some("1"));
    assert_eq!(replies.iter().filter(|r| *r == "t").count(), 100_001);
    assert_eq!(replies.last().map(String::as_str), Some("Z I"));
}

#[test]
fn many_executes_of_a_long_statement_count_their_copies_against_the_batch_limit() {
    let pg = PgServer::start();
    let mut gw = Gateway::configure(
        "max_message_bytes = 1048576",
        &common::resource_toml("app", &pg, "scram_user", Some("PW"), ""),
    );
    gw.start(&[("PW", "scram_pw")]);
    let mut raw = connect(&gw);
    // A 900 KB statement, executed 10 times: 9 MB of copies against a 4 MB
    // batch limit (4 x max_message_bytes), though the batch itself is small.
    let long = format!("select 1 -- {}", "x".repeat(900 * 1024));
    let mut batch = parse(&long);
    for _ in 0..10 {
        batch.extend(bind());
        batch.extend(execute());
    }
    batch.extend(sync());
    raw.send(&batch);
    let replies = raw.replies(1);
    assert_eq!(
        replies.first().map(String::as_str),
        Some("E 54000"),
        "{replies:?}"
    );
}
