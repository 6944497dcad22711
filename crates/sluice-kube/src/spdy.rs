//! SPDY/3.1 framing, as far as relaying and recording Kubernetes streams
//! needs it (exec, attach, port-forward end on SPDY against most API
//! servers). No I/O: bytes in, frames out.
//!
//! A frame is an 8-byte header and a payload of up to 16 MiB. Control
//! frames (first bit set) carry a type; SYN_STREAM, SYN_REPLY and HEADERS
//! carry a header block compressed with zlib, one compression context per
//! direction for the whole connection, primed with the dictionary of the
//! SPDY/3 specification (§2.6.10.1). Data frames carry a stream id.
//! Kubernetes names each stream in its SYN_STREAM headers (`streamtype:
//! stdin`, `stdout`, `stderr`, `error`, `resize`; `data` and `port` for a
//! port-forward), which is how Sluice knows what a data frame is.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The zlib dictionary of SPDY/3 header blocks (1423 bytes, from the
/// specification).
pub const DICTIONARY: &[u8] = include_bytes!("spdy_dictionary.bin");

pub const SYN_STREAM: u16 = 1;
pub const SYN_REPLY: u16 = 2;
pub const RST_STREAM: u16 = 3;
pub const HEADERS: u16 = 8;
/// Data frame flag: the last frame of its stream in this direction.
pub const FLAG_FIN: u8 = 1;

/// Header blocks larger than this once inflated are refused (a zlib bomb).
const MAX_HEADER_BLOCK: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpdyError {
    #[error("not SPDY/3: control frame version {0}")]
    Version(u16),
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("header block: {0}")]
    Compression(String),
}

/// One whole frame, its bytes exactly as they came (at least the 8-byte
/// header: only [`Framer`] and [`Frame::new`] make one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame(Vec<u8>);

impl Frame {
    pub fn new(bytes: Vec<u8>) -> Option<Frame> {
        (bytes.len() >= 8).then_some(Frame(bytes))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    pub fn is_control(&self) -> bool {
        self.0[0] & 0x80 != 0
    }

    /// The control frame type (0 for a data frame).
    pub fn control_type(&self) -> u16 {
        if self.is_control() {
            u16::from_be_bytes([self.0[2], self.0[3]])
        } else {
            0
        }
    }

    pub fn flags(&self) -> u8 {
        self.0[4]
    }

    pub fn payload(&self) -> &[u8] {
        &self.0[8..]
    }

    /// The stream a data frame belongs to, or the one a SYN_STREAM,
    /// SYN_REPLY, RST_STREAM or HEADERS frame is about.
    pub fn stream_id(&self) -> Option<u32> {
        let id = |b: &[u8]| u32::from_be_bytes([b[0] & 0x7f, b[1], b[2], b[3]]);
        if !self.is_control() {
            return Some(id(&self.0[..4]));
        }
        match self.control_type() {
            SYN_STREAM | SYN_REPLY | RST_STREAM | HEADERS if self.payload().len() >= 4 => {
                Some(id(self.payload()))
            }
            _ => None,
        }
    }

    /// The compressed header block of a SYN_STREAM, SYN_REPLY or HEADERS.
    pub fn header_block(&self) -> Option<&[u8]> {
        let p = self.payload();
        match self.control_type() {
            SYN_STREAM => p.get(10..),
            SYN_REPLY | HEADERS => p.get(4..),
            _ => None,
        }
    }
}

/// Cuts a byte stream into frames.
#[derive(Default)]
pub struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, SpdyError> {
        if self.buf.len() < 8 {
            return Ok(None);
        }
        if self.buf[0] & 0x80 != 0 {
            let version = u16::from_be_bytes([self.buf[0] & 0x7f, self.buf[1]]);
            if version != 3 {
                return Err(SpdyError::Version(version));
            }
        }
        let len = u32::from_be_bytes([0, self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if self.buf.len() < 8 + len {
            return Ok(None);
        }
        let rest = self.buf.split_off(8 + len);
        Ok(Some(Frame(std::mem::replace(&mut self.buf, rest))))
    }

    /// Bytes waiting for the rest of their frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// A data frame.
pub fn data_frame(stream: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + data.len());
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    let len = (data.len() as u32).min(0x00ff_ffff).to_be_bytes();
    f.extend_from_slice(&[flags, len[1], len[2], len[3]]);
    f.extend_from_slice(data);
    f
}

/// Reads the header blocks of one direction (one zlib context for all).
pub struct HeaderReader {
    inflate: Decompress,
}

impl Default for HeaderReader {
    fn default() -> Self {
        HeaderReader {
            inflate: Decompress::new(true),
        }
    }
}

impl HeaderReader {
    /// The name/value pairs of a compressed header block.
    pub fn read(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
        let mut out = Vec::with_capacity(block.len() * 4 + 64);
        let mut input = block;
        while !input.is_empty() {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(SpdyError::Compression("over 1 MiB inflated".into()));
                }
                out.reserve(out.len().max(256));
            }
            let before = self.inflate.total_in();
            match self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
            {
                Ok(Status::Ok | Status::BufError | Status::StreamEnd) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(DICTIONARY)
                        .map_err(|e| SpdyError::Compression(e.to_string()))?;
                }
                Err(e) => return Err(SpdyError::Compression(e.to_string())),
            }
            let used = (self.inflate.total_in() - before) as usize;
            input = &input[used.min(input.len())..];
            if used == 0 && out.len() < out.capacity() && !input.is_empty() {
                // No progress with room to spare: wait for the dictionary
                // round above, or give up on a stuck stream.
                if self.inflate.total_in() > 0 {
                    return Err(SpdyError::Compression("stalled".into()));
                }
            }
        }
        parse_pairs(&out)
    }
}

fn parse_pairs(b: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
    let mut at = 0usize;
    let u32_at = |at: &mut usize| -> Result<usize, SpdyError> {
        let v = b
            .get(*at..*at + 4)
            .ok_or(SpdyError::Malformed("header block"))?;
        *at += 4;
        Ok(u32::from_be_bytes([v[0], v[1], v[2], v[3]]) as usize)
    };
    let count = u32_at(&mut at)?;
    let mut pairs = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let n = u32_at(&mut at)?;
        let name = b
            .get(at..at + n)
            .ok_or(SpdyError::Malformed("header name"))?;
        at += n;
        let n = u32_at(&mut at)?;
        let value = b
            .get(at..at + n)
            .ok_or(SpdyError::Malformed("header value"))?;
        at += n;
        pairs.push((
            String::from_utf8_lossy(name).to_ascii_lowercase(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    Ok(pairs)
}

/// Writes header blocks for one direction (the peer's [`HeaderReader`]).
pub struct HeaderWriter {
    deflate: Compress,
    primed: bool,
}

impl Default for HeaderWriter {
    fn default() -> Self {
        HeaderWriter {
            deflate: Compress::new(Compression::default(), true),
            primed: false,
        }
    }
}

impl HeaderWriter {
    pub fn write(&mut self, pairs: &[(&str, &str)]) -> Result<Vec<u8>, SpdyError> {
        if !self.primed {
            self.deflate
                .set_dictionary(DICTIONARY)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            self.primed = true;
        }
        let mut raw = Vec::new();
        raw.extend_from_slice(&(pairs.len() as u32).to_be_bytes());
        for (k, v) in pairs {
            raw.extend_from_slice(&(k.len() as u32).to_be_bytes());
            raw.extend_from_slice(k.as_bytes());
            raw.extend_from_slice(&(v.len() as u32).to_be_bytes());
            raw.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut consumed = 0usize;
        loop {
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(&raw[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            consumed += (self.deflate.total_in() - before) as usize;
            // Done when all input is in and the flush did not fill the buffer.
            if consumed >= raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(out.capacity().max(64));
        }
    }
}

/// A control frame of `kind` with `flags` around `payload`.
pub fn control_frame(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + payload.len());
    f.extend_from_slice(&(0x8003u16).to_be_bytes());
    f.extend_from_slice(&kind.to_be_bytes());
    let len = (payload.len() as u32).to_be_bytes();
    f.extend_from_slice(&[flags, len[1], len[2], len[3]]);
    f.extend_from_slice(payload);
    f
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn header_blocks_round_trip_through_one_context_per_direction() {
        let mut w = HeaderWriter::default();
        let mut r = HeaderReader::default();
        for i in 0..5 {
            let id = i.to_string();
            let block = w
                .write(&[("streamtype", "stdout"), ("requestid", &id)])
                .unwrap();
            let mut payload = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            payload.extend(&block);
            let frame = Frame::new(control_frame(SYN_STREAM, 0, &payload)).unwrap();
            assert_eq!(frame.stream_id(), Some(1));
            let pairs = r.read(frame.header_block().unwrap()).unwrap();
            assert_eq!(
                pairs,
                [
                    ("streamtype".into(), "stdout".into()),
                    ("requestid".into(), id)
                ]
            );
        }
    }

    #[test]
    fn frames_are_cut_at_their_length_whatever_the_reads() {
        let mut bytes = data_frame(3, FLAG_FIN, b"hello");
        bytes.extend(control_frame(RST_STREAM, 0, &[0, 0, 0, 3, 0, 0, 0, 5]));
        let mut f = Framer::default();
        let mut frames = Vec::new();
        for b in &bytes {
            f.push(&[*b]);
            while let Some(frame) = f.next_frame().unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].stream_id(), Some(3));
        assert_eq!(frames[0].payload(), b"hello");
        assert_eq!(frames[0].flags(), FLAG_FIN);
        assert_eq!(frames[1].control_type(), RST_STREAM);
        let mut bad = Framer::default();
        bad.push(&[0x80, 2, 0, 1, 0, 0, 0, 0]);
        assert!(bad.next_frame().is_err());
    }

    #[test]
    fn garbage_header_blocks_are_errors_not_panics() {
        let mut r = HeaderReader::default();
        assert!(r.read(&[1, 2, 3, 4, 5]).is_err());
        let mut r = HeaderReader::default();
        assert!(r.read(&[]).is_err());
    }
}
