//! [`State`]: what one running instance shares between its connections,
//! requests and background tasks — its identity, the live configuration, the
//! pool, the metrics, the open streams and whether it is draining. Handlers
//! reach it through [`crate::Ctx`].

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::access::AccessLog;
use crate::affinity;
use crate::config::Config;
use crate::load::Loaded;
use crate::metrics::Metrics;
use crate::name::ServiceName;
use crate::pool::{Pool, PoolSettings, ThreadSettings};
use crate::section::{Section, Sections};
use crate::streams::Streams;

/// Shared state of a running instance; handlers reach it through [`crate::Ctx`].
pub struct State {
    pub(crate) config: ArcSwap<Config>,
    pub(crate) sections: ArcSwap<Sections>,
    /// The service this instance belongs to.
    pub service: ServiceName,
    /// The service's version (its crate's).
    pub version: String,
    /// The heavy-work pool ([`crate::Ctx::run`] submits to it).
    pub pool: Pool,
    pub(crate) metrics: Metrics,
    /// The instance number (the `%i` of `NAME@.service`).
    pub instance: u32,
    /// This process's id.
    pub pid: u32,
    /// CPU the event loop is pinned to, if pinned.
    pub cpu: Option<usize>,
    /// When the instance started.
    pub started: Instant,
    /// Open WebSockets and SSE streams, and the signal that ends them on drain.
    pub(crate) streams: Streams,
    shutting_down: AtomicBool,
    pub(crate) next_request: AtomicU64,
    /// `<instance>-<pid>-`, the fixed start of the request ids this process
    /// makes (built once: a request appends only its number).
    pub(crate) id_prefix: Box<[u8]>,
    /// Instances enabled on this host (re-read every second), for `/healthz`:
    /// a remote front's `front add HOST` asks for it.
    pub(crate) enabled_instances: AtomicUsize,
    /// This machine's name (which host answered, behind a front).
    pub hostname: String,
    /// TCP peers allowed (`backend.allow`, fixed at start); empty allows all.
    allow: Vec<ipnet::IpNet>,
    /// Per-request span recorder (`debug.spans`), fixed at start.
    pub(crate) spans: Option<crate::trace::Recorder>,
    /// Where access lines go (`log.access`).
    pub(crate) access: AccessLog,
    /// The connection to Redis (`[redis] url`), fixed at start.
    #[cfg(feature = "redis")]
    pub(crate) redis: Option<Arc<crate::redis::link::Link>>,
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
    pub(crate) fn new(service: ServiceName, version: &str, loaded: &Loaded, access: AccessLog) -> State {
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
        #[allow(unused_mut)]
        let mut metrics = Metrics::new(pool.stats(), pool.threads(), pool.capacity());
        #[cfg(feature = "redis")]
        let redis = crate::redis::link::link_for(&service, &loaded.sections);
        #[cfg(feature = "redis")]
        if let Some(l) = &redis {
            metrics.add_redis(&l.metrics);
        }
        State {
            config: ArcSwap::from_pointee(cfg.clone()),
            sections: ArcSwap::from_pointee(loaded.sections.clone()),
            enabled_instances: service.enabled_instances().map(|v| v.len()).unwrap_or(0).into(),
            service,
            version: version.to_string(),
            streams: Streams::new(&cfg.streams, metrics.streams.clone()),
            pool,
            metrics,
            instance: cfg.instance,
            pid: std::process::id(),
            cpu,
            started: Instant::now(),
            shutting_down: AtomicBool::new(false),
            next_request: AtomicU64::new(0),
            id_prefix: format!("{}-{}-", cfg.instance, std::process::id()).into_bytes().into_boxed_slice(),
            hostname: nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default(),
            allow: cfg.backend.networks(),
            spans: (!cfg.debug.spans.as_os_str().is_empty()).then(|| crate::trace::Recorder::new(&cfg.debug.spans, cfg.instance, cfg.debug.max_spans)),
            access,
            #[cfg(feature = "redis")]
            redis,
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

    /// True once the drain began (SIGTERM): the instance answers what still
    /// comes, then exits; its streams are being closed.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Completes when the instance begins to drain (at once if it has): a
    /// streaming handler's cue to send its last message. corepool then ends
    /// every SSE stream and closes every WebSocket with 1012 itself.
    pub fn draining(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.streams.watched_drain()
    }

    /// Marks the instance as draining and tells every open stream.
    pub(crate) fn begin_drain(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        self.streams.begin_drain();
    }

    /// Instances enabled on this host as systemd units (0 when run by hand).
    pub fn enabled_instances(&self) -> usize {
        self.enabled_instances.load(Ordering::Relaxed)
    }

    /// Requests answered since start.
    pub fn total_requests(&self) -> u64 {
        self.metrics.total_requests()
    }

    /// Whether a TCP peer may be served (`backend.allow`; empty allows everyone).
    pub(crate) fn allowed(&self, peer: std::net::IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&peer))
    }

    /// A one-line summary, also sent to systemd as `STATUS=`.
    pub(crate) fn status_line(&self, rate: f64, conns: usize) -> String {
        #[cfg(feature = "redis")]
        let redis = self.redis.as_ref().map(|l| format!(", redis {}", l.view().state.as_str())).unwrap_or_default();
        #[cfg(not(feature = "redis"))]
        let redis = "";
        format!(
            "{rate:.0} req/s, pool {}/{} busy, {}/{} queued, {conns} connections, {} websockets, {} sse{redis}",
            self.pool.busy(),
            self.pool.threads(),
            self.pool.queued(),
            self.pool.capacity(),
            self.streams.websockets(),
            self.streams.sse(),
        )
    }
}
