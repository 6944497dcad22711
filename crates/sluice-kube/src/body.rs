//! Response bodies as they leave Sluice: relayed by a task that masks and
//! records them as they pass, into a bounded channel the client reads from.

use bytes::Bytes;
use http_body::{Body, Frame};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// What went wrong mid-body (the client sees the stream end in error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub String);

/// A body fed by a channel: the relay task sends, the client's
/// connection reads. Bounded, so a slow client slows the relay.
pub struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, BodyError>>,
}

impl ChannelBody {
    pub fn channel(depth: usize) -> (mpsc::Sender<Result<Bytes, BodyError>>, ChannelBody) {
        let (tx, rx) = mpsc::channel(depth);
        (tx, ChannelBody { rx })
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|r| r.map(Frame::data)))
    }
}

/// How the relay treats the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Passed as they come (no masking for this identity).
    Raw,
    /// One JSON document: a list item by item, anything else once whole.
    Document { secrets: bool },
    /// Newline-delimited JSON (watch events), each masked as it completes.
    JsonLines { secrets: bool },
    /// Text lines (logs), each masked as it completes.
    TextLines,
}

/// Splits a byte stream into complete lines, keeping the rest.
#[derive(Default)]
pub struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    /// Appends `chunk`; returns the complete lines (with their `\n`).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(chunk);
        let mut lines = Vec::new();
        while let Some(i) = memchr::memchr(b'\n', &self.buf) {
            let rest = self.buf.split_off(i + 1);
            lines.push(std::mem::replace(&mut self.buf, rest));
        }
        lines
    }

    /// What is left at the end of the stream.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.buf.is_empty()).then(|| std::mem::take(&mut self.buf))
    }

    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}
