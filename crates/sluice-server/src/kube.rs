//! How each `[[resource]] kind = "kubernetes"` becomes a listener: the
//! shared HTTP gate ([`crate::http_gate`]) with bearer-token
//! authentication.

use crate::config::{Config, ConfigError, ResourceConfig};
use crate::http_gate::HttpGatesImpl;
use crate::pipeline::Front;
use crate::policy::PolicyGates;
use sluice_auth::KeyStore;
use sluice_core::Identity;
use sluice_kube::{KubeFront, KubeGates, Limits};
use std::sync::Arc;
use tracing::warn;

impl KubeGates for HttpGatesImpl {
    fn authenticate(&self, token: &str) -> Option<Identity> {
        match self.keys.authenticate(token) {
            Ok(found) => found.map(|a| a.identity),
            Err(e) => {
                warn!(error = %e, "key store failed: refusing the request");
                None
            }
        }
    }
}

/// Sluice's own credential toward the API server.
fn credential(config: &Config, r: &ResourceConfig) -> Result<sluice_kube::Credential, ConfigError> {
    let what = format!("[[resource]] \"{}\": token", r.name);
    if let Some(token) = config.secret(&what, r.token_env.as_deref(), r.token_file.as_deref())? {
        return Ok(sluice_kube::Credential::Token(token.trim().into()));
    }
    if r.client_cert_file.is_some() {
        return Ok(sluice_kube::Credential::ClientCertificate);
    }
    Ok(sluice_kube::Credential::None)
}

pub type KubeFrontImpl = KubeFront<HttpGatesImpl>;

/// The front of one Kubernetes resource.
pub fn front(
    config: &Config,
    r: &ResourceConfig,
    gates: &PolicyGates,
    keys: Arc<KeyStore>,
) -> Result<KubeFront<HttpGatesImpl>, ConfigError> {
    let at = |m: String| config.error(format!("[[resource]] \"{}\": {m}", r.name));
    let tls = crate::tls::http_client(config, r, "url", r.url.as_deref())?;
    let url = r.url.clone().unwrap_or_default();
    let upstream = sluice_kube::Upstream::new(&url, tls, credential(config, r)?, r.impersonate)
        .map_err(|e| at(e.to_string()))?;
    let acceptor = crate::tls::acceptor_with_alpn(config, &[b"h2", b"http/1.1"])?;
    Ok(KubeFront {
        gates: Arc::new(HttpGatesImpl {
            gates: gates.clone(),
            keys,
            front: Front::Kubernetes,
        }),
        resource: r.name.clone(),
        upstream,
        limits: Limits {
            max_request_bytes: r.max_request_bytes,
            max_response_bytes: r.max_response_bytes,
            ..Limits::default()
        },
        tls: acceptor,
        connects: Default::default(),
    })
}
