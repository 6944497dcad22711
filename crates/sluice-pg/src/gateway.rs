//! One accepted client connection from first byte to close: startup, who
//! is this, which resource, connection limits, the backend login, then the
//! proxy session.

use crate::backend::{self, BackendTarget};
use crate::cancel::CancelRegistry;
use crate::error::PgError;
use crate::gate::{Gate, GateFactory, SessionInfo};
use crate::messages::{self, sqlstate, PgErrorReply};
use crate::session::{Session, SessionLimits, ShutdownState, Side, Signals};
use crate::startup::{self, ClientAuth, Hello, Rejection};
use crate::stream::Stream;
use bytes::BytesMut;
use sluice_auth::KeyStore;
use sluice_core::{Identity, ResourceId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{info, warn, Instrument};

/// A target clients can name in `dbname`.
pub struct Resource {
    pub id: ResourceId,
    pub target: Arc<BackendTarget>,
    pub max_connections: Option<usize>,
}

pub struct GatewayConfig {
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Refuse connections that did not negotiate TLS.
    pub require_tls: bool,
    pub client_auth: ClientAuth,
    /// Deadline for a client to complete startup and authentication.
    pub startup_timeout: Duration,
    pub max_client_message: usize,
    pub max_backend_message: usize,
    pub max_connections_per_identity: Option<usize>,
}

pub struct Gateway<F: GateFactory> {
    config: GatewayConfig,
    resources: HashMap<String, Arc<Resource>>,
    keys: Arc<KeyStore>,
    cancels: CancelRegistry,
    /// Catalog names masking rules need, per resource.
    catalogs: Arc<crate::mask::CatalogCache>,
    counts: Arc<Mutex<Counts>>,
    shutdown: watch::Receiver<ShutdownState>,
    next_session: AtomicU64,
    gates: F,
}

#[derive(Default)]
struct Counts {
    per_resource: HashMap<String, usize>,
    per_identity: HashMap<String, usize>,
}

/// A held connection slot; released on drop.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    resource: String,
    identity: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = match self.counts.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        let c = &mut *c;
        release(&mut c.per_resource, &self.resource);
        release(&mut c.per_identity, &self.identity);
    }
}

fn release(map: &mut HashMap<String, usize>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl<F: GateFactory> Gateway<F> {
    pub fn new(
        config: GatewayConfig,
        resources: Vec<Resource>,
        keys: Arc<KeyStore>,
        gates: F,
        shutdown: watch::Receiver<ShutdownState>,
    ) -> Self {
        let resources = resources
            .into_iter()
            .map(|r| (r.id.0.clone(), Arc::new(r)))
            .collect();
        Self {
            config,
            resources,
            keys,
            cancels: CancelRegistry::default(),
            catalogs: Arc::default(),
            counts: Arc::default(),
            shutdown,
            next_session: AtomicU64::new(1),
            gates,
        }
    }

    /// Serves one connection; never panics, logs how it ended.
    pub async fn handle(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr) {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!(
            "session",
            session = id,
            %peer,
            identity = tracing::field::Empty,
            resource = tracing::field::Empty,
            audit_session = tracing::field::Empty
        );
        self.serve(tcp, peer).instrument(span).await;
    }

    async fn serve(&self, tcp: TcpStream, peer: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        let started = Instant::now();
        let mut slot = Some(Stream::Plain(tcp));
        // A connection still starting when shutdown begins is refused at
        // once: it must not hold the process up until its own deadline.
        let established = tokio::select! {
            r = self.establish(&mut slot, peer) => r,
            () = shutting_down(self.shutdown.clone()) => Err(Rejection::logged(
                PgErrorReply::fatal(sqlstate::CANNOT_CONNECT_NOW, "Sluice is shutting down"),
                "shutdown began during connection startup",
            )),
        };
        let (session, identity, _slot, _cancel_key) = match established {
            Ok(Some(s)) => s,
            Ok(None) => return, // a cancel request, already handled
            Err(rejection) => {
                warn!(reason = %rejection.log, "connection rejected");
                if let (Some(reply), Some(stream)) = (rejection.reply, slot.as_mut()) {
                    let mut out = BytesMut::new();
                    reply.encode(&mut out);
                    let _ =
                        tokio::time::timeout(Duration::from_secs(2), startup::send(stream, &out))
                            .await;
                }
                return;
            }
        };
        info!(identity = %identity.name, "session started");
        match session.run().await {
            Ok(end) => info!(
                reason = end.as_str(),
                duration_ms = started.elapsed().as_millis() as u64,
                "session ended"
            ),
            Err(e) if e.is_upstream() => warn!(error = %e, side = "upstream", "session failed"),
            Err(e) => warn!(error = %e, side = "downstream", "session failed"),
        }
    }

    /// The client's part of startup (TLS, startup packet, authentication);
    /// `None` for a cancel request.
    async fn client_phase(
        &self,
        slot: &mut Option<Stream>,
        peer: SocketAddr,
    ) -> Result<Option<ClientHello>, Rejection> {
        let hello = startup::hello(slot, self.config.tls.as_ref()).await?;
        let (params, protocol_minor) = match hello {
            Hello::Cancel { pid, secret } => {
                self.cancel(pid, secret, peer).await;
                return Ok(None);
            }
            Hello::Startup {
                params,
                protocol_minor,
            } => (params, protocol_minor),
        };
        let stream = connected(slot)?;
        if self.config.require_tls && !stream.is_tls() {
            return Err(Rejection::tell(
                PgErrorReply::fatal(
                    sqlstate::INVALID_AUTHORIZATION,
                    "this Sluice listener accepts only TLS connections",
                )
                .with_hint("Connect with sslmode=require (or verify-full)."),
            ));
        }
        if *self.shutdown.borrow() != ShutdownState::Running {
            return Err(Rejection::tell(PgErrorReply::fatal(
                sqlstate::CANNOT_CONNECT_NOW,
                "Sluice is shutting down",
            )));
        }
        let params = startup::check_params(params)?;
        if protocol_minor > 0 || !params.unsupported_options.is_empty() {
            let mut out = BytesMut::new();
            messages::negotiate_protocol_version(&mut out, 0, &params.unsupported_options);
            startup::send(stream, &out).await?;
        }
        let span = tracing::Span::current();
        span.record("resource", params.database.as_str());
        let (auth, leftover) =
            startup::authenticate(stream, &self.keys, &params.user, self.config.client_auth)
                .await?;
        span.record("identity", auth.identity.name.as_str());
        info!(key_id = %auth.key_id, tls = stream.is_tls(), "authenticated");
        Ok(Some(ClientHello {
            params,
            auth,
            leftover,
        }))
    }

    #[allow(clippy::type_complexity)]
    async fn establish(
        &self,
        slot: &mut Option<Stream>,
        peer: SocketAddr,
    ) -> Result<Option<(Session<F::Gate>, Identity, Slot, crate::cancel::CancelKey)>, Rejection>
    {
        // The startup deadline bounds what the client controls; the backend
        // login has its own (the resource's connect timeout).
        let deadline = self.config.startup_timeout;
        let timed_out = |log: String| {
            Rejection::logged(
                PgErrorReply::fatal(
                    sqlstate::PROTOCOL_VIOLATION,
                    "canceling authentication due to timeout",
                ),
                log,
            )
        };
        let client = tokio::time::timeout(deadline, self.client_phase(slot, peer))
            .await
            .map_err(|_| {
                timed_out(format!(
                    "client did not complete startup within {deadline:?}"
                ))
            })??;
        let Some(ClientHello {
            params,
            auth,
            leftover: client_leftover,
        }) = client
        else {
            return Ok(None);
        };

        let resource = self.resources.get(&params.database).ok_or_else(|| {
            Rejection::tell(
                PgErrorReply::fatal(
                    sqlstate::INVALID_CATALOG_NAME,
                    format!("resource \"{}\" does not exist", params.database),
                )
                .with_hint("Put the name of a Sluice resource in dbname."),
            )
        })?;
        let slot_guard = self.take_slot(resource, &auth.identity)?;

        // The connect timeout bounds the whole backend login (TCP, TLS,
        // authentication), as libpq's connect_timeout does: a server that
        // accepts and then hangs is the resource's failure, not the client's.
        let login = backend::connect(
            &resource.target,
            &params.passthrough,
            self.config.max_backend_message,
        );
        let backend = tokio::time::timeout(resource.target.connect_timeout, login)
            .await
            .unwrap_or(Err(PgError::Timeout("logging in to the backend")))
            .map_err(|e| {
                Rejection::logged(
                    PgErrorReply::fatal(
                        sqlstate::CONNECTION_FAILURE,
                        format!("Sluice could not connect to resource \"{}\"", resource.id),
                    )
                    .with_hint("The gateway log has the cause."),
                    format!("backend connection failed: {e}"),
                )
            })?;
        let cancel_key =
            self.cancels
                .register(resource.target.clone(), backend.pid, backend.secret);

        let mut out = BytesMut::new();
        messages::authentication_ok(&mut out);
        for (name, value) in &backend.parameters {
            messages::parameter_status(&mut out, name, value);
        }
        messages::backend_key_data(&mut out, cancel_key.pid, cancel_key.secret);
        messages::ready_for_query(&mut out, b'I');
        tokio::time::timeout(deadline, startup::send(connected(slot)?, &out))
            .await
            .map_err(|_| timed_out("client did not read the end of startup".into()))??;

        let Some(client) = slot.take() else {
            return Err(Rejection::logged(
                PgErrorReply::fatal(sqlstate::INTERNAL_ERROR, "connection lost"),
                "no stream after startup",
            ));
        };
        let limits = SessionLimits {
            max_client_message: self.config.max_client_message,
            max_backend_message: self.config.max_backend_message,
            max_batch: self.config.max_client_message.saturating_mul(4),
        };
        let gate = self.gates.open(&SessionInfo {
            session: sluice_core::SessionInfo {
                identity: &auth.identity,
                resource: resource.id.as_str(),
                peer,
                tls: client.is_tls(),
                client: params
                    .passthrough
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("application_name"))
                    .map(|(_, v)| v.as_str()),
            },
            parameters: &params.passthrough,
        });
        let mut gate = gate;
        let mask_rules = gate.mask_rules();
        // Every session gets the catalog: masking names columns by it, and
        // policy proves function calls read-only by it.
        let catalog = self.catalogs.get(&resource.id.0, &resource.target).await;
        let (cache, name, target) = (
            self.catalogs.clone(),
            resource.id.0.clone(),
            resource.target.clone(),
        );
        let refresh: crate::mask::CatalogRefresh = Arc::new(move || {
            let (cache, name, target) = (cache.clone(), name.clone(), target.clone());
            Box::pin(async move { cache.refresh(&name, &target).await })
        });
        gate.set_catalog(catalog.clone(), refresh);
        let session = Session::new(
            Side {
                stream: client,
                leftover: client_leftover,
            },
            Side {
                stream: backend.stream,
                leftover: backend.leftover,
            },
            gate,
            limits,
            Signals {
                shutdown: self.shutdown.clone(),
                cancels: cancel_key.cancels.clone(),
            },
        );
        let session = match mask_rules {
            Some(rules) => session.with_masking(crate::mask::SessionMask {
                masker: rules.masker,
                catalog,
            }),
            None => session,
        };
        Ok(Some((session, auth.identity, slot_guard, cancel_key)))
    }

    fn take_slot(&self, resource: &Resource, identity: &Identity) -> Result<Slot, Rejection> {
        let mut c = match self.counts.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        let r = c.per_resource.get(&resource.id.0).copied().unwrap_or(0);
        if resource.max_connections.is_some_and(|max| r >= max) {
            return Err(Rejection::tell(PgErrorReply::fatal(
                sqlstate::TOO_MANY_CONNECTIONS,
                format!("too many connections to resource \"{}\"", resource.id),
            )));
        }
        let i = c.per_identity.get(&identity.name).copied().unwrap_or(0);
        if self
            .config
            .max_connections_per_identity
            .is_some_and(|max| i >= max)
        {
            return Err(Rejection::tell(PgErrorReply::fatal(
                sqlstate::TOO_MANY_CONNECTIONS,
                format!("too many connections for identity \"{}\"", identity.name),
            )));
        }
        *c.per_resource.entry(resource.id.0.clone()).or_default() += 1;
        *c.per_identity.entry(identity.name.clone()).or_default() += 1;
        Ok(Slot {
            counts: self.counts.clone(),
            resource: resource.id.0.clone(),
            identity: identity.name.clone(),
        })
    }

    async fn cancel(&self, pid: i32, secret: i32, peer: SocketAddr) {
        match self.cancels.lookup(pid, secret) {
            Some(t) => {
                info!(%peer, "forwarding cancel request");
                if let Err(e) =
                    backend::send_cancel(&t.target, t.backend_pid, t.backend_secret).await
                {
                    warn!(error = %e, "cancel request could not be delivered");
                }
            }
            None => warn!(%peer, "cancel request with an unknown key ignored"),
        }
    }

    /// Sessions currently registered for cancellation (one per live session).
    pub fn live_sessions(&self) -> usize {
        self.cancels.len()
    }
}

/// What the client's part of startup established.
struct ClientHello {
    params: startup::StartupParams,
    auth: sluice_auth::Authenticated,
    /// Bytes the client sent past its last authentication message.
    leftover: BytesMut,
}

fn connected(slot: &mut Option<Stream>) -> Result<&mut Stream, Rejection> {
    slot.as_mut().ok_or_else(|| {
        Rejection::logged(
            PgErrorReply::fatal(sqlstate::INTERNAL_ERROR, "connection lost"),
            "no client stream after startup",
        )
    })
}

/// Resolves once the gateway leaves [`ShutdownState::Running`] (never if the
/// sender is gone without having changed it).
async fn shutting_down(mut shutdown: watch::Receiver<ShutdownState>) {
    if shutdown
        .wait_for(|s| *s != ShutdownState::Running)
        .await
        .is_err()
    {
        std::future::pending::<()>().await;
    }
}
