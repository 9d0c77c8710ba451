//! The instance: one single-threaded tokio event loop (the "process per core"
//! of the Node recipe) serving HTTP on the acquired socket, plus the fixed pool.
//!
//! [`App`] is also the library's extension point: register routes that use
//! the pool, call [`App::run`], and get socket activation, systemd notify,
//! metrics, access logs and graceful shutdown with them.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::header::HeaderValue;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Semaphore;

use crate::config::{self, Config, ConfigError, Loaded, Override, Source};
use crate::http::{Body, Ctx, HandlerResult, Router};
use crate::listen::{self, ListenAddr, ListenError, Listener};
use crate::logging::{self, LogHandle};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::pool::{Pool, PoolSettings, ThreadSettings};
use crate::affinity;

/// Shared state of a running instance, handed to every handler.
pub struct State {
    config: ArcSwap<Config>,
    pub pool: Pool,
    pub metrics: Metrics,
    pub instance: u32,
    pub pid: u32,
    /// CPU the event loop is pinned to, if pinned.
    pub cpu: Option<usize>,
    pub started: Instant,
    shutting_down: AtomicBool,
    next_request: AtomicU64,
    /// Instances enabled on this host (re-read every second), for `GET /`:
    /// a remote front's `corepool front add HOST` asks for it.
    enabled_instances: std::sync::atomic::AtomicUsize,
    /// This machine's name (which host answered, behind a front).
    pub hostname: String,
    /// TCP peers allowed (`backend.allow`, fixed at start); empty allows all.
    allow: Vec<ipnet::IpNet>,
    /// Per-request span recorder (`debug.spans`), fixed at start.
    pub spans: Option<crate::trace::Recorder>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("instance", &self.instance).field("pid", &self.pid).finish()
    }
}

impl State {
    /// The current configuration (SIGHUP may replace it).
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

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

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("invalid listen address: {0}")]
    Address(String),
    #[error("runtime: {0}")]
    Io(#[from] std::io::Error),
}

/// A corepool instance: configuration plus routes.
pub struct App {
    loaded: Loaded,
    source: Option<(Source, Vec<Override>)>,
    router: Router,
}

impl App {
    /// Loads configuration from `source` with `overrides`; SIGHUP reloads from the same places.
    pub fn load(source: Source, overrides: Vec<Override>) -> Result<App, ConfigError> {
        let loaded = config::load(&source, &overrides)?;
        let router = crate::http::builtin(loaded.config.debug.endpoints);
        Ok(App { loaded, source: Some((source, overrides)), router })
    }

    /// An app on a ready-made configuration (SIGHUP then only re-applies it).
    pub fn with_config(config: Config) -> App {
        let router = crate::http::builtin(config.debug.endpoints);
        App { loaded: Loaded { config, file: None }, source: None, router }
    }

    pub fn config(&self) -> &Config {
        &self.loaded.config
    }

    /// Adds a route (replacing a built-in one with the same method and path).
    pub fn route<F, Fut>(mut self, method: Method, path: &str, handler: F) -> App
    where
        F: Fn(Request<Incoming>, Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.router = self.router.route(method, path, handler);
        self
    }

    /// Runs the instance until SIGTERM/SIGINT, then drains and returns.
    pub fn run(self) -> Result<(), ServeError> {
        let log = logging::init(&self.loaded.config.log);
        self.run_with(log)
    }

    fn run_with(self, log: LogHandle) -> Result<(), ServeError> {
        let cfg = self.loaded.config.clone();
        let addr: ListenAddr = cfg.listen.parse().map_err(ServeError::Address)?;
        let acquired = listen::acquire(&addr)?;

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
            thread: ThreadSettings { nice: cfg.pool.nice, sched: cfg.pool.sched, cpus: pool_cpus },
        });
        let metrics = Metrics::new(pool.stats(), cfg.instance);
        let state = Arc::new(State {
            config: ArcSwap::from_pointee(cfg.clone()),
            pool,
            metrics,
            instance: cfg.instance,
            pid: std::process::id(),
            cpu,
            started: Instant::now(),
            shutting_down: AtomicBool::new(false),
            next_request: AtomicU64::new(0),
            enabled_instances: crate::units::enabled().map(|v| v.len()).unwrap_or(0).into(),
            hostname: nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default(),
            allow: cfg.backend.networks(),
            spans: (!cfg.debug.spans.as_os_str().is_empty())
                .then(|| crate::trace::Recorder::new(&cfg.debug.spans, cfg.instance, cfg.debug.max_spans)),
        });
        if let Some(f) = &self.loaded.file {
            tracing::info!("configuration from {}", f.display());
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let unix_path = match (&addr, acquired.activated) {
            (ListenAddr::Unix(p), false) => Some(p.clone()),
            _ => None,
        };
        let server = Server { state, router: self.router, source: self.source, log, notifier: Notifier::from_env() };
        let result = rt.block_on(server.serve(acquired));
        if let Some(p) = unix_path {
            let _ = std::fs::remove_file(p);
        }
        result
    }
}

struct Server {
    state: Arc<State>,
    router: Router,
    source: Option<(Source, Vec<Override>)>,
    log: LogHandle,
    notifier: Notifier,
}

impl Server {
    async fn serve(self, acquired: listen::Acquired) -> Result<(), ServeError> {
        let listeners = acquired.listeners.into_iter().map(|l| l.into_tokio()).collect::<std::io::Result<Vec<_>>>()?;
        let mut turn = 0usize;
        let cfg = self.state.config();
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sighup = signal(SignalKind::hangup())?;

        let builder = Arc::new(http_builder(&cfg));
        let graceful = GracefulShutdown::new();
        let limit = Arc::new(Semaphore::new(cfg.http.max_connections));
        let monitor = tokio::spawn(monitor(self.state.clone(), self.notifier.clone(), limit.clone(), cfg.http.max_connections));

        let ready = format!("serving on {}", acquired.describe);
        tracing::info!(
            instance = self.state.instance,
            cpu = ?self.state.cpu,
            pool_threads = self.state.pool.threads(),
            "corepool {} {ready}",
            env!("CARGO_PKG_VERSION")
        );
        self.notifier.ready(&ready);

        let why = loop {
            tokio::select! {
                _ = sigterm.recv() => break "SIGTERM",
                _ = sigint.recv() => break "SIGINT",
                _ = sighup.recv() => self.reload(),
                accepted = accept(&self.state, &listeners, turn, &limit) => match accepted {
                    Ok((conn, permit)) => {
                        turn = turn.wrapping_add(1);
                        let watcher = graceful.watcher();
                        let state = self.state.clone();
                        let router = self.router.clone();
                        let builder = builder.clone();
                        tokio::spawn(async move {
                            state.metrics.connections.inc();
                            let svc_state = state.clone();
                            let svc = hyper::service::service_fn(move |req| handle(svc_state.clone(), router.clone(), req));
                            let result = match conn {
                                Conn::Tcp(s) => watcher.watch(builder.serve_connection(TokioIo::new(s), svc).into_owned()).await,
                                Conn::Unix(s) => watcher.watch(builder.serve_connection(TokioIo::new(s), svc).into_owned()).await,
                            };
                            if let Err(e) = result {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                            state.metrics.connections.dec();
                            drop(permit);
                        });
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
            }
        };

        // Stop accepting; under systemd the socket stays open in PID 1, so new
        // connections wait in its backlog for the next instance.
        self.state.shutting_down.store(true, Ordering::Relaxed);
        drop(listeners);
        let cfg = self.state.config();
        let open = self.state.metrics.connections.get();
        tracing::info!("{why}: draining {open} connections (up to {:?})", cfg.shutdown_timeout);
        self.notifier.stopping(&format!("draining {open} connections"));
        let deadline = Instant::now() + cfg.shutdown_timeout;
        let conns_done = tokio::time::timeout(cfg.shutdown_timeout, graceful.shutdown()).await.is_ok();
        let pool_done = self.state.pool.drain(deadline.saturating_duration_since(Instant::now())).await;
        monitor.abort();
        if let Some(rec) = &self.state.spans {
            match rec.write() {
                Ok(path) => tracing::info!("request spans written to {}", path.display()),
                Err(e) => tracing::error!(error = %e, "could not write request spans"),
            }
        }
        if conns_done && pool_done {
            tracing::info!("stopped cleanly after {} requests", self.state.metrics.total_requests());
        } else {
            tracing::warn!(conns_done, pool_done, "shutdown timeout reached; exiting with work still open");
        }
        Ok(())
    }

    /// SIGHUP: re-reads the configuration and applies what can change live.
    fn reload(&self) {
        self.notifier.reloading();
        let old = self.state.config();
        let loaded = match &self.source {
            Some((source, overrides)) => config::load(source, overrides).map(|l| l.config),
            None => Ok((*old).clone()),
        };
        match loaded {
            Ok(new) => {
                let applied = keep_fixed(&old, new);
                if let Err(e) = self.log.set_level(&applied.log.level) {
                    tracing::warn!(error = %e, "log level not changed");
                }
                self.state.config.store(Arc::new(applied));
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
    b.http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(cfg.http.header_timeout)
        .max_buf_size(cfg.http.max_header_bytes);
    b.http2().timer(TokioTimer::new()).keep_alive_interval(Some(Duration::from_secs(30)));
    if cfg.http.h2c { b } else { b.http1_only() }
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// Waits for a connection slot, then for a connection on any listener
/// (starting with a different one each `turn`, so none starves another).
/// A TCP peer outside `backend.allow` is reset at once and never served.
async fn accept(
    state: &State,
    listeners: &[Listener],
    turn: usize,
    limit: &Arc<Semaphore>,
) -> std::io::Result<(Conn, tokio::sync::OwnedSemaphorePermit)> {
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
            std::task::Poll::Pending
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

/// One request: id, dispatch, metrics, access log.
async fn handle(state: Arc<State>, router: Router, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let _in_flight = InFlight::new(&state.metrics.in_flight);
    let id = request_id(&state, &req);
    let access = state.config.load().log.access;
    let line = access.then(|| (req.method().clone(), req.uri().clone(), req.version()));
    let (route, mut resp) = match &state.spans {
        None => router.dispatch(req, state.clone()).await,
        Some(rec) => {
            let route_status = |(route, resp): &(_, Response<Body>)| (*route, resp.status().as_u16());
            rec.record(started, route_status, router.dispatch(req, state.clone())).await
        }
    };
    let elapsed = started.elapsed();
    state.metrics.observe(route, resp.status().as_u16(), elapsed);
    if let Some((method, uri, version)) = line {
        tracing::info!(
            target: "corepool::access",
            "{method} {uri} {version:?} {} {:.3}ms id={}",
            resp.status().as_u16(),
            elapsed.as_secs_f64() * 1000.0,
            id.to_str().unwrap_or("-")
        );
    }
    resp.headers_mut().insert("x-request-id", id);
    Ok(resp)
}

/// The caller's `X-Request-Id` if it is sane, else `<instance>-<pid>-<n>`.
fn request_id(state: &State, req: &Request<Incoming>) -> HeaderValue {
    if let Some(v) = req.headers().get("x-request-id") {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic()) {
            return v.clone();
        }
    }
    let n = state.next_request.fetch_add(1, Ordering::Relaxed);
    HeaderValue::try_from(format!("{}-{}-{n}", state.instance, state.pid)).unwrap_or(HeaderValue::from_static("-"))
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
        if let Ok(v) = crate::units::enabled() {
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
