//! The instance: one single-threaded tokio event loop (the "process per core"
//! of the Node recipe) serving HTTP on the acquired sockets, plus the pool.
//!
//! Every request goes through [`handle`], which wraps the service's router
//! with what corepool promises around any handler: a request id, the
//! instance's [`Ctx`] for extractors, the `http.max_body` limit, panics turned
//! into 500s, JSON for corepool's own 404/405, a `Cache-Control` default,
//! metrics by route, an access line and, while draining, `Connection: close`.
//!
//! Drain (SIGTERM) loses nothing that reached the instance: it keeps
//! accepting and answering, each answer with `Connection: close`, until every
//! connection it had before the signal is gone or `http.drain_idle` has
//! passed (a proxy closes its idle keep-alive connections by then: nginx's
//! upstream `keepalive_timeout` is below it); only then does it stop
//! accepting, close what is left idle and wait for the requests and jobs in
//! flight. An idle connection is never closed while the proxy may still be
//! writing a request into it, which is what fails non-idempotent requests.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::extract::MatchedPath;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::header::{HeaderValue, CACHE_CONTROL, CONNECTION};
use http::{Request, StatusCode};
use http_body_util::Limited;
use hyper::body::Body as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::access::{AccessLog, Entry};
use crate::affinity;
use crate::config::Config;
use crate::http::ApiError;
use crate::linger::Linger;
use crate::listen::{self, ListenAddr, ListenError, Listener};
use crate::load::{self, ConfigError, Loaded, Override, Schema, Source};
use crate::logging::{self, LogHandle};
use crate::metrics::{Metrics, Route};
use crate::name::ServiceName;
use crate::notify::Notifier;
use crate::pool::{Pool, PoolSettings, ThreadSettings};
use crate::scope;
use crate::section::{Section, Sections};

/// Shared state of a running instance; handlers reach it through [`Ctx`].
pub struct State {
    config: ArcSwap<Config>,
    sections: ArcSwap<Sections>,
    /// The service this instance belongs to.
    pub service: ServiceName,
    /// The service's version (its crate's).
    pub version: String,
    pub pool: Pool,
    pub metrics: Metrics,
    pub instance: u32,
    pub pid: u32,
    /// CPU the event loop is pinned to, if pinned.
    pub cpu: Option<usize>,
    pub started: Instant,
    shutting_down: AtomicBool,
    next_request: AtomicU64,
    /// Instances enabled on this host (re-read every second), for `/healthz`:
    /// a remote front's `front add HOST` asks for it.
    enabled_instances: AtomicUsize,
    /// This machine's name (which host answered, behind a front).
    pub hostname: String,
    /// TCP peers allowed (`backend.allow`, fixed at start); empty allows all.
    allow: Vec<ipnet::IpNet>,
    /// Per-request span recorder (`debug.spans`), fixed at start.
    pub spans: Option<crate::trace::Recorder>,
    /// Where access lines go (`log.access`).
    access: AccessLog,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("service", &self.service).field("instance", &self.instance).field("pid", &self.pid).finish()
    }
}

impl State {
    /// Builds an instance's state from its configuration: the pool (with its
    /// threads' priority and affinity) and the metrics. Pins the calling
    /// thread, the event loop, when `pin` is on.
    pub fn new(service: ServiceName, version: &str, loaded: &Loaded, access: AccessLog) -> State {
        let cfg = &loaded.config;
        let allowed = affinity::allowed_cpus();
        let cpu = if cfg.pin { affinity::cpu_for_instance(cfg.instance, &allowed) } else { None };
        if let Some(c) = cpu {
            if let Err(e) = affinity::set_current_thread(&[c]) {
                tracing::warn!(cpu = c, error = %e, "could not pin the event loop");
            }
        }
        let pool_cpus = match cpu {
            Some(c) if cfg.pool.pin => Some(vec![c]),
            Some(_) => Some(allowed),
            None => None,
        };
        let pool = Pool::new(PoolSettings {
            threads: cfg.pool.threads,
            queue: cfg.pool.queue,
            thread: ThreadSettings { nice: cfg.pool.nice, sched: cfg.pool.sched, cpus: pool_cpus, min_share: cfg.pool.min_share },
        });
        let metrics = Metrics::new(pool.stats(), pool.threads(), pool.capacity());
        State {
            config: ArcSwap::from_pointee(cfg.clone()),
            sections: ArcSwap::from_pointee(loaded.sections.clone()),
            enabled_instances: service.enabled_instances().map(|v| v.len()).unwrap_or(0).into(),
            service,
            version: version.to_string(),
            pool,
            metrics,
            instance: cfg.instance,
            pid: std::process::id(),
            cpu,
            started: Instant::now(),
            shutting_down: AtomicBool::new(false),
            next_request: AtomicU64::new(0),
            hostname: nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default(),
            allow: cfg.backend.networks(),
            spans: (!cfg.debug.spans.as_os_str().is_empty()).then(|| crate::trace::Recorder::new(&cfg.debug.spans, cfg.instance, cfg.debug.max_spans)),
            access,
        }
    }

    /// corepool's current settings (SIGHUP may replace them).
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// The current value of the service's section `T` (SIGHUP may replace
    /// it); None if the service did not register it.
    pub fn section<T: Section>(&self) -> Option<Arc<T>> {
        self.sections.load().get::<T>()
    }

    /// True once SIGTERM arrived: the instance is draining.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Instances enabled on this host as systemd units (0 when run by hand).
    pub fn enabled_instances(&self) -> usize {
        self.enabled_instances.load(Ordering::Relaxed)
    }

    /// Whether a TCP peer may be served (`backend.allow`; empty allows everyone).
    fn allowed(&self, peer: std::net::IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&peer))
    }

    /// A one-line summary, also sent to systemd as `STATUS=`.
    fn status_line(&self, rate: f64, conns: usize) -> String {
        format!(
            "{rate:.0} req/s, pool {}/{} busy, {}/{} queued, {conns} connections",
            self.pool.busy(),
            self.pool.threads(),
            self.pool.queued(),
            self.pool.capacity()
        )
    }
}

/// Why an instance could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Name(#[from] crate::name::NameError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("invalid listen address: {0}")]
    Address(String),
    #[error("{0}")]
    Routes(String),
    #[error("{0}")]
    Usage(String),
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
    let cfg = inst.loaded.config.clone();
    let addr: ListenAddr = cfg.listen.parse().map_err(ServeError::Address)?;
    let acquired = listen::acquire(&addr)?;
    let state = Arc::new(State::new(inst.service, &inst.version, &inst.loaded, log.access.clone()));
    if let Some(f) = &inst.loaded.file {
        tracing::info!("configuration from {}", f.display());
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let unix_path = match (&addr, acquired.activated) {
        (ListenAddr::Unix(p), false) => Some(p.clone()),
        _ => None,
    };
    let server = Server { state, app: inst.app, schema: inst.schema, source: inst.source, overrides: inst.overrides, log, notifier: Notifier::from_env() };
    let result = rt.block_on(server.serve(acquired));
    if let Some(p) = unix_path {
        let _ = std::fs::remove_file(p);
    }
    result
}

struct Server {
    state: Arc<State>,
    app: Router,
    schema: Schema,
    source: Source,
    overrides: Vec<Override>,
    log: LogHandle,
    notifier: Notifier,
}

/// Counts open connections of one kind: those accepted before the drain
/// began (the drain waits for their peer to close them), or during it.
#[derive(Default)]
struct Tracked {
    open: AtomicUsize,
    closed: tokio::sync::Notify,
}

impl Tracked {
    /// Counts one connection until the guard is dropped.
    fn track(self: &Arc<Tracked>) -> TrackGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        TrackGuard(self.clone())
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Waits until none is open.
    async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            if self.open() == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// Uncounts its connection from [`Tracked`] when the connection ends.
struct TrackGuard(Arc<Tracked>);

impl Drop for TrackGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.closed.notify_waiters();
        }
    }
}

impl Server {
    async fn serve(self, acquired: listen::Acquired) -> Result<(), ServeError> {
        let listeners = acquired.listeners.into_iter().map(|l| l.into_tokio()).collect::<std::io::Result<Vec<_>>>()?;
        for l in &listeners {
            if let Err(e) = l.accept_new() {
                tracing::warn!(error = %e, "could not clear a previous instance's hold-off filter from the socket");
            }
        }
        let mut turn = 0usize;
        let cfg = self.state.config();
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sighup = signal(SignalKind::hangup())?;

        let builder = Arc::new(http_builder(&cfg));
        let graceful = GracefulShutdown::new();
        let limit = Arc::new(Semaphore::new(cfg.http.max_connections));
        let before = Arc::new(Tracked::default());
        let during = Arc::new(Tracked::default());
        let monitor = tokio::spawn(monitor(self.state.clone(), self.notifier.clone(), limit.clone(), cfg.http.max_connections));
        let share = self.state.pool.governor().active().then(|| tokio::spawn(govern(self.state.pool.governor().clone())));

        let ready = format!("serving on {}", acquired.describe);
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

        // A connection accepted before the drain is closed by the drain's
        // last step if still idle (`graceful`); one accepted during the drain
        // is not: its client (nginx) writes its first request right after
        // connecting, and closing it in between would lose that request. It
        // ends after its first answer (`Connection: close`), or at
        // http.header_timeout if nothing comes.
        let spawn_conn = |conn: Conn, permit: tokio::sync::OwnedSemaphorePermit, draining: bool| {
            let watcher = (!draining).then(|| graceful.watcher());
            let guard = if draining { during.track() } else { before.track() };
            let state = self.state.clone();
            let app = self.app.clone();
            let builder = builder.clone();
            tokio::spawn(async move {
                state.metrics.connections.inc();
                let svc_state = state.clone();
                let svc = hyper::service::service_fn(move |req| handle(svc_state.clone(), app.clone(), req));
                let result = match (conn, watcher) {
                    (Conn::Tcp(s), Some(w)) => w.watch(builder.serve_connection(TokioIo::new(Linger::new(s)), svc).into_owned()).await,
                    (Conn::Unix(s), Some(w)) => w.watch(builder.serve_connection(TokioIo::new(Linger::new(s)), svc).into_owned()).await,
                    (Conn::Tcp(s), None) => builder.serve_connection(TokioIo::new(Linger::new(s)), svc).into_owned().await,
                    (Conn::Unix(s), None) => builder.serve_connection(TokioIo::new(Linger::new(s)), svc).into_owned().await,
                };
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                state.metrics.connections.dec();
                drop(guard);
                drop(permit);
            });
        };

        let why = loop {
            tokio::select! {
                _ = sigterm.recv() => break "SIGTERM",
                _ = sigint.recv() => break "SIGINT",
                _ = sighup.recv() => self.reload(),
                accepted = accept(&self.state, &listeners, turn, &limit) => match accepted {
                    Ok((conn, permit)) => {
                        turn = turn.wrapping_add(1);
                        spawn_conn(conn, permit, false);
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
            }
        };

        // Drain, step 1: answer everything that still comes, each answer
        // closing its connection, until the connections opened before the
        // signal are closed by their peers (or drain_idle passed).
        self.state.shutting_down.store(true, Ordering::Relaxed);
        let started = Instant::now();
        let cfg = self.state.config();
        let open = self.state.metrics.connections.get();
        tracing::info!("{why}: draining {open} connections (idle ones for up to {:?}, all for up to {:?})", cfg.http.drain_idle, cfg.shutdown_timeout);
        self.notifier.stopping(&format!("draining {open} connections"));
        let idle_deadline = tokio::time::Instant::now() + cfg.http.drain_idle.min(cfg.shutdown_timeout);
        loop {
            let closed = before.closed.notified();
            if before.open() == 0 {
                break;
            }
            tokio::select! {
                _ = closed => {}
                _ = tokio::time::sleep_until(idle_deadline) => break,
                _ = sigterm.recv() => {}
                _ = sigint.recv() => {}
                accepted = accept(&self.state, &listeners, turn, &limit) => if let Ok((conn, permit)) = accepted {
                    turn = turn.wrapping_add(1);
                    spawn_conn(conn, permit, true);
                },
            }
        }
        let left_idle = before.open();
        // Step 2: stop accepting, after taking what waits in the backlog now
        // (it is answered, each answer closing its connection). Under systemd
        // the socket stays open in PID 1, so later connections wait in its
        // backlog for the next instance; when the socket closes for good
        // (scale down, disable), corepool-ctl has held new ones off first
        // (`listen::hold_off`), so the backlog is empty by then. (At most a
        // backlog's worth: under a steady stream it would never be empty.)
        for _ in 0..4096 {
            let Ok(Ok((conn, permit))) = tokio::time::timeout(Duration::ZERO, accept(&self.state, &listeners, turn, &limit)).await else {
                break;
            };
            turn = turn.wrapping_add(1);
            spawn_conn(conn, permit, true);
        }
        drop(listeners);
        // Step 3: close the pre-drain connections still idle now, busy ones
        // after their answer; let those accepted during the drain finish
        // their request; wait for all of it and the pool, up to
        // shutdown_timeout from the signal.
        let deadline = started + cfg.shutdown_timeout;
        let conns = async { tokio::join!(graceful.shutdown(), during.all_closed()) };
        let conns_done = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), conns).await.is_ok();
        let pool_done = self.state.pool.drain(deadline.saturating_duration_since(Instant::now())).await;
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
        self.notifier.reloading();
        match load::load(&self.source, &self.overrides, &self.schema) {
            Ok(new) => {
                let old = self.state.config();
                let applied = keep_fixed(&old, new.config);
                if let Err(e) = self.log.set_level(&applied.log.level) {
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
    fixed!(log.format);
    fixed!(debug.endpoints);
    fixed!(debug.spans);
    fixed!(debug.max_spans);
    new
}

fn http_builder(cfg: &Config) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1().timer(TokioTimer::new()).keep_alive(true).header_read_timeout(cfg.http.header_timeout).max_buf_size(cfg.http.max_header_bytes);
    b.http2().timer(TokioTimer::new()).keep_alive_interval(Some(Duration::from_secs(30)));
    if cfg.http.h2c {
        b
    } else {
        b.http1_only()
    }
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// Waits for a connection slot, then for a connection on any listener
/// (starting with a different one each `turn`, so none starves another).
/// A TCP peer outside `backend.allow` is reset at once and never served.
async fn accept(state: &State, listeners: &[Listener], turn: usize, limit: &Arc<Semaphore>) -> std::io::Result<(Conn, tokio::sync::OwnedSemaphorePermit)> {
    let permit = limit.clone().acquire_owned().await.map_err(std::io::Error::other)?;
    loop {
        let conn = std::future::poll_fn(|cx| {
            let n = listeners.len();
            for k in 0..n {
                let polled = match &listeners[(turn + k) % n] {
                    Listener::Tcp(l) => l.poll_accept(cx).map_ok(|(s, peer)| (Conn::Tcp(s), Some(peer))),
                    Listener::Unix(l) => l.poll_accept(cx).map_ok(|(s, _)| (Conn::Unix(s), None)),
                };
                if polled.is_ready() {
                    return polled;
                }
            }
            Poll::Pending
        })
        .await?;
        match conn {
            (Conn::Tcp(s), Some(peer)) if !state.allowed(peer.ip()) => {
                state.metrics.refused.inc();
                tracing::debug!(%peer, "refused: not in backend.allow");
                // RST instead of FIN: the peer sees "connection reset", not an empty answer.
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            }
            (Conn::Tcp(s), _) => {
                let _ = s.set_nodelay(true);
                return Ok((Conn::Tcp(s), permit));
            }
            (conn, _) => return Ok((conn, permit)),
        }
    }
}

/// Counts a request in flight for as long as it is handled (also when the
/// client goes away and hyper drops the handler).
struct InFlight<'a>(&'a prometheus_client::metrics::gauge::Gauge);

impl<'a> InFlight<'a> {
    fn new(g: &'a prometheus_client::metrics::gauge::Gauge) -> Self {
        g.inc();
        InFlight(g)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The 500 a panicking handler's request gets (the instance goes on).
fn handler_panicked(panic: &str, route: &str) -> Response {
    tracing::error!(panic = %panic, route = %route, "handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "handler failed unexpectedly").into_response()
}

/// Polls `fut`, turning a panic in it into `Err` (the handler's panic stays
/// within its request).
async fn catch_panic<F: Future>(fut: F) -> Result<F::Output, String> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
        Ok(p) => p.map(Ok),
        Err(payload) => Poll::Ready(Err(crate::pool::panic_message(payload.as_ref()))),
    })
    .await
}

/// One request through the service's router, with everything corepool does around it.
pub(crate) async fn handle<B>(state: Arc<State>, app: Router, req: Request<B>) -> Result<Response, Infallible>
where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let started = Instant::now();
    let _in_flight = InFlight::new(&state.metrics.in_flight);
    let id = request_id(&state, &req);
    let (access, max_body) = {
        let cfg = state.config.load();
        (cfg.log.access, cfg.http.max_body as usize)
    };
    let (method, uri, version) = (req.method().clone(), req.uri().clone(), req.version());
    let mut req = req.map(|b| Body::new(Limited::new(b, max_body)));
    // The limit is corepool's, above: axum's extractors must not add their own.
    axum::extract::DefaultBodyLimit::disable().apply(&mut req);

    let routed = scope::run(state.clone(), catch_panic(app.oneshot(req)));
    let (routed, matched) = match &state.spans {
        None => routed.await,
        Some(rec) => {
            let route_status = |(r, m): &(Result<Result<Response, Infallible>, String>, Option<MatchedPath>)| {
                let route = m.as_ref().map_or(Route::UNMATCHED, |m| m.as_str()).to_string();
                (route, r.as_ref().ok().map_or(500, |r| r.as_ref().map_or(500, |r| r.status().as_u16())))
            };
            rec.record(started, route_status, routed).await
        }
    };
    let route = match matched {
        Some(m) => Route::Matched(m),
        None => Route::Unmatched,
    };
    let mut resp = match routed {
        Ok(Ok(resp)) => resp,
        Ok(Err(never)) => match never {},
        Err(panic) => handler_panicked(&panic, route.as_str()),
    };
    corepool_errors(&mut resp, &method, uri.path());
    let headers = resp.headers_mut();
    // Nothing is cacheable unless its handler says so (see README: caching).
    headers.entry(CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    headers.insert(X_REQUEST_ID.clone(), id.clone());
    if state.is_shutting_down() {
        // Draining: the client (nginx) closes this connection after the
        // answer, instead of us closing it under a request it is sending.
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    if access {
        state.access.write(&Entry { method: &method, uri: &uri, version, status, elapsed, id: id.as_bytes() });
    }
    state.metrics.observe(route, status, elapsed);
    Ok(resp)
}

/// axum's own 404 and 405 have empty bodies; corepool answers JSON like
/// every other error it makes (a handler's own 404 is left alone).
fn corepool_errors(resp: &mut Response, method: &http::Method, path: &str) {
    let status = resp.status();
    if !(status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED) || resp.body().size_hint().exact() != Some(0) {
        return;
    }
    let err = if status == StatusCode::NOT_FOUND {
        ApiError::new(status, format!("no route for {path}"))
    } else {
        let allow = resp.headers().get(http::header::ALLOW).and_then(|v| v.to_str().ok()).map(String::from);
        ApiError { allow, ..ApiError::new(status, format!("{method} not allowed on {path}")) }
    };
    let ext = std::mem::take(resp.extensions_mut());
    *resp = err.into_response();
    *resp.extensions_mut() = ext;
}

static X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The caller's `X-Request-Id` if it is sane, else `<instance>-<pid>-<n>`.
fn request_id<B>(state: &State, req: &Request<B>) -> HeaderValue {
    if let Some(v) = req.headers().get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic()) {
            return v.clone();
        }
    }
    let n = state.next_request.fetch_add(1, Ordering::Relaxed);
    HeaderValue::try_from(format!("{}-{}-{n}", state.instance, state.pid)).unwrap_or(HeaderValue::from_static("-"))
}

/// `pool.min_share`: the governor's look at the pool threads, every window.
async fn govern(governor: Arc<crate::share::Governor>) {
    let mut tick = tokio::time::interval(crate::share::WINDOW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    loop {
        tick.tick().await;
        let now = Instant::now();
        governor.tick(now.duration_since(last));
        last = now;
    }
}

/// Every second: the STATUS= line. Every half watchdog period: WATCHDOG=1, but
/// only while the pool is healthy (this task running at all proves the event
/// loop is).
async fn monitor(state: Arc<State>, notifier: Notifier, limit: Arc<Semaphore>, max_conns: usize) {
    let watchdog = notifier.watchdog();
    let period = watchdog.map(|w| (w / 2).min(Duration::from_secs(1))).unwrap_or(Duration::from_secs(1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = (Instant::now(), state.metrics.total_requests());
    let mut stalled_logged = false;
    loop {
        tick.tick().await;
        let now = Instant::now();
        if let Ok(v) = state.service.enabled_instances() {
            state.enabled_instances.store(v.len(), Ordering::Relaxed);
        }
        let total = state.metrics.total_requests();
        let dt = now.duration_since(last.0).as_secs_f64();
        if dt >= 0.9 {
            let rate = (total - last.1) as f64 / dt;
            last = (now, total);
            let conns = max_conns - limit.available_permits();
            notifier.status(&state.status_line(rate, conns));
        }
        if watchdog.is_some() {
            // A job running for twice its deadline ignored its cancel flag: the pool is wedged.
            let limit = state.config.load().pool.job_timeout * 2;
            match state.pool.stalled(limit) {
                None => {
                    notifier.watchdog_ping();
                    stalled_logged = false;
                }
                Some(for_) if !stalled_logged => {
                    tracing::error!("pool stalled: a job has been running for {for_:?}; withholding watchdog pings");
                    stalled_logged = true;
                }
                Some(_) => {}
            }
        }
    }
}
