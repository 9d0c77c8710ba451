//! Prometheus metrics (text exposition via `prometheus-client`): requests by
//! route and status, latency by route, open connections, and the pool's
//! queue, busy threads and job outcomes.
//!
//! Every service's metrics are named `corepool_*`, so one set of alert rules
//! and one dashboard fit them all. The exposition carries no `instance` or
//! `service` label: as with any Prometheus exporter, the scrape target does
//! (`job`, `instance`), so the labels never clash with the target's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::pool::PoolStats;

/// The `route` label: the matched route's pattern (`/users/{id}`, never the
/// raw path, so the number of series stays bounded), or `unmatched`.
#[derive(Clone, Debug)]
pub enum Route {
    Matched(axum::extract::MatchedPath),
    Unmatched,
}

impl Route {
    /// The label of requests no route matched (404s and fallback services).
    pub const UNMATCHED: &'static str = "unmatched";

    pub fn as_str(&self) -> &str {
        match self {
            Route::Matched(m) => m.as_str(),
            Route::Unmatched => Route::UNMATCHED,
        }
    }

    /// The same label as `other`: the same pattern. axum hands every request
    /// of a route the same shared pattern, so the pointers usually decide.
    fn same(&self, other: &str) -> bool {
        let mine = self.as_str();
        std::ptr::eq(mine, other) || mine == other
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Route) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Route {}

impl std::hash::Hash for Route {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: Route,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: Route,
}

fn latency_histogram() -> Histogram {
    // 100µs .. ~24s
    Histogram::new(crate::buckets::exponential(0.0001, 2.5, 14))
}

/// `direction`: `in` (from the client) or `out` (to it).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DirectionLabels {
    pub direction: &'static str,
}

/// A WebSocket's close: the code of the first close frame either side sent
/// (`1006` when the connection ended without one), and who sent it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CloseLabels {
    pub code: &'static str,
    pub by: &'static str,
}

/// The metrics of long-lived connections (cheap to clone: shared counters).
#[derive(Clone, Default, Debug)]
pub(crate) struct StreamMetrics {
    pub websockets_open: Gauge,
    pub sse_open: Gauge,
    pub ws_messages: Family<DirectionLabels, Counter>,
    pub ws_bytes: Family<DirectionLabels, Counter>,
    pub ws_closes: Family<CloseLabels, Counter>,
    pub ws_refused: Counter,
    pub ws_capacity: Gauge,
    pub sse_events: Counter,
    pub sse_bytes: Counter,
}

impl StreamMetrics {
    fn register(&self, r: &mut Registry) {
        let ws = r.sub_registry_with_prefix("websocket");
        ws.register("open", "WebSockets open now", self.websockets_open.clone());
        ws.register("messages", "WebSocket data messages by direction (in: from clients)", self.ws_messages.clone());
        ws.register("bytes", "WebSocket bytes on the wire after the upgrade, by direction", self.ws_bytes.clone());
        ws.register("closes", "WebSockets closed, by close code and by whom (server, client; 1006: no close frame)", self.ws_closes.clone());
        ws.register("refused", "WebSocket handshakes refused with 503: streams.max_websockets reached, or draining", self.ws_refused.clone());
        ws.register("capacity", "WebSockets one instance holds (streams.max_websockets)", self.ws_capacity.clone());
        let sse = r.sub_registry_with_prefix("sse");
        sse.register("open", "Server-sent event streams open now", self.sse_open.clone());
        sse.register("frames", "SSE body frames sent (events, keep-alive comments, retry hints)", self.sse_events.clone());
        sse.register("bytes", "SSE bytes sent", self.sse_bytes.clone());
    }
}

/// One (route, status)'s series: handles to the families' own metrics.
struct Series {
    route: Route,
    status: u16,
    requests: Counter,
    latency: Histogram,
}

/// The series requests have used, found by a scan instead of two hashed
/// family lookups per request (`Family::get_or_create` hashes the labels
/// with SipHash under a lock, for each family). Bounded: past `SERIES_CACHED`
/// pairs (a service with many routes or odd statuses) the rest go through
/// the families as before.
const SERIES_CACHED: usize = 64;

/// All metrics of one instance.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    series: RwLock<Vec<Series>>,
    pub connections: Gauge,
    /// Requests being handled now (read by `corepool front drain`).
    pub in_flight: Gauge,
    /// TCP connections refused because the peer is not in `backend.allow`.
    pub refused: Counter,
    /// WebSockets and SSE streams.
    pub(crate) streams: StreamMetrics,
    /// Total requests, also read by the STATUS line for req/s.
    total: Arc<AtomicU64>,
}

#[cfg(feature = "redis")]
impl Metrics {
    /// Registers the Redis link's and broadcast's metrics (when `[redis] url` is set).
    pub(crate) fn add_redis(&mut self, m: &crate::redis::metrics::RedisMetrics) {
        m.register(&mut self.registry);
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("total", &self.total).finish()
    }
}

impl Metrics {
    /// The metrics of an instance whose pool has `threads` threads and room
    /// for `capacity` queued jobs (exported, so a saturation alert needs no
    /// knowledge of the configuration).
    pub fn new(pool: &PoolStats, threads: usize, capacity: usize) -> Metrics {
        let mut root = Registry::with_prefix("corepool");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let connections = Gauge::default();
        root.register("http_requests", "HTTP requests by route and status", requests.clone());
        root.register_with_unit("http_request_duration", "HTTP request latency by route", Unit::Seconds, latency.clone());
        root.register("http_open_connections", "Client connections currently open", connections.clone());
        let in_flight = Gauge::default();
        root.register("http_requests_in_flight", "Requests being handled now", in_flight.clone());
        let refused = Counter::default();
        root.register("tcp_refused", "TCP connections refused: peer not in backend.allow", refused.clone());
        let streams = StreamMetrics::default();
        streams.register(&mut root);
        let p = root.sub_registry_with_prefix("pool");
        p.register("queue_depth", "Jobs waiting for a pool thread", pool.queued.clone());
        p.register("busy_threads", "Pool threads running a job", pool.busy.clone());
        let (t, q) = (Gauge::<i64>::default(), Gauge::<i64>::default());
        t.set(threads as i64);
        q.set(capacity as i64);
        p.register("threads", "Pool threads (pool.threads)", t);
        p.register("queue_capacity", "Jobs the queue holds before refusing with 503 (pool.queue)", q);
        for (outcome, c) in [
            ("completed", &pool.completed),
            ("rejected", &pool.rejected),
            ("timed_out", &pool.timed_out),
            ("cancelled", &pool.cancelled),
            ("panicked", &pool.panicked),
        ] {
            p.register(format!("jobs_{outcome}"), format!("Pool jobs {outcome}"), c.clone());
        }
        Metrics {
            registry: root,
            requests,
            latency,
            series: RwLock::new(Vec::new()),
            connections,
            in_flight,
            refused,
            streams,
            total: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Records one finished request.
    pub fn observe(&self, route: Route, status: u16, elapsed: Duration) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        let found = |list: &[Series]| list.iter().position(|c| c.status == status && c.route.same(route.as_str()));
        // (A poisoned lock only means a panic elsewhere mid-push: the list is whole.)
        let full = {
            let list = self.series.read().unwrap_or_else(|e| e.into_inner());
            if let Some(k) = found(&list) {
                list[k].requests.inc();
                list[k].latency.observe(seconds);
                return;
            }
            list.len() >= SERIES_CACHED
        };
        let requests = self.requests.get_or_create(&RequestLabels { route: route.clone(), status }).clone();
        let latency = self.latency.get_or_create(&RouteLabels { route: route.clone() }).clone();
        requests.inc();
        latency.observe(seconds);
        if full {
            // No write lock for what will not be kept.
            return;
        }
        let mut list = self.series.write().unwrap_or_else(|e| e.into_inner());
        if list.len() < SERIES_CACHED && found(&list).is_none() {
            list.push(Series { route, status, requests, latency });
        }
    }

    /// Requests finished since start.
    pub fn total_requests(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8192);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_requests_latency_and_pool() {
        let pool = PoolStats::default();
        pool.completed.inc();
        let m = Metrics::new(&pool, 2, 64);
        m.observe(Route::Unmatched, 404, Duration::from_micros(300));
        m.observe(Route::Unmatched, 404, Duration::from_micros(300));
        m.observe(Route::Unmatched, 503, Duration::from_millis(1));
        let text = m.encode();
        assert!(text.contains(r#"corepool_http_requests_total{route="unmatched",status="404"} 2"#), "{text}");
        assert!(text.contains(r#"corepool_http_requests_total{route="unmatched",status="503"} 1"#));
        assert!(text.contains(r#"corepool_http_request_duration_seconds_count{route="unmatched"} 3"#));
        assert!(text.contains("corepool_pool_jobs_completed_total 1"), "{text}");
        assert!(text.contains("corepool_pool_queue_depth"));
        assert!(text.contains("corepool_pool_queue_capacity 64") && text.contains("corepool_pool_threads 2"), "{text}");
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(m.total_requests(), 3);
    }

    #[test]
    fn series_past_the_cached_ones_are_counted_alike() {
        let m = Metrics::new(&PoolStats::default(), 1, 1);
        // Twice as many (route, status) pairs as are cached, each seen 1..=3 times.
        let statuses: Vec<u16> = (0..2 * SERIES_CACHED as u16).map(|k| 200 + k).collect();
        for (k, &status) in statuses.iter().enumerate() {
            for _ in 0..=k % 3 {
                m.observe(Route::Unmatched, status, Duration::from_millis(2));
            }
        }
        assert_eq!(m.series.read().unwrap().len(), SERIES_CACHED);
        let text = m.encode();
        for (k, &status) in statuses.iter().enumerate() {
            let line = format!("corepool_http_requests_total{{route=\"unmatched\",status=\"{status}\"}} {}\n", k % 3 + 1);
            assert!(text.contains(&line), "{line}{text}");
        }
        // One latency series for the route, whatever the status.
        let total: usize = (0..statuses.len()).map(|k| k % 3 + 1).sum();
        assert!(text.contains(&format!("corepool_http_request_duration_seconds_count{{route=\"unmatched\"}} {total}\n")), "{text}");
    }
}
