//! Non-blocking moves between a stream and a buffer, for the session's
//! single poll loop. Each returns whether bytes moved, so the loop can tell
//! progress from waiting without blocking on either side.

use crate::stream::Stream;
use bytes::{Buf, BytesMut};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;

/// Read sizes: small for the request/response rhythm of OLTP, so an idle
/// session holds little memory; large while a side streams.
const MIN_READ: usize = 8 * 1024;
const MAX_READ: usize = 64 * 1024;
/// An empty buffer that grew past this during a burst is given back.
const KEEP_CAPACITY: usize = 128 * 1024;

/// How much the next read of one side asks for: doubles while reads fill
/// the buffer (a stream), halves when they come back mostly empty.
pub(crate) struct ReadSize(usize);

impl Default for ReadSize {
    fn default() -> Self {
        ReadSize(MIN_READ)
    }
}

/// Writes what the stream accepts of `out`, flushing once it is empty
/// (TLS keeps records in its own buffer until flushed).
pub(crate) fn drain(
    stream: &mut Stream,
    out: &mut BytesMut,
    limit: usize,
    cx: &mut Context<'_>,
) -> io::Result<bool> {
    let allowed = limit.min(out.len());
    if allowed == 0 {
        return Ok(false);
    }
    match Pin::new(&mut *stream).poll_write(cx, &out[..allowed]) {
        Poll::Ready(Ok(0)) => Err(io::ErrorKind::WriteZero.into()),
        Poll::Ready(Ok(n)) => {
            out.advance(n);
            if n == allowed {
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
    size: &mut ReadSize,
    stream: &mut Stream,
    buf: &mut BytesMut,
    eof: &mut bool,
    cx: &mut Context<'_>,
) -> io::Result<bool> {
    buf.reserve(size.0);
    let spare = buf.capacity() - buf.len();
    match tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, buf) {
        Poll::Ready(Ok(0)) => {
            *eof = true;
            Ok(true)
        }
        Poll::Ready(Ok(n)) => {
            if n == spare {
                size.0 = (size.0 * 2).min(MAX_READ);
            } else if n < spare / 4 {
                size.0 = (size.0 / 2).max(MIN_READ);
            }
            Ok(true)
        }
        Poll::Ready(Err(e)) => Err(e),
        Poll::Pending => Ok(false),
    }
}

/// Gives back the memory of an empty buffer that a burst made large.
pub(crate) fn trim(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > KEEP_CAPACITY {
        *buf = BytesMut::new();
    }
}
