//! The seam between an HTTP front (Kubernetes, S3) and the enforcement
//! pipeline, as `sluice_pg::Gate` is for PostgreSQL: the front asks, the
//! gate (policy, approvals, audit in `sluice-server`) answers, in
//! protocol-neutral words.

use sluice_core::{Command, Refusal, SessionInfo, Statement};
use sluice_mask::Masker;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;

/// Resolves when the request may go on; the error is what the client is
/// told instead.
pub type Pending = Pin<Box<dyn Future<Output = Result<(), Refusal>> + Send>>;

/// The record a response belongs to (`None`: unrecorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(pub Option<u64>);

/// One request, as the gate decides it.
pub struct Ask<'a> {
    /// The request as recorded, and its body (masked) as its parameter.
    pub command: &'a Command,
    /// What policy decides on: one part, or several for a request that
    /// does several things (an S3 batch delete, a copy); the strictest
    /// part decides.
    pub statements: &'a [Statement],
    /// What an approval is bound to besides the command text: the body's
    /// digest.
    pub binding: &'a str,
    /// The request changes nothing (a read): `fail_open_reads` may let it
    /// run unrecorded.
    pub read_only: bool,
    /// The first statement continues an operation already decided (a part
    /// of an S3 multipart upload this identity created through Sluice): it
    /// is recorded, not decided again; the others are decided.
    pub continues: bool,
}

pub enum Verdict {
    /// Forward once `durable` (the record) resolves.
    Forward {
        ticket: Ticket,
        durable: Option<Pending>,
    },
    /// Held for approval (`request`): forward once `until` resolves.
    Hold {
        ticket: Ticket,
        request: String,
        until: Pending,
    },
    Refuse {
        ticket: Ticket,
        refusal: Refusal,
    },
}

/// What came back, for the response record.
pub struct Answer {
    pub status: u16,
    /// Items passed (watch events, log lines, listed objects); 1 for a
    /// single document.
    pub items: u64,
    pub bytes: u64,
    pub duration: Duration,
    /// As the client received it (masked), at most the gate's cap.
    pub content: String,
    pub truncated: bool,
}

pub trait HttpGate: Send + 'static {
    fn decide(&mut self, ask: &Ask<'_>) -> Verdict;
    /// How responses are masked; `None`: raw (policy unmasks this identity,
    /// or masking is off).
    fn masker(&self) -> Option<Arc<Masker>>;
    /// How request bodies are masked in the audit record (whoever sends
    /// them).
    fn record_masker(&self) -> Option<Arc<Masker>>;
    /// Most content bytes a response record keeps.
    fn content_cap(&self) -> usize;
    fn on_response(&mut self, ticket: Ticket, answer: Answer);
    /// Bytes that passed on one stream of an exec, attach or port-forward
    /// (`inbound`: from the client), as the client sent or received them.
    /// For input, the returned wait resolves once its record lets it reach
    /// the target.
    fn on_stream(
        &mut self,
        ticket: Ticket,
        stream: &str,
        inbound: bool,
        data: &[u8],
    ) -> Option<Pending>;
    /// The client went away while its request waited for approval
    /// `request` (several may wait at once on one HTTP/2 connection).
    fn withdraw(&mut self, request: &str, reason: &str);
    /// The connection that opened the session is over (`reason`). The
    /// session itself ends when the gate is dropped: an exec stream may
    /// outlive the connection it was decided on.
    fn on_end(&mut self, reason: &str);
}

pub trait HttpGates: Send + Sync + 'static {
    type Gate: HttpGate;
    /// Opens one identity's session on one client connection.
    fn open(&self, session: &SessionInfo<'_>) -> Self::Gate;
}

/// Withdraws the approval request a held request waits for if the client
/// goes away meanwhile (its future is dropped before [`HoldGuard::disarm`]).
pub struct HoldGuard<G: HttpGate> {
    gate: Arc<Mutex<G>>,
    request: String,
    armed: bool,
}

impl<G: HttpGate> HoldGuard<G> {
    pub fn new(gate: Arc<Mutex<G>>, request: String) -> HoldGuard<G> {
        HoldGuard {
            gate,
            request,
            armed: true,
        }
    }

    /// The wait ended (approved or not): nothing to withdraw.
    pub fn disarm(mut self) {
        self.armed = false;
    }
}

impl<G: HttpGate> Drop for HoldGuard<G> {
    fn drop(&mut self) {
        if self.armed {
            if let Ok(mut g) = self.gate.lock() {
                g.withdraw(
                    &self.request,
                    "the client went away while its request waited for approval",
                );
            }
        }
    }
}

/// Records a response Sluice wrote itself (a refusal, an unreachable
/// backend).
pub fn answer_now<G: HttpGate>(
    gate: &Mutex<G>,
    ticket: Ticket,
    status: u16,
    started: Instant,
    text: &str,
) {
    if let Ok(mut g) = gate.lock() {
        let cap = g.content_cap();
        let mut content = text.to_owned();
        let truncated = sluice_core::truncate_at_char_boundary(&mut content, cap);
        g.on_response(
            ticket,
            Answer {
                status,
                items: 0,
                bytes: text.len() as u64,
                duration: started.elapsed(),
                content,
                truncated,
            },
        );
    }
}
