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

use crate::codec::{self, peek_frame};
use crate::denial::{contains, stand_in, PendingDenial, Terminator};
use crate::error::{PgError, ProtocolError};
use crate::gate::{Durable, Gate, Verdict};
use crate::messages::{sqlstate, PgErrorReply};
use bytes::{Buf, BytesMut};
use sluice_core::{Command, CommandOrigin};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::task::Poll;
use tokio::sync::watch;

use crate::extended::Extended;
use crate::pump::{drain, fill, trim, ReadSize};
use crate::stream::Stream;

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
    /// Cap on an extended-protocol batch held until Sync/Flush for a decision.
    pub max_batch: usize,
}

/// A unit held back until its record is durable.
struct Stall {
    durable: Durable,
    unit: BytesMut,
    terminator: Terminator,
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
    /// Extended-protocol messages held until Sync or Flush, and the
    /// commands among them.
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
    /// The held batch contains an Execute.
    batch_has_execute: bool,
    /// The last batch forwarded was an Execute followed by Sync. If that
    /// Execute starts `COPY FROM STDIN`, the backend swallows the Sync (it
    /// ignores Sync during copy-in) and answers only the one libpq sends
    /// after CopyDone: one ReadyForQuery fewer than counted.
    sync_after_execute: bool,
}

impl<G: Gate> Session<G> {
    pub fn new(
        client: Stream,
        client_leftover: BytesMut,
        backend: Stream,
        backend_leftover: BytesMut,
        gate: G,
        limits: SessionLimits,
        shutdown: watch::Receiver<ShutdownState>,
    ) -> Self {
        Self {
            client,
            backend,
            gate,
            limits,
            shutdown,
            client_in: client_leftover,
            backend_in: backend_leftover,
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
            batch_has_execute: false,
            sync_after_execute: false,
        }
    }

    /// Runs until either side goes away or shutdown ends the session. On a
    /// client-side protocol error the client gets a FATAL first.
    pub async fn run(mut self) -> Result<SessionEnd, PgError> {
        let result = self.pump().await;
        match &result {
            Err(PgError::ClientProtocol(p)) => {
                let code = match p {
                    ProtocolError::TooLarge { .. } => sqlstate::PROGRAM_LIMIT_EXCEEDED,
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
                // Results held for the record go with the session.
                self.to_client.clear();
                self.fatal(reply).await;
            }
            Ok(SessionEnd::Shutdown) => {
                self.fatal(PgErrorReply::fatal(
                    sqlstate::ADMIN_SHUTDOWN,
                    "Sluice is shutting down",
                ))
                .await;
            }
            _ => {}
        }
        self.close_backend().await;
        let reason = match &result {
            Ok(end) => end.as_str(),
            Err(e) if e.is_upstream() => "backend_error",
            Err(_) => "client_error",
        };
        self.gate.on_end(reason);
        result
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
            if let Some(recorded) = self.io().await? {
                if let Some(stall) = self.stall.take() {
                    match recorded {
                        Ok(()) => self.to_backend.extend_from_slice(&stall.unit),
                        Err(reply) => self.deny(reply, stall.terminator),
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
    async fn io(&mut self) -> Result<Option<Result<(), PgErrorReply>>, PgError> {
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
            ..
        } = self;
        let mut shutdown_changed = std::pin::pin!(shutdown.changed());
        poll_fn(|cx| {
            if let Some(st) = stall.as_mut() {
                if let Poll::Ready(recorded) = st.durable.as_mut().poll(cx) {
                    return Poll::Ready(Ok(Some(recorded)));
                }
            }
            while let Some(front) = held.front_mut() {
                match front.as_mut().poll(cx) {
                    Poll::Ready(Ok(())) => {
                        held.pop_front();
                    }
                    Poll::Ready(Err(reply)) => return Poll::Ready(Err(PgError::Unrecorded(reply))),
                    Poll::Pending => break,
                }
            }
            let mut step = || -> Result<bool, PgError> {
                let mut progress = drain(backend, to_backend, cx).map_err(PgError::BackendIo)?;
                if held.is_empty() {
                    progress |= drain(client, to_client, cx).map_err(PgError::ClientIo)?;
                }
                if !*client_eof && stall.is_none() && to_backend.len() < HIGH_WATER {
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

    /// Every complete client message, in order. Statements become commands
    /// and are decided here, before anything is forwarded.
    fn on_client_frames(&mut self) -> Result<(), PgError> {
        // A unit waiting for its record holds everything behind it, so the
        // backend sees messages in the order the client sent them.
        while self.stall.is_none() {
            let Some(h) = peek_frame(&self.client_in, self.limits.max_client_message)
                .map_err(PgError::ClientProtocol)?
            else {
                break;
            };
            // Held extended messages go before anything outside the batch
            // (and may stall, holding this message too).
            if matches!(h.tag, b'Q' | b'F' | b'd' | b'c' | b'f') && !self.batch.is_empty() {
                self.release_unsynced_batch();
                continue;
            }
            let frame = self.client_in.split_to(h.len);
            let body = &frame[5..];
            match h.tag {
                b'Q' => {
                    let sql = codec::query_text(body).map_err(PgError::ClientProtocol)?;
                    let command = Command::new(CommandOrigin::SimpleQuery, sql);
                    let verdict = self.gate.decide(std::slice::from_ref(&command));
                    self.z_expected += 1;
                    self.sync_after_execute = false;
                    self.apply(verdict, &frame, &[0], Terminator::Query);
                }
                b'P' => {
                    let (_name, sql) =
                        codec::parse_message(body).map_err(PgError::ClientProtocol)?;
                    self.extended
                        .on_message(h.tag, body)
                        .map_err(PgError::ClientProtocol)?;
                    self.batch_offsets.push(self.batch.len());
                    self.batch_commands
                        .push(Command::new(CommandOrigin::Parse, sql));
                    self.hold(&frame)?;
                }
                b'B' | b'C' => {
                    self.extended
                        .on_message(h.tag, body)
                        .map_err(PgError::ClientProtocol)?;
                    self.hold(&frame)?;
                }
                b'E' => {
                    let execution = self
                        .extended
                        .on_message(h.tag, body)
                        .map_err(PgError::ClientProtocol)?;
                    if let Some(execution) = execution {
                        self.batch_offsets.push(self.batch.len());
                        self.batch_commands.push(Command {
                            origin: CommandOrigin::Execute,
                            text: execution.sql.to_string(),
                            params: execution.params.to_vec(),
                        });
                    }
                    self.hold(&frame)?;
                }
                b'D' => self.hold(&frame)?,
                b'S' | b'H' => {
                    self.hold(&frame)?;
                    let sync = h.tag == b'S';
                    if sync {
                        self.z_expected += 1;
                    }
                    self.release_batch(if sync {
                        Terminator::Sync
                    } else {
                        Terminator::Flush
                    });
                }
                b'F' => {
                    // A fast-path call names a function by OID: there is no text to
                    // judge, so it is the riskiest kind of command.
                    let command = Command::new(CommandOrigin::FunctionCall, "");
                    self.z_expected += 1;
                    self.sync_after_execute = false;
                    let verdict = self.gate.decide(std::slice::from_ref(&command));
                    self.apply(verdict, &frame, &[0], Terminator::Query);
                }
                // COPY FROM STDIN data flows straight through, after the
                // Execute that started the COPY if that is still held.
                b'd' | b'c' | b'f' => self.to_backend.extend_from_slice(&frame),
                b'X' => {
                    self.client_eof = true;
                    self.client_in.clear();
                    return Ok(());
                }
                b'p' => {
                    return Err(PgError::ClientProtocol(ProtocolError::Unexpected {
                        tag: h.tag,
                        during: "after authentication",
                    }))
                }
                other => {
                    return Err(PgError::ClientProtocol(ProtocolError::UnknownMessage(
                        other,
                    )))
                }
            }
        }
        Ok(())
    }

    /// Decides the held batch (which ends in its Sync or Flush, if any) and
    /// queues it, or its denial, for the backend.
    fn release_batch(&mut self, terminator: Terminator) {
        let verdict = self.gate.decide(&self.batch_commands);
        self.batch_commands.clear();
        let offsets = std::mem::take(&mut self.batch_offsets);
        let swallowable_sync = self.batch_has_execute && terminator == Terminator::Sync;
        self.batch_has_execute = false;
        self.sync_after_execute = swallowable_sync && !matches!(verdict, Verdict::Deny { .. });
        let batch = std::mem::take(&mut self.batch);
        self.apply(verdict, &batch, &offsets, terminator);
        // Keep the allocation for the next batch.
        self.batch = batch;
        self.batch.clear();
    }

    /// Acts on the verdict for `unit`, the bytes of what was decided
    /// (`offsets`: where each decided command starts in it).
    fn apply(&mut self, verdict: Verdict, unit: &[u8], offsets: &[usize], terminator: Terminator) {
        match verdict {
            Verdict::Forward => self.to_backend.extend_from_slice(unit),
            Verdict::ForwardHoldingResults(durable) => {
                self.to_backend.extend_from_slice(unit);
                self.held.push_back(durable);
            }
            Verdict::ForwardWhenDurable(durable) => {
                self.stall = Some(Stall {
                    durable,
                    unit: BytesMut::from(unit),
                    terminator,
                });
            }
            Verdict::Deny { at, reply } => {
                // What came before the refused command runs, as it would in
                // PostgreSQL before an error; the rest of the segment is
                // skipped by the backend after the stand-in's error.
                let cut = offsets.get(at).copied().unwrap_or(0);
                self.to_backend.extend_from_slice(&unit[..cut]);
                self.deny(reply, terminator);
            }
        }
    }

    /// A message outside the extended-protocol batch (Query, FunctionCall,
    /// COPY data) arrived while extended messages are held without a Sync
    /// or Flush yet. PostgreSQL processes messages strictly in order, so the
    /// held ones go first: decided now as if a Flush had ended them.
    /// Without this a Query would overtake them (results out of order), and
    /// CopyData sent right behind a held Execute of `COPY FROM STDIN` would
    /// reach the backend before the COPY started, be discarded, and leave
    /// the COPY waiting for data forever.
    fn release_unsynced_batch(&mut self) {
        if !self.batch.is_empty() {
            self.release_batch(Terminator::Flush);
        }
    }

    fn hold(&mut self, frame: &[u8]) -> Result<(), PgError> {
        if self.batch.len() + frame.len() > self.limits.max_batch {
            return Err(PgError::ClientProtocol(ProtocolError::TooLarge {
                tag: frame[0],
                len: self.batch.len() + frame.len(),
                max: self.limits.max_batch,
            }));
        }
        self.batch_has_execute |= frame[0] == b'E';
        self.batch.extend_from_slice(frame);
        Ok(())
    }

    /// Blocks a statement in its place in the pipeline (see [`crate::denial`]).
    fn deny(&mut self, reply: PgErrorReply, terminator: Terminator) {
        let marker = stand_in(&mut self.to_backend, terminator);
        // The stand-in's error arrives before the ReadyForQuery that ends its
        // segment: the one just counted, or for a Flush the next one.
        let segment = self.z_expected + u64::from(terminator == Terminator::Flush);
        self.denials.push_back(PendingDenial {
            marker,
            reply,
            segment,
        });
    }

    /// Every complete backend message, in order, on its way to the client.
    fn on_backend_frames(&mut self) -> Result<(), PgError> {
        let mut run = 0; // length of the prefix of backend_in forwarded verbatim
        self.backend_backlog = false;
        while let Some(h) = peek_frame(&self.backend_in[run..], self.limits.max_backend_message)
            .map_err(PgError::BackendProtocol)?
        {
            let frame = &self.backend_in[run..run + h.len];
            match h.tag {
                b'Z' => {
                    self.tx_status = frame.get(5).copied().unwrap_or(b'I');
                    self.z_seen += 1;
                    let seen = self.z_seen;
                    self.denials.retain(|d| d.segment > seen);
                }
                b'G' if self.sync_after_execute => {
                    self.sync_after_execute = false;
                    self.z_expected = self.z_expected.saturating_sub(1).max(self.z_seen);
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
                        continue;
                    }
                }
                _ => {}
            }
            run += h.len;
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
