//! Messages the gateway itself writes. Each builder appends one complete
//! message to an output buffer, so a reply of several messages costs one
//! write.

use bytes::{BufMut, BytesMut};

/// Appends a message: tag, a length placeholder, the body written by `f`,
/// then the real length.
pub(crate) fn put_message(out: &mut BytesMut, tag: u8, f: impl FnOnce(&mut BytesMut)) {
    out.put_u8(tag);
    let at = out.len();
    out.put_i32(0);
    f(out);
    let len = (out.len() - at) as i32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

pub(crate) fn put_cstr(out: &mut BytesMut, s: &str) {
    // A NUL inside a field would end it early on the client; drop it.
    out.extend(s.bytes().filter(|&b| b != 0));
    out.put_u8(0);
}

/// SQLSTATE codes the gateway answers with.
pub mod sqlstate {
    pub const INVALID_PASSWORD: &str = "28P01";
    pub const INVALID_AUTHORIZATION: &str = "28000";
    pub const INVALID_CATALOG_NAME: &str = "3D000";
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    pub const CONNECTION_FAILURE: &str = "08006";
    pub const CANNOT_CONNECT_NOW: &str = "57P03";
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    pub const INTERNAL_ERROR: &str = "XX000";
    pub const QUERY_CANCELED: &str = "57014";
    pub const WARNING: &str = "01000";
    /// Sluice's own: the statement needs an approval that does not exist
    /// yet (deferred mode); the message and hint name the request.
    pub const APPROVAL_REQUIRED: &str = "SL001";
    /// The audit store could not write.
    pub const IO_ERROR: &str = "58030";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
    /// Sent as a NoticeResponse: the client goes on waiting.
    Notice,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
            Severity::Notice => "NOTICE",
        }
    }
}

/// The SQLSTATE a refusal of the shared pipeline is rendered with.
pub fn refusal_sqlstate(kind: sluice_core::RefusalKind) -> &'static str {
    use sluice_core::RefusalKind as K;
    match kind {
        K::Denied | K::ApprovalRefused => sqlstate::INSUFFICIENT_PRIVILEGE,
        K::ApprovalRequired => sqlstate::APPROVAL_REQUIRED,
        K::ApprovalEnded => sqlstate::QUERY_CANCELED,
        K::Unrecorded => sqlstate::IO_ERROR,
        K::Unsupported => sqlstate::FEATURE_NOT_SUPPORTED,
        K::Internal => sqlstate::INTERNAL_ERROR,
    }
}

impl From<sluice_core::Refusal> for PgErrorReply {
    fn from(r: sluice_core::Refusal) -> Self {
        PgErrorReply {
            severity: Severity::Error,
            code: refusal_sqlstate(r.kind),
            message: r.message,
            detail: r.detail,
            hint: r.hint,
        }
    }
}

/// An error the gateway raises towards the client, shaped like PostgreSQL's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgErrorReply {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl PgErrorReply {
    pub fn fatal(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Fatal,
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn notice(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Notice,
            ..Self::error(code, message)
        }
    }

    /// The same text as a NOTICE (SQLSTATE `01000`): told to the client
    /// while its statement goes on (held for approval, say).
    pub fn into_notice(mut self) -> Self {
        self.severity = Severity::Notice;
        self.code = sqlstate::WARNING;
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn encode(&self, out: &mut BytesMut) {
        let tag = if self.severity == Severity::Notice {
            b'N'
        } else {
            b'E'
        };
        put_message(out, tag, |b| {
            for (field, value) in [
                (b'S', self.severity.as_str()),
                (b'V', self.severity.as_str()),
            ] {
                b.put_u8(field);
                put_cstr(b, value);
            }
            b.put_u8(b'C');
            put_cstr(b, self.code);
            b.put_u8(b'M');
            put_cstr(b, &self.message);
            if let Some(d) = &self.detail {
                b.put_u8(b'D');
                put_cstr(b, d);
            }
            if let Some(h) = &self.hint {
                b.put_u8(b'H');
                put_cstr(b, h);
            }
            b.put_u8(0);
        });
    }
}

pub fn authentication_ok(out: &mut BytesMut) {
    put_message(out, b'R', |b| b.put_i32(0));
}

pub fn authentication_cleartext(out: &mut BytesMut) {
    put_message(out, b'R', |b| b.put_i32(3));
}

pub fn authentication_sasl(out: &mut BytesMut, mechanisms: &[&str]) {
    put_message(out, b'R', |b| {
        b.put_i32(10);
        for m in mechanisms {
            put_cstr(b, m);
        }
        b.put_u8(0);
    });
}

pub fn authentication_sasl_continue(out: &mut BytesMut, data: &[u8]) {
    put_message(out, b'R', |b| {
        b.put_i32(11);
        b.put_slice(data);
    });
}

pub fn authentication_sasl_final(out: &mut BytesMut, data: &[u8]) {
    put_message(out, b'R', |b| {
        b.put_i32(12);
        b.put_slice(data);
    });
}

pub fn parameter_status(out: &mut BytesMut, name: &str, value: &str) {
    put_message(out, b'S', |b| {
        put_cstr(b, name);
        put_cstr(b, value);
    });
}

pub fn backend_key_data(out: &mut BytesMut, pid: i32, secret: i32) {
    put_message(out, b'K', |b| {
        b.put_i32(pid);
        b.put_i32(secret);
    });
}

pub fn ready_for_query(out: &mut BytesMut, status: u8) {
    put_message(out, b'Z', |b| b.put_u8(status));
}

/// Tells a client asking for a newer 3.x minor version, or for `_pq_`
/// protocol options, what this side supports instead of failing it.
pub fn negotiate_protocol_version(out: &mut BytesMut, newest_minor: i32, unsupported: &[String]) {
    put_message(out, b'v', |b| {
        b.put_i32(newest_minor);
        b.put_i32(unsupported.len() as i32);
        for o in unsupported {
            put_cstr(b, o);
        }
    });
}

/// Frontend messages the gateway sends to a backend.
pub mod frontend {
    use super::{put_cstr, put_message};
    use bytes::{BufMut, BytesMut};

    pub fn startup(out: &mut BytesMut, params: &[(&str, &str)]) {
        let at = out.len();
        out.put_i32(0);
        out.put_i32(crate::codec::PROTOCOL_3_0);
        for (k, v) in params {
            put_cstr(out, k);
            put_cstr(out, v);
        }
        out.put_u8(0);
        let len = (out.len() - at) as i32;
        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }

    pub fn ssl_request(out: &mut BytesMut) {
        out.put_i32(8);
        out.put_i32(crate::codec::SSL_REQUEST);
    }

    pub fn cancel_request(out: &mut BytesMut, pid: i32, secret: i32) {
        out.put_i32(16);
        out.put_i32(crate::codec::CANCEL_REQUEST);
        out.put_i32(pid);
        out.put_i32(secret);
    }

    pub fn password(out: &mut BytesMut, password: &[u8]) {
        put_message(out, b'p', |b| {
            b.put_slice(password);
            b.put_u8(0);
        });
    }

    pub fn sasl_initial_response(out: &mut BytesMut, mechanism: &str, data: &[u8]) {
        put_message(out, b'p', |b| {
            put_cstr(b, mechanism);
            b.put_i32(data.len() as i32);
            b.put_slice(data);
        });
    }

    pub fn sasl_response(out: &mut BytesMut, data: &[u8]) {
        put_message(out, b'p', |b| b.put_slice(data));
    }

    pub fn terminate(out: &mut BytesMut) {
        put_message(out, b'X', |_| {});
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::codec::peek_frame;

    #[test]
    fn error_reply_is_a_well_formed_message() {
        let mut out = BytesMut::new();
        PgErrorReply::fatal(sqlstate::INVALID_PASSWORD, "password authentication failed")
            .with_hint("check the key")
            .encode(&mut out);
        let h = peek_frame(&out, 1 << 20).unwrap().unwrap();
        assert_eq!(h.tag, b'E');
        assert_eq!(h.len, out.len());
        let body = h.body(&out);
        assert!(body.windows(6).any(|w| w == b"C28P01"));
        assert_eq!(body.last(), Some(&0));
    }

    #[test]
    fn nul_bytes_in_fields_do_not_split_the_message() {
        let mut out = BytesMut::new();
        PgErrorReply::error(sqlstate::INTERNAL_ERROR, "a\0b").encode(&mut out);
        assert!(out.windows(4).any(|w| w == b"Mab\0"));
    }
}
