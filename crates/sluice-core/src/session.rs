use crate::Identity;
use std::net::SocketAddr;

/// Who a session is and where it comes from, whatever the protocol: what
/// each front tells the enforcement pipeline when a session opens.
#[derive(Debug, Clone, Copy)]
pub struct SessionInfo<'a> {
    pub identity: &'a Identity,
    /// The resource's config name.
    pub resource: &'a str,
    pub peer: SocketAddr,
    pub tls: bool,
    /// The client's name for itself (PostgreSQL's `application_name`,
    /// HTTP's `User-Agent`).
    pub client: Option<&'a str>,
}
