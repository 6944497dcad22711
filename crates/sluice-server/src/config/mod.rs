//! The one TOML file that configures a gateway. Unknown keys are errors
//! (a typo in a security setting must not be silently ignored), and every
//! error names the file and the key.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    pub file: PathBuf,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    #[serde(default, rename = "resource")]
    pub resources: Vec<ResourceConfig>,
    /// Absent: no policy, so nothing is permitted.
    pub policy: Option<PolicyConfig>,
    #[serde(default)]
    pub audit: AuditSettings,
    #[serde(default)]
    pub approvals: ApprovalSettings,
    #[serde(default)]
    pub masking: MaskingSettings,
    /// The directory the config file is in (`.` for a bare file name);
    /// every relative path in the config resolves against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
    #[serde(skip)]
    pub file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Cedar policy files or globs, relative to the config file.
    pub files: Vec<String>,
}

/// `[masking]`: with no section at all, every content detector is on for
/// every resource (the secure default).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingSettings {
    /// Off only for throwaway setups; the gateway says so at start.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Style of detector hits: "full", "partial" or "hash".
    #[serde(default)]
    pub style: sluice_mask::Style,
    /// Columns masked whole: `"email"`, `"*_token"`, `"public.users.ssn"`,
    /// `"type:inet"`, or `{ pattern = "...", style = "partial" }`.
    #[serde(default)]
    pub columns: Vec<sluice_mask::ColumnRule>,
    /// JSON key names whose values are redacted; default: password, secret,
    /// token, api_key... (see sluice-mask).
    pub key_names: Option<Vec<String>>,
    /// Also mask columns named like a secret (`password_hash`, `api_key`).
    #[serde(default = "default_true")]
    pub key_named_columns: bool,
    /// The HMAC key for style "hash" (environment variable or file).
    pub hash_key_env: Option<String>,
    pub hash_key_file: Option<PathBuf>,
}

impl Default for MaskingSettings {
    fn default() -> Self {
        MaskingSettings {
            enabled: true,
            style: sluice_mask::Style::default(),
            columns: Vec::new(),
            key_names: None,
            key_named_columns: true,
            hash_key_env: None,
            hash_key_file: None,
        }
    }
}

/// How a client meets a statement that needs approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalMode {
    /// Held until decided; the client waits (a notice says where to approve).
    #[default]
    Wait,
    /// Refused at once with the request id; the same statement re-sent
    /// after approval runs exactly once.
    Deferred,
}

fn default_agent_groups() -> Vec<String> {
    vec!["agents".to_owned()]
}
fn default_wait_timeout() -> u64 {
    300
}
fn default_request_ttl() -> u64 {
    24 * 3600
}
fn default_grant_ttl() -> u64 {
    15 * 60
}

/// `[approvals]`: review decisions held for people.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSettings {
    /// Identities in these groups can never approve or deny.
    #[serde(default = "default_agent_groups")]
    pub agent_groups: Vec<String>,
    /// `wait` mode: how long a client waits before its statement times out
    /// (the request expires with it).
    #[serde(default = "default_wait_timeout")]
    pub wait_timeout_secs: u64,
    /// `deferred` mode: how long approvers have to decide.
    #[serde(default = "default_request_ttl")]
    pub request_ttl_secs: u64,
    /// How long an approval can be used once granted.
    #[serde(default = "default_grant_ttl")]
    pub grant_ttl_secs: u64,
    /// Per-identity override of the resources' `approval_mode`.
    #[serde(default)]
    pub identity_modes: BTreeMap<String, ApprovalMode>,
    /// Where approvers reach the approval API, for notices and
    /// notifications; default: `http://<[server] admin_listen>`.
    pub public_url: Option<String>,
    #[serde(default)]
    pub webhook: Vec<WebhookSettings>,
    pub slack: Option<SlackSettings>,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        ApprovalSettings {
            agent_groups: default_agent_groups(),
            wait_timeout_secs: default_wait_timeout(),
            request_ttl_secs: default_request_ttl(),
            grant_ttl_secs: default_grant_ttl(),
            identity_modes: BTreeMap::new(),
            public_url: None,
            webhook: Vec::new(),
            slack: None,
        }
    }
}

/// `[[approvals.webhook]]`: a JSON POST per approval event, signed with
/// HMAC-SHA256 over the secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub url: String,
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
}

/// `[approvals.slack]`: a Slack incoming webhook (its URL is a secret).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    pub url_env: Option<String>,
    pub url_file: Option<PathBuf>,
}

pub(crate) fn default_true() -> bool {
    true
}

fn default_response_content_bytes() -> usize {
    64 * 1024
}

/// `[audit]`: the audit log is always on; this tunes what it keeps and how
/// it fails.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Off only for measurements and throwaway setups: nothing is
    /// recorded, and the gateway says so at start.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Most bytes of a statement's result content kept in its response
    /// record (the rest is marked truncated); 0 keeps none.
    #[serde(default = "default_response_content_bytes")]
    pub response_content_bytes: usize,
    /// When the audit store cannot write, still run pure reads (logged as
    /// unrecorded, loudly). Writes are refused either way.
    #[serde(default)]
    pub fail_open_reads: bool,
    /// When a result may reach the client relative to its record: once the
    /// record is written (it survives a crash of the gateway; fsynced with
    /// the next group commit, a few ms later), or once it is fsynced (it
    /// survives a power loss too). Changes wait for the fsync either way.
    #[serde(default)]
    pub read_durability: ReadDurability,
}

/// `[audit] read_durability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadDurability {
    /// Results wait for their record to be written to the log.
    #[default]
    Written,
    /// Results wait for their record to be fsynced.
    Fsync,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            enabled: true,
            response_content_bytes: default_response_content_bytes(),
            fail_open_reads: false,
            read_durability: ReadDurability::Written,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ClientAuthMode {
    /// SCRAM-SHA-256: the key never crosses the wire.
    #[default]
    Scram,
    /// Cleartext password, only ever asked for over TLS.
    Password,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 6432))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./sluice-data")
}
fn default_startup_timeout() -> u64 {
    15
}
fn default_shutdown_grace() -> u64 {
    30
}
fn default_max_message() -> usize {
    64 * 1024 * 1024
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Accept unencrypted connections on a listener that is not loopback.
    #[serde(default)]
    pub allow_plaintext: bool,
    #[serde(default)]
    pub client_auth: ClientAuthMode,
    #[serde(default = "default_startup_timeout")]
    pub startup_timeout_secs: u64,
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_secs: u64,
    /// Largest message a client may send (a Query, a Bind, a CopyData ...).
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    pub max_connections_per_identity: Option<usize>,
    #[serde(default)]
    pub log_format: LogFormat,
    /// Threads running sessions; default: one per CPU core.
    pub worker_threads: Option<usize>,
    /// The approval API (HTTP, JSON); off when absent. Not loopback needs
    /// `tls_cert`/`tls_key` (the API then speaks HTTPS with them).
    pub admin_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BackendTlsMode {
    #[default]
    Disable,
    VerifyFull,
}

mod resource;
pub use resource::{ResourceConfig, KINDS};

/// The directory relative paths of the config at `path` resolve against:
/// the file's own directory, or the current one when `path` is a bare file
/// name (`sluice.toml`, whose parent is the empty path).
fn base_dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let err = |message: String| ConfigError {
            file: path.to_path_buf(),
            message,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| err(format!("cannot read config: {e}")))?;
        let mut config: Config =
            toml::from_str(&text).map_err(|e| err(e.to_string().trim_end().to_owned()))?;
        config.file = path.to_path_buf();
        config.base_dir = base_dir_of(path);
        config.validate()?;
        Ok(config)
    }

    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            message: message.into(),
        }
    }

    /// A path from the config, relative to the config file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.resolve(&self.server.data_dir)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.tls_cert.is_some() != s.tls_key.is_some() {
            return Err(self.error("[server] tls_cert and tls_key must be set together"));
        }
        if !s.listen.ip().is_loopback() && s.tls_cert.is_none() && !s.allow_plaintext {
            return Err(self.error(format!(
                "[server] listen = \"{}\" is not a loopback address: set tls_cert and tls_key, \
                 or allow_plaintext = true to accept unencrypted connections",
                s.listen
            )));
        }
        if s.client_auth == ClientAuthMode::Password && s.tls_cert.is_none() {
            return Err(self.error("[server] client_auth = \"password\" needs tls_cert and tls_key: cleartext keys only travel over TLS"));
        }
        if let Some(admin) = s.admin_listen {
            if !admin.ip().is_loopback() && s.tls_cert.is_none() && !s.allow_plaintext {
                return Err(self.error(format!(
                    "[server] admin_listen = \"{admin}\" is not a loopback address: set tls_cert and tls_key, \
                     or allow_plaintext = true"
                )));
            }
        }
        let a = &self.approvals;
        if a.wait_timeout_secs == 0 || a.request_ttl_secs == 0 || a.grant_ttl_secs == 0 {
            return Err(self.error(
                "[approvals] wait_timeout_secs, request_ttl_secs and grant_ttl_secs must be at least 1",
            ));
        }
        for w in &a.webhook {
            if w.secret_env.is_some() == w.secret_file.is_some() {
                return Err(self.error(format!(
                    "[[approvals.webhook]] {}: set exactly one of secret_env and secret_file",
                    w.url
                )));
            }
        }
        if let Some(slack) = &a.slack {
            if slack.url_env.is_some() == slack.url_file.is_some() {
                return Err(self.error(
                    "[approvals.slack]: set exactly one of url_env and url_file (the URL is a secret)",
                ));
            }
        }
        if s.worker_threads == Some(0) {
            return Err(self.error("[server] worker_threads must be at least 1"));
        }
        if s.max_message_bytes < 1024 {
            return Err(self.error("[server] max_message_bytes must be at least 1024"));
        }
        let mut seen = std::collections::HashSet::new();
        for r in &self.resources {
            let at = |m: String| self.error(format!("[[resource]] \"{}\": {m}", r.name));
            if r.name.is_empty() {
                return Err(self.error("[[resource]] name must not be empty"));
            }
            if !seen.insert(&r.name) {
                return Err(at("name: defined twice".into()));
            }
            r.validate_kind().map_err(at)?;
            if let Some(listen) = r.listen {
                if !listen.ip().is_loopback() && s.tls_cert.is_none() && !s.allow_plaintext {
                    return Err(at(format!(
                        "listen = \"{listen}\" is not a loopback address: set [server] tls_cert and tls_key, or allow_plaintext = true"
                    )));
                }
            }
            if r.password.is_some() {
                return Err(at(
                    "password: inline passwords are not allowed; use password_env or password_file"
                        .into(),
                ));
            }
            if r.password_env.is_some() && r.password_file.is_some() {
                return Err(at("password_env and password_file are exclusive".into()));
            }
            if r.tls == BackendTlsMode::Disable
                && (r.tls_ca_file.is_some() || r.tls_server_name.is_some())
            {
                return Err(at(
                    "tls_ca_file/tls_server_name need tls = \"verify-full\"".into()
                ));
            }
        }
        Ok(())
    }

    /// A secret from an environment variable or a file (trailing newline
    /// dropped), as the config names it.
    pub fn secret(
        &self,
        what: &str,
        env: Option<&str>,
        file: Option<&Path>,
    ) -> Result<Option<String>, ConfigError> {
        if let Some(var) = env {
            return match std::env::var(var) {
                Ok(v) => Ok(Some(v)),
                Err(_) => Err(self.error(format!("{what}: environment variable {var} is not set"))),
            };
        }
        if let Some(file) = file {
            let path = self.resolve(file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| self.error(format!("{what}: cannot read {}: {e}", path.display())))?;
            return Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()));
        }
        Ok(None)
    }

    /// Reads the backend password of a resource from where the config says.
    pub fn resource_password(&self, r: &ResourceConfig) -> Result<Option<String>, ConfigError> {
        let what = format!(
            "[[resource]] \"{}\": password_{}",
            r.name,
            if r.password_env.is_some() {
                "env"
            } else {
                "file"
            }
        );
        self.secret(&what, r.password_env.as_deref(), r.password_file.as_deref())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path)
    }

    const MINIMAL: &str = r#"
[server]
listen = "127.0.0.1:6432"

[[resource]]
name = "app"
kind = "postgres"
host = "127.0.0.1"
database = "app"
user = "app_owner"
password_env = "SLUICE_TEST_UNSET_VAR"
tags = { env = "prod" }
"#;

    #[test]
    fn a_bare_config_file_name_resolves_relative_paths_against_the_current_directory() {
        assert_eq!(base_dir_of(Path::new("sluice.toml")), Path::new("."));
        assert_eq!(base_dir_of(Path::new("etc/sluice.toml")), Path::new("etc"));
        assert_eq!(
            base_dir_of(Path::new("/etc/sluice.toml")),
            Path::new("/etc")
        );
    }

    #[test]
    fn a_minimal_config_loads_with_defaults() {
        let c = load(MINIMAL).unwrap();
        assert_eq!(c.resources[0].port, 5432);
        assert_eq!(c.resources[0].tags["env"], "prod");
        assert_eq!(c.server.client_auth, ClientAuthMode::Scram);
    }

    #[test]
    fn read_durability_defaults_to_written_and_accepts_fsync_only_by_name() {
        assert_eq!(
            load(MINIMAL).unwrap().audit.read_durability,
            ReadDurability::Written
        );
        let strict = format!("{MINIMAL}\n[audit]\nread_durability = \"fsync\"\n");
        assert_eq!(
            load(&strict).unwrap().audit.read_durability,
            ReadDurability::Fsync
        );
        let e = load(&strict.replace("\"fsync\"", "\"sometimes\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sometimes"), "{e}");
    }

    #[test]
    fn an_unknown_key_names_the_file_and_the_key() {
        let e = load(&MINIMAL.replace("listen =", "lisen ="))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sluice.toml"), "{e}");
        assert!(e.contains("lisen"), "{e}");
    }

    #[test]
    fn a_missing_field_is_named() {
        let e = load(&MINIMAL.replace("user = \"app_owner\"\n", ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("user"), "{e}");
    }

    #[test]
    fn an_inline_password_is_refused() {
        let e = load(&MINIMAL.replace(
            "password_env = \"SLUICE_TEST_UNSET_VAR\"",
            "password = \"hunter2\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("inline passwords are not allowed"), "{e}");
    }

    #[test]
    fn an_unset_password_variable_names_resource_key_and_variable() {
        let c = load(MINIMAL).unwrap();
        let e = c
            .resource_password(&c.resources[0])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"app\"")
                && e.contains("password_env")
                && e.contains("SLUICE_TEST_UNSET_VAR"),
            "{e}"
        );
    }

    #[test]
    fn a_non_loopback_listener_without_tls_is_refused_unless_allowed() {
        let open = MINIMAL.replace("127.0.0.1:6432", "0.0.0.0:6432");
        assert!(load(&open)
            .unwrap_err()
            .to_string()
            .contains("not a loopback address"));
        let allowed = open.replace("[server]\n", "[server]\nallow_plaintext = true\n");
        assert!(load(&allowed).is_ok());
    }
}
