//! The proxy loop of one client session.
//!
//! One task drives both directions without blocking either: it reads from
//! whichever side has bytes and writes whatever is queued, so a client that
//! pipelines faster than the backend answers cannot deadlock the two (the
//! trap of a naive read-then-write loop). Buffers are bounded: a side stops
//! being read while the bytes queued for the other side exceed a high-water
//! mark, which is what keeps a 1 GB result at constant memory.
//!
//! Two places matter to every later feature:
//! - [`Session::on_client_frames`] turns each statement into a [`Command`] and
//!   asks the [`Gate`] before a byte of it is forwarded;
//! - [`Session::on_backend_frames`] is where every backend message passes on
//!   its way to the client.

use crate::codec::peek_frame;
use crate::denial::{contains, PendingDenial, Terminator};
use crate::error::{PgError, ProtocolError};
use crate::gate::{Completion, Durable, Gate};
use crate::mask::{ResultMasking, SessionMask};
use crate::messages::{sqlstate, PgErrorReply};
use crate::response::Responses;
use bytes::{Buf, BytesMut};
use sluice_core::Command;
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::task::Poll;
use tokio::sync::watch;

use crate::extended::Extended;
use crate::pump::{drain, fill, trim, ReadSize};
use crate::stream::Stream;

mod client;
mod pipeline;

/// Stop reading a side while this much is queued for the other.
const HIGH_WATER: usize = 256 * 1024;

/// The gateway-wide shutdown signal sessions watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownState {
    Running,
    /// No new connections; a session ends at its next idle moment.
    Draining,
    /// The grace period is over: end now.
    Closing,
}

/// Backend messages that can carry data from the database: held while a
/// record is pending. Command tags, ReadyForQuery and protocol
/// acknowledgements are not.
fn carries_data(tag: u8) -> bool {
    matches!(tag, b'D' | b'd' | b'T' | b'E' | b'N' | b'A' | b'V')
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    ClientTerminated,
    ClientClosed,
    BackendClosed,
    Shutdown,
}

impl SessionEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionEnd::ClientTerminated => "client_terminated",
            SessionEnd::ClientClosed => "client_closed",
            SessionEnd::BackendClosed => "backend_closed",
            SessionEnd::Shutdown => "shutdown",
        }
    }
}

pub struct SessionLimits {
    pub max_client_message: usize,
    pub max_backend_message: usize,
    /// Cap on what an extended-protocol batch held for a decision costs.
    pub max_batch: usize,
}

/// A unit held back until its record is durable.
struct Stall {
    durable: Durable,
    unit: BytesMut,
    terminator: Terminator,
    /// Commands in the unit that expect a response.
    answers: usize,
    /// The approval request the unit waits for, if that is what it waits for.
    approval: Option<String>,
}

impl Stall {
    /// A wait with nothing held behind it but the client's next messages.
    fn pause(pause: crate::gate::Pause) -> Stall {
        Stall {
            durable: Box::pin(async move {
                pause.await;
                Ok(())
            }),
            unit: BytesMut::new(),
            terminator: Terminator::Query,
            answers: 0,
            approval: None,
        }
    }
}

/// How a stalled unit's wait ended.
enum StallEnd {
    Settled(Result<(), PgErrorReply>),
    /// The client sent a cancel request while the unit waited for approval.
    Cancelled,
}

pub struct Session<G: Gate> {
    client: Stream,
    backend: Stream,
    gate: G,
    limits: SessionLimits,
    shutdown: watch::Receiver<ShutdownState>,
    client_in: BytesMut,
    backend_in: BytesMut,
    to_client: BytesMut,
    to_backend: BytesMut,
    /// Extended-protocol messages held for a decision (until Sync, Flush,
    /// or the client's input drains), and the commands among them.
    batch: BytesMut,
    batch_commands: Vec<Command>,
    /// Where each held command's Parse starts in `batch`.
    batch_offsets: Vec<usize>,
    denials: VecDeque<PendingDenial>,
    /// Messages forwarded that each end in one ReadyForQuery (Query, Sync,
    /// FunctionCall), and ReadyForQuery seen: equal means nothing in flight.
    z_expected: u64,
    z_seen: u64,
    /// Transaction status from the last ReadyForQuery.
    tx_status: u8,
    client_eof: bool,
    backend_eof: bool,
    /// Complete backend messages are waiting for the client to drain: do
    /// not read more from the backend until they have moved on.
    backend_backlog: bool,
    client_read: ReadSize,
    backend_read: ReadSize,
    /// A unit waiting for its record to be durable before it is forwarded;
    /// nothing behind it is processed meanwhile (order is kept).
    stall: Option<Stall>,
    /// Prepared statements and portals, to tie each Execute to its text
    /// and parameters.
    extended: Extended,
    /// Records of forwarded reads not yet durable: the client gets no byte
    /// until they are.
    held: VecDeque<Durable>,
    /// While records are pending, where the first message that carries
    /// data (rows, COPY data, an error's or notice's text) starts in
    /// `to_client`: what comes before it may go out, nothing from it on.
    hold_at: Option<usize>,
    /// What the held batch costs: its bytes plus the copies made of its
    /// commands (an Execute carries its statement's text and parameters),
    /// and its message count. Both are bounded, so neither a batch of many
    /// tiny messages nor many Executes of one long statement grows without
    /// limit.
    batch_weight: usize,
    batch_messages: usize,
    /// What the backend does with what was forwarded: which counted
    /// ReadyForQuery it will never send (it discards messages after an
    /// extended-protocol error until Sync; a COPY FROM STDIN swallows Sync).
    pipeline: pipeline::Pipeline,
    /// An extended batch ended by Flush was forwarded and no Sync, Query or
    /// FunctionCall has followed it yet: the transaction status of the last
    /// ReadyForQuery may be out of date.
    flushed: bool,
    /// What came back for each forwarded command, when the gate asks.
    responses: Option<Responses>,
    /// Changes with each cancel request for this session.
    cancels: watch::Receiver<u64>,
    /// Masking of everything that carries data to the client; `None` when
    /// the session sees raw values.
    masking: Option<ResultMasking>,
}

/// One side of a session after startup: its stream and the bytes already
/// read from it past the startup messages.
pub struct Side {
    pub stream: Stream,
    pub leftover: BytesMut,
}

/// What tells a session to stop waiting: gateway shutdown, and the
/// client's cancel requests.
pub struct Signals {
    pub shutdown: watch::Receiver<ShutdownState>,
    pub cancels: watch::Receiver<u64>,
}

impl<G: Gate> Session<G> {
    pub fn new(
        client: Side,
        backend: Side,
        gate: G,
        limits: SessionLimits,
        signals: Signals,
    ) -> Self {
        let responses = gate.responses().map(Responses::new);
        let Signals { shutdown, cancels } = signals;
        Self {
            client: client.stream,
            backend: backend.stream,
            gate,
            limits,
            shutdown,
            client_in: client.leftover,
            backend_in: backend.leftover,
            to_client: BytesMut::new(),
            to_backend: BytesMut::new(),
            batch: BytesMut::new(),
            batch_commands: Vec::new(),
            batch_offsets: Vec::new(),
            denials: VecDeque::new(),
            z_expected: 0,
            z_seen: 0,
            tx_status: b'I',
            client_eof: false,
            backend_eof: false,
            backend_backlog: false,
            client_read: ReadSize::default(),
            backend_read: ReadSize::default(),
            stall: None,
            extended: Extended::default(),
            held: VecDeque::new(),
            hold_at: None,
            batch_weight: 0,
            batch_messages: 0,
            pipeline: pipeline::Pipeline::default(),
            flushed: false,
            responses,
            cancels,
            masking: None,
        }
    }

    /// Masks what the backend sends before the client (and the audit log)
    /// sees it.
    pub fn with_masking(mut self, mask: SessionMask) -> Self {
        self.masking = Some(ResultMasking::new(mask));
        self
    }

    /// Runs until either side goes away or shutdown ends the session. On a
    /// client-side protocol error the client gets a FATAL first.
    pub async fn run(mut self) -> Result<SessionEnd, PgError> {
        let result = self.pump().await;
        match &result {
            Err(PgError::ClientProtocol(p)) => {
                let code = match p {
                    ProtocolError::TooLarge { .. } | ProtocolError::BatchTooLong { .. } => {
                        sqlstate::PROGRAM_LIMIT_EXCEEDED
                    }
                    _ => sqlstate::PROTOCOL_VIOLATION,
                };
                self.fatal(PgErrorReply::fatal(code, p.to_string())).await;
            }
            Err(e) if e.is_upstream() => {
                self.fatal(PgErrorReply::fatal(
                    sqlstate::CONNECTION_FAILURE,
                    "Sluice lost the connection to the resource",
                ))
                .await;
            }
            Err(PgError::Unrecorded(reply)) => {
                let mut reply = reply.clone();
                reply.severity = crate::messages::Severity::Fatal;
                self.drop_unreleased();
                self.fatal(reply).await;
            }
            Ok(SessionEnd::Shutdown) => {
                self.drop_unreleased();
                let mut reply =
                    PgErrorReply::fatal(sqlstate::ADMIN_SHUTDOWN, "Sluice is shutting down");
                if let Some(request) = self.stall.as_ref().and_then(|s| s.approval.as_ref()) {
                    reply = PgErrorReply::fatal(
                        sqlstate::ADMIN_SHUTDOWN,
                        format!("Sluice is shutting down; approval request {request} stays pending and the statement did not run"),
                    )
                    .with_hint("Re-run the same statement after the request is approved: it then runs once.");
                }
                self.fatal(reply).await;
            }
            _ => {}
        }
        self.close_backend().await;
        let reason = match &result {
            Ok(end) => end.as_str(),
            Err(e) if e.is_upstream() => "backend_error",
            Err(_) => "client_error",
        };
        if reason != SessionEnd::Shutdown.as_str()
            && self.stall.as_ref().is_some_and(|s| s.approval.is_some())
        {
            self.gate
                .withdraw("the client went away while the statement waited for approval");
        }
        self.gate.on_end(reason);
        result
    }

    /// Results still waiting for their records never reach the client.
    fn drop_unreleased(&mut self) {
        if let Some(at) = self.hold_at.take() {
            self.to_client.truncate(at);
        }
    }

    async fn pump(&mut self) -> Result<SessionEnd, PgError> {
        loop {
            self.on_client_frames()?;
            self.on_backend_frames()?;
            if let Some(end) = self.finished() {
                return Ok(end);
            }
            for buf in [
                &mut self.client_in,
                &mut self.backend_in,
                &mut self.to_client,
                &mut self.to_backend,
            ] {
                trim(buf);
            }
            if let Some(ended) = self.io().await? {
                if let Some(stall) = self.stall.take() {
                    let recorded = match ended {
                        StallEnd::Settled(recorded) => recorded,
                        StallEnd::Cancelled => {
                            self.gate.withdraw("cancelled by the client");
                            let request = stall.approval.as_deref().unwrap_or_default();
                            Err(PgErrorReply::error(
                                sqlstate::QUERY_CANCELED,
                                format!("canceling statement due to user request (approval request {request} withdrawn)"),
                            ))
                        }
                    };
                    match recorded {
                        Ok(()) => self.forward(&stall.unit),
                        Err(reply) => {
                            if let Some(responses) = self.responses.as_mut() {
                                let completion = Completion::Error {
                                    sqlstate: reply.code.to_owned(),
                                    message: reply.message.clone(),
                                };
                                responses.not_run(stall.answers, &completion);
                                let gate = &mut self.gate;
                                responses.settle(&mut |r| gate.on_response(r));
                            }
                            self.deny(reply, stall.terminator);
                        }
                    }
                }
            }
            match *self.shutdown.borrow() {
                ShutdownState::Running => {}
                ShutdownState::Draining if self.is_idle() => return Ok(SessionEnd::Shutdown),
                ShutdownState::Draining => {}
                ShutdownState::Closing => return Ok(SessionEnd::Shutdown),
            }
        }
    }

    fn finished(&self) -> Option<SessionEnd> {
        if self.backend_eof && self.to_client.is_empty() {
            return Some(SessionEnd::BackendClosed);
        }
        if self.client_eof && self.to_backend.is_empty() {
            return Some(SessionEnd::ClientClosed);
        }
        None
    }

    /// Nothing in flight and no open transaction: a safe moment to close.
    fn is_idle(&self) -> bool {
        self.z_expected == self.z_seen
            && self.stall.is_none()
            && self.held.is_empty()
            && self.tx_status == b'I'
            && self.batch.is_empty()
            && self.client_in.is_empty()
            && self.to_client.is_empty()
    }

    /// One round of non-blocking I/O: flush queued bytes, read where there
    /// is room, watch pending records. Resolves as soon as anything moved;
    /// `Some` when the stalled unit's record settled.
    async fn io(&mut self) -> Result<Option<StallEnd>, PgError> {
        let Self {
            client,
            backend,
            client_in,
            backend_in,
            to_client,
            to_backend,
            shutdown,
            client_eof,
            backend_eof,
            backend_backlog,
            client_read,
            backend_read,
            stall,
            held,
            hold_at,
            cancels,
            ..
        } = self;
        let mut shutdown_changed = std::pin::pin!(shutdown.changed());
        poll_fn(|cx| {
            if let Some(st) = stall.as_mut() {
                if let Poll::Ready(recorded) = st.durable.as_mut().poll(cx) {
                    return Poll::Ready(Ok(Some(StallEnd::Settled(recorded))));
                }
                if st.approval.is_some() {
                    let mut changed = std::pin::pin!(cancels.changed());
                    if let Poll::Ready(Ok(())) = changed.as_mut().poll(cx) {
                        return Poll::Ready(Ok(Some(StallEnd::Cancelled)));
                    }
                }
            }
            // Every pending record is polled, not only the oldest: a later
            // one may be the one that asks for a commit.
            let mut unrecorded = None;
            held.retain_mut(|durable| match durable.as_mut().poll(cx) {
                Poll::Ready(Ok(())) => false,
                Poll::Ready(Err(reply)) => {
                    unrecorded.get_or_insert(reply);
                    false
                }
                Poll::Pending => true,
            });
            if let Some(reply) = unrecorded {
                return Poll::Ready(Err(PgError::Unrecorded(reply)));
            }
            if held.is_empty() {
                *hold_at = None;
            }
            let mut step = || -> Result<bool, PgError> {
                let mut progress =
                    drain(backend, to_backend, usize::MAX, cx).map_err(PgError::BackendIo)?;
                let before = to_client.len();
                let limit = hold_at.unwrap_or(usize::MAX);
                progress |= drain(client, to_client, limit, cx).map_err(PgError::ClientIo)?;
                if let Some(at) = hold_at.as_mut() {
                    *at -= before - to_client.len();
                }
                // While a unit is stalled the client is still read (up to a
                // bound), so a disconnect ends a wait for approval.
                let room = stall.is_none() || client_in.len() < HIGH_WATER;
                if !*client_eof && room && to_backend.len() < HIGH_WATER {
                    progress |= fill(client_read, client, client_in, client_eof, cx)
                        .map_err(PgError::ClientIo)?;
                }
                if !*backend_eof && !*backend_backlog && to_client.len() < HIGH_WATER {
                    progress |= fill(backend_read, backend, backend_in, backend_eof, cx)
                        .map_err(PgError::BackendIo)?;
                }
                Ok(progress)
            };
            match step() {
                Err(e) => return Poll::Ready(Err(e)),
                Ok(true) => return Poll::Ready(Ok(None)),
                Ok(false) => {}
            }
            if shutdown_changed.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(None));
            }
            Poll::Pending
        })
        .await
    }

    /// Every complete backend message, in order, on its way to the client.
    fn on_backend_frames(&mut self) -> Result<(), PgError> {
        let mut run = 0; // length of the prefix of backend_in forwarded verbatim
        self.backend_backlog = false;
        while let Some(h) = peek_frame(&self.backend_in[run..], self.limits.max_backend_message)
            .map_err(PgError::BackendProtocol)?
        {
            self.pipeline.on_backend(h.tag);
            let frame = &self.backend_in[run..run + h.len];
            let z_before = self.z_seen;
            match h.tag {
                b'Z' => {
                    self.tx_status = frame.get(5).copied().unwrap_or(b'I');
                    pipeline::ready_seen(&mut self.z_seen, &mut self.denials);
                }
                b'E' if !self.denials.is_empty() => {
                    if let Some(i) = self
                        .denials
                        .iter()
                        .position(|d| contains(frame, d.marker.as_bytes()))
                    {
                        // Flush what came before, then the denial in place of this error.
                        self.to_client.extend_from_slice(&self.backend_in[..run]);
                        self.backend_in.advance(run + h.len);
                        run = 0;
                        if let Some(d) = self.denials.remove(i) {
                            d.reply.encode(&mut self.to_client);
                        }
                        self.settle_pipeline();
                        continue;
                    }
                }
                _ => {}
            }
            // What the backend confirms of Parse/Bind/Close.
            self.extended.on_backend(h.tag, z_before);
            // Masking first: responses are recorded, and data held, as the
            // client will receive them.
            let masked = match self.masking.as_mut() {
                Some(m) => m.on_message(h.tag, frame, z_before),
                None => None,
            };
            let sent = masked.as_deref().unwrap_or(frame);
            if let Some(responses) = self.responses.as_mut() {
                let gate = &mut self.gate;
                responses.on_message(h.tag, sent, z_before, &mut |r| gate.on_response(r));
            }
            if self.hold_at.is_none() && !self.held.is_empty() && carries_data(h.tag) {
                self.hold_at = Some(self.to_client.len() + run);
                self.gate.expedite();
            }
            match masked {
                Some(replacement) => {
                    self.to_client.extend_from_slice(&self.backend_in[..run]);
                    self.to_client.extend_from_slice(&replacement);
                    self.backend_in.advance(run + h.len);
                    run = 0;
                }
                None => run += h.len,
            }
            self.settle_pipeline();
            if self.to_client.len() + run >= HIGH_WATER {
                self.backend_backlog = run < self.backend_in.len();
                break;
            }
        }
        if run > 0 {
            self.to_client.extend_from_slice(&self.backend_in[..run]);
            self.backend_in.advance(run);
        }
        Ok(())
    }

    /// Sends a last error to the client and flushes it, briefly.
    async fn fatal(&mut self, reply: PgErrorReply) {
        reply.encode(&mut self.to_client);
        let write = async {
            use tokio::io::AsyncWriteExt;
            let _ = self.client.write_all(&self.to_client).await;
            let _ = self.client.flush().await;
            let _ = self.client.shutdown().await;
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), write).await;
    }

    async fn close_backend(&mut self) {
        use tokio::io::AsyncWriteExt;
        let mut out = BytesMut::new();
        crate::messages::frontend::terminate(&mut out);
        let close = async {
            let _ = self.backend.write_all(&out).await;
            let _ = self.backend.shutdown().await;
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), close).await;
    }
}
