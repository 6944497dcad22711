//! The listener of an HTTP front: accepts connections (TLS with ALPN h2
//! and http/1.1, or plain HTTP on loopback), serves each with hyper, and
//! keeps one gate per identity per connection, ended with the connection.

use crate::gate::{HttpGate, HttpGates};
use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sha2::{Digest, Sha256};
use sluice_core::Identity;
use sluice_core::SessionInfo;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

/// Bounds on what a client may send and Sluice will hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_request_bytes: usize,
    /// Most bytes of one JSON document held to mask it whole.
    pub max_response_bytes: usize,
    /// For the request line and headers (slowloris).
    pub header_timeout: Duration,
    /// For the whole request body.
    pub body_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Client connections served at once; more are closed at accept.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 8 << 20,
            max_response_bytes: 256 << 20,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            max_connections: 4096,
        }
    }
}

/// One protocol front as the listener serves it.
pub trait Front: Send + Sync + 'static {
    type Gate: HttpGate;
    type Body: http_body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static;
    /// The protocol, for the log ("Kubernetes", "S3").
    const PROTOCOL: &'static str;
    fn gates(&self) -> &dyn HttpGates<Gate = Self::Gate>;
    fn resource(&self) -> &str;
    fn limits(&self) -> Limits;
    /// Serves one request on `conn`.
    fn handle(
        self: Arc<Self>,
        conn: Arc<Connection<Self::Gate>>,
        req: Request<Incoming>,
    ) -> impl std::future::Future<Output = Response<Self::Body>> + Send;
}

type Sessions<G> = HashMap<String, Arc<Mutex<G>>>;

/// A client connection: its peer, the keys it proved (checked again every
/// [`REVERIFY`], so a revoked key stops working on an open connection
/// too), the sessions opened on it (one per identity), and whether it is
/// in use.
pub struct Connection<G: HttpGate> {
    pub peer: SocketAddr,
    pub tls: bool,
    identities: Mutex<HashMap<[u8; 32], (Identity, Instant)>>,
    /// Tokens that proved nothing, and how many times one was tried.
    refused: Mutex<(HashSet<[u8; 32]>, usize)>,
    sessions: Mutex<Sessions<G>>,
    activity: Activity,
}

/// Bounds the keys proved on one connection: a client cycling through
/// keys gets refused rather than growing the map.
const SESSIONS_PER_CONNECTION: usize = 16;
/// How long a proved key is trusted on a connection before it is checked
/// again.
pub const REVERIFY: Duration = Duration::from_secs(30);
/// Failed authentications after which a connection is closed (each costs
/// a key derivation).
const MAX_FAILURES: usize = 8;

/// Whether a connection is in use, for closing idle ones.
struct Activity {
    in_flight: AtomicUsize,
    any: AtomicBool,
    last: Mutex<Instant>,
    opened: Instant,
    close: Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            in_flight: AtomicUsize::new(0),
            any: AtomicBool::new(false),
            last: Mutex::new(Instant::now()),
            opened: Instant::now(),
            close: Notify::new(),
        }
    }

    fn begin(&self) {
        self.any.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut last) = self.last.lock() {
            *last = Instant::now();
        }
    }

    /// No first request within the header timeout, or nothing in flight
    /// for the idle timeout.
    fn expired(&self, limits: &Limits) -> bool {
        if !self.any.load(Ordering::Relaxed) {
            return self.opened.elapsed() > limits.header_timeout;
        }
        self.in_flight.load(Ordering::Relaxed) == 0
            && self
                .last
                .lock()
                .is_ok_and(|l| l.elapsed() > limits.idle_timeout)
    }
}

impl<G: HttpGate> Connection<G> {
    /// The identity `token` proves by `lookup` (which may block: it runs
    /// off the runtime), remembered on this connection for [`REVERIFY`];
    /// `None` for a token that proves nothing (after [`MAX_FAILURES`] of
    /// those the connection closes).
    pub async fn identity(
        &self,
        token: &str,
        lookup: impl FnOnce(String) -> Option<Identity> + Send + 'static,
    ) -> Option<Identity> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((id, at)) = self.identities.lock().ok()?.get(&key) {
            if at.elapsed() < REVERIFY {
                return Some(id.clone());
            }
        }
        if self.refused.lock().ok()?.0.contains(&key) {
            return None;
        }
        let t = token.to_owned();
        let found = tokio::task::spawn_blocking(move || lookup(t))
            .await
            .ok()
            .flatten();
        let Some(identity) = found else {
            self.identities.lock().ok()?.remove(&key);
            let mut refused = self.refused.lock().ok()?;
            if refused.0.len() < SESSIONS_PER_CONNECTION {
                refused.0.insert(key);
            }
            drop(refused);
            self.refused();
            return None;
        };
        let mut ids = self.identities.lock().ok()?;
        if ids.len() >= SESSIONS_PER_CONNECTION && !ids.contains_key(&key) {
            warn!(peer = %self.peer, "too many keys on one connection");
            return None;
        }
        ids.insert(key, (identity.clone(), Instant::now()));
        Some(identity)
    }

    /// Counts a failed authentication: after [`MAX_FAILURES`] the
    /// connection closes (each one may have cost a key derivation).
    pub fn refused(&self) {
        if let Ok(mut refused) = self.refused.lock() {
            refused.1 += 1;
            if refused.1 >= MAX_FAILURES {
                warn!(peer = %self.peer, "closing a connection after {MAX_FAILURES} failed authentications");
                self.activity.close.notify_one();
            }
        }
    }

    /// The session of `identity` on this connection, opened on first use.
    pub fn gate<F: Front<Gate = G>>(
        &self,
        front: &F,
        identity: &Identity,
        user_agent: Option<&str>,
    ) -> Option<Arc<Mutex<G>>> {
        // Groups are part of who the session is: a key of the same name
        // with other groups is another session.
        let key = format!("{}\0{}", identity.name, identity.groups.join(","));
        let mut sessions = self.sessions.lock().ok()?;
        if let Some(gate) = sessions.get(&key) {
            return Some(gate.clone());
        }
        let gate = Arc::new(Mutex::new(front.gates().open(&SessionInfo {
            identity,
            resource: front.resource(),
            peer: self.peer,
            tls: self.tls,
            client: user_agent,
        })));
        sessions.insert(key, gate.clone());
        Some(gate)
    }

    fn end(&self, reason: &str) {
        if let Ok(mut sessions) = self.sessions.lock() {
            for (_, gate) in sessions.drain() {
                if let Ok(mut g) = gate.lock() {
                    g.on_end(reason);
                }
            }
        }
    }
}

/// Serves until `shutdown` turns true, then lets open connections finish
/// their requests for `grace`.
pub async fn serve<F: Front>(
    front: Arc<F>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    if let Ok(addr) = listener.local_addr() {
        match &tls {
            Some(_) => {
                info!(%addr, resource = front.resource(), "listening for {} clients (HTTPS, HTTP/2 and HTTP/1.1)", F::PROTOCOL)
            }
            None => {
                warn!(%addr, resource = front.resource(), "listening for {} clients over PLAIN HTTP (loopback, no [server] tls_cert)", F::PROTOCOL)
            }
        }
    }
    let mut conns = JoinSet::new();
    let slots = Arc::new(Semaphore::new(front.limits().max_connections));
    loop {
        tokio::select! {
            () = stopping(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        warn!(%peer, max = front.limits().max_connections, "too many {} connections: closing a new one", F::PROTOCOL);
                        continue;
                    };
                    let task = connection(front.clone(), tls.clone(), tcp, peer, shutdown.clone());
                    conns.spawn(async move {
                        task.await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        conns.abort_all();
    }
}

async fn connection<F: Front>(
    front: Arc<F>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let conn = Arc::new(Connection {
        peer,
        tls: tls.is_some(),
        identities: Mutex::new(HashMap::new()),
        refused: Mutex::new((HashSet::new(), 0)),
        sessions: Mutex::new(HashMap::new()),
        activity: Activity::new(),
    });
    let limits = front.limits();
    let service = {
        let (front, conn) = (front.clone(), conn.clone());
        service_fn(move |req| {
            let (front, conn) = (front.clone(), conn.clone());
            async move {
                conn.activity.begin();
                let response = front.handle(conn.clone(), req).await;
                conn.activity.end();
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let result = match tls {
        Some(acceptor) => {
            let stream =
                match tokio::time::timeout(limits.header_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let served = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            drive(served, &mut shutdown, &conn.activity, &limits).await
        }
        None => {
            let served = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
            drive(served, &mut shutdown, &conn.activity, &limits).await
        }
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "connection ended with an error");
    }
    conn.end(if *shutdown.borrow() {
        "shutdown"
    } else {
        "client_disconnect"
    });
}

/// Serves a connection; asks it to finish gracefully on shutdown, when it
/// sat idle too long, or when it failed to authenticate too often.
async fn drive<C>(
    served: C,
    shutdown: &mut watch::Receiver<bool>,
    activity: &Activity,
    limits: &Limits,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    C: std::future::Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>
        + GracefulShutdown,
{
    let mut served = std::pin::pin!(served);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            r = served.as_mut() => return r,
            () = stopping(shutdown) => break,
            () = activity.close.notified() => break,
            _ = tick.tick() => if activity.expired(limits) {
                debug!("closing an idle connection");
                break;
            },
        }
    }
    served.as_mut().graceful();
    served.await
}

/// Resolves once shutdown starts (or its sender is gone).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// hyper-util's connections that can be asked to finish.
pub trait GracefulShutdown {
    fn graceful(self: std::pin::Pin<&mut Self>);
}

impl<I, S, E> GracefulShutdown
    for hyper_util::server::conn::auto::UpgradeableConnection<'_, I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: hyper::body::Body + Send + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn graceful(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}
