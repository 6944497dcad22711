//! Shared by the `auth_*` test binaries (keys and backend logins, TLS): a
//! gateway with one resource "app" in front of a test server, and the error
//! a refused connection gets.

use super::{db_error, pg_connect, resource_toml, Gateway};
use sluice_testkit::PgServer;

/// The environment variable holding the backend password of resource "app",
/// and its value (`scram_user`'s password).
pub const PW_ENV: (&str, &str) = ("SLUICE_TEST_PW", "scram_pw");

/// A gateway for `pg` with resource "app" (as scram_user) and `server_extra`.
pub fn gateway(pg: &PgServer, server_extra: &str) -> Gateway {
    let mut gw = Gateway::configure(
        server_extra,
        &resource_toml("app", pg, "scram_user", Some(PW_ENV.0), ""),
    );
    gw.start(&[PW_ENV]);
    gw
}

/// Connects and returns the error the gateway answered with.
pub async fn refused(conn: &str) -> (String, String) {
    match pg_connect(conn).await {
        Ok(_) => panic!("connection {conn} unexpectedly succeeded"),
        Err(e) => db_error(&e),
    }
}
