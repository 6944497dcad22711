//! The gate every HTTP front (Kubernetes, S3) shares: the enforcement
//! pipeline ([`crate::pipeline`]) behind `sluice_http::HttpGate`.

use crate::pipeline::record::{Answer, Commit};
use crate::pipeline::{Front, Pipeline, Step};
use crate::policy::PolicyGates;
use sluice_audit::ResponseStatus;
use sluice_auth::KeyStore;
use sluice_core::SessionInfo;
use sluice_http::{Ask, HttpGate, HttpGates, Ticket, Verdict};
use sluice_mask::Masker;
use std::sync::Arc;
use tracing::info;

/// What every session of one HTTP resource shares.
pub struct HttpGatesImpl {
    pub(crate) gates: PolicyGates,
    pub(crate) keys: Arc<KeyStore>,
    pub(crate) front: Front,
}

impl HttpGates for HttpGatesImpl {
    type Gate = HttpPolicyGate;

    fn open(&self, s: &SessionInfo<'_>) -> HttpPolicyGate {
        let (pipeline, mask) = self.gates.pipeline(s, self.front);
        HttpPolicyGate {
            pipeline,
            mask: mask.map(|m| m.masker),
            record_mask: self.gates.masks.get(s.resource).map(|m| m.masker.clone()),
            end_reason: None,
        }
    }
}

/// One identity's session on one client connection.
pub struct HttpPolicyGate {
    pipeline: Pipeline,
    mask: Option<Arc<Masker>>,
    record_mask: Option<Arc<Masker>>,
    /// Why the connection ended; the session record ends when the gate
    /// goes (after any stream relayed on it).
    end_reason: Option<String>,
}

impl Drop for HttpPolicyGate {
    fn drop(&mut self) {
        let reason = self
            .end_reason
            .take()
            .unwrap_or_else(|| "closed".to_owned());
        self.pipeline.end(&reason);
    }
}

impl HttpGate for HttpPolicyGate {
    fn decide(&mut self, ask: &Ask<'_>) -> Verdict {
        match self.pipeline.ask(
            ask.command,
            ask.statements,
            usize::from(ask.continues),
            ask.binding,
            ask.read_only,
        ) {
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
                // HTTP clients show nothing while they wait; the gateway log does.
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

    fn on_response(&mut self, ticket: Ticket, answer: sluice_http::Answer) {
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
    ) -> Option<sluice_http::Pending> {
        self.pipeline.stream(ticket.0, stream, inbound, data)
    }

    fn withdraw(&mut self, request: &str, reason: &str) {
        self.pipeline.withdraw_request(request, reason);
    }

    fn on_end(&mut self, reason: &str) {
        self.end_reason = Some(reason.to_owned());
    }
}
