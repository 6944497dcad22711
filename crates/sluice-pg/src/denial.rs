//! How a refused statement is kept out of the backend without breaking
//! PostgreSQL's pipeline semantics. Instead of the statement, the backend
//! gets a stand-in that fails to parse with a unique marker in its error;
//! the session swaps that error for the denial when it comes back. So the
//! denial reaches the client in its place among earlier results, an
//! enclosing transaction is aborted just as a real error would abort it,
//! and the backend skips to the next Sync by itself. The statement itself
//! never reaches the target.

use crate::messages::{put_cstr, put_message, PgErrorReply};
use bytes::{BufMut, BytesMut};

/// What ended the refused unit, which the stand-in must end the same way.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Terminator {
    Query,
    Sync,
    Flush,
}

/// A denial waiting for the backend to report the stand-in error that keeps
/// its place in the pipeline (see [`Session::deny`]).
pub(crate) struct PendingDenial {
    pub(crate) marker: String,
    pub(crate) reply: PgErrorReply,
    /// The count of Z-producing messages forwarded before it; once that many
    /// ReadyForQuery have come back, a marker not yet seen never will be.
    pub(crate) segment: u64,
}

/// Appends the stand-in for a refused unit to `out`; returns its marker.
pub(crate) fn stand_in(out: &mut BytesMut, terminator: Terminator) -> String {
    let marker = format!("sluice_denied_{:016x}", rand::random::<u64>());
    match terminator {
        Terminator::Query => put_message(out, b'Q', |b| put_cstr(b, &marker)),
        Terminator::Sync | Terminator::Flush => {
            put_message(out, b'P', |b| {
                put_cstr(b, "sluice_denied");
                put_cstr(b, &marker);
                b.put_i16(0);
            });
            let end = if terminator == Terminator::Sync {
                b'S'
            } else {
                b'H'
            };
            put_message(out, end, |_| {});
        }
    }
    marker
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
