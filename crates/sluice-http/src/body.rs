//! Response bodies as they leave Sluice: relayed by a task that masks and
//! records them as they pass, into a bounded channel the client reads from;
//! and the line splitter the text maskers share.

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
