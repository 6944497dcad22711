//! rustls configuration for both sides: a server config for clients of the
//! gateway, and verifying client configs for backends.

use crate::config::{Config, ConfigError, ResourceConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use std::sync::Arc;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(
    config: &Config,
    key: &str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bytes = std::fs::read(path)
        .map_err(|e| config.error(format!("{key}: cannot read {}: {e}", path.display())))?;
    let certs = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config.error(format!("{key}: {}: invalid PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(config.error(format!("{key}: {} holds no certificate", path.display())));
    }
    Ok(certs)
}

/// The acceptor for client connections, if `[server] tls_cert` is set.
pub fn acceptor(config: &Config) -> Result<Option<tokio_rustls::TlsAcceptor>, ConfigError> {
    acceptor_with_alpn(config, &[])
}

/// The same, offering `alpn` protocols (`h2`, `http/1.1` for HTTP fronts).
pub fn acceptor_with_alpn(
    config: &Config,
    alpn: &[&[u8]],
) -> Result<Option<tokio_rustls::TlsAcceptor>, ConfigError> {
    let (Some(cert), Some(key)) = (&config.server.tls_cert, &config.server.tls_key) else {
        return Ok(None);
    };
    let cert_path = config.resolve(cert);
    let key_path = config.resolve(key);
    let certs = read_certs(config, "[server] tls_cert", &cert_path)?;
    let key_bytes = std::fs::read(&key_path).map_err(|e| {
        config.error(format!(
            "[server] tls_key: cannot read {}: {e}",
            key_path.display()
        ))
    })?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_bytes.as_slice())
        .map_err(|e| {
            config.error(format!(
                "[server] tls_key: {}: invalid PEM: {e}",
                key_path.display()
            ))
        })?
        .ok_or_else(|| {
            config.error(format!(
                "[server] tls_key: {} holds no private key",
                key_path.display()
            ))
        })?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| config.error(format!("[server] TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| config.error(format!("[server] tls_cert/tls_key: {e}")))?;
    server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(server))))
}

/// The roots a resource's backend is verified with: its CA file, or the
/// system's.
fn roots(
    config: &Config,
    r: &ResourceConfig,
    key: &str,
    ca: Option<&Path>,
) -> Result<rustls::RootCertStore, ConfigError> {
    let at = |m: String| config.error(format!("[[resource]] \"{}\": {m}", r.name));
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(ca) => {
            for cert in read_certs(
                config,
                &format!("[[resource]] \"{}\" {key}", r.name),
                &config.resolve(ca),
            )? {
                roots.add(cert).map_err(|e| at(format!("{key}: {e}")))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(at(format!("no system CA certificates found; set {key}")));
            }
        }
    }
    Ok(roots)
}

/// The TLS client config toward a Kubernetes API server: its CA, and
/// Sluice's client certificate when that is the credential. `None` for an
/// `http://` URL.
pub fn http_client(
    config: &Config,
    r: &ResourceConfig,
    field: &str,
    url: Option<&str>,
) -> Result<Option<rustls::ClientConfig>, ConfigError> {
    let at = |m: String| config.error(format!("[[resource]] \"{}\": {m}", r.name));
    if url.is_some_and(|u| u.starts_with("http://")) {
        if !url.is_some_and(is_loopback_url) {
            return Err(at(format!(
                "{field}: plain http:// is only allowed to a loopback server"
            )));
        }
        return Ok(None);
    }
    let roots = roots(config, r, "ca_file", r.ca_file.as_deref())?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| at(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    // hyper-rustls sets ALPN (h2, http/1.1) itself.
    let client = match (&r.client_cert_file, &r.client_key_file) {
        (Some(cert), Some(key)) => {
            let certs = read_certs(config, "client_cert_file", &config.resolve(cert))?;
            let key_path = config.resolve(key);
            let bytes = std::fs::read(&key_path).map_err(|e| {
                at(format!(
                    "client_key_file: cannot read {}: {e}",
                    key_path.display()
                ))
            })?;
            let key = rustls_pemfile::private_key(&mut bytes.as_slice())
                .map_err(|e| at(format!("client_key_file: invalid PEM: {e}")))?
                .ok_or_else(|| at("client_key_file holds no private key".into()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| at(format!("client_cert_file/client_key_file: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Some(client))
}

fn is_loopback_url(url: &str) -> bool {
    let rest = url.trim_start_matches("http://");
    let host = rest.split('/').next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// TLS settings for one backend (`tls = "verify-full"`).
pub fn backend(config: &Config, r: &ResourceConfig) -> Result<sluice_pg::BackendTls, ConfigError> {
    use crate::config::BackendTlsMode;
    if r.tls == BackendTlsMode::Disable {
        return Ok(sluice_pg::BackendTls::Disable);
    }
    let at = |m: String| config.error(format!("[[resource]] \"{}\": {m}", r.name));
    let roots = roots(config, r, "tls_ca_file", r.tls_ca_file.as_deref())?;
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| at(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = r.tls_server_name.clone().unwrap_or_else(|| r.host.clone());
    let server_name = ServerName::try_from(name.clone())
        .map_err(|_| at(format!("tls_server_name: invalid name \"{name}\"")))?;
    Ok(sluice_pg::BackendTls::VerifyFull {
        config: Arc::new(client),
        server_name,
    })
}
