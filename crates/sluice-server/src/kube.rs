//! The Kubernetes front's gate: the shared pipeline
//! ([`crate::pipeline`]) behind `sluice_kube::KubeGate`, and how each
//! `[[resource]] kind = "kubernetes"` becomes a listener.

use crate::config::{Config, ConfigError, ResourceConfig};
use crate::pipeline::record::{Answer, Commit};
use crate::pipeline::{Front, Pipeline, Step};
use crate::policy::PolicyGates;
use sluice_audit::ResponseStatus;
use sluice_auth::KeyStore;
use sluice_core::Identity;
use sluice_core::SessionInfo;
use sluice_kube::{Ask, KubeFront, KubeGate, KubeGates, Limits, Ticket, Verdict};
use sluice_mask::Masker;
use std::sync::Arc;
use tracing::{info, warn};

/// What every Kubernetes session's gate shares.
pub struct KubeGatesImpl {
    gates: PolicyGates,
    keys: Arc<KeyStore>,
}

impl KubeGates for KubeGatesImpl {
    type Gate = KubePolicyGate;

    fn authenticate(&self, token: &str) -> Option<Identity> {
        match self.keys.authenticate(token) {
            Ok(found) => found.map(|a| a.identity),
            Err(e) => {
                warn!(error = %e, "key store failed: refusing the request");
                None
            }
        }
    }

    fn open(&self, s: &SessionInfo<'_>) -> KubePolicyGate {
        let (pipeline, mask) = self.gates.pipeline(s, Front::Kubernetes);
        KubePolicyGate {
            pipeline,
            mask: mask.map(|m| m.masker),
            record_mask: self.gates.masks.get(s.resource).map(|m| m.masker.clone()),
            end_reason: None,
        }
    }
}

/// One identity's session on one client connection.
pub struct KubePolicyGate {
    pipeline: Pipeline,
    mask: Option<Arc<Masker>>,
    record_mask: Option<Arc<Masker>>,
    /// Why the connection ended; the session record ends when the gate
    /// goes (after any stream relayed on it).
    end_reason: Option<String>,
}

impl Drop for KubePolicyGate {
    fn drop(&mut self) {
        let reason = self
            .end_reason
            .take()
            .unwrap_or_else(|| "closed".to_owned());
        self.pipeline.end(&reason);
    }
}

impl KubeGate for KubePolicyGate {
    fn decide(&mut self, ask: &Ask<'_>) -> Verdict {
        let statements = std::slice::from_ref(ask.statement);
        match self
            .pipeline
            .ask(ask.command, statements, ask.binding, ask.read_only)
        {
            Err(refusal) => Verdict::Refuse {
                ticket: Ticket(None),
                refusal,
            },
            Ok(Step::Refused { seq, refusal }) => Verdict::Refuse {
                ticket: Ticket(seq),
                refusal,
            },
            Ok(Step::Hold {
                seq,
                request,
                notice,
                until,
            }) => {
                // kubectl shows nothing while it waits; the gateway log does.
                info!(identity = %self.pipeline.scope.identity().name, "{}", notice.message);
                Verdict::Hold {
                    ticket: Ticket(seq),
                    request,
                    until,
                }
            }
            // A read waits until its record is written (it survives a crash
            // of the gateway); anything else until it is synced.
            Ok(Step::Run { seq }) => Verdict::Forward {
                ticket: Ticket(seq),
                durable: if ask.read_only {
                    self.pipeline.before_results(seq, Commit::Now, true)
                } else {
                    self.pipeline.before_forwarding(seq)
                },
            },
        }
    }

    fn masker(&self) -> Option<Arc<Masker>> {
        self.mask.clone()
    }

    fn record_masker(&self) -> Option<Arc<Masker>> {
        self.record_mask.clone()
    }

    fn content_cap(&self) -> usize {
        self.pipeline
            .recorder
            .as_ref()
            .map_or(0, |r| r.content_cap())
    }

    fn on_response(&mut self, ticket: Ticket, answer: sluice_kube::Answer) {
        self.pipeline.respond(
            ticket.0,
            Answer {
                status: ResponseStatus::Http {
                    status: answer.status,
                },
                rows: answer.items,
                bytes: answer.bytes,
                duration: answer.duration,
                content: answer.content,
                truncated: answer.truncated,
            },
        );
    }

    fn on_stream(
        &mut self,
        ticket: Ticket,
        stream: &str,
        inbound: bool,
        data: &[u8],
    ) -> Option<sluice_kube::Pending> {
        self.pipeline.stream(ticket.0, stream, inbound, data)
    }

    fn withdraw(&mut self, request: &str, reason: &str) {
        self.pipeline.withdraw_request(request, reason);
    }

    fn on_end(&mut self, reason: &str) {
        self.end_reason = Some(reason.to_owned());
    }
}

/// Sluice's own credential toward the API server.
fn credential(config: &Config, r: &ResourceConfig) -> Result<sluice_kube::Credential, ConfigError> {
    let what = format!("[[resource]] \"{}\": token", r.name);
    if let Some(token) = config.secret(&what, r.token_env.as_deref(), r.token_file.as_deref())? {
        return Ok(sluice_kube::Credential::Token(token.trim().into()));
    }
    if r.client_cert_file.is_some() {
        return Ok(sluice_kube::Credential::ClientCertificate);
    }
    Ok(sluice_kube::Credential::None)
}

pub type KubeFrontImpl = KubeFront<KubeGatesImpl>;

/// The front of one Kubernetes resource.
pub fn front(
    config: &Config,
    r: &ResourceConfig,
    gates: &PolicyGates,
    keys: Arc<KeyStore>,
) -> Result<KubeFront<KubeGatesImpl>, ConfigError> {
    let at = |m: String| config.error(format!("[[resource]] \"{}\": {m}", r.name));
    let tls = crate::tls::kube_client(config, r)?;
    let url = r.url.clone().unwrap_or_default();
    let upstream = sluice_kube::Upstream::new(&url, tls, credential(config, r)?, r.impersonate)
        .map_err(|e| at(e.to_string()))?;
    let acceptor = crate::tls::acceptor_with_alpn(config, &[b"h2", b"http/1.1"])?;
    Ok(KubeFront {
        gates: Arc::new(KubeGatesImpl {
            gates: gates.clone(),
            keys,
        }),
        resource: r.name.clone(),
        upstream,
        limits: Limits {
            max_request_bytes: r.max_request_bytes,
            max_response_bytes: r.max_response_bytes,
            ..Limits::default()
        },
        tls: acceptor,
        connects: Default::default(),
    })
}
