//! Framing of PostgreSQL protocol v3 messages. Pure functions over byte
//! buffers, no I/O, so the proxy can parse in place and tests can feed any
//! bytes. Every length is checked before it is trusted: a hostile peer picks
//! the numbers.

use crate::error::ProtocolError;

/// Protocol 3.0, the only major version PostgreSQL speaks.
pub const PROTOCOL_3_0: i32 = 196_608;
pub const SSL_REQUEST: i32 = 80_877_103;
pub const GSSENC_REQUEST: i32 = 80_877_104;
pub const CANCEL_REQUEST: i32 = 80_877_102;
/// PostgreSQL's own cap on a startup packet (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_PACKET: usize = 10_000;

/// Where a complete tagged message sits in a buffer: `buf[..len]` is the
/// whole message, tag included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub tag: u8,
    /// Total length on the wire: 1 (tag) + the declared length.
    pub len: usize,
}

impl FrameHeader {
    /// The message body inside `buf` (which starts at this frame).
    pub fn body<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[5..self.len]
    }
}

/// Looks at the start of `buf` for a tagged message. `Ok(None)` means more
/// bytes are needed; the declared length is validated against `max_len` as
/// soon as the header is in, so an oversized message is refused before any
/// of it is buffered.
pub fn peek_frame(buf: &[u8], max_len: usize) -> Result<Option<FrameHeader>, ProtocolError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let tag = buf[0];
    let declared = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if declared < 4 {
        return Err(ProtocolError::BadLength {
            tag,
            declared: i64::from(declared),
        });
    }
    let len = declared as usize + 1;
    if len > max_len {
        return Err(ProtocolError::TooLarge {
            tag,
            len,
            max: max_len,
        });
    }
    if buf.len() < len {
        return Ok(None);
    }
    Ok(Some(FrameHeader { tag, len }))
}

/// The first packet of a connection, which has no tag byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    SslRequest,
    GssEncRequest,
    Cancel {
        pid: i32,
        secret: i32,
    },
    Startup {
        version: i32,
        params: Vec<(String, String)>,
    },
}

/// Parses a complete untagged startup packet (`buf` holds exactly the
/// declared length, length word included).
pub fn parse_startup(buf: &[u8]) -> Result<StartupPacket, ProtocolError> {
    if buf.len() < 8 {
        return Err(ProtocolError::Truncated("startup packet"));
    }
    let code = i32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let rest = &buf[8..];
    match code {
        SSL_REQUEST => Ok(StartupPacket::SslRequest),
        GSSENC_REQUEST => Ok(StartupPacket::GssEncRequest),
        CANCEL_REQUEST => {
            if rest.len() != 8 {
                return Err(ProtocolError::Truncated("cancel request"));
            }
            let pid = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
            let secret = i32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
            Ok(StartupPacket::Cancel { pid, secret })
        }
        version => {
            let mut params = Vec::new();
            let mut reader = Reader::new(rest);
            loop {
                let name = reader.cstr()?;
                if name.is_empty() {
                    break;
                }
                let value = reader.cstr()?;
                params.push((name.to_owned(), value.to_owned()));
            }
            Ok(StartupPacket::Startup { version, params })
        }
    }
}

/// The SQL text of a Query message.
pub fn query_text(body: &[u8]) -> Result<&str, ProtocolError> {
    Reader::new(body).cstr()
}

/// What the gateway judges in a Parse message: the statement name and text
/// (parameter types and the rest are the backend's to validate).
pub fn parse_message(body: &[u8]) -> Result<(&str, &str), ProtocolError> {
    let mut r = Reader::new(body);
    let name = r.cstr()?;
    let sql = r.cstr()?;
    Ok((name, sql))
}

/// SQLSTATE ('C') and message ('M') of an ErrorResponse or NoticeResponse
/// body; empty when absent or unreadable.
pub fn error_fields(body: &[u8]) -> (&str, &str) {
    let mut r = Reader::new(body);
    let (mut code, mut message) = ("", "");
    while let Ok(field) = r.u8() {
        if field == 0 {
            break;
        }
        let Ok(value) = r.cstr() else { break };
        match field {
            b'M' => message = value,
            b'C' => code = value,
            _ => {}
        }
    }
    (code, message)
}

/// A cursor over a message body that fails instead of panicking.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// A NUL-terminated UTF-8 string.
    pub fn cstr(&mut self) -> Result<&'a str, ProtocolError> {
        let rest = self.remaining();
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(ProtocolError::Truncated("string without terminator"))?;
        let s = std::str::from_utf8(&rest[..end]).map_err(|_| ProtocolError::NotUtf8)?;
        self.pos += end + 1;
        Ok(s)
    }

    pub fn i32(&mut self) -> Result<i32, ProtocolError> {
        let b = self.bytes(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn i16(&mut self) -> Result<i16, ProtocolError> {
        let b = self.bytes(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.bytes(1)?[0])
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        let rest = self.remaining();
        if rest.len() < n {
            return Err(ProtocolError::Truncated("message body"));
        }
        self.pos += n;
        Ok(&rest[..n])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_frame_asks_for_more_bytes() {
        assert_eq!(peek_frame(b"Q\0\0", 100).unwrap(), None);
        assert_eq!(peek_frame(b"Q\0\0\0\x09SEL", 100).unwrap(), None);
    }

    #[test]
    fn complete_frame_reports_total_length() {
        let buf = b"Q\0\0\0\x0bSELECT\0rest";
        let h = peek_frame(buf, 100).unwrap().unwrap();
        assert_eq!(h, FrameHeader { tag: b'Q', len: 12 });
        assert_eq!(h.body(buf), b"SELECT\0".as_slice());
    }

    #[test]
    fn oversized_frame_is_refused_from_its_header_alone() {
        let err = peek_frame(b"Q\x7f\xff\xff\xff", 1 << 20).unwrap_err();
        assert!(matches!(err, ProtocolError::TooLarge { tag: b'Q', .. }));
    }

    #[test]
    fn negative_or_short_length_is_an_error() {
        assert!(peek_frame(b"Q\xff\xff\xff\xff", 100).is_err());
        assert!(peek_frame(b"Q\0\0\0\x03", 100).is_err());
    }

    #[test]
    fn startup_packet_parameters_are_parsed() {
        let mut p = vec![0, 0, 0, 0];
        p.extend_from_slice(&PROTOCOL_3_0.to_be_bytes());
        p.extend_from_slice(b"user\0agent\0database\0app\0\0");
        let len = p.len() as i32;
        p[..4].copy_from_slice(&len.to_be_bytes());
        let StartupPacket::Startup { version, params } = parse_startup(&p).unwrap() else {
            unreachable!()
        };
        assert_eq!(version, PROTOCOL_3_0);
        assert_eq!(
            params,
            vec![
                ("user".into(), "agent".into()),
                ("database".into(), "app".into())
            ]
        );
    }

    #[test]
    fn unterminated_startup_parameters_are_an_error() {
        let mut p = vec![0, 0, 0, 0];
        p.extend_from_slice(&PROTOCOL_3_0.to_be_bytes());
        p.extend_from_slice(b"user\0agent");
        assert!(parse_startup(&p).is_err());
    }

    #[test]
    fn cancel_request_carries_key() {
        let mut p = vec![0, 0, 0, 16];
        p.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
        p.extend_from_slice(&7i32.to_be_bytes());
        p.extend_from_slice(&(-9i32).to_be_bytes());
        assert_eq!(
            parse_startup(&p).unwrap(),
            StartupPacket::Cancel { pid: 7, secret: -9 }
        );
    }

    #[test]
    fn reader_never_reads_past_the_end() {
        let mut r = Reader::new(b"\x01\x02");
        assert!(r.i32().is_err());
        assert_eq!(r.i16().unwrap(), 0x0102);
        assert!(r.u8().is_err());
    }
}
