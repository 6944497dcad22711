//! The client side of the proxy loop: each statement becomes a command,
//! extended-protocol messages are held until Sync or Flush or until the
//! client has sent all it has for now, and every unit is decided by the
//! gate before a byte of it is forwarded.

use super::{Session, Stall};
use crate::codec::{self, peek_frame};
use crate::denial::{stand_in, PendingDenial, Terminator};
use crate::error::{PgError, ProtocolError};
use crate::gate::{answers, Gate, UnitContext, Verdict};
use crate::messages::PgErrorReply;
use bytes::BytesMut;
use sluice_core::{Command, CommandOrigin, Param};

/// Most messages held in one extended-protocol batch. A batch is released
/// once the client's input drains, so it holds one read's worth (a few
/// tens of thousands of messages at most) today: this is the backstop that
/// keeps what is tracked per message bounded regardless.
const MAX_BATCH_MESSAGES: usize = 100_000;

impl<G: Gate> Session<G> {
    /// Every complete client message, in order. Statements become commands
    /// and are decided here, before anything is forwarded.
    pub(super) fn on_client_frames(&mut self) -> Result<(), PgError> {
        // A unit waiting for its record holds everything behind it, so the
        // backend sees messages in the order the client sent them.
        while self.stall.is_none() {
            let Some(h) = peek_frame(&self.client_in, self.limits.max_client_message)
                .map_err(PgError::ClientProtocol)?
            else {
                // The client sent all it has for now. PostgreSQL runs each
                // message as it arrives, Sync or not, and flushes an error
                // at once: a pipeline that waits for an error with neither
                // Sync nor Flush sent (libpq allows it) must see it here too.
                if !self.batch.is_empty() {
                    if let Some(pause) = self.gate.pause(self.settled()) {
                        self.stall = Some(Stall::pause(pause));
                        break;
                    }
                    self.release_unsynced_batch();
                }
                break;
            };
            if let Some(pause) = self.gate.pause(self.settled()) {
                self.stall = Some(Stall::pause(pause));
                break;
            }
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
                    self.decide_alone(command, &frame);
                }
                b'P' => {
                    if let Some(m) = self.masking.as_mut() {
                        m.on_parse_bind_close(h.tag, body, self.z_expected + 1);
                    }
                    let (_name, sql) =
                        codec::parse_message(body).map_err(PgError::ClientProtocol)?;
                    self.extended
                        .on_message(h.tag, body, self.z_expected + 1)
                        .map_err(PgError::ClientProtocol)?;
                    self.batch_offsets.push(self.batch.len());
                    self.batch_commands
                        .push(Command::new(CommandOrigin::Parse, sql));
                    self.hold(&frame)?;
                }
                b'B' | b'C' => {
                    if let Some(m) = self.masking.as_mut() {
                        m.on_parse_bind_close(h.tag, body, self.z_expected + 1);
                    }
                    self.extended
                        .on_message(h.tag, body, self.z_expected + 1)
                        .map_err(PgError::ClientProtocol)?;
                    self.hold(&frame)?;
                }
                b'E' => {
                    let execution = self
                        .extended
                        .on_message(h.tag, body, self.z_expected + 1)
                        .map_err(PgError::ClientProtocol)?;
                    if let Some(execution) = execution {
                        if let Some(m) = self.masking.as_mut() {
                            // Held messages answer before the next ReadyForQuery.
                            m.on_execute(
                                body,
                                execution.statement.clone(),
                                execution.result_formats.clone(),
                                self.z_expected + 1,
                            );
                        }
                        let copied = execution.sql.len()
                            + execution.params.iter().map(Param::len).sum::<usize>();
                        self.weigh(h.tag, copied)?;
                        self.batch_offsets.push(self.batch.len());
                        self.batch_commands.push(Command {
                            origin: CommandOrigin::Execute,
                            text: execution.sql.to_string(),
                            params: execution.params.to_vec(),
                        });
                        if let Some(m) = self.masking.as_mut() {
                            if let Some(describe) = m.describe_to_inject(
                                body,
                                &execution.statement,
                                self.z_expected + 1,
                            ) {
                                self.batch.extend_from_slice(&describe);
                            }
                        }
                    }
                    self.hold(&frame)?;
                }
                b'D' => {
                    if let Some(m) = self.masking.as_mut() {
                        m.on_describe(body, self.z_expected + 1);
                    }
                    self.hold(&frame)?;
                }
                b'S' | b'H' => {
                    self.hold(&frame)?;
                    let unit = self.unit_context();
                    let sync = h.tag == b'S';
                    if sync {
                        self.count_ready();
                    }
                    let terminator = if sync {
                        Terminator::Sync
                    } else {
                        Terminator::Flush
                    };
                    self.release_batch(terminator, &unit);
                }
                b'F' => {
                    // A fast-path call names a function by OID: there is no text to
                    // judge, so it is the riskiest kind of command.
                    self.decide_alone(Command::new(CommandOrigin::FunctionCall, ""), &frame);
                }
                // COPY FROM STDIN data flows straight through, after the
                // Execute that started the COPY if that is still held.
                b'd' | b'c' | b'f' => self.forward(&frame),
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
    fn release_batch(&mut self, terminator: Terminator, unit: &UnitContext) {
        let mut commands = std::mem::take(&mut self.batch_commands);
        let verdict = self.gate.decide(&commands, unit);
        let offsets = std::mem::take(&mut self.batch_offsets);
        self.batch_weight = 0;
        self.batch_messages = 0;
        // A Flush-ended batch answers before the next ReadyForQuery.
        let flush = terminator == Terminator::Flush;
        self.flushed |= flush;
        let segment = self.z_expected + u64::from(flush);
        let answers = self.expect_responses(&commands, &verdict, segment);
        let batch = std::mem::take(&mut self.batch);
        self.apply(verdict, &batch, &offsets, terminator, answers);
        // Keep the allocations for the next batch.
        self.batch = batch;
        self.batch.clear();
        commands.clear();
        self.batch_commands = commands;
    }

    /// A Query or FunctionCall: a unit of its own, ending in ReadyForQuery.
    fn decide_alone(&mut self, command: Command, frame: &[u8]) {
        let commands = std::slice::from_ref(&command);
        let unit = self.unit_context();
        let verdict = self.gate.decide(commands, &unit);
        self.count_ready();
        let answers = self.expect_responses(commands, &verdict, self.z_expected);
        self.apply(verdict, frame, &[0], Terminator::Query, answers);
    }

    /// A message that ends in a ReadyForQuery is forwarded (or stood in for).
    fn count_ready(&mut self) {
        self.z_expected += 1;
        self.flushed = false;
    }

    /// Nothing forwarded is still running and no transaction block is open.
    fn settled(&self) -> bool {
        self.tx_status == b'I'
            && self.z_expected == self.z_seen
            && !self.flushed
            && self.stall.is_none()
    }

    /// The transaction status is certain only when nothing is in flight.
    fn unit_context(&self) -> UnitContext {
        UnitContext {
            in_transaction: self.tx_status == b'T'
                && self.z_expected == self.z_seen
                && !self.flushed
                && self.stall.is_none(),
            outside_transaction: self.settled(),
        }
    }

    /// Opens a response for each command of the unit that will run;
    /// returns how many.
    fn expect_responses(&mut self, commands: &[Command], verdict: &Verdict, segment: u64) -> usize {
        let Some(responses) = self.responses.as_mut() else {
            return 0;
        };
        let runs = match verdict {
            Verdict::Deny { at, .. } => commands.get(..*at).unwrap_or_default(),
            _ => commands,
        };
        let mut count = 0;
        for command in runs.iter().filter(|c| answers(c)) {
            responses.expect(segment, command.origin == CommandOrigin::Execute);
            count += 1;
        }
        count
    }

    /// Acts on the verdict for `unit`, the bytes of what was decided
    /// (`offsets`: where each decided command starts in it).
    fn apply(
        &mut self,
        verdict: Verdict,
        unit: &[u8],
        offsets: &[usize],
        terminator: Terminator,
        answers: usize,
    ) {
        match verdict {
            Verdict::Forward => self.forward(unit),
            Verdict::ForwardHoldingResults(durable) => {
                self.forward(unit);
                self.held.push_back(durable);
                // Everything from here on, whichever unit it answers.
                self.hold_at.get_or_insert(self.to_client.len());
            }
            Verdict::ForwardHoldingData(durable) => {
                self.forward(unit);
                self.held.push_back(durable);
            }
            Verdict::ForwardWhenDurable(durable) => {
                self.stall = Some(Stall {
                    durable,
                    unit: BytesMut::from(unit),
                    terminator,
                    answers,
                    approval: None,
                });
            }
            Verdict::HoldForApproval {
                notice,
                until,
                request,
            } => {
                notice.encode(&mut self.to_client);
                // Only cancels from now on end the wait.
                self.cancels.borrow_and_update();
                self.stall = Some(Stall {
                    durable: until,
                    unit: BytesMut::from(unit),
                    terminator,
                    answers,
                    approval: Some(request),
                });
            }
            Verdict::Deny { at, reply } => {
                // What came before the refused command runs, as it would in
                // PostgreSQL before an error; the rest of the segment is
                // skipped by the backend after the stand-in's error.
                let cut = offsets.get(at).copied().unwrap_or(0);
                self.forward(&unit[..cut]);
                self.deny(reply, terminator);
            }
        }
    }

    /// A message outside the extended-protocol batch (Query, FunctionCall,
    /// COPY data) arrived, or the client's input drained, while extended
    /// messages are held without a Sync or Flush yet. PostgreSQL processes
    /// messages strictly in order, as they arrive, so the held ones go
    /// first: decided now as if a Flush had ended them (none is added).
    /// Without this a Query would overtake them (results out of order), and
    /// CopyData sent right behind a held Execute of `COPY FROM STDIN` would
    /// reach the backend before the COPY started, be discarded, and leave
    /// the COPY waiting for data forever.
    fn release_unsynced_batch(&mut self) {
        if !self.batch.is_empty() {
            let unit = self.unit_context();
            self.release_batch(Terminator::Flush, &unit);
        }
    }

    fn hold(&mut self, frame: &[u8]) -> Result<(), PgError> {
        self.weigh(frame[0], frame.len())?;
        self.batch_messages += 1;
        if self.batch_messages > MAX_BATCH_MESSAGES {
            return Err(PgError::ClientProtocol(ProtocolError::BatchTooLong {
                max: MAX_BATCH_MESSAGES,
            }));
        }
        self.batch.extend_from_slice(frame);
        Ok(())
    }

    /// Adds `bytes` to what the held batch costs, within `max_batch`.
    fn weigh(&mut self, tag: u8, bytes: usize) -> Result<(), PgError> {
        self.batch_weight += bytes;
        if self.batch_weight > self.limits.max_batch {
            return Err(PgError::ClientProtocol(ProtocolError::TooLarge {
                tag,
                len: self.batch_weight,
                max: self.limits.max_batch,
            }));
        }
        Ok(())
    }

    /// Blocks a statement in its place in the pipeline (see [`crate::denial`]).
    pub(super) fn deny(&mut self, reply: PgErrorReply, terminator: Terminator) {
        let mut stand_in_bytes = BytesMut::new();
        let marker = stand_in(&mut stand_in_bytes, terminator);
        self.forward(&stand_in_bytes);
        // The stand-in's error arrives before the ReadyForQuery that ends its
        // segment: the one just counted, or for a Flush the next one.
        let segment = self.z_expected + u64::from(terminator == Terminator::Flush);
        self.denials.push_back(PendingDenial {
            marker,
            reply,
            segment,
        });
    }
}
