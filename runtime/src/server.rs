//! The instance: one single-threaded tokio event loop (the "process per core"
//! of the Node recipe) serving HTTP on the acquired sockets, plus the pool.
//! [`run`] wires it to the process (sockets from systemd, signals, sd_notify);
//! [`Server::serve`] is the serving itself, with the shutdown trigger passed
//! in, so that the drain can be tested in-process.
//!
//! Drain (the trigger: SIGTERM or SIGINT) loses nothing that reached the
//! instance. Every WebSocket is sent a close frame 1012 and every SSE stream
//! ends after a `retry:` hint at once, so their clients reconnect elsewhere.
//! It keeps accepting and answering, each answer with `Connection: close`,
//! until every connection it had before the signal is gone or
//! `http.drain_idle` has passed (a proxy closes its idle keep-alive
//! connections by then: nginx's upstream `keepalive_timeout` is below it);
//! only then does it stop accepting, close what is left idle and wait for the
//! requests, streams and jobs in flight — streams for `streams.close_timeout`,
//! after which their connections are cut, the rest until `shutdown_timeout`.
//! An idle connection is never closed while the proxy may still be writing a
//! request into it, which is what fails non-idempotent requests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;
use crate::conn::{self, Listeners, Protocols, Socket};
use crate::drain::{Signal, TrackGuard, Tracked, Waiter};
use crate::linger::Linger;
use crate::listen::{self, ListenAddr, ListenError, Listener};
use crate::load::{self, ConfigError, Loaded, Override, Schema, Source};
use crate::logging::{self, LogHandle};
use crate::monitor::{govern, monitor};
use crate::name::ServiceName;
use crate::notify::Notifier;
use crate::request;
use crate::state::State;
use crate::websocket::{Slot, Tap};

/// Why an instance could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The service's name is not valid.
    #[error(transparent)]
    Name(#[from] crate::name::NameError),
    /// The configuration could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No socket could be had.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// `listen` is not an address.
    #[error("invalid listen address: {0}")]
    Address(String),
    /// The service's routes clash with corepool's.
    #[error("{0}")]
    Routes(String),
    /// A command-line setting is malformed.
    #[error("{0}")]
    Usage(String),
    /// The event loop could not be set up.
    #[error("runtime: {0}")]
    Io(#[from] std::io::Error),
}

/// Everything `serve` needs: the service's identity, composed router and
/// where its configuration comes from (SIGHUP reloads from the same places).
pub(crate) struct Instance {
    pub service: ServiceName,
    pub version: String,
    pub app: Router,
    pub schema: Schema,
    pub source: Source,
    pub overrides: Vec<Override>,
    pub loaded: Loaded,
}

/// Runs the instance until SIGTERM/SIGINT, then drains and returns.
pub(crate) fn run(inst: Instance) -> Result<(), ServeError> {
    let log = logging::init(&inst.loaded.config.log);
    raise_open_files();
    let cfg = inst.loaded.config.clone();
    let addr: ListenAddr = cfg.listen.parse().map_err(ServeError::Address)?;
    let acquired = listen::acquire(&addr)?;
    let state = Arc::new(State::new(inst.service, &inst.version, &inst.loaded, log.access.clone()));
    if let Some(f) = &inst.loaded.file {
        tracing::info!("configuration from {}", f.display());
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    #[cfg(feature = "redis")]
    if let Some(link) = &state.redis {
        rt.block_on(crate::redis::check::check_at_start(link, inst.loaded.file.as_deref()))?;
    }
    let unix_path = match (&addr, acquired.activated) {
        (ListenAddr::Unix(p), false) => Some(p.clone()),
        _ => None,
    };
    let server = Server {
        state,
        app: inst.app,
        reload: Some(Reload { schema: inst.schema, source: inst.source, overrides: inst.overrides, log }),
        notifier: Notifier::from_env(),
    };
    let result = rt.block_on(async {
        let listeners = acquired.listeners.into_iter().map(|l| l.into_tokio()).collect::<std::io::Result<Vec<_>>>()?;
        let shutdown = termination()?;
        server.serve(listeners, &acquired.describe, shutdown).await
    });
    if let Some(p) = unix_path {
        let _ = std::fs::remove_file(p);
    }
    result
}

/// Every WebSocket is a descriptor: the soft limit on open files goes up to
/// the hard one (systemd's `LimitNOFILE=` sets both; a container engine often
/// leaves the soft one at 1024).
fn raise_open_files() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(error = %e, soft, hard, "could not raise the open-file limit");
            }
        }
        _ => {}
    }
}

/// The process's shutdown trigger: the first SIGTERM or SIGINT (later ones
/// are absorbed: the drain is under way).
fn termination() -> std::io::Result<impl Future<Output = &'static str>> {
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    Ok(async move {
        let why = tokio::select! {
            _ = sigterm.recv() => "SIGTERM",
            _ = sigint.recv() => "SIGINT",
        };
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = sigterm.recv() => {}
                    _ = sigint.recv() => {}
                }
            }
        });
        why
    })
}

/// Where SIGHUP reloads the configuration from.
pub(crate) struct Reload {
    pub schema: Schema,
    pub source: Source,
    pub overrides: Vec<Override>,
    pub log: LogHandle,
}

/// A serving instance: its state and router, and how it reloads.
pub(crate) struct Server {
    pub state: Arc<State>,
    pub app: Router,
    /// None: SIGHUP is not listened for (in-process tests).
    pub reload: Option<Reload>,
    pub notifier: Notifier,
}

/// What every connection task needs, shared.
struct Shared {
    state: Arc<State>,
    app: Router,
    protocols: Protocols,
    /// The drain's last step: pre-drain connections still idle are closed,
    /// busy ones after their answer.
    close_idle: Arc<Signal>,
    /// Connections accepted before the drain began, and during it.
    before: Arc<Tracked>,
    during: Arc<Tracked>,
}

impl Shared {
    /// Serves one connection in a task of its own. One accepted before the
    /// drain is closed by the drain's last step if still idle
    /// (`close_idle`); one accepted during the drain is not: its client
    /// (nginx) writes its first request right after connecting, and closing
    /// it in between would lose that request. It ends after its first answer
    /// (`Connection: close`), or at http.header_timeout if nothing comes.
    fn spawn(&self, socket: Socket, permit: OwnedSemaphorePermit, draining: bool) {
        let close_idle = (!draining).then(|| self.close_idle.waiter());
        let guard = if draining { self.during.track() } else { self.before.track() };
        let state = self.state.clone();
        let app = self.app.clone();
        let slot = Arc::new(Slot::new(std::os::fd::AsRawFd::as_raw_fd(&socket)));
        let io = TokioIo::new(Tap::new(Linger::new(socket), slot.clone()));
        let svc =
            hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| request::handle(state.clone(), app.clone(), Some(slot.clone()), req));
        let held = (self.state.clone(), guard, permit);
        match &self.protocols {
            Protocols::Http1(b) => {
                let conn = b.serve_connection(io, svc).with_upgrades();
                tokio::spawn(serve_connection(conn, close_idle, hyper::server::conn::http1::UpgradeableConnection::graceful_shutdown, held));
            }
            Protocols::Auto(b) => {
                let conn = b.serve_connection_with_upgrades(io, svc).into_owned();
                tokio::spawn(serve_connection(conn, close_idle, hyper_util::server::conn::auto::UpgradeableConnection::graceful_shutdown, held));
            }
        }
    }
}

/// One connection to its end (an upgrade ends it too: the stream is then
/// its handler's), shut down gracefully when `close_idle` comes first; what
/// `held` holds (its count, its slot under http.max_connections) is
/// released at the end.
async fn serve_connection<C, E>(conn: C, close_idle: Option<Waiter>, graceful: fn(Pin<&mut C>), held: (Arc<State>, TrackGuard, OwnedSemaphorePermit))
where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let state = &held.0;
    state.metrics.connections.inc();
    let mut conn = std::pin::pin!(conn);
    let result = match close_idle {
        None => conn.await,
        Some(mut close_idle) => tokio::select! {
            r = conn.as_mut() => r,
            _ = &mut close_idle => {
                graceful(conn.as_mut());
                conn.await
            }
        },
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
    state.metrics.connections.dec();
}

impl Server {
    /// Serves `listeners` until `shutdown` completes (its output names the
    /// cause in the log), then drains (module docs) and returns.
    pub(crate) async fn serve(self, listeners: Vec<Listener>, describe: &str, shutdown: impl Future<Output = &'static str>) -> Result<(), ServeError> {
        for l in &listeners {
            if let Err(e) = l.accept_new() {
                tracing::warn!(error = %e, "could not clear a previous instance's hold-off filter from the socket");
            }
        }
        let mut listeners = Listeners::new(listeners);
        let cfg = self.state.config();
        let mut sighup = match self.reload {
            Some(_) => Some(signal(SignalKind::hangup())?),
            None => None,
        };
        let shared = Shared {
            state: self.state.clone(),
            app: self.app.clone(),
            protocols: conn::protocols(&cfg),
            close_idle: Arc::default(),
            before: Arc::default(),
            during: Arc::default(),
        };
        let limit = Arc::new(Semaphore::new(cfg.http.max_connections));
        #[cfg(feature = "redis")]
        if let Some(link) = &self.state.redis {
            link.start();
        }
        let monitor = tokio::spawn(monitor(self.state.clone(), self.notifier.clone(), limit.clone(), cfg.http.max_connections));
        let share = self.state.pool.governor().active().then(|| tokio::spawn(govern(self.state.pool.governor().clone())));

        let ready = format!("serving on {describe}");
        tracing::info!(
            service = %self.state.service,
            instance = self.state.instance,
            cpu = ?self.state.cpu,
            pool_threads = self.state.pool.threads(),
            "{} {} (corepool {}) {ready}",
            self.state.service,
            self.state.version,
            env!("CARGO_PKG_VERSION")
        );
        self.notifier.ready(&ready);

        let mut shutdown = std::pin::pin!(shutdown);
        let why = loop {
            tokio::select! {
                why = &mut shutdown => break why,
                Some(_) = recv(&mut sighup) => self.reload(),
                (socket, permit) = accept(&mut listeners, &self.state, &limit) => shared.spawn(socket, permit, false),
            }
        };

        // Drain, step 1: streams are told to end; answer everything that
        // still comes, each answer closing its connection, until the
        // connections opened before the signal are closed by their peers (or
        // drain_idle passed).
        let started = Instant::now();
        // The drain's settings as they are now (SIGHUP may have changed them).
        let cfg = self.state.config();
        self.state.begin_drain();
        // Streams get until close_timeout from the trigger; what is left of
        // them then is cut, whatever step the drain is at.
        let cutter = {
            let (state, close_timeout) = (self.state.clone(), cfg.streams.close_timeout.min(cfg.shutdown_timeout));
            tokio::spawn(async move {
                if tokio::time::timeout(close_timeout, state.streams.all_closed()).await.is_err() {
                    let cut = state.streams.cut_all();
                    tracing::info!("{cut} streams did not end within streams.close_timeout ({close_timeout:?}): cut");
                }
            })
        };
        let open = self.state.metrics.connections.get();
        let streams = self.state.streams.open();
        tracing::info!(
            "{why}: draining {open} connections and {streams} streams (idle connections for up to {:?}, streams {:?}, all for up to {:?})",
            cfg.http.drain_idle,
            cfg.streams.close_timeout,
            cfg.shutdown_timeout
        );
        self.notifier.stopping(&format!("draining {open} connections, {streams} streams"));
        let idle_deadline = tokio::time::Instant::now() + cfg.http.drain_idle.min(cfg.shutdown_timeout);
        loop {
            tokio::select! {
                _ = shared.before.all_closed() => break,
                _ = tokio::time::sleep_until(idle_deadline) => break,
                (socket, permit) = accept(&mut listeners, &self.state, &limit) => shared.spawn(socket, permit, true),
            }
        }
        let left_idle = shared.before.open();
        // Step 2: stop accepting, after taking what waits in the backlog now
        // (it is answered, each answer closing its connection). Under systemd
        // the socket stays open in PID 1, so later connections wait in its
        // backlog for the next instance; when the socket closes for good
        // (scale down, disable), corepool-ctl has held new ones off first
        // (`listen::hold_off`), so the backlog is empty by then. (At most a
        // backlog's worth: under a steady stream it would never be empty.)
        for _ in 0..4096 {
            let Ok(permit) = limit.clone().try_acquire_owned() else { break };
            let Some(socket) = listeners.accept_ready(&self.state).await else { break };
            shared.spawn(socket, permit, true);
        }
        drop(listeners);
        // Step 3: close the pre-drain connections still idle now, busy ones
        // after their answer; let those accepted during the drain finish
        // their request; wait for the streams' close handshakes (until the
        // cutter's deadline); wait for all of it and the pool, up to
        // shutdown_timeout from the signal. (A WebSocket cut ends when its
        // handler next reads; one whose handler never does is not waited for.)
        let deadline = started + cfg.shutdown_timeout;
        let left = |at: Instant| at.saturating_duration_since(Instant::now());
        let _ = cutter.await;
        shared.close_idle.begin();
        let conns = async { tokio::join!(shared.before.all_closed(), shared.during.all_closed()) };
        let conns_done = tokio::time::timeout(left(deadline), conns).await.is_ok();
        let pool_done = self.state.pool.drain(left(deadline)).await;
        monitor.abort();
        if let Some(share) = share {
            share.abort();
        }
        if let Some(rec) = &self.state.spans {
            match rec.write() {
                Ok(path) => tracing::info!("request spans written to {}", path.display()),
                Err(e) => tracing::error!(error = %e, "could not write request spans"),
            }
        }
        let took = started.elapsed().as_millis();
        if conns_done && pool_done {
            tracing::info!(
                "stopped cleanly after {} requests (drained in {took} ms; {left_idle} idle connections closed by us)",
                self.state.metrics.total_requests()
            );
        } else {
            tracing::warn!(conns_done, pool_done, "shutdown timeout reached after {took} ms; exiting with work still open");
        }
        Ok(())
    }

    /// SIGHUP: re-reads the configuration and applies what can change live.
    fn reload(&self) {
        let Some(r) = &self.reload else { return };
        self.notifier.reloading();
        match load::load(&r.source, &r.overrides, &r.schema) {
            Ok(new) => {
                let old = self.state.config();
                let applied = keep_fixed(&old, new.config);
                if let Err(e) = r.log.set_level(&applied.log.level) {
                    tracing::warn!(error = %e, "log level not changed");
                }
                self.state.config.store(Arc::new(applied));
                self.state.sections.store(Arc::new(new.sections));
                tracing::info!("configuration reloaded");
            }
            Err(e) => tracing::error!("configuration reload failed, keeping the running one: {e}"),
        }
        self.notifier.ready("configuration reloaded");
    }
}

/// The next SIGHUP, if listened for (else never).
async fn recv(sighup: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match sighup {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// Waits for a connection slot (`http.max_connections`), then for a connection.
async fn accept(listeners: &mut Listeners, state: &State, limit: &Arc<Semaphore>) -> (Socket, OwnedSemaphorePermit) {
    // The semaphore is never closed.
    let permit = limit.clone().acquire_owned().await.expect("the connection limit is never closed");
    (listeners.accept(state).await, permit)
}

/// Settings fixed at start (socket, pool shape, connection handling) keep
/// their running values on reload; a change to them is reported, not applied.
fn keep_fixed(old: &Config, mut new: Config) -> Config {
    macro_rules! fixed {
        ($($field:ident).+) => {
            if old.$($field).+ != new.$($field).+ {
                tracing::warn!(concat!(stringify!($($field).+), " changed: takes effect on restart"));
                new.$($field).+ = old.$($field).+.clone();
            }
        };
    }
    fixed!(listen);
    fixed!(instance);
    fixed!(pin);
    fixed!(backend);
    fixed!(pool.threads);
    fixed!(pool.queue);
    fixed!(pool.nice);
    fixed!(pool.sched);
    fixed!(pool.pin);
    fixed!(http.max_connections);
    fixed!(http.h2c);
    fixed!(http.header_timeout);
    fixed!(http.max_header_bytes);
    fixed!(streams.max_websockets);
    fixed!(log.format);
    fixed!(debug.endpoints);
    fixed!(debug.spans);
    fixed!(debug.max_spans);
    new
}
