//! The running gateway: a listener, one task per connection, and shutdown
//! by broadcast (SIGTERM drains, the grace deadline closes).

use crate::admin::{self, AdminState};
use crate::approvals::{ApprovalService, ApprovalSetupError};
use crate::config::{ClientAuthMode, Config, ConfigError};
use crate::policy::{load_policies, resource_infos, PolicyGates};
use crate::tls;
use sluice_auth::KeyStore;
use sluice_core::ResourceId;
use sluice_pg::{
    BackendTarget, ClientAuth, Gateway, GatewayConfig, Resource, Secret, ShutdownState,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the key store in {dir}: {source}")]
    KeyStore {
        dir: String,
        source: sluice_auth::AuthError,
    },
    #[error("cannot open the audit log in {dir}: {source}")]
    Audit {
        dir: String,
        source: sluice_audit::AuditError,
    },
    #[error(transparent)]
    Approvals(#[from] ApprovalSetupError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The largest message accepted from a backend. PostgreSQL's own limit on a
/// single field is 1 GB; a DataRow may be a little larger.
const MAX_BACKEND_MESSAGE: usize = (1 << 30) + (1 << 20);

/// Everything needed to serve, checked before the listener opens.
pub struct Prepared {
    gateway: Arc<Gateway<PolicyGates>>,
    audit: Option<sluice_audit::AuditLog>,
    gates: PolicyGates,
    config: Config,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
    listener: TcpListener,
    /// The HTTP fronts (Kubernetes, S3) and their listeners.
    http: Vec<HttpListener>,
    /// The approval API's listener and what it serves.
    admin: Option<(TcpListener, Option<tokio_rustls::TlsAcceptor>, AdminState)>,
    shutdown: watch::Sender<ShutdownState>,
    grace: Duration,
}

/// Starts one HTTP front on its listener.
type ServeFn = Box<
    dyn FnOnce(TcpListener, watch::Receiver<bool>, Duration) -> tokio::task::JoinHandle<()> + Send,
>;

/// One Kubernetes or S3 resource's listener, bound, not yet serving.
struct HttpListener {
    resource: String,
    kind: &'static str,
    listener: TcpListener,
    serve: ServeFn,
}

impl Prepared {
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Where each Kubernetes resource listens, by name.
    pub fn kube_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.http_addrs("kubernetes")
    }

    /// Where each S3 resource listens, by name.
    pub fn s3_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.http_addrs("s3")
    }

    fn http_addrs(&self, kind: &str) -> Vec<(String, SocketAddr)> {
        self.http
            .iter()
            .filter(|h| h.kind == kind)
            .filter_map(|h| Some((h.resource.clone(), h.listener.local_addr().ok()?)))
            .collect()
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
            .as_ref()
            .and_then(|(l, _, _)| l.local_addr().ok())
    }
}

pub async fn prepare(config: &Config) -> Result<Prepared, ServeError> {
    let data_dir = config.data_dir();
    let keys = Arc::new(
        KeyStore::open(&data_dir).map_err(|source| ServeError::KeyStore {
            dir: data_dir.display().to_string(),
            source,
        })?,
    );
    let mut resources = Vec::new();
    for r in config.resources.iter().filter(|r| r.is_postgres()) {
        let password = config.resource_password(r)?.map(Secret::new);
        let target = BackendTarget {
            host: r.host.clone(),
            port: r.port,
            database: r.database.clone(),
            user: r.user.clone(),
            password,
            tls: tls::backend(config, r)?,
            connect_timeout: Duration::from_secs(r.connect_timeout_secs),
        };
        resources.push(Resource {
            id: ResourceId(r.name.clone()),
            target: Arc::new(target),
            max_connections: r.max_connections,
        });
    }
    let s = &config.server;
    let acceptor = tls::acceptor(config)?;
    let gateway_config = GatewayConfig {
        require_tls: !s.listen.ip().is_loopback() && !s.allow_plaintext,
        tls: acceptor,
        client_auth: match s.client_auth {
            ClientAuthMode::Scram => ClientAuth::Scram,
            ClientAuthMode::Password => ClientAuth::PasswordOverTls,
        },
        startup_timeout: Duration::from_secs(s.startup_timeout_secs),
        max_client_message: s.max_message_bytes,
        max_backend_message: MAX_BACKEND_MESSAGE,
        max_connections_per_identity: s.max_connections_per_identity,
    };
    let policies = load_policies(config)?;
    if config.policy.is_none() {
        warn!("no [policy] section in the config: every statement will be denied");
    }
    info!(policies = policies.policy_ids().len(), "policies loaded");
    let gates = PolicyGates::new(policies, resource_infos(config));
    let (gates, audit) = if config.audit.enabled {
        let audit_config = sluice_audit::AuditConfig {
            response_content_cap: config.audit.response_content_bytes,
            ..sluice_audit::AuditConfig::default()
        };
        let audit = sluice_audit::AuditLog::open(&data_dir, audit_config).map_err(|source| {
            ServeError::Audit {
                dir: data_dir.display().to_string(),
                source,
            }
        })?;
        if config.audit.fail_open_reads {
            warn!("[audit] fail_open_reads = true: if the audit log cannot write, reads will run UNRECORDED");
        }
        let gates = gates.with_audit(audit.clone(), config.audit.clone());
        (gates, Some(audit))
    } else {
        warn!(
            "[audit] enabled = false: NOTHING is recorded; statements are only decided by policy"
        );
        (gates, None)
    };
    let approvals = ApprovalService::open(config, &data_dir, audit.clone())?;
    let gates = gates
        .with_approvals(approvals.clone())
        .with_masking(crate::masking::mask_rules(config)?);
    // Installed before the listener opens: SIGHUP's default action would
    // kill the process.
    #[cfg(unix)]
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| config.error(format!("cannot install the SIGHUP handler: {e}")))?;
    let (shutdown, watcher) = watch::channel(ShutdownState::Running);
    let gateway = Arc::new(Gateway::new(
        gateway_config,
        resources,
        keys.clone(),
        gates.clone(),
        watcher,
    ));
    let listener = TcpListener::bind(s.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: s.listen,
            source,
        })?;
    let mut http = Vec::new();
    for r in config.resources.iter().filter(|r| !r.is_postgres()) {
        let Some(addr) = r.listen else { continue };
        let serve: ServeFn = if r.is_kubernetes() {
            let front = Arc::new(crate::kube::front(config, r, &gates, keys.clone())?);
            let tls = front.tls.clone();
            Box::new(move |l, stop, grace| {
                tokio::spawn(sluice_http::serve(front, tls, l, stop, grace))
            })
        } else {
            let (front, tls) = crate::s3::front(config, r, &gates, keys.clone())?;
            let front = Arc::new(front);
            Box::new(move |l, stop, grace| {
                tokio::spawn(sluice_http::serve(front, tls, l, stop, grace))
            })
        };
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        http.push(HttpListener {
            resource: r.name.clone(),
            kind: if r.is_kubernetes() {
                "kubernetes"
            } else {
                "s3"
            },
            listener,
            serve,
        });
    }
    let admin = match s.admin_listen {
        Some(addr) => {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })?;
            let state = AdminState { approvals, keys };
            Some((l, tls::acceptor(config)?, state))
        }
        None => None,
    };
    Ok(Prepared {
        http,
        admin,
        gateway,
        audit,
        gates,
        config: config.clone(),
        #[cfg(unix)]
        hangup,
        listener,
        shutdown,
        grace: Duration::from_secs(s.shutdown_grace_secs),
    })
}

/// Accepts connections until `stop` resolves, then drains: open sessions
/// end at their next idle moment, and at the grace deadline all are closed.
pub async fn serve(prepared: Prepared, stop: impl std::future::Future<Output = ()>) {
    let Prepared {
        http,
        admin,
        gateway,
        audit,
        gates,
        config,
        #[cfg(unix)]
        hangup,
        listener,
        shutdown,
        grace,
    } = prepared;
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "listening for PostgreSQL clients");
    }
    let admin_task = admin.map(|(l, tls, state)| {
        if let Ok(addr) = l.local_addr() {
            info!(%addr, "listening for approval API calls");
        }
        tokio::spawn(admin::serve(l, tls, state, shutdown.subscribe()))
    });
    let (http_stop, http_stopping) = watch::channel(false);
    let http_tasks: Vec<_> = http
        .into_iter()
        .map(|h| (h.serve)(h.listener, http_stopping.clone(), grace))
        .collect();
    #[cfg(unix)]
    let reloader = tokio::spawn(reload_on_hangup(hangup, config, gates));
    #[cfg(not(unix))]
    let _ = (config, gates);
    let mut sessions = JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    sessions.spawn(gateway.clone().handle(tcp, peer));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    drop(listener);
    info!(
        open_sessions = sessions.len(),
        grace_secs = grace.as_secs(),
        "shutting down: draining sessions"
    );
    let _ = shutdown.send(ShutdownState::Draining);
    let _ = http_stop.send(true);
    let drained = tokio::time::timeout(grace, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            open_sessions = sessions.len(),
            "grace period over: closing remaining sessions"
        );
        let _ = shutdown.send(ShutdownState::Closing);
        if tokio::time::timeout(Duration::from_secs(5), async {
            while sessions.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            sessions.abort_all();
        }
    }
    for task in http_tasks {
        let _ = task.await;
    }
    #[cfg(unix)]
    reloader.abort();
    if let Some(task) = admin_task {
        task.abort();
    }
    drop(gateway);
    // The last records (session ends) and a final signed checkpoint.
    if let Some(audit) = audit {
        match tokio::task::spawn_blocking(move || audit.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(error = %e, "closing the audit log failed"),
            Err(e) => error!(error = %e, "closing the audit log failed"),
        }
    }
    info!("stopped");
}

/// Reloads the policies on each SIGHUP. A set with errors is not loaded:
/// the last good policies stay in force and the log says why.
#[cfg(unix)]
async fn reload_on_hangup(
    mut hangup: tokio::signal::unix::Signal,
    config: Config,
    gates: PolicyGates,
) {
    while hangup.recv().await.is_some() {
        info!(signal = "SIGHUP", "reloading policies");
        let reloaded = Config::load(&config.file).and_then(|fresh| load_policies(&fresh));
        match reloaded {
            Ok(policies) => gates.swap(policies),
            Err(e) => error!(error = %e, "policy reload failed: keeping the last good policies"),
        }
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is
/// called (inside a runtime), not when the future is first polled, so a
/// signal that arrives while the gateway is still starting is not lost to
/// the default action (which would kill the process without draining).
pub fn termination_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let handlers = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            match handlers {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => info!(signal = "SIGTERM", "received"),
                        _ = int.recv() => info!(signal = "SIGINT", "received"),
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
