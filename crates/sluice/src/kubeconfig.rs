//! `sluice kubeconfig`: a kubeconfig that points kubectl (and client-go,
//! and the Python client) at a Kubernetes resource through Sluice, with a
//! Sluice key as the bearer token.

use anyhow::{bail, Context, Result};
use clap::Args;
use sluice_server::Config;
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct KubeconfigArgs {
    #[command(flatten)]
    config: crate::ConfigArg,
    /// The `[[resource]]` of kind "kubernetes".
    #[arg(long)]
    resource: String,
    /// The URL clients use, when not `listen` itself (a load balancer,
    /// a name in the certificate).
    #[arg(long)]
    server: Option<String>,
    /// The CA that signed `[server] tls_cert` (default: that certificate
    /// itself, right for a self-signed one).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// The Sluice key to embed.
    #[arg(long, env = "SLUICE_KEY", hide_env_values = true)]
    key: String,
}

/// YAML's double-quoted scalar, which JSON string escaping is a subset of.
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

pub(crate) fn run(args: KubeconfigArgs) -> Result<()> {
    let config = Config::load(&args.config.config)?;
    let Some(r) = config.resources.iter().find(|r| r.name == args.resource) else {
        bail!(
            "no [[resource]] named {:?} in {}",
            args.resource,
            config.file.display()
        );
    };
    if !r.is_kubernetes() {
        bail!(
            "resource {:?} is of kind {:?}, not \"kubernetes\"",
            r.name,
            r.kind
        );
    }
    let Some(listen) = r.listen else {
        bail!("resource {:?} has no listen address", r.name);
    };
    let tls = config.server.tls_cert.is_some();
    let server = args.server.clone().unwrap_or_else(|| {
        let host = if listen.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            listen.ip().to_string()
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        format!(
            "{}://{host}:{}",
            if tls { "https" } else { "http" },
            listen.port()
        )
    });
    let ca = match (&args.ca_file, &config.server.tls_cert) {
        (Some(ca), _) => Some(ca.clone()),
        (None, Some(cert)) if tls => Some(config.resolve(cert)),
        _ => None,
    };
    let ca_line = match ca {
        Some(path) => {
            let pem =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            use base64::Engine;
            format!(
                "    certificate-authority-data: {}\n",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        }
        None => String::new(),
    };
    let name = quoted(&format!("sluice-{}", r.name));
    print!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {}\n{ca_line}users:\n- name: {name}\n  user:\n    token: {}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\ncurrent-context: {name}\n",
        quoted(&server),
        quoted(&args.key),
    );
    Ok(())
}
