//! Raw protocol, differential: the same byte sequences sent straight to
//! PostgreSQL and through the `sluice` binary must produce the same replies.
//! The gateway may hold an extended batch for a decision, but must never
//! reorder what the client sent: Flush without Sync, a simple Query after
//! unsynced extended messages, extended COPY FROM STDIN, an error skipping to
//! Sync, empty queries. The client is `common::raw::Raw`; one server and
//! gateway serve the whole binary (`common::proto::fixture`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::proto::{fixture, tail, ProtocolFixture, IDENTITY};
use common::raw::{bind, describe_portal, execute, flush, msg, parse, query, sync, Raw};
use common::Fixture;
use std::time::Duration;

/// Sends `bytes` (in one write) directly and through the gateway; asserts
/// both sides reply the same and returns the replies.
fn same_replies_direct_and_through_gateway(
    f: &Fixture,
    setup: &str,
    bytes: &[u8],
    zs: usize,
) -> Vec<String> {
    same_replies_to_pieces(f, setup, &[bytes], Duration::ZERO, zs)
}

/// Sends `pieces` one write each, `pause` after each, directly and through
/// the gateway; asserts both sides reply the same and returns the replies.
fn same_replies_to_pieces(
    f: &Fixture,
    setup: &str,
    pieces: &[&[u8]],
    pause: Duration,
    zs: usize,
) -> Vec<String> {
    let mut results = Vec::new();
    for (port, user, pw) in [
        (f.pg.port(), "scram_user", "scram_pw"),
        (f.gw.port, IDENTITY, f.key.as_str()),
    ] {
        if !setup.is_empty() {
            f.direct(setup);
        }
        let mut raw = Raw::connect(port, user, pw);
        for piece in pieces {
            raw.send(piece);
            std::thread::sleep(pause);
        }
        results.push(raw.replies(zs));
    }
    assert_eq!(
        results[1],
        results[0],
        "through the gateway (left) vs direct (right)\nlog:\n{}",
        tail(&f.gw.log(), 20)
    );
    results.pop().unwrap()
}

#[test]
fn an_extended_batch_ended_by_flush_is_answered_before_sync() {
    let f = fixture();
    let mut raw = Raw::connect(f.gw.port, IDENTITY, &f.key);
    raw.send(
        &[
            parse("select 'flushed'"),
            bind(),
            describe_portal(),
            execute(),
            flush(),
        ]
        .concat(),
    );
    let mut got = Vec::new();
    while got.len() < 5 {
        let Some((tag, _)) = raw.next() else { break };
        got.push(tag as char);
    }
    assert_eq!(
        got,
        ['1', '2', 'T', 'D', 'C'],
        "results arrive on Flush, with no Sync sent"
    );
    raw.send(&sync());
    assert_eq!(raw.replies(1), ["Z I"]);
}

#[test]
fn a_simple_query_after_unsynced_extended_messages_keeps_its_place() {
    let f = fixture();
    let bytes = [
        parse("select 'first'"),
        bind(),
        execute(),
        query("select 'second'"),
        sync(),
    ]
    .concat();
    let got = same_replies_direct_and_through_gateway(&f, "", &bytes, 2);
    assert_eq!(
        got,
        [
            "1",
            "2",
            "D first",
            "C SELECT 1",
            "T",
            "D second",
            "C SELECT 1",
            "Z I",
            "Z I"
        ]
    );
}

#[test]
fn extended_copy_from_stdin_with_data_sent_before_sync_loads_the_rows() {
    let f = fixture();
    let bytes = [
        parse("copy raw_copy from stdin"),
        bind(),
        execute(),
        msg(b'd', b"1\n2\n"),
        msg(b'd', b"3\n"),
        msg(b'c', &[]),
        sync(),
    ]
    .concat();
    let setup = "drop table if exists raw_copy; create table raw_copy (v int); grant all on raw_copy to scram_user;";
    let got = same_replies_direct_and_through_gateway(&f, setup, &bytes, 1);
    assert_eq!(got, ["1", "2", "G copy", "C COPY 3", "Z I"]);
    assert_eq!(f.direct("select sum(v) from raw_copy"), "6\n");
}

#[test]
fn an_error_in_an_extended_batch_skips_to_sync_like_postgres() {
    let f = fixture();
    let bytes = [
        parse("select 1/0"),
        bind(),
        execute(),
        parse("select 'skipped'"),
        bind(),
        execute(),
        sync(),
        parse("select 'next'"),
        bind(),
        execute(),
        sync(),
    ]
    .concat();
    let got = same_replies_direct_and_through_gateway(&f, "", &bytes, 2);
    // 1/0 is folded while planning, which for the unnamed statement is at Bind.
    assert_eq!(
        got,
        [
            "1",
            "E 22012",
            "Z I",
            "1",
            "2",
            "D next",
            "C SELECT 1",
            "Z I"
        ]
    );
}

#[test]
fn an_empty_query_gets_an_empty_query_response() {
    let f = fixture();
    let got = same_replies_direct_and_through_gateway(&f, "", &[query(""), query(";")].concat(), 2);
    assert_eq!(got, ["I", "Z I", "I", "Z I"]);
}

/// A batch the client writes in pieces, pausing between them, is released
/// piece by piece as the gateway's input drains: replies match the
/// server's, including an error mid-batch that skips the rest to Sync.
#[test]
fn a_batch_written_in_pieces_with_pauses_replies_as_the_server_does() {
    let f = fixture();
    let pieces = [
        parse("select 'one'"),
        [bind(), describe_portal()].concat(),
        execute(),
        parse("select 1/0"),
        [bind(), execute()].concat(),
        [parse("select 'skipped'"), bind(), execute()].concat(),
        sync(),
    ];
    let pieces: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
    let replies = same_replies_to_pieces(&f, "", &pieces, Duration::from_millis(30), 1);
    assert_eq!(
        replies,
        // 1/0 is folded when the unnamed statement is planned, at Bind.
        ["1", "2", "T", "D one", "C SELECT 1", "1", "E 22012", "Z I"]
    );
}
