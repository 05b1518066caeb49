//! The listening server: start-up in a fixed order (validate, check the data directory, load
//! TLS, bind, open the store), the accept loop, the purge task and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use coffer_audit::AuditConfig;
use coffer_core::clock::{Clock, ManualClock, SystemClock};
use coffer_core::{Coffer, InitOptions, SecretBytes};
use coffer_protocol::{AuthMode, Endpoint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::admin::{self, AdminSocket};
use crate::config::{AuditOptions, DEV_REGION, DevOptions, Mode, ServerConfig, Transport};
use crate::data_dir::require_initialised;
use crate::error::ServerError;
use crate::routes::App;
use crate::sinks;
use crate::tls::load_server_config;

/// A client that opens a connection and stalls the handshake holds a task and a socket.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Likewise for a client that sends request headers slowly (hyper's own default is 30 s).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// After a failed `accept` that is not about one connection (out of file descriptors, say),
/// wait before trying again instead of spinning.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// How long a read's event may sit written but not fsynced. Reads' events survive a crash of
/// the process as soon as they are answered; this bounds what a power loss can take. Every
/// fsync of a busy log costs the kernel a journal commit, and at 100 ms that was a few
/// percent of GetSecretValue's throughput (`bench/audit-cost.sh`); events of calls that
/// change something are fsynced before they are answered regardless.
const AUDIT_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// The audit log's directory inside the data directory.
pub const AUDIT_DIR: &str = "audit";

/// The dev account's root credentials, for the `export AWS_…` lines.
#[derive(Debug)]
pub struct DevCredentials {
    pub account_id: String,
    pub access_key_id: String,
    pub secret_access_key: SecretBytes,
    pub region: &'static str,
}

/// A server that has bound its address and opened its store, ready to [`Server::run`].
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    data_dir: PathBuf,
    tls: Option<TlsAcceptor>,
    app: Arc<App>,
    purge_interval: Duration,
    shutdown_grace: Duration,
    audit: AuditOptions,
    dev_credentials: Option<DevCredentials>,
    /// The operator's socket, bound with the server and served while it runs.
    admin: Option<AdminSocket>,
    /// Declared last so it is removed after everything that uses it is dropped.
    dev_data_dir: Option<tempfile::TempDir>,
}

/// Binds and runs a server until `shutdown` completes, then finishes in-flight requests
/// (within [`ServerConfig::shutdown_grace`]). For the bound address or the dev credentials,
/// use [`Server::bind`] and [`Server::run`] instead.
pub async fn serve(
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    Server::bind(config).await?.run(shutdown).await
}

impl Server {
    /// Validates `config`, checks the data directory, loads TLS, binds the listen address
    /// (port 0 picks a free port; see [`Server::local_addr`]) and opens the store. In dev mode
    /// it first makes and initialises a temporary data directory.
    pub async fn bind(config: ServerConfig) -> Result<Self, ServerError> {
        config.validate()?;
        let auth = config.auth_mode();
        let opened = match &config.mode {
            Mode::DataDir { path, transport } => {
                Opened::data_dir(&config, path, *transport).await?
            }
            Mode::Dev(options) => Opened::dev(&config, options).await?,
        };
        let Opened {
            listener,
            data_dir,
            tls,
            coffer,
            manual_clock,
            dev,
        } = opened;
        admin::register_rotation_functions(&coffer, &config.rotation_functions).await?;
        // Opened before the first request can arrive, so that no call goes unrecorded; a log
        // that cannot be opened stops the start.
        if config.audit.enabled {
            coffer
                .open_audit(
                    &data_dir.join(AUDIT_DIR),
                    AuditConfig {
                        sync_interval: AUDIT_SYNC_INTERVAL,
                        ..AuditConfig::default()
                    },
                )
                .await
                .map_err(|e| ServerError::Startup(format!("cannot open the audit log: {e}")))?;
        } else {
            tracing::warn!("the audit trail is OFF (--no-audit): no call is recorded");
        }
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServerError::Listen {
                addr: config.listen,
                source,
            })?;
        if config.serves_plain_http_publicly() {
            tracing::warn!(
                addr = %local_addr,
                "SERVING PLAIN HTTP ON A NON-LOOPBACK ADDRESS: credentials and secret values cross the network in clear text"
            );
        }
        if auth == AuthMode::AcceptAnyCredentials {
            tracing::warn!("accepting any credentials: signatures are not checked (dev only)");
        }
        let app = App {
            endpoint: Endpoint::new(coffer.clone(), auth),
            coffer,
            manual_clock,
            max_body_bytes: config.max_body_bytes,
        };
        let (dev_credentials, dev_data_dir) = dev.unzip();
        // Bound here, before the caller announces the server, so that `coffer account` or
        // `coffer rotation` run right after the banner finds the socket.
        let admin = match AdminSocket::bind(&data_dir) {
            Ok(socket) => Some(socket),
            Err(e) => {
                tracing::warn!(error = %e, "no admin socket: `coffer root-key rotate` cannot reach this server");
                None
            }
        };
        Ok(Self {
            admin,
            listener,
            local_addr,
            data_dir,
            tls,
            app: Arc::new(app),
            purge_interval: config.purge_interval,
            shutdown_grace: config.shutdown_grace,
            audit: config.audit.clone(),
            dev_credentials,
            dev_data_dir,
        })
    }

    /// The address actually bound (with the real port when the config asked for port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The data directory served: the configured one, or the dev server's temporary one
    /// (removed when [`Server::run`] returns).
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `https` or `http`.
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The dev account's root credentials; `None` outside dev mode.
    #[must_use]
    pub fn dev_credentials(&self) -> Option<&DevCredentials> {
        self.dev_credentials.as_ref()
    }

    /// Serves until `shutdown` completes; then stops accepting, lets in-flight requests finish
    /// within the shutdown grace, and (in dev mode) removes the temporary data directory.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Self {
            listener,
            local_addr,
            tls,
            app,
            purge_interval,
            shutdown_grace,
            dev_data_dir,
            admin,
            audit,
            ..
        } = self;
        tracing::info!(addr = %local_addr, tls = tls.is_some(), "coffer is listening");

        let purge = tokio::spawn(purge_periodically(
            app.coffer.clone(),
            purge_interval,
            audit.retention,
        ));
        // Sinks and alerts read the durable log on their own tasks: a slow or failing one
        // falls behind and catches up, and never holds a request.
        let sinks = app
            .coffer
            .audit()
            .map(|trail| sinks::start(trail.log().clone(), &audit.settings));
        // Rotation functions call back here; a wildcard listen address is reached on loopback.
        let callback_ip = if local_addr.ip().is_unspecified() {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        } else {
            local_addr.ip()
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        app.coffer.set_rotation_endpoint(&format!(
            "{scheme}://{}",
            SocketAddr::new(callback_ip, local_addr.port())
        ));
        let rotations = tokio::spawn(schedule_rotations(app.coffer.clone()));
        let admin = admin.map(|socket| tokio::spawn(socket.serve(app.coffer.clone())));
        let resume = tokio::spawn(admin::resume_rotation(app.coffer.clone()));
        let http = Arc::new(http_builder());
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let connection = Connection { app: app.clone(), http: http.clone(), peer };
                        tokio::spawn(connection.serve(stream, tls.clone(), graceful.watcher()));
                    }
                    Err(e) if is_per_connection(&e) => tracing::debug!(error = %e, "accept failed"),
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed; retrying shortly");
                        tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    }
                },
            }
        }

        drop(listener);
        purge.abort();
        rotations.abort();
        resume.abort();
        if let Some(admin) = admin {
            admin.abort();
            // The socket file goes with the aborted task's `AdminSocket`.
            let _ = admin.await;
        }
        let open_connections = graceful.count();
        tracing::info!(
            open_connections,
            "shutting down: no new connections; finishing in-flight requests"
        );
        if tokio::time::timeout(shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(grace = ?shutdown_grace, "some connections did not finish in time and were dropped");
        }
        if let Some(sinks) = sinks {
            sinks.stop().await;
        }
        // Seals the log (a final signed digest and head), so a clean stop verifies complete.
        if let Some(trail) = app.coffer.audit()
            && let Err(e) = trail.log().close().await
        {
            tracing::error!(error = %e, "the audit log did not close cleanly; it is recovered at the next start");
        }
        drop(app);
        drop(dev_data_dir);
        tracing::info!("coffer stopped");
        Ok(())
    }
}

/// What [`Server::bind`] has opened, in either mode.
struct Opened {
    listener: TcpListener,
    data_dir: PathBuf,
    tls: Option<TlsAcceptor>,
    coffer: Arc<Coffer>,
    manual_clock: Option<Arc<ManualClock>>,
    dev: Option<(DevCredentials, tempfile::TempDir)>,
}

impl Opened {
    /// The cheap checks come first, so a wrong directory or a missing certificate is reported
    /// before the port is taken or the store opened.
    async fn data_dir(
        config: &ServerConfig,
        path: &Path,
        transport: Transport,
    ) -> Result<Self, ServerError> {
        require_initialised(path)?;
        let tls = match transport {
            Transport::Tls => Some(TlsAcceptor::from(load_server_config(path)?)),
            Transport::InsecureHttp { .. } => None,
        };
        let listener = listen(config.listen).await?;
        let unlock = config.unlock.clone();
        let data_dir = path.to_path_buf();
        let coffer = Arc::new(
            blocking(move || Coffer::open_with(&data_dir, Arc::new(SystemClock), &unlock))
                .await??,
        );
        Ok(Self {
            listener,
            data_dir: path.to_path_buf(),
            tls,
            coffer,
            manual_clock: None,
            dev: None,
        })
    }

    /// Binds before initialising, so a busy port fails fast and the printed address is real.
    async fn dev(config: &ServerConfig, options: &DevOptions) -> Result<Self, ServerError> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("coffer-dev-");
        // Private like a real data directory, although the dev store is throw-away: it still
        // holds a root key and the credentials printed at start.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
        let dir = builder.tempdir().map_err(ServerError::DevDataDir)?;
        let listener = listen(config.listen).await?;
        let init = InitOptions {
            account_id: Some(options.account_id.clone()),
        };
        let data_dir = dir.path().to_path_buf();
        let outcome = blocking(move || Coffer::init(&data_dir, &init)).await??;
        let manual_clock = options
            .manual_clock
            .then(|| Arc::new(ManualClock::starting_now()));
        let clock: Arc<dyn Clock> = match &manual_clock {
            Some(clock) => clock.clone(),
            None => Arc::new(SystemClock),
        };
        let coffer = open(dir.path().to_path_buf(), clock).await?;
        let credentials = DevCredentials {
            account_id: outcome.account_id,
            access_key_id: outcome.access_key_id,
            secret_access_key: outcome.secret_access_key,
            region: DEV_REGION,
        };
        Ok(Self {
            listener,
            data_dir: dir.path().to_path_buf(),
            tls: None,
            coffer,
            manual_clock,
            dev: Some((credentials, dir)),
        })
    }
}

/// One accepted TCP connection.
struct Connection {
    app: Arc<App>,
    http: Arc<auto::Builder<TokioExecutor>>,
    peer: SocketAddr,
}

impl Connection {
    async fn serve(self, stream: TcpStream, tls: Option<TlsAcceptor>, watcher: Watcher) {
        // Responses are written whole; Nagle would only delay them behind the client's ACKs.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        match tls {
            None => self.serve_http(stream, watcher, false).await,
            Some(acceptor) => {
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => self.serve_http(stream, watcher, true).await,
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed")
                    }
                    Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
                }
            }
        }
    }

    async fn serve_http<S>(self, stream: S, watcher: Watcher, secure: bool)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self { app, http, peer } = self;
        // `::ffff:10.0.0.1` from a dual-stack socket is the IPv4 client 10.0.0.1.
        let peer_ip: IpAddr = peer.ip().to_canonical();
        let service = service_fn(move |mut request: hyper::Request<Incoming>| {
            let app = app.clone();
            // Policies may require TLS (`aws:SecureTransport`); only this layer knows.
            request
                .extensions_mut()
                .insert(coffer_protocol::SecureTransport(secure));
            async move { Ok::<_, Infallible>(app.respond(request, peer_ip).await) }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        if let Err(e) = watcher.watch(connection).await {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}

/// HTTP/1.1 with keep-alive, or HTTP/2 (by ALPN over TLS, by prior knowledge over plain HTTP).
fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// Errors about the one connection being accepted (it was reset before we took it), as
/// opposed to the listener's (out of file descriptors).
fn is_per_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    )
}

async fn listen(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            ServerError::AddrInUse { addr }
        } else {
            ServerError::Listen { addr, source }
        }
    })
}

/// Opening a store runs migrations and reads files: keep it off the async workers.
async fn open(data_dir: PathBuf, clock: Arc<dyn Clock>) -> Result<Arc<Coffer>, ServerError> {
    Ok(Arc::new(
        blocking(move || Coffer::open(&data_dir, clock)).await??,
    ))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServerError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ServerError::Startup(e.to_string()))
}

/// How often the rotation scheduler looks for due rotations when nothing wakes it.
const ROTATION_TICK: Duration = Duration::from_secs(5);

/// The rotation scheduler: while this process holds the store's scheduler lease (one node of
/// several sharing a store), starts the rotations that are due, every few seconds or as soon
/// as `RotateSecret` asks. Passes run beside the loop, so the lease is renewed every tick
/// while long steps run, and a node that loses it stops its runs before their next step.
/// Failures are logged and retried; they never stop the server.
async fn schedule_rotations(coffer: Arc<Coffer>) {
    let holder =
        coffer_core::ids::uuid_v4().unwrap_or_else(|_| format!("node-{}", std::process::id()));
    loop {
        tokio::select! {
            () = tokio::time::sleep(ROTATION_TICK) => {}
            () = coffer.rotation_requested() => {}
        }
        match coffer.hold_scheduler_lease(&holder).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "rotation scheduler: cannot take its lease");
                continue;
            }
        }
        let pass = coffer.clone();
        tokio::spawn(async move {
            let outcome = tokio::spawn(async move { pass.run_due_rotations().await }).await;
            match outcome {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "rotation scheduler: a pass failed"),
                Err(e) => tracing::error!(error = %e, "rotation scheduler: a pass panicked"),
            }
        });
    }
}

/// Purges due secrets every `every`, starting now. A failed or panicking purge is logged and
/// retried at the next tick; it never stops the server.
async fn purge_periodically(coffer: Arc<Coffer>, every: Duration, retention: Option<Duration>) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let task = coffer.clone();
        // Its own task, so a panic inside the store surfaces here as a JoinError.
        match tokio::spawn(async move { task.purge_due().await }).await {
            Ok(Ok(0)) => tracing::debug!("purge: nothing due"),
            Ok(Ok(purged)) => tracing::info!(purged, "purged secrets whose recovery window ended"),
            Ok(Err(e)) => tracing::warn!(error = %e, "purge failed; retrying at the next interval"),
            Err(e) => {
                tracing::error!(error = %e, "purge task panicked; retrying at the next interval")
            }
        }
        if let (Some(retention), Some(trail)) = (retention, coffer.audit()) {
            prune_audit(trail.log().clone(), retention).await;
        }
    }
}

/// Removes audit segments sealed longer ago than `retention`. The log's seals carry the
/// system clock's time, so the cutoff does too (not the service's injectable clock).
async fn prune_audit(log: Arc<coffer_audit::AuditLog>, retention: Duration) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let cutoff = now_ms.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
    match tokio::task::spawn_blocking(move || log.prune(cutoff)).await {
        Ok(Ok(outcome)) if outcome.removed_segments > 0 => tracing::info!(
            removed_segments = outcome.removed_segments,
            first_retained_seq = ?outcome.first_retained_seq,
            "pruned audit events past their retention"
        ),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "audit retention pruning failed; retrying at the next interval")
        }
        Err(e) => tracing::error!(error = %e, "audit pruning task failed"),
    }
}
