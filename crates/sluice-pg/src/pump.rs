//! Non-blocking moves between a stream and a buffer, for the session's
//! single poll loop. Each returns whether bytes moved, so the loop can tell
//! progress from waiting without blocking on either side.

use crate::stream::Stream;
use bytes::{Buf, BytesMut};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;

/// Read granularity.
const READ_CHUNK: usize = 64 * 1024;

/// Writes what the stream accepts of `out`, flushing once it is empty
/// (TLS keeps records in its own buffer until flushed).
pub(crate) fn drain(
    stream: &mut Stream,
    out: &mut BytesMut,
    cx: &mut Context<'_>,
) -> io::Result<bool> {
    if out.is_empty() {
        return Ok(false);
    }
    match Pin::new(&mut *stream).poll_write(cx, out) {
        Poll::Ready(Ok(0)) => Err(io::ErrorKind::WriteZero.into()),
        Poll::Ready(Ok(n)) => {
            out.advance(n);
            if out.is_empty() {
                if let Poll::Ready(Err(e)) = Pin::new(&mut *stream).poll_flush(cx) {
                    return Err(e);
                }
            }
            Ok(true)
        }
        Poll::Ready(Err(e)) => Err(e),
        Poll::Pending => Ok(false),
    }
}

/// Reads what is available into `buf`; end of stream sets `eof`.
pub(crate) fn fill(
    stream: &mut Stream,
    buf: &mut BytesMut,
    eof: &mut bool,
    cx: &mut Context<'_>,
) -> io::Result<bool> {
    buf.reserve(READ_CHUNK);
    match tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, buf) {
        Poll::Ready(Ok(0)) => {
            *eof = true;
            Ok(true)
        }
        Poll::Ready(Ok(_)) => Ok(true),
        Poll::Ready(Err(e)) => Err(e),
        Poll::Pending => Ok(false),
    }
}
