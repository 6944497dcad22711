//! The API server as Sluice reaches it: its URL, its CA, and Sluice's own
//! credentials (a bearer token, or a client certificate).

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::Full;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;

/// How Sluice authenticates to the API server.
#[derive(Clone)]
pub enum Credential {
    /// `Authorization: Bearer <token>`.
    Token(Arc<str>),
    /// A client certificate, set in the TLS config.
    ClientCertificate,
    None,
}

pub struct Upstream {
    /// Scheme and authority (`https://127.0.0.1:6443`), no path.
    pub base: String,
    pub credential: Credential,
    /// Impersonate the Sluice identity and its groups.
    pub impersonate: bool,
    pub client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// HTTP/1.1 only: upgrades (exec, attach, port-forward) cannot run on
    /// HTTP/2.
    pub client_h1: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("url {0:?}: {1}")]
    Url(String, String),
}

impl Upstream {
    /// `tls`: the client config (its roots, and the client certificate if
    /// that is the credential); `None` for a plain `http://` API server.
    pub fn new(
        url: &str,
        tls: Option<rustls::ClientConfig>,
        credential: Credential,
        impersonate: bool,
    ) -> Result<Upstream, UpstreamError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| UpstreamError::Url(url.into(), e.to_string()))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(UpstreamError::Url(
                url.into(),
                "needs a scheme and host".into(),
            ));
        };
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(UpstreamError::Url(
                url.into(),
                "a path prefix is not supported".into(),
            ));
        }
        let plain = || -> Result<rustls::ClientConfig, UpstreamError> {
            Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| UpstreamError::Url(url.into(), e.to_string()))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth())
        };
        // Small requests and answers go out at once (no Nagle delay).
        let tcp = || {
            let mut http = HttpConnector::new();
            http.set_nodelay(true);
            http.enforce_http(false);
            http
        };
        let (h2, h1) = match (scheme, tls) {
            ("https", Some(tls)) => {
                let b = || {
                    hyper_rustls::HttpsConnectorBuilder::new()
                        .with_tls_config(tls.clone())
                        .https_only()
                };
                (
                    b().enable_http1().enable_http2().wrap_connector(tcp()),
                    b().enable_http1().wrap_connector(tcp()),
                )
            }
            ("http", None) => {
                let b = || -> Result<_, UpstreamError> {
                    Ok(hyper_rustls::HttpsConnectorBuilder::new()
                        .with_tls_config(plain()?)
                        .https_or_http())
                };
                (
                    b()?.enable_http1().wrap_connector(tcp()),
                    b()?.enable_http1().wrap_connector(tcp()),
                )
            }
            _ => {
                return Err(UpstreamError::Url(
                    url.into(),
                    "https needs a TLS config; http must not have one".into(),
                ))
            }
        };
        let client = Client::builder(TokioExecutor::new()).build(h2);
        let client_h1 = Client::builder(TokioExecutor::new()).build(h1);
        Ok(Upstream {
            base: format!("{scheme}://{authority}"),
            credential,
            impersonate,
            client,
            client_h1,
        })
    }

    /// Adds Sluice's credential and, when configured, the impersonation of
    /// `user` in `groups`. The client's own were removed before.
    pub fn authorize(&self, headers: &mut HeaderMap, user: &str, groups: &[String]) {
        if let Credential::Token(token) = &self.credential {
            if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
                headers.insert(http::header::AUTHORIZATION, v);
            }
        }
        if !self.impersonate {
            return;
        }
        if let Ok(v) = HeaderValue::from_str(user) {
            headers.insert(HeaderName::from_static("impersonate-user"), v);
        }
        for g in groups {
            if let Ok(v) = HeaderValue::from_str(g) {
                headers.append(HeaderName::from_static("impersonate-group"), v);
            }
        }
    }
}
