//! The backend as Sluice reaches it: its endpoint, region and Sluice's own
//! key pair, which signs every forwarded request (aws-sigv4, the AWS SDKs'
//! own signer).

use crate::body::UpBody;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderMap, HeaderValue, Request};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::time::SystemTime;

pub struct Upstream {
    /// Scheme and authority (`http://127.0.0.1:8014`), no path.
    pub base: String,
    pub region: String,
    identity: Identity,
    pub client: Client<hyper_rustls::HttpsConnector<HttpConnector>, UpBody>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("endpoint {0:?}: {1}")]
    Url(String, String),
    #[error("cannot sign the request toward the backend: {0}")]
    Sign(String),
}

/// How the body that goes to the backend is signed.
pub enum Payload {
    /// The client's own claim (`x-amz-content-sha256`): the backend checks
    /// the bytes against it, as it would the client's.
    Sha256(String),
    /// Streamed (the client's chunks were verified by Sluice).
    Unsigned,
}

impl Upstream {
    /// `tls`: roots for an `https://` endpoint; `None` for `http://`.
    pub fn new(
        endpoint: &str,
        region: &str,
        access_key: &str,
        secret_key: &str,
        tls: Option<rustls::ClientConfig>,
    ) -> Result<Upstream, UpstreamError> {
        let bad = |why: &str| UpstreamError::Url(endpoint.into(), why.into());
        let uri: http::Uri = endpoint.parse().map_err(|_| bad("not a URL"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(bad("needs a scheme and host"));
        };
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(bad("a path prefix is not supported"));
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let connector = match (scheme, tls) {
            ("https", Some(tls)) => builder
                .with_tls_config(tls)
                .https_only()
                .enable_http1()
                .wrap_connector(http),
            ("http", _) => builder
                .with_tls_config(
                    rustls::ClientConfig::builder()
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth(),
                )
                .https_or_http()
                .enable_http1()
                .wrap_connector(http),
            _ => return Err(bad("needs http:// or https:// (with its CA)")),
        };
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Upstream {
            base: format!("{scheme}://{authority}"),
            region: region.to_owned(),
            identity: Credentials::new(access_key, secret_key, None, None, "sluice").into(),
            client,
        })
    }

    /// Signs `req` (its URI already the backend's) with Sluice's key pair.
    pub fn sign(&self, req: &mut Request<UpBody>, payload: Payload) -> Result<(), UpstreamError> {
        let mut settings = SigningSettings::default();
        // S3 signs the path as sent: encoded once, never normalised.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params: aws_sigv4::http_request::SigningParams<'_> = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| UpstreamError::Sign(e.to_string()))?
            .into();
        let hash = match payload {
            Payload::Sha256(h) => h,
            Payload::Unsigned => "UNSIGNED-PAYLOAD".to_owned(),
        };
        let value = HeaderValue::from_str(&hash).map_err(|e| UpstreamError::Sign(e.to_string()))?;
        req.headers_mut().insert("x-amz-content-sha256", value);
        let method = req.method().as_str().to_owned();
        let uri = req.uri().to_string();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let signable = SignableRequest::new(
            &method,
            uri,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Precomputed(hash),
        )
        .map_err(|e| UpstreamError::Sign(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| UpstreamError::Sign(e.to_string()))?
            .into_parts();
        instructions.apply_to_request_http1x(req);
        Ok(())
    }
}

/// Request headers that are the client's own business with Sluice, never
/// forwarded: its credentials and signature, hop-by-hop framing, and what
/// Sluice sets itself.
pub fn forwardable(headers: &HeaderMap) -> HeaderMap {
    let named_by_connection: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        let n = name.as_str();
        let dropped = matches!(
            n,
            "host"
                | "authorization"
                | "x-amz-date"
                | "x-amz-content-sha256"
                | "x-amz-security-token"
                | "x-amz-decoded-content-length"
                | "x-amz-trailer"
                | "content-length"
                | "content-encoding"
                | "transfer-encoding"
                | "connection"
                | "keep-alive"
                | "proxy-connection"
                | "proxy-authorization"
                | "te"
                | "trailer"
                | "upgrade"
                | "expect"
                | "accept-encoding"
        ) || named_by_connection.iter().any(|c| c == n);
        if !dropped {
            out.append(name.clone(), value.clone());
        }
    }
    // A content-encoding other than aws-chunked is the object's own.
    if let Some(enc) = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        let rest: Vec<&str> = enc
            .split(',')
            .map(str::trim)
            .filter(|e| !e.eq_ignore_ascii_case("aws-chunked") && !e.is_empty())
            .collect();
        if let Ok(v) = HeaderValue::from_str(&rest.join(", ")) {
            if !rest.is_empty() {
                out.insert(http::header::CONTENT_ENCODING, v);
            }
        }
    }
    out
}

/// The path toward the backend: path style, each segment encoded as S3
/// encodes it, so the backend reads exactly the bucket and key decided.
pub fn path(bucket: Option<&str>, key: Option<&str>) -> String {
    let mut p = String::from("/");
    if let Some(b) = bucket {
        p.push_str(&encode(b, false));
        if let Some(k) = key {
            p.push('/');
            p.push_str(&encode(k, true));
        }
    }
    p
}

/// The query toward the backend: the client's, without its presigned
/// signature (Sluice signs in headers).
pub fn query(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .filter(|(k, _)| !k.starts_with("X-Amz-"))
        .map(|(k, v)| {
            if v.is_empty() && !k.is_empty() {
                format!("{}=", encode(k, false))
            } else {
                format!("{}={}", encode(k, false), encode(v, false))
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// AWS's URI encoding: unreserved characters stay, everything else is
/// `%XX`; `/` stays in a key.
pub fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let plain = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/');
        if plain {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
