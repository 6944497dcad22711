//! Telling people that a request waits for them, and what became of it.
//!
//! [`Notifier::spawn`] starts one delivery task per target, each with its own
//! bounded queue: [`NotifierHandle::notify`] only ever `try_send`s, so the
//! gateway never waits on a slow or hanging receiver, and one bad target
//! cannot hold up the others. A full queue drops the event with a warning
//! (the audit log, not the notification, is the record).
//!
//! Delivery is a POST with a per-attempt timeout, retried on a connection
//! error or a non-2xx answer after `first_backoff`, then doubling (0.5 s, 1,
//! 2, 4 with the defaults), at most `max_attempts` tries in all.
//!
//! - generic webhook: the JSON of the [`ApprovalEvent`], signed as described
//!   in [`sign_webhook`];
//! - Slack incoming webhook: `{"text": ...}` naming the statement, requester,
//!   resource, request id and the `sluice approvals approve <id>` command.

mod signature;
mod slack;

pub use signature::{sign_webhook, verify_webhook};
pub use slack::slack_text;

use crate::event::{ApprovalEvent, EventSink};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// A receiver of signed JSON events.
#[derive(Clone)]
pub struct WebhookTarget {
    pub url: String,
    /// The HMAC key shared with the receiver.
    pub secret: Vec<u8>,
}

impl fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A Slack incoming webhook. Its URL is the credential, so it is never
/// logged.
#[derive(Clone)]
pub struct SlackTarget {
    pub url: String,
}

impl fmt::Debug for SlackTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackTarget")
            .field("url", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone)]
pub enum Target {
    Webhook(WebhookTarget),
    Slack(SlackTarget),
}

impl Target {
    /// What logs may say about the target: kind and host, never the path
    /// (a Slack URL carries its token there).
    fn label(&self) -> String {
        let (kind, url) = match self {
            Target::Webhook(t) => ("webhook", &t.url),
            Target::Slack(t) => ("slack", &t.url),
        };
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "?".into());
        format!("{kind} {host}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Per attempt, connect to last byte.
    pub timeout: Duration,
    /// Events buffered per target before new ones are dropped.
    pub queue: usize,
    pub max_attempts: u32,
    pub first_backoff: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_secs(10),
            queue: 256,
            max_attempts: 5,
            first_backoff: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notifications need a tokio runtime to deliver from")]
    NoRuntime,
    #[error("notification HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

pub struct Notifier;

impl Notifier {
    /// Starts the delivery tasks on the current tokio runtime. They end when
    /// every handle is dropped and their queues are drained.
    pub fn spawn(
        targets: Vec<Target>,
        config: ClientConfig,
    ) -> Result<NotifierHandle, NotifyError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| NotifyError::NoRuntime)?;
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(NotifyError::Client)?;
        let queues = targets
            .into_iter()
            .map(|target| {
                let (tx, rx) = mpsc::channel(config.queue.max(1));
                let label = target.label();
                let worker = Worker {
                    client: client.clone(),
                    target,
                    label: label.clone(),
                    config: config.clone(),
                };
                runtime.spawn(worker.run(rx));
                Queue { label, tx }
            })
            .collect();
        Ok(NotifierHandle {
            queues: Arc::new(queues),
        })
    }
}

struct Queue {
    label: String,
    tx: mpsc::Sender<Arc<ApprovalEvent>>,
}

/// Cheap to clone; see the module documentation for what `notify` promises.
#[derive(Clone)]
pub struct NotifierHandle {
    queues: Arc<Vec<Queue>>,
}

impl fmt::Debug for NotifierHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let labels: Vec<&str> = self.queues.iter().map(|q| q.label.as_str()).collect();
        f.debug_struct("NotifierHandle")
            .field("targets", &labels)
            .finish()
    }
}

impl NotifierHandle {
    /// Queues `event` for every target; never blocks.
    pub fn notify(&self, event: &ApprovalEvent) {
        let event = Arc::new(event.clone());
        for queue in self.queues.iter() {
            if let Err(e) = queue.tx.try_send(Arc::clone(&event)) {
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => "queue full",
                    mpsc::error::TrySendError::Closed(_) => "delivery task gone",
                };
                tracing::warn!(
                    target_label = %queue.label,
                    request_id = %event.request_id,
                    event = %event.event,
                    why,
                    "approval notification dropped"
                );
            }
        }
    }

    /// This handle as an [`crate::Approvals::with_events`] sink.
    pub fn sink(&self) -> EventSink {
        let handle = self.clone();
        Arc::new(move |event| handle.notify(event))
    }
}

struct Worker {
    client: reqwest::Client,
    target: Target,
    label: String,
    config: ClientConfig,
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<Arc<ApprovalEvent>>) {
        while let Some(event) = rx.recv().await {
            self.deliver(&event).await;
        }
    }

    async fn deliver(&self, event: &ApprovalEvent) {
        let body = match &self.target {
            Target::Webhook(_) => serde_json::to_vec(event),
            Target::Slack(_) => {
                serde_json::to_vec(&serde_json::json!({ "text": slack_text(event) }))
            }
        };
        let body = match body {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(target_label = %self.label, request_id = %event.request_id, error = %e, "approval notification not serialisable");
                return;
            }
        };
        let mut backoff = self.config.first_backoff;
        let attempts = self.config.max_attempts.max(1);
        for attempt in 1..=attempts {
            match self.send(event, &body).await {
                Ok(()) => {
                    tracing::debug!(target_label = %self.label, request_id = %event.request_id, event = %event.event, attempt, "approval notification delivered");
                    return;
                }
                Err(error) => {
                    tracing::warn!(target_label = %self.label, request_id = %event.request_id, event = %event.event, attempt, attempts, %error, "approval notification failed");
                }
            }
            if attempt < attempts {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
        }
        tracing::error!(target_label = %self.label, request_id = %event.request_id, event = %event.event, attempts, "approval notification given up");
    }

    async fn send(&self, event: &ApprovalEvent, body: &[u8]) -> Result<(), String> {
        let request = match &self.target {
            Target::Webhook(t) => {
                let timestamp = unix_seconds().to_string();
                self.client
                    .post(&t.url)
                    .header("X-Sluice-Event", event.event.as_str())
                    .header(
                        "X-Sluice-Signature",
                        sign_webhook(&t.secret, &timestamp, body),
                    )
                    .header("X-Sluice-Timestamp", timestamp)
            }
            Target::Slack(t) => self.client.post(&t.url),
        };
        let response = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .await
            // Without the URL: a Slack URL is a credential.
            .map_err(|e| e.without_url().to_string())?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {status}"))
        }
    }
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
