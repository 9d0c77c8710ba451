//! The Redis link's and the broadcast's metrics, registered only when
//! `[redis] url` is set (so an alert on `corepool_redis_connected == 0`
//! never fires for a service without Redis).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// `kind`: why a command failed (`timeout`, `connection`, `unavailable`, `server`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabels {
    pub kind: &'static str,
}

/// `reason`: why a broadcast message did not reach a local subscriber.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub reason: &'static str,
}

/// Cheap to clone: shared counters.
#[derive(Clone, Debug)]
pub(crate) struct RedisMetrics {
    pub connected: Gauge,
    pub duration: Histogram,
    pub errors: Family<KindLabels, Counter>,
    pub reconnects: Counter,
    pub published: Counter,
    pub delivered: Counter,
    pub dropped: Family<ReasonLabels, Counter>,
    pub topics: Gauge,
}

impl Default for RedisMetrics {
    fn default() -> Self {
        RedisMetrics {
            connected: Gauge::default(),
            // 50µs .. ~3.3s
            duration: Histogram::new(crate::buckets::exponential(0.00005, 2.5, 13)),
            errors: Family::default(),
            reconnects: Counter::default(),
            published: Counter::default(),
            delivered: Counter::default(),
            dropped: Family::default(),
            topics: Gauge::default(),
        }
    }
}

impl RedisMetrics {
    pub(crate) fn register(&self, root: &mut Registry) {
        let r = root.sub_registry_with_prefix("redis");
        r.register("connected", "1 while the instance's connection to Redis is up", self.connected.clone());
        r.register_with_unit("command_duration", "Redis round trips (commands sent by handlers, sessions and limits)", Unit::Seconds, self.duration.clone());
        r.register(
            "errors",
            "Redis commands that failed, by kind (timeout, connection, unavailable: no connection, server: an error reply)",
            self.errors.clone(),
        );
        r.register("reconnects", "Connections to Redis lost and set up again", self.reconnects.clone());
        let b = root.sub_registry_with_prefix("broadcast");
        b.register("published", "Broadcast messages this instance published", self.published.clone());
        b.register("delivered", "Broadcast messages handed to this instance's subscribers (one per subscriber)", self.delivered.clone());
        b.register("dropped", "Broadcast messages a local subscriber missed, by reason (lagged: it fell behind redis.broadcast_buffer)", self.dropped.clone());
        b.register("topics", "Topics this instance is subscribed to in Redis", self.topics.clone());
    }
}
