//! The gateway's own connection to the target: it authenticates with the
//! credentials Sluice holds, which the client never sees.

use crate::error::{PgError, ProtocolError};
use crate::frames::{FrameReader, ReadError};
use crate::messages::frontend;
use crate::stream::Stream;
use bytes::{Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How to reach and log in to one target database.
#[derive(Clone)]
pub struct BackendTarget {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: Option<Secret>,
    pub tls: BackendTls,
    pub connect_timeout: Duration,
}

/// A secret that never shows up in `Debug` output or logs.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(s: impl Into<Arc<str>>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[derive(Clone)]
pub enum BackendTls {
    Disable,
    /// TLS with the server certificate verified against `config`'s roots
    /// and the name `server_name`.
    VerifyFull {
        config: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
    },
}

/// An authenticated backend connection, ready for queries.
pub struct Backend {
    pub stream: Stream,
    /// ParameterStatus values reported at startup, in order.
    pub parameters: Vec<(String, String)>,
    /// The backend's own cancel key; never shown to the client.
    pub pid: i32,
    pub secret: i32,
    /// Bytes the backend sent after ReadyForQuery (normally none).
    pub leftover: BytesMut,
}

fn backend_read(e: ReadError) -> PgError {
    match e {
        ReadError::Io(e) => PgError::BackendIo(e),
        ReadError::Protocol(p) => PgError::BackendProtocol(p),
    }
}

async fn open_stream(target: &BackendTarget) -> Result<Stream, PgError> {
    let addr = (target.host.as_str(), target.port);
    let tcp = tokio::time::timeout(target.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| PgError::Timeout("connecting to the backend"))?
        .map_err(PgError::BackendIo)?;
    let _ = tcp.set_nodelay(true);
    match &target.tls {
        BackendTls::Disable => Ok(Stream::Plain(tcp)),
        BackendTls::VerifyFull {
            config,
            server_name,
        } => {
            let mut tcp = tcp;
            let mut req = BytesMut::new();
            frontend::ssl_request(&mut req);
            tcp.write_all(&req).await.map_err(PgError::BackendIo)?;
            let answer = tcp.read_u8().await.map_err(PgError::BackendIo)?;
            if answer != b'S' {
                return Err(PgError::BackendTls(
                    "the server does not accept TLS connections".into(),
                ));
            }
            let connector = tokio_rustls::TlsConnector::from(config.clone());
            let tls = connector
                .connect(server_name.clone(), tcp)
                .await
                .map_err(|e| PgError::BackendTls(e.to_string()))?;
            Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Client(tls))))
        }
    }
}

/// Connects, logs in and waits for the first ReadyForQuery.
/// `client_params` are the startup options passed through from the client.
pub async fn connect(
    target: &BackendTarget,
    client_params: &[(String, String)],
    max_message: usize,
) -> Result<Backend, PgError> {
    let mut stream = open_stream(target).await?;
    let mut params: Vec<(&str, &str)> =
        vec![("user", &target.user), ("database", &target.database)];
    params.extend(client_params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut out = BytesMut::new();
    frontend::startup(&mut out, &params);
    stream.write_all(&out).await.map_err(PgError::BackendIo)?;

    let mut reader = FrameReader::new(max_message);
    let mut scram: Option<ScramSha256> = None;
    let mut parameters = Vec::new();
    let mut key = (0, 0);
    loop {
        let (tag, body) = reader.next(&mut stream).await.map_err(backend_read)?;
        out.clear();
        match tag {
            b'R' => {
                if let Some(reply) = authenticate_step(target, &body, &mut scram)? {
                    out.extend_from_slice(&reply);
                    stream.write_all(&out).await.map_err(PgError::BackendIo)?;
                }
            }
            b'S' => {
                let mut r = crate::codec::Reader::new(&body);
                let name = r.cstr().map_err(PgError::BackendProtocol)?;
                let value = r.cstr().map_err(PgError::BackendProtocol)?;
                parameters.push((name.to_owned(), value.to_owned()));
            }
            b'K' => {
                let mut r = crate::codec::Reader::new(&body);
                key = (
                    r.i32().map_err(PgError::BackendProtocol)?,
                    r.i32().map_err(PgError::BackendProtocol)?,
                );
            }
            b'Z' => {
                return Ok(Backend {
                    stream,
                    parameters,
                    pid: key.0,
                    secret: key.1,
                    leftover: reader.into_buffer(),
                });
            }
            b'E' => return Err(PgError::BackendRejected(error_message(&body))),
            // Notices and protocol negotiation during startup carry nothing the client needs.
            b'N' | b'v' => {}
            other => {
                return Err(PgError::BackendProtocol(ProtocolError::Unexpected {
                    tag: other,
                    during: "during startup",
                }))
            }
        }
    }
}

/// One authentication request from the backend; returns the reply to send, if any.
fn authenticate_step(
    target: &BackendTarget,
    body: &Bytes,
    scram: &mut Option<ScramSha256>,
) -> Result<Option<BytesMut>, PgError> {
    let mut r = crate::codec::Reader::new(body);
    let code = r.i32().map_err(PgError::BackendProtocol)?;
    let password = || {
        target
            .password
            .as_ref()
            .map(|p| p.expose().as_bytes())
            .ok_or_else(|| {
                PgError::BackendAuth("the server asks for a password and none is configured".into())
            })
    };
    let mut out = BytesMut::new();
    match code {
        0 => return Ok(None),
        3 => frontend::password(&mut out, password()?),
        5 => {
            let salt = r.bytes(4).map_err(PgError::BackendProtocol)?;
            let salt = [salt[0], salt[1], salt[2], salt[3]];
            let hash = postgres_protocol::authentication::md5_hash(
                target.user.as_bytes(),
                password()?,
                salt,
            );
            frontend::password(&mut out, hash.as_bytes());
        }
        10 => {
            let mut offers_scram = false;
            while let Ok(m) = r.cstr() {
                if m.is_empty() {
                    break;
                }
                offers_scram |= m == SCRAM_SHA_256;
            }
            if !offers_scram {
                return Err(PgError::BackendAuth(
                    "the server offers no SASL mechanism Sluice supports".into(),
                ));
            }
            let s = ScramSha256::new(password()?, ChannelBinding::unsupported());
            frontend::sasl_initial_response(&mut out, SCRAM_SHA_256, s.message());
            *scram = Some(s);
        }
        11 => {
            let s = scram
                .as_mut()
                .ok_or_else(|| PgError::BackendAuth("SASL continue before start".into()))?;
            s.update(r.remaining())
                .map_err(|e| PgError::BackendAuth(e.to_string()))?;
            frontend::sasl_response(&mut out, s.message());
        }
        12 => {
            let mut s = scram
                .take()
                .ok_or_else(|| PgError::BackendAuth("SASL final before start".into()))?;
            s.finish(r.remaining())
                .map_err(|e| PgError::BackendAuth(format!("server signature: {e}")))?;
            return Ok(None);
        }
        other => {
            return Err(PgError::BackendAuth(format!(
                "unsupported authentication method {other}"
            )))
        }
    }
    Ok(Some(out))
}

/// The 'M' field of an ErrorResponse body, for logs and client errors.
pub fn error_message(body: &[u8]) -> String {
    let (code, message) = crate::codec::error_fields(body);
    if code.is_empty() {
        message.to_owned()
    } else {
        format!("{message} (SQLSTATE {code})")
    }
}

/// Sends a CancelRequest for the backend process `pid` to the target.
/// Failures are only logged by the caller: a cancel is best effort in
/// PostgreSQL too.
pub async fn send_cancel(target: &BackendTarget, pid: i32, secret: i32) -> Result<(), PgError> {
    let mut stream = open_stream(target).await?;
    let mut out = BytesMut::new();
    frontend::cancel_request(&mut out, pid, secret);
    stream.write_all(&out).await.map_err(PgError::BackendIo)?;
    stream.flush().await.map_err(PgError::BackendIo)?;
    // The server closes the connection when done; wait briefly for that so
    // the request is not cut off by our close.
    let mut sink = [0u8; 16];
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut sink)).await;
    Ok(())
}
