//! Reading whole messages from a stream during the handshake phases, where
//! one message at a time is all there is. The proxy loop does its own
//! buffering and does not use this.

use crate::codec::peek_frame;
use crate::error::ProtocolError;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(#[from] ProtocolError),
}

/// A buffered reader of tagged messages with a size cap. Bytes read past the
/// current message stay buffered and can be handed on with `into_buffer`.
pub struct FrameReader {
    buf: BytesMut,
    max: usize,
}

impl FrameReader {
    pub fn new(max: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(8 * 1024),
            max,
        }
    }

    /// The next message as (tag, body). A clean EOF is `Protocol(Closed)`.
    pub async fn next<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> Result<(u8, Bytes), ReadError> {
        loop {
            if let Some(h) = peek_frame(&self.buf, self.max)? {
                let mut frame = self.buf.split_to(h.len);
                let body = frame.split_off(5).freeze();
                return Ok((h.tag, body));
            }
            if stream.read_buf(&mut self.buf).await? == 0 {
                return Err(ProtocolError::Closed("in the middle of a message").into());
            }
        }
    }

    /// Whatever arrived after the last message returned.
    pub fn into_buffer(self) -> BytesMut {
        self.buf
    }
}
