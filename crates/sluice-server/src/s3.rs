//! How each `[[resource]] kind = "s3"` becomes a listener: the shared HTTP
//! gate ([`crate::http_gate`]) with SigV4 key pairs from the key store.

use crate::config::{Config, ConfigError, ResourceConfig};
use crate::http_gate::HttpGatesImpl;
use crate::pipeline::Front;
use crate::policy::PolicyGates;
use sluice_auth::KeyStore;
use sluice_core::Identity;
use sluice_s3::{S3Front, S3Gates, Settings};
use std::sync::Arc;

impl S3Gates for HttpGatesImpl {
    fn secret(&self, access_key: &str) -> Result<Option<(Identity, String)>, String> {
        self.keys
            .s3_secret(access_key)
            .map(|found| found.map(|s| (s.identity, s.secret)))
            .map_err(|e| e.to_string())
    }
}

pub type S3FrontImpl = S3Front<HttpGatesImpl>;

/// The front of one S3 resource, and its TLS acceptor (none: plain HTTP).
pub fn front(
    config: &Config,
    r: &ResourceConfig,
    gates: &PolicyGates,
    keys: Arc<KeyStore>,
) -> Result<(S3FrontImpl, Option<tokio_rustls::TlsAcceptor>), ConfigError> {
    let at = |m: String| config.error(format!("[[resource]] \"{}\": {m}", r.name));
    let endpoint = r.endpoint.clone().unwrap_or_default();
    let tls = crate::tls::http_client(config, r, "endpoint", Some(&endpoint))?;
    let name = |f: &str| format!("[[resource]] \"{}\": {f}", r.name);
    let access = config
        .secret(
            &name("access_key"),
            r.access_key_env.as_deref(),
            r.access_key_file.as_deref(),
        )?
        .unwrap_or_default();
    let secret = config
        .secret(
            &name("secret_key"),
            r.secret_key_env.as_deref(),
            r.secret_key_file.as_deref(),
        )?
        .unwrap_or_default();
    let region = r.region.clone().unwrap_or_else(|| "us-east-1".to_owned());
    let upstream = sluice_s3::Upstream::new(&endpoint, &region, access.trim(), secret.trim(), tls)
        .map_err(|e| at(e.to_string()))?;
    let gates = Arc::new(HttpGatesImpl {
        gates: gates.clone(),
        keys,
        front: Front::S3,
    });
    let front = S3Front::new(
        gates,
        Settings {
            resource: r.name.clone(),
            upstream,
            limits: sluice_http::Limits {
                // Uploads stream: the body timeout is between chunks.
                body_timeout: std::time::Duration::from_secs(60),
                ..sluice_http::Limits::default()
            },
            domain: r.domain.clone(),
            pass_types: r
                .pass_types
                .iter()
                .map(|t| t.to_ascii_lowercase())
                .collect(),
            max_document_bytes: r.max_response_bytes.min(64 << 20),
        },
    )
    .map_err(|e| at(e.to_string()))?;
    let acceptor = crate::tls::acceptor_with_alpn(config, &[b"h2", b"http/1.1"])?;
    Ok((front, acceptor))
}
