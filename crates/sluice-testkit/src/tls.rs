//! Throwaway TLS material: a self-signed CA and a leaf certificate for
//! 127.0.0.1/localhost, written to files for a Sluice listener
//! ([`make_tls_files`]) or used by a TLS-enabled [`PgServer`](crate::PgServer).

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

use crate::sys::write_file;

/// Paths written by [`make_tls_files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Leaf certificate (PEM), SAN `localhost` + IP `127.0.0.1`.
    pub cert: PathBuf,
    /// Private key of the leaf (PKCS#8 PEM, ECDSA P-256), mode 0600.
    pub key: PathBuf,
    /// Self-signed CA certificate (PEM) that signed the leaf.
    pub ca: PathBuf,
}

/// Writes a fresh self-signed CA and a leaf certificate + key for a Sluice
/// listener into `dir` (created if missing): `cert.pem`, `key.pem` (0600) and
/// `ca.pem`, owned by the current user. Leaf SAN: DNS `localhost` and IP
/// `127.0.0.1`; extended key usage serverAuth + clientAuth.
pub fn make_tls_files(dir: &Path) -> TlsFiles {
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let material = generate_tls();
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        ca: dir.join("ca.pem"),
    };
    write_file(&files.cert, material.cert_pem.as_bytes(), 0o644);
    write_file(&files.key, material.key_pem.as_bytes(), 0o600);
    write_file(&files.ca, material.ca_pem.as_bytes(), 0o644);
    files
}

pub(crate) struct TlsMaterial {
    pub(crate) ca_pem: String,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

pub(crate) fn generate_tls() -> TlsMaterial {
    let ca_key = KeyPair::generate().expect("generate CA key");
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Sluice Test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");

    let leaf_key = KeyPair::generate().expect("generate leaf key");
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.subject_alt_names = vec![
        SanType::DnsName("localhost".try_into().expect("dns name")),
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    ];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let leaf = params
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .expect("sign leaf certificate");

    TlsMaterial {
        ca_pem: ca_cert.pem(),
        cert_pem: leaf.pem(),
        key_pem: leaf_key.serialize_pem(),
    }
}
