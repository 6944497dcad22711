//! The client's side of connection start: TLS negotiation, the startup
//! packet, and proving a Sluice identity. Nothing here talks to a backend.

use crate::codec::{self, StartupPacket, PROTOCOL_3_0};
use crate::error::ProtocolError;
use crate::frames::FrameReader;
use crate::messages::{self, sqlstate, PgErrorReply};
use crate::stream::Stream;
use bytes::BytesMut;
use sluice_auth::{Authenticated, Credentials, KeyStore, ScramServer};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why a connection did not get through startup. `reply` is what the
/// client is told (when it can still be told anything); `log` is for the
/// operator and may say more than the client should learn.
#[derive(Debug)]
pub struct Rejection {
    pub reply: Option<PgErrorReply>,
    pub log: String,
}

impl Rejection {
    pub fn tell(reply: PgErrorReply) -> Self {
        let log = reply.message.clone();
        Self {
            reply: Some(reply),
            log,
        }
    }

    pub fn logged(reply: PgErrorReply, log: impl Into<String>) -> Self {
        Self {
            reply: Some(reply),
            log: log.into(),
        }
    }

    fn silent(log: impl Into<String>) -> Self {
        Self {
            reply: None,
            log: log.into(),
        }
    }

    fn protocol(e: ProtocolError) -> Self {
        Self::tell(PgErrorReply::fatal(
            sqlstate::PROTOCOL_VIOLATION,
            format!("invalid startup packet: {e}"),
        ))
    }
}

/// What the first packets asked for.
pub enum Hello {
    Startup {
        params: Vec<(String, String)>,
        protocol_minor: i32,
    },
    Cancel {
        pid: i32,
        secret: i32,
    },
}

/// Reads packets until a startup or cancel request, answering SSLRequest
/// (upgrading `slot` in place) and declining GSSENCRequest.
pub async fn hello(
    slot: &mut Option<Stream>,
    tls: Option<&tokio_rustls::TlsAcceptor>,
) -> Result<Hello, Rejection> {
    loop {
        let stream = slot
            .as_mut()
            .ok_or_else(|| Rejection::silent("connection lost during TLS negotiation"))?;
        let packet = read_startup_packet(stream).await?;
        match packet {
            StartupPacket::SslRequest if !stream.is_tls() => match tls {
                Some(acceptor) => {
                    write_raw(stream, b"S").await?;
                    let Some(Stream::Plain(tcp)) = slot.take() else {
                        return Err(Rejection::silent("TLS requested on a non-plain stream"));
                    };
                    let tls = acceptor.accept(tcp).await.map_err(|e| {
                        Rejection::silent(format!("client TLS handshake failed: {e}"))
                    })?;
                    *slot = Some(Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(tls))));
                }
                None => write_raw(stream, b"N").await?,
            },
            StartupPacket::SslRequest => {
                return Err(Rejection::tell(PgErrorReply::fatal(
                    sqlstate::PROTOCOL_VIOLATION,
                    "SSLRequest received on an encrypted connection",
                )))
            }
            StartupPacket::GssEncRequest if !stream.is_tls() => write_raw(stream, b"N").await?,
            StartupPacket::GssEncRequest => {
                return Err(Rejection::tell(PgErrorReply::fatal(
                    sqlstate::PROTOCOL_VIOLATION,
                    "GSSENCRequest received on an encrypted connection",
                )))
            }
            StartupPacket::Cancel { pid, secret } => return Ok(Hello::Cancel { pid, secret }),
            StartupPacket::Startup { version, params } => {
                if version >> 16 != PROTOCOL_3_0 >> 16 {
                    return Err(Rejection::tell(PgErrorReply::fatal(
                        sqlstate::FEATURE_NOT_SUPPORTED,
                        format!(
                            "unsupported frontend protocol {}.{}: Sluice supports 3.0",
                            version >> 16,
                            version & 0xffff
                        ),
                    )));
                }
                return Ok(Hello::Startup {
                    params,
                    protocol_minor: version & 0xffff,
                });
            }
        }
    }
}

async fn write_raw(stream: &mut Stream, bytes: &[u8]) -> Result<(), Rejection> {
    stream
        .write_all(bytes)
        .await
        .map_err(|e| Rejection::silent(format!("client I/O error: {e}")))?;
    stream
        .flush()
        .await
        .map_err(|e| Rejection::silent(format!("client I/O error: {e}")))
}

pub async fn send(stream: &mut Stream, out: &[u8]) -> Result<(), Rejection> {
    write_raw(stream, out).await
}

async fn read_startup_packet(stream: &mut Stream) -> Result<StartupPacket, Rejection> {
    let len = match stream.read_i32().await {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(Rejection::silent("incomplete startup packet"))
        }
        Err(e) => return Err(Rejection::silent(format!("client I/O error: {e}"))),
    };
    if len < 8 || len as usize > codec::MAX_STARTUP_PACKET {
        // The packet has no tag byte, so ProtocolError::BadLength's wording
        // (which names one) does not fit.
        return Err(Rejection::tell(PgErrorReply::fatal(
            sqlstate::PROTOCOL_VIOLATION,
            format!("invalid length of startup packet: {len} bytes"),
        )));
    }
    let mut buf = vec![0u8; len as usize];
    buf[..4].copy_from_slice(&len.to_be_bytes());
    stream
        .read_exact(&mut buf[4..])
        .await
        .map_err(|_| Rejection::silent("incomplete startup packet"))?;
    codec::parse_startup(&buf).map_err(Rejection::protocol)
}

/// Startup parameters passed on to the backend: formatting, planner,
/// memory and timeout settings, whatever their value. A startup parameter
/// takes effect before the first statement, out of the gateway's sight, so
/// only settings that cannot change who the session is, what it may do,
/// how names resolve (`search_path`) or how statement text reads are here.
/// Everything else (`options`, `role`, `session_authorization`,
/// `search_path`, `session_replication_role`, `transform_null_equals`, an
/// unknown name ...) is refused, naming the parameter: an explicit list
/// fails closed on settings added by newer servers. The README lists them.
const PASSTHROUGH: &[&str] = &[
    // How values are written and read.
    "application_name",
    "client_encoding",
    "datestyle",
    "timezone",
    "intervalstyle",
    "extra_float_digits",
    "bytea_output",
    "client_min_messages",
    "standard_conforming_strings",
    "escape_string_warning",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
    // Limits.
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "idle_session_timeout",
    // Transaction defaults.
    "default_transaction_isolation",
    "default_transaction_read_only",
    "default_transaction_deferrable",
    // Memory.
    "work_mem",
    "maintenance_work_mem",
    "hash_mem_multiplier",
    "temp_buffers",
    // The planner: which plan runs, never what it computes.
    "geqo",
    "geqo_threshold",
    "geqo_effort",
    "geqo_pool_size",
    "geqo_generations",
    "geqo_selection_bias",
    "geqo_seed",
    "enable_async_append",
    "enable_bitmapscan",
    "enable_gathermerge",
    "enable_group_by_reordering",
    "enable_hashagg",
    "enable_hashjoin",
    "enable_incremental_sort",
    "enable_indexonlyscan",
    "enable_indexscan",
    "enable_material",
    "enable_memoize",
    "enable_mergejoin",
    "enable_nestloop",
    "enable_parallel_append",
    "enable_parallel_hash",
    "enable_partition_pruning",
    "enable_partitionwise_aggregate",
    "enable_partitionwise_join",
    "enable_presorted_aggregate",
    "enable_seqscan",
    "enable_sort",
    "enable_tidscan",
    "seq_page_cost",
    "random_page_cost",
    "cpu_tuple_cost",
    "cpu_index_tuple_cost",
    "cpu_operator_cost",
    "parallel_setup_cost",
    "parallel_tuple_cost",
    "min_parallel_table_scan_size",
    "min_parallel_index_scan_size",
    "effective_cache_size",
    "max_parallel_workers_per_gather",
    "from_collapse_limit",
    "join_collapse_limit",
    "cursor_tuple_fraction",
    "constraint_exclusion",
    "default_statistics_target",
    "plan_cache_mode",
    "jit",
];

/// Client encodings in which a byte below 0x80 can be the second half of a
/// character (PostgreSQL's client-only encodings, by every alias, names
/// folded as the server folds them). Sluice reads statement text as UTF-8:
/// under one of these the backend could read a quote or a backslash that
/// Sluice's parser sees as part of a character, so the two would disagree
/// on where a string literal ends.
const SPLIT_BYTE_ENCODINGS: &[&str] = &[
    "big5",
    "win950",
    "windows950",
    "gb18030",
    "gbk",
    "cp936",
    "win936",
    "windows936",
    "johab",
    "sjis",
    "shiftjis",
    "mskanji",
    "win932",
    "windows932",
    "shiftjis2004",
    "uhc",
    "win949",
    "windows949",
];

/// Whether `value` of the passed-through parameter `name` keeps statement
/// text reading the same to the backend as to Sluice's parser.
fn value_allowed(name: &str, value: &str) -> bool {
    match name {
        "client_encoding" => {
            let folded: String = value
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_lowercase())
                .collect();
            !SPLIT_BYTE_ENCODINGS.contains(&folded.as_str())
        }
        // Off, a backslash in '...' escapes the quote: not what the parser sees.
        "standard_conforming_strings" => matches!(
            value.trim().to_ascii_lowercase().as_str(),
            "on" | "true" | "yes" | "1"
        ),
        _ => true,
    }
}

/// The validated startup options of a client.
pub struct StartupParams {
    pub user: String,
    pub database: String,
    pub passthrough: Vec<(String, String)>,
    /// `_pq_.` protocol options the client asked for, none of which we support.
    pub unsupported_options: Vec<String>,
}

pub fn check_params(params: Vec<(String, String)>) -> Result<StartupParams, Rejection> {
    let mut user = None;
    let mut database = None;
    let mut passthrough = Vec::new();
    let mut unsupported_options = Vec::new();
    for (name, value) in params {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "user" => user = Some(value),
            "database" => database = Some(value),
            "replication" => {
                return Err(Rejection::tell(PgErrorReply::fatal(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    "replication connections are not supported through Sluice",
                )))
            }
            _ if lower.starts_with("_pq_.") => unsupported_options.push(name),
            _ if PASSTHROUGH.contains(&lower.as_str()) => {
                if !value_allowed(&lower, &value) {
                    return Err(Rejection::tell(
                        PgErrorReply::fatal(
                            sqlstate::FEATURE_NOT_SUPPORTED,
                            format!(
                                "startup parameter \"{name}\" = \"{value}\" is not allowed through Sluice"
                            ),
                        )
                        .with_hint("It would make the server read statement text differently from Sluice."),
                    ));
                }
                passthrough.push((name, value));
            }
            _ => {
                return Err(Rejection::tell(
                    PgErrorReply::fatal(
                        sqlstate::FEATURE_NOT_SUPPORTED,
                        format!("startup parameter \"{name}\" is not allowed through Sluice"),
                    )
                    .with_hint("Set it with SET after connecting, where policy can see it."),
                ))
            }
        }
    }
    let user = user.filter(|u| !u.is_empty()).ok_or_else(|| {
        Rejection::tell(PgErrorReply::fatal(
            sqlstate::INVALID_AUTHORIZATION,
            "no PostgreSQL user name specified in startup packet",
        ))
    })?;
    let database = database
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| user.clone());
    Ok(StartupParams {
        user,
        database,
        passthrough,
        unsupported_options,
    })
}

/// How the client proves its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// SCRAM-SHA-256 everywhere: the key never crosses the wire.
    Scram,
    /// Cleartext password over TLS (SCRAM on a plain loopback connection).
    PasswordOverTls,
}

fn auth_failed(user: &str) -> PgErrorReply {
    PgErrorReply::fatal(
        sqlstate::INVALID_PASSWORD,
        format!("password authentication failed for user \"{user}\""),
    )
}

/// Runs the authentication exchange. Unknown identity, wrong key and
/// revoked key all end the same way, so a caller cannot tell which it was.
/// Returns the identity and the bytes the client sent past its last auth
/// message.
pub async fn authenticate(
    stream: &mut Stream,
    keys: &Arc<KeyStore>,
    user: &str,
    mode: ClientAuth,
) -> Result<(Authenticated, BytesMut), Rejection> {
    let lookup_keys = keys.clone();
    let name = user.to_owned();
    let credentials: Credentials =
        tokio::task::spawn_blocking(move || lookup_keys.credentials(&name))
            .await
            .map_err(|e| internal(format!("key lookup task failed: {e}")))?
            .map_err(|e| internal(format!("key store error: {e}")))?;
    let mut reader = FrameReader::new(16 * 1024);
    let mut out = BytesMut::new();
    let cleartext = mode == ClientAuth::PasswordOverTls && stream.is_tls();

    let outcome = if cleartext {
        messages::authentication_cleartext(&mut out);
        send(stream, &out).await?;
        let body = expect_password_message(stream, &mut reader).await?;
        let key = codec::Reader::new(&body)
            .cstr()
            .map_err(Rejection::protocol)?
            .to_owned();
        // PBKDF2 blocks for milliseconds: keep it off the async workers.
        tokio::task::spawn_blocking(move || sluice_auth::verify_cleartext(&credentials, &key))
            .await
            .map_err(|e| internal(format!("key check task failed: {e}")))?
            .ok_or_else(|| Rejection::tell(auth_failed(user)))?
    } else {
        messages::authentication_sasl(&mut out, &["SCRAM-SHA-256"]);
        send(stream, &out).await?;
        let mut scram = ScramServer::new(credentials);
        let body = expect_password_message(stream, &mut reader).await?;
        let mut r = codec::Reader::new(&body);
        let mechanism = r.cstr().map_err(Rejection::protocol)?;
        if mechanism != "SCRAM-SHA-256" {
            return Err(Rejection::tell(PgErrorReply::fatal(
                sqlstate::PROTOCOL_VIOLATION,
                format!("client selected an invalid SASL authentication mechanism \"{mechanism}\""),
            )));
        }
        let len = r.i32().map_err(Rejection::protocol)?;
        let data = r
            .bytes(usize::try_from(len).unwrap_or(0))
            .map_err(Rejection::protocol)?;
        let server_first = scram.client_first(data).map_err(|e| {
            Rejection::logged(
                auth_failed(user),
                format!("SCRAM client-first rejected: {e}"),
            )
        })?;
        out.clear();
        messages::authentication_sasl_continue(&mut out, &server_first);
        send(stream, &out).await?;
        let body = expect_password_message(stream, &mut reader).await?;
        let (who, server_final) = scram.client_final(&body).map_err(|e| {
            Rejection::logged(auth_failed(user), format!("SCRAM proof rejected: {e}"))
        })?;
        out.clear();
        messages::authentication_sasl_final(&mut out, &server_final);
        send(stream, &out).await?;
        who
    };
    Ok((outcome, reader.into_buffer()))
}

fn internal(log: String) -> Rejection {
    Rejection::logged(
        PgErrorReply::fatal(
            sqlstate::INTERNAL_ERROR,
            "Sluice internal error during authentication",
        ),
        log,
    )
}

async fn expect_password_message(
    stream: &mut Stream,
    reader: &mut FrameReader,
) -> Result<bytes::Bytes, Rejection> {
    match reader.next(stream).await {
        Ok((b'p', body)) => Ok(body),
        Ok((tag, _)) => Err(Rejection::protocol(ProtocolError::Unexpected {
            tag,
            during: "during authentication",
        })),
        Err(crate::frames::ReadError::Protocol(ProtocolError::Closed(_))) => Err(
            Rejection::silent("client closed the connection during authentication"),
        ),
        Err(crate::frames::ReadError::Protocol(p)) => Err(Rejection::protocol(p)),
        Err(crate::frames::ReadError::Io(e)) => {
            Err(Rejection::silent(format!("client I/O error: {e}")))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn params(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        [("user", "u"), ("database", "d")]
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn refusal(extra: &[(&str, &str)]) -> String {
        match check_params(params(extra)) {
            Ok(_) => panic!("{extra:?} was accepted"),
            Err(r) => r.reply.unwrap().message,
        }
    }

    #[test]
    fn planner_and_formatting_parameters_are_passed_through_in_any_case() {
        let p = check_params(params(&[
            ("geqo", "on"),
            ("DateStyle", "ISO, MDY"),
            ("enable_seqscan", "off"),
            ("work_mem", "64MB"),
            ("client_encoding", "UTF8"),
        ]))
        .unwrap();
        assert_eq!(p.passthrough.len(), 5);
        assert_eq!(p.passthrough[1], ("DateStyle".into(), "ISO, MDY".into()));
    }

    #[test]
    fn parameters_that_change_identity_or_name_resolution_are_refused_by_name() {
        for name in [
            "search_path",
            "role",
            "session_authorization",
            "options",
            "enable_anything",
        ] {
            assert_eq!(
                refusal(&[(name, "x")]),
                format!("startup parameter \"{name}\" is not allowed through Sluice")
            );
        }
    }

    #[test]
    fn values_that_make_the_server_read_text_differently_are_refused() {
        assert!(refusal(&[("client_encoding", "Shift_JIS")]).contains("client_encoding"));
        assert!(refusal(&[("client_encoding", "GBK")]).contains("GBK"));
        assert!(refusal(&[("standard_conforming_strings", "off")]).contains("off"));
        assert!(check_params(params(&[("client_encoding", "LATIN1")])).is_ok());
        assert!(check_params(params(&[("standard_conforming_strings", "on")])).is_ok());
    }
}
