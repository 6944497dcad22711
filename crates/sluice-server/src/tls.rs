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
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| config.error(format!("[server] TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| config.error(format!("[server] tls_cert/tls_key: {e}")))?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(server))))
}

/// TLS settings for one backend (`tls = "verify-full"`).
pub fn backend(config: &Config, r: &ResourceConfig) -> Result<sluice_pg::BackendTls, ConfigError> {
    use crate::config::BackendTlsMode;
    if r.tls == BackendTlsMode::Disable {
        return Ok(sluice_pg::BackendTls::Disable);
    }
    let at = |m: String| config.error(format!("[[resource]] \"{}\": {m}", r.name));
    let mut roots = rustls::RootCertStore::empty();
    match &r.tls_ca_file {
        Some(ca) => {
            for cert in read_certs(
                config,
                &format!("[[resource]] \"{}\" tls_ca_file", r.name),
                &config.resolve(ca),
            )? {
                roots
                    .add(cert)
                    .map_err(|e| at(format!("tls_ca_file: {e}")))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(at(
                    "tls: no system CA certificates found; set tls_ca_file".into()
                ));
            }
        }
    }
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
