//! Review decisions held for people: the approval store, where its events
//! go (the audit log, webhooks, Slack), and the settings every session's
//! gate reads when policy says `review`.

use crate::config::{ApprovalMode, Config, ConfigError};
use sluice_approvals::notify::{ClientConfig, Notifier, SlackTarget, Target, WebhookTarget};
use sluice_approvals::{ApprovalEvent, Approvals, ApprovalsConfig};
use sluice_audit::AuditLog;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info};

/// The audit log's pseudo-session for approval events: they happen outside
/// any client session (an approver's API call, an expiry).
pub const AUDIT_SESSION: &str = "approvals";

#[derive(Debug, thiserror::Error)]
pub enum ApprovalSetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the approval store in {dir}: {source}")]
    Store {
        dir: String,
        source: sluice_approvals::ApprovalError,
    },
    #[error("cannot load the gateway's signing key: {0}")]
    Key(sluice_audit::AuditError),
    #[error("cannot start approval notifications: {0}")]
    Notify(String),
}

/// What the gateway's sessions share about approvals.
#[derive(Clone)]
pub struct ApprovalService {
    pub store: Approvals,
    modes: Arc<HashMap<String, ApprovalMode>>,
    identity_modes: Arc<HashMap<String, ApprovalMode>>,
    pub wait_timeout: Duration,
    pub request_ttl: Duration,
    public_url: Option<String>,
    audit: Option<AuditLog>,
}

impl ApprovalService {
    /// Opens `data_dir/approvals.db` with the gateway's Ed25519 key and
    /// starts the notifiers. Needs a tokio runtime (notifiers are tasks).
    pub fn open(
        config: &Config,
        data_dir: &Path,
        audit: Option<AuditLog>,
    ) -> Result<ApprovalService, ApprovalSetupError> {
        let a = &config.approvals;
        let signer = sluice_audit::keys::Signer::load_or_create(data_dir)
            .map_err(ApprovalSetupError::Key)?;
        let store_config = ApprovalsConfig {
            agent_groups: a.agent_groups.clone(),
            default_ttl: Duration::from_secs(a.request_ttl_secs),
            grant_ttl: Duration::from_secs(a.grant_ttl_secs),
            ..ApprovalsConfig::default()
        };
        let store = Approvals::open(data_dir, signer.signing_key().clone(), store_config).map_err(
            |source| ApprovalSetupError::Store {
                dir: data_dir.display().to_string(),
                source,
            },
        )?;
        let targets = notification_targets(config)?;
        let notifier = if targets.is_empty() {
            None
        } else {
            info!(targets = targets.len(), "approval notifications on");
            Some(
                Notifier::spawn(targets, ClientConfig::default())
                    .map_err(|e| ApprovalSetupError::Notify(e.to_string()))?,
            )
        };
        let events_log = audit.clone();
        let store = store.with_events(Arc::new(move |event: &ApprovalEvent| {
            if let Some(log) = &events_log {
                record_event(log, event);
            }
            if let Some(n) = &notifier {
                n.notify(event);
            }
        }));
        // The API speaks HTTPS whenever the gateway has a certificate.
        let scheme = if config.server.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        let public_url = a.public_url.clone().or_else(|| {
            config
                .server
                .admin_listen
                .map(|addr| format!("{scheme}://{addr}"))
        });
        Ok(ApprovalService {
            store,
            modes: Arc::new(
                config
                    .resources
                    .iter()
                    .map(|r| (r.name.clone(), r.approval_mode))
                    .collect(),
            ),
            identity_modes: Arc::new(a.identity_modes.clone().into_iter().collect()),
            wait_timeout: Duration::from_secs(a.wait_timeout_secs),
            request_ttl: Duration::from_secs(a.request_ttl_secs),
            public_url,
            audit,
        })
    }

    /// Records an attempt the rules refused (a self-approval, an agent
    /// voting, a grant that failed verification...) in the audit log:
    /// refusals are evidence too.
    pub fn record_refusal(&self, request_id: &str, actor: &str, what: &str, reason: &str) {
        let Some(log) = &self.audit else { return };
        let body = sluice_audit::ApprovalEvent {
            request_id: request_id.to_owned(),
            event: format!("refused_{what}"),
            actor: actor.to_owned(),
            comment: Some(reason.to_owned()),
        };
        if let Err(e) = log.append(AUDIT_SESSION, body) {
            error!(error = %e, request = %request_id, "audit log: cannot record a refused approval call");
        }
    }

    /// The identity's override, else the resource's mode.
    pub fn mode(&self, identity: &str, resource: &str) -> ApprovalMode {
        self.identity_modes
            .get(identity)
            .or_else(|| self.modes.get(resource))
            .copied()
            .unwrap_or_default()
    }

    /// What to tell a client about approving request `id`.
    pub fn how_to_approve(&self, id: &str) -> String {
        match &self.public_url {
            Some(url) => format!(
                "An approver runs `sluice approvals approve {id}` (SLUICE_URL={url}), or POSTs to {url}/v1/approvals/{id}/approve."
            ),
            None => format!("An approver runs `sluice approvals approve {id}`."),
        }
    }
}

fn record_event(log: &AuditLog, event: &ApprovalEvent) {
    let body = sluice_audit::ApprovalEvent {
        request_id: event.request_id.clone(),
        event: event.event.as_str().to_owned(),
        actor: event.actor.clone().unwrap_or_else(|| "-".to_owned()),
        comment: event.comment.clone(),
    };
    if let Err(e) = log.append(AUDIT_SESSION, body) {
        error!(error = %e, request = %event.request_id, "audit log: cannot record an approval event");
    }
}

fn notification_targets(config: &Config) -> Result<Vec<Target>, ConfigError> {
    let a = &config.approvals;
    let mut targets = Vec::new();
    for w in &a.webhook {
        let what = format!("[[approvals.webhook]] {}: secret", w.url);
        let secret = config
            .secret(&what, w.secret_env.as_deref(), w.secret_file.as_deref())?
            .unwrap_or_default();
        targets.push(Target::Webhook(WebhookTarget {
            url: w.url.clone(),
            secret: secret.into_bytes(),
        }));
    }
    if let Some(slack) = &a.slack {
        if let Some(url) = config.secret(
            "[approvals.slack] url",
            slack.url_env.as_deref(),
            slack.url_file.as_deref(),
        )? {
            targets.push(Target::Slack(SlackTarget { url }));
        }
    }
    Ok(targets)
}
