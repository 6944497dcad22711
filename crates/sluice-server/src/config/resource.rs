//! One `[[resource]]`: its fields by kind, and their checks.

use super::{default_true, ApprovalMode, BackendTlsMode};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

fn default_port() -> u16 {
    5432
}
fn default_connect_timeout() -> u64 {
    10
}

/// One protected target. `kind` says which fields apply: `postgres` needs
/// `host`, `database` and `user`; `kubernetes` needs `listen` and `url`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfig {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub database: String,
    #[serde(default)]
    pub user: String,
    /// Present only to give a precise error: passwords are never inline.
    pub password: Option<toml::Value>,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub max_connections: Option<usize>,
    #[serde(default)]
    pub tls: BackendTlsMode,
    /// PEM file of CAs to trust for the backend; default: the system's roots.
    pub tls_ca_file: Option<PathBuf>,
    /// Name to verify in the backend certificate; default: `host`.
    pub tls_server_name: Option<String>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    #[serde(default)]
    pub approval_mode: ApprovalMode,
    /// Content detectors turned off for this resource (`["phone"]`).
    #[serde(default)]
    pub masking_detectors_off: Vec<String>,
    /// Kubernetes: where kubectl connects.
    pub listen: Option<SocketAddr>,
    /// Kubernetes: the API server (`https://host:port`).
    pub url: Option<String>,
    /// Kubernetes: the API server's CA (PEM); default: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Kubernetes: Sluice's bearer token toward the API server.
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    /// Kubernetes: or Sluice's client certificate and key (PEM).
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// Kubernetes: impersonate the Sluice identity and its groups, so the
    /// cluster's RBAC applies on top of Sluice's policy.
    #[serde(default = "default_true")]
    pub impersonate: bool,
    /// Kubernetes: the largest request body accepted.
    #[serde(default = "default_kube_request_bytes")]
    pub max_request_bytes: usize,
    /// Kubernetes: the largest single JSON response held to mask it.
    #[serde(default = "default_kube_response_bytes")]
    pub max_response_bytes: usize,
    /// S3: the real S3 server (`http://host:port`, `https://...`).
    pub endpoint: Option<String>,
    /// S3: the region Sluice signs for toward the backend and clients sign
    /// for toward Sluice.
    pub region: Option<String>,
    /// S3: Sluice's own key pair toward the backend (never inline).
    pub access_key_env: Option<String>,
    pub access_key_file: Option<PathBuf>,
    pub secret_key_env: Option<String>,
    pub secret_key_file: Option<PathBuf>,
    /// S3: virtual-host style requests name the bucket as `bucket.<domain>`.
    pub domain: Option<String>,
    /// S3: content types released to an identity whose results are masked
    /// although Sluice cannot inspect them (`application/parquet`).
    #[serde(default)]
    pub pass_types: Vec<String>,
}

fn default_kube_request_bytes() -> usize {
    8 << 20
}
fn default_kube_response_bytes() -> usize {
    256 << 20
}

/// The resource kinds Sluice serves.
pub const KINDS: [&str; 3] = ["postgres", "kubernetes", "s3"];

impl ResourceConfig {
    pub fn is_kubernetes(&self) -> bool {
        self.kind == "kubernetes"
    }

    pub fn is_s3(&self) -> bool {
        self.kind == "s3"
    }

    /// Served by Sluice's PostgreSQL front.
    pub fn is_postgres(&self) -> bool {
        self.kind == "postgres"
    }

    /// Checks the fields of this resource's kind.
    pub(super) fn validate_kind(&self) -> Result<(), String> {
        let pg_only = [
            ("host", !self.host.is_empty()),
            ("database", !self.database.is_empty()),
            ("user", !self.user.is_empty()),
            ("password_env", self.password_env.is_some()),
            ("password_file", self.password_file.is_some()),
            ("tls_ca_file", self.tls_ca_file.is_some()),
        ];
        let s3_only = [
            ("endpoint", self.endpoint.is_some()),
            ("region", self.region.is_some()),
            ("access_key_env", self.access_key_env.is_some()),
            ("access_key_file", self.access_key_file.is_some()),
            ("secret_key_env", self.secret_key_env.is_some()),
            ("secret_key_file", self.secret_key_file.is_some()),
            ("domain", self.domain.is_some()),
            ("pass_types", !self.pass_types.is_empty()),
        ];
        let kube_only = [
            ("url", self.url.is_some()),
            ("ca_file", self.ca_file.is_some()),
            ("token_file", self.token_file.is_some()),
            ("token_env", self.token_env.is_some()),
            ("client_cert_file", self.client_cert_file.is_some()),
            ("client_key_file", self.client_key_file.is_some()),
        ];
        let stray = |fields: &[(&str, bool)]| {
            fields
                .iter()
                .find(|(_, set)| *set)
                .map(|(f, _)| format!("{f} does not apply to kind = \"{}\"", self.kind))
        };
        match self.kind.as_str() {
            "postgres" => {
                if let Some(e) = stray(&kube_only).or_else(|| stray(&s3_only)) {
                    return Err(e);
                }
                if self.listen.is_some() {
                    return Err("listen does not apply to kind = \"postgres\" (clients reach it on [server] listen)".into());
                }
                for (field, set) in &pg_only[..3] {
                    if !set {
                        return Err(format!("{field} is required for kind = \"postgres\""));
                    }
                }
                Ok(())
            }
            "kubernetes" => {
                if let Some(e) = stray(&pg_only).or_else(|| stray(&s3_only)) {
                    return Err(e);
                }
                if self.listen.is_none() || self.url.is_none() {
                    return Err("listen and url are required for kind = \"kubernetes\"".into());
                }
                let token = self.token_file.is_some() as u8 + self.token_env.is_some() as u8;
                let cert = self.client_cert_file.is_some() || self.client_key_file.is_some();
                if token > 1 || (token == 1 && cert) {
                    return Err("set one credential: token_file, token_env, or client_cert_file with client_key_file".into());
                }
                if self.client_cert_file.is_some() != self.client_key_file.is_some() {
                    return Err("client_cert_file and client_key_file must be set together".into());
                }
                Ok(())
            }
            "s3" => {
                // An https endpoint's CA is named as for Kubernetes.
                let kube_only: Vec<(&str, bool)> = kube_only
                    .into_iter()
                    .filter(|(f, _)| *f != "ca_file")
                    .collect();
                if let Some(e) = stray(&pg_only).or_else(|| stray(&kube_only)) {
                    return Err(e);
                }
                if self.listen.is_none() || self.endpoint.is_none() {
                    return Err("listen and endpoint are required for kind = \"s3\"".into());
                }
                for (what, env, file) in [
                    ("access_key", &self.access_key_env, &self.access_key_file),
                    ("secret_key", &self.secret_key_env, &self.secret_key_file),
                ] {
                    match (env.is_some(), file.is_some()) {
                        (true, true) => return Err(format!("set one of {what}_env and {what}_file")),
                        (false, false) => return Err(format!("{what}_env or {what}_file is required for kind = \"s3\" (Sluice's own key pair toward the backend)")),
                        _ => {}
                    }
                }
                Ok(())
            }
            other => Err(format!(
                "kind: \"{other}\" is not supported (supported: {})",
                KINDS.map(|k| format!("\"{k}\"")).join(", ")
            )),
        }
    }
}
