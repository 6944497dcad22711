//! Shared by the `protocol_*` test binaries (psql/psycopg, tokio-postgres,
//! raw wire bytes): their identity, their fixture (one PostgreSQL server and
//! one gateway per test binary, through [`shared_fixture`]), the connection
//! string through the gateway, direct SQL on the server and log tails.

use super::{shared_fixture, Fixture};
use std::sync::Arc;

/// The identity whose key the protocol tests log in with.
pub const IDENTITY: &str = "proto-tester";

/// What the protocol tests do with their [`Fixture`]. A trait rather than an
/// inherent `impl Fixture` so that other test binaries (with other
/// identities) do not get a `conn_str` for the wrong key.
pub trait ProtocolFixture {
    /// A libpq connection string through the gateway as [`IDENTITY`].
    fn conn_str(&self) -> String;

    /// Runs SQL directly on the server as superuser (not through the gateway).
    fn direct(&self, sql: &str) -> String;
}

impl ProtocolFixture for Fixture {
    fn conn_str(&self) -> String {
        self.gw.conn_str(IDENTITY, &self.key, "app")
    }

    fn direct(&self, sql: &str) -> String {
        self.pg.psql("app", sql)
    }
}

/// The shared fixture of this test binary, with a key for [`IDENTITY`].
pub fn fixture() -> Arc<Fixture> {
    shared_fixture(IDENTITY, |_| {})
}

/// The last `n` lines of `s` (for gateway logs in assertion messages).
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
