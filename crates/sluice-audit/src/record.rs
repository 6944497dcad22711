//! What is recorded: one typed body per record kind, and the record envelope
//! that carries the chain.
//!
//! A record's `body` is stored and exported as the exact JSON bytes that were
//! hashed (`body_json`); the typed [`Body`] is a view of them. Keeping the
//! bytes, not re-serializing, is what lets an export be verified
//! byte-for-byte even if a later version adds fields.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sluice_core::{CommandOrigin, Decision, Identity, Statement};
use std::borrow::Cow;

/// `session_start`: who connected to what, from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStart {
    pub identity: String,
    pub groups: Vec<String>,
    pub resource: String,
    pub client_addr: String,
    pub tls: bool,
    pub application_name: Option<String>,
    /// The policy that lets this session see unmasked values, when one
    /// does (absent: results were masked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmasked_by: Option<String>,
}

impl SessionStart {
    pub fn new(
        identity: &Identity,
        resource: impl Into<String>,
        client_addr: impl Into<String>,
        tls: bool,
        application_name: Option<String>,
    ) -> Self {
        SessionStart {
            identity: identity.name.clone(),
            groups: identity.groups.clone(),
            resource: resource.into(),
            client_addr: client_addr.into(),
            tls,
            application_name,
            unmasked_by: None,
        }
    }
}

/// `session_end`: why it ended and the session's totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnd {
    /// Free text such as `client_terminate`, `client_disconnect`,
    /// `backend_error`, `shutdown`.
    pub reason: String,
    pub duration_ms: u64,
    pub statements: u64,
    pub rows: u64,
    pub bytes: u64,
}

/// The approval a statement ran under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRef {
    pub request_id: String,
    pub approvers: Vec<String>,
}

/// `statement`: one command as the client sent it, recorded before it is
/// forwarded (denied ones too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementRecord {
    /// The exact text the client sent.
    pub text: String,
    /// Extended-protocol parameters; see [`encode_param`].
    pub params: Vec<Option<String>>,
    pub origin: CommandOrigin,
    /// The classification of each statement in `text`.
    pub statements: Vec<Statement>,
    pub decision: Decision,
    pub approval: Option<ApprovalRef>,
}

/// Prefix of a parameter that was sent in binary format (or was not valid
/// UTF-8): the rest is lowercase hex, as PostgreSQL prints a `bytea`.
pub const BINARY_PARAM_PREFIX: &str = "\\x";

/// How a wire parameter is recorded: `None` for SQL NULL; a text-format value
/// that is valid UTF-8 as-is; anything else (binary format, or bytes that are
/// not UTF-8) as `\x` followed by hex. A text value that itself starts with
/// `\x` is recorded as-is, which is also how PostgreSQL writes such a bytea
/// in text format, so the ambiguity is only for non-bytea text that happens
/// to start with a backslash and an `x`.
pub fn encode_param(binary: bool, value: Option<&[u8]>) -> Option<String> {
    let value = value?;
    if !binary {
        if let Ok(text) = std::str::from_utf8(value) {
            return Some(text.to_owned());
        }
    }
    Some(format!("{BINARY_PARAM_PREFIX}{}", hex::encode(value)))
}

/// How a statement ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseStatus {
    /// The backend's CommandComplete tag, e.g. `SELECT 3`.
    CommandTag(String),
    /// An ErrorResponse, from the backend or from the gateway (a deny).
    Error { sqlstate: String, message: String },
    /// An empty query string.
    Empty,
    /// The Execute's row limit was reached; the portal can continue.
    Suspended,
    /// Never ran: an earlier message of its extended-protocol batch failed.
    Skipped,
    /// An HTTP response (Kubernetes, S3): its status code.
    Http { status: u16 },
}

/// `response`: what came back for a statement, after masking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseRecord {
    /// Seq of the `statement` record this answers.
    pub statement_seq: u64,
    pub status: ResponseStatus,
    pub rows: u64,
    pub bytes: u64,
    pub duration_us: u64,
    /// The content as the client received it (masked), capped at
    /// `AuditConfig::response_content_cap` bytes by `append`.
    pub content: String,
    /// `content` was cut at the cap.
    pub truncated: bool,
}

impl ResponseRecord {
    /// Cut `content` to at most `cap` bytes on a character boundary, setting
    /// `truncated` when something was dropped.
    pub fn cap_content(&mut self, cap: usize) {
        if sluice_core::truncate_at_char_boundary(&mut self.content, cap) {
            self.truncated = true;
        }
    }
}

/// `stream`: bytes that passed on one stream of an interactive command
/// (`kubectl exec`'s stdin, stdout, stderr; a port-forward's data), in
/// order, output masked as the client received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRecord {
    /// Seq of the `statement` record of the command the stream belongs to.
    pub statement_seq: u64,
    /// `stdin`, `stdout`, `stderr`, `error`, `resize`, `data`, ...
    pub stream: String,
    /// `in` (from the client) or `out` (to the client).
    pub direction: String,
    /// The bytes as text (invalid UTF-8 replaced), capped like response
    /// content.
    pub data: String,
    pub bytes: u64,
    #[serde(default)]
    pub truncated: bool,
}

impl StreamRecord {
    /// Cut `data` to at most `cap` bytes on a character boundary.
    pub fn cap_data(&mut self, cap: usize) {
        if sluice_core::truncate_at_char_boundary(&mut self.data, cap) {
            self.truncated = true;
        }
    }
}

/// `approval`: one event in the life of an approval request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalEvent {
    pub request_id: String,
    /// e.g. `requested`, `approved`, `rejected`, `expired`, `consumed`.
    pub event: String,
    pub actor: String,
    pub comment: Option<String>,
}

/// What a prune removed, signed into the checkpoint that marks the new start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneMark {
    /// Records older than this were pruned.
    pub before: Timestamp,
    /// The first retained seq: every seq below it was authorised to go.
    pub first_seq: u64,
    /// The hash of record `first_seq - 1`, i.e. the `prev_hash` the retained
    /// chain starts from.
    pub prev_hash: String,
}

/// `checkpoint`: the chain head signed with the gateway's Ed25519 key.
/// Written by the log itself (every N records or seconds, on flush, on prune).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The record this checkpoint signs: always `seq - 1` of the checkpoint.
    pub head_seq: u64,
    pub head_hash: String,
    /// Hex Ed25519 signature over [`crate::chain::checkpoint_message`].
    pub signature: String,
    /// Hex Ed25519 public key that made the signature.
    pub public_key: String,
    /// Set when this checkpoint was written by a prune.
    pub pruned_before: Option<PruneMark>,
}

/// Record kinds, as written in the `kind` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    SessionStart,
    SessionEnd,
    Statement,
    Response,
    Approval,
    Checkpoint,
    Stream,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SessionStart => "session_start",
            Kind::SessionEnd => "session_end",
            Kind::Statement => "statement",
            Kind::Response => "response",
            Kind::Approval => "approval",
            Kind::Checkpoint => "checkpoint",
            Kind::Stream => "stream",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        [
            Kind::SessionStart,
            Kind::SessionEnd,
            Kind::Statement,
            Kind::Response,
            Kind::Approval,
            Kind::Checkpoint,
            Kind::Stream,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record's typed content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    SessionStart(SessionStart),
    SessionEnd(SessionEnd),
    Statement(StatementRecord),
    Response(ResponseRecord),
    Approval(ApprovalEvent),
    Checkpoint(Checkpoint),
    Stream(StreamRecord),
}

impl Body {
    pub fn kind(&self) -> Kind {
        match self {
            Body::SessionStart(_) => Kind::SessionStart,
            Body::SessionEnd(_) => Kind::SessionEnd,
            Body::Statement(_) => Kind::Statement,
            Body::Response(_) => Kind::Response,
            Body::Approval(_) => Kind::Approval,
            Body::Checkpoint(_) => Kind::Checkpoint,
            Body::Stream(_) => Kind::Stream,
        }
    }

    /// The compact JSON that is stored and hashed.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        match self {
            Body::SessionStart(b) => serde_json::to_string(b),
            Body::SessionEnd(b) => serde_json::to_string(b),
            Body::Statement(b) => serde_json::to_string(b),
            Body::Response(b) => serde_json::to_string(b),
            Body::Approval(b) => serde_json::to_string(b),
            Body::Checkpoint(b) => serde_json::to_string(b),
            Body::Stream(b) => serde_json::to_string(b),
        }
    }

    pub fn from_json(kind: Kind, json: &str) -> Result<Body, serde_json::Error> {
        Ok(match kind {
            Kind::SessionStart => Body::SessionStart(serde_json::from_str(json)?),
            Kind::SessionEnd => Body::SessionEnd(serde_json::from_str(json)?),
            Kind::Statement => Body::Statement(serde_json::from_str(json)?),
            Kind::Response => Body::Response(serde_json::from_str(json)?),
            Kind::Approval => Body::Approval(serde_json::from_str(json)?),
            Kind::Checkpoint => Body::Checkpoint(serde_json::from_str(json)?),
            Kind::Stream => Body::Stream(serde_json::from_str(json)?),
        })
    }
}

macro_rules! body_from {
    ($($ty:ident => $variant:ident),*) => {$(
        impl From<$ty> for Body {
            fn from(b: $ty) -> Body {
                Body::$variant(b)
            }
        }
    )*};
}
body_from!(SessionStart => SessionStart, SessionEnd => SessionEnd, StatementRecord => Statement,
    ResponseRecord => Response, ApprovalEvent => Approval, Checkpoint => Checkpoint,
    StreamRecord => Stream);

/// A record exactly as stored: every field as the text that was hashed. This
/// is what verification and export work on, so they never depend on being
/// able to decode a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub seq: u64,
    pub time: String,
    pub session: String,
    pub kind: String,
    pub body: String,
    pub prev_hash: String,
    pub hash: String,
}

/// One line of a JSONL export (and the JSON form of a [`Record`]): the body
/// is embedded as raw JSON so its bytes survive the round trip.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireRecord<'a> {
    pub seq: u64,
    #[serde(borrow)]
    pub time: Cow<'a, str>,
    #[serde(borrow)]
    pub session: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub body: &'a RawValue,
    #[serde(borrow)]
    pub prev_hash: Cow<'a, str>,
    #[serde(borrow)]
    pub hash: Cow<'a, str>,
}

impl RawRecord {
    /// The export line (without the newline). Fails only if the stored body
    /// is not JSON, i.e. the database was edited.
    pub fn to_json_line(&self) -> Result<String, crate::AuditError> {
        let body: Box<RawValue> =
            RawValue::from_string(self.body.clone()).map_err(|e| crate::AuditError::Corrupt {
                seq: self.seq,
                reason: format!("body is not JSON: {e}"),
            })?;
        let wire = WireRecord {
            seq: self.seq,
            time: Cow::Borrowed(&self.time),
            session: Cow::Borrowed(&self.session),
            kind: Cow::Borrowed(&self.kind),
            body: &body,
            prev_hash: Cow::Borrowed(&self.prev_hash),
            hash: Cow::Borrowed(&self.hash),
        };
        Ok(serde_json::to_string(&wire)?)
    }

    /// Parse one export line, keeping the body bytes exactly.
    pub fn from_json_line(line: &str) -> Result<RawRecord, serde_json::Error> {
        let w: WireRecord<'_> = serde_json::from_str(line)?;
        Ok(RawRecord {
            seq: w.seq,
            time: w.time.into_owned(),
            session: w.session.into_owned(),
            kind: w.kind.into_owned(),
            body: w.body.get().to_owned(),
            prev_hash: w.prev_hash.into_owned(),
            hash: w.hash.into_owned(),
        })
    }

    /// The typed view; fails on an unknown kind or a body that does not decode.
    pub fn decode(&self) -> Result<Record, crate::AuditError> {
        let corrupt = |reason: String| crate::AuditError::Corrupt {
            seq: self.seq,
            reason,
        };
        let kind = Kind::from_name(&self.kind)
            .ok_or_else(|| corrupt(format!("unknown kind {:?}", self.kind)))?;
        let time = self
            .time
            .parse()
            .map_err(|_| corrupt(format!("bad time {:?}", self.time)))?;
        let body =
            Body::from_json(kind, &self.body).map_err(|e| corrupt(format!("{kind} body: {e}")))?;
        Ok(Record {
            seq: self.seq,
            time,
            session: self.session.clone(),
            body,
            body_json: self.body.clone(),
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
        })
    }
}

/// A decoded record. Serializes to the same JSON as an export line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub time: Timestamp,
    pub session: String,
    pub body: Body,
    /// The exact body bytes that were hashed.
    pub body_json: String,
    pub prev_hash: String,
    pub hash: String,
}

impl Record {
    pub fn kind(&self) -> Kind {
        self.body.kind()
    }

    /// Back to the stored form (for export or re-verification).
    pub fn to_raw(&self) -> RawRecord {
        RawRecord {
            seq: self.seq,
            time: self.time.to_string(),
            session: self.session.clone(),
            kind: self.kind().as_str().to_owned(),
            body: self.body_json.clone(),
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
        }
    }
}

impl Serialize for Record {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let body =
            RawValue::from_string(self.body_json.clone()).map_err(serde::ser::Error::custom)?;
        let time = self.time.to_string();
        WireRecord {
            seq: self.seq,
            time: Cow::Borrowed(&time),
            session: Cow::Borrowed(&self.session),
            kind: Cow::Borrowed(self.kind().as_str()),
            body: &body,
            prev_hash: Cow::Borrowed(&self.prev_hash),
            hash: Cow::Borrowed(&self.hash),
        }
        .serialize(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn params_text_binary_and_null() {
        assert_eq!(encode_param(false, Some(b"42")), Some("42".into()));
        assert_eq!(
            encode_param(true, Some(&[0, 0, 0, 42])),
            Some("\\x0000002a".into())
        );
        assert_eq!(
            encode_param(false, Some(&[0xff, 0xfe])),
            Some("\\xfffe".into())
        );
        assert_eq!(encode_param(true, None), None);
    }

    #[test]
    fn cap_content_respects_char_boundaries() {
        let mut r = ResponseRecord {
            statement_seq: 1,
            status: ResponseStatus::CommandTag("SELECT 1".into()),
            rows: 1,
            bytes: 10,
            duration_us: 5,
            content: "ééé".into(),
            truncated: false,
        };
        r.cap_content(3);
        assert_eq!(r.content, "é");
        assert!(r.truncated);
    }

    #[test]
    fn export_line_keeps_body_bytes() {
        let raw = RawRecord {
            seq: 7,
            time: "2024-05-01T12:00:00.000000Z".into(),
            session: "s-\"quoted\"".into(),
            kind: "approval".into(),
            body: r#"{"request_id":"r","event":"approved","actor":"ann","comment":"ok \u00e9"}"#
                .into(),
            prev_hash: "00".repeat(32),
            hash: "11".repeat(32),
        };
        let line = raw.to_json_line().unwrap();
        assert_eq!(RawRecord::from_json_line(&line).unwrap(), raw);
        let rec = raw.decode().unwrap();
        assert_eq!(serde_json::to_string(&rec).unwrap(), line);
    }
}
