//! corepool's own settings: what every instance has, whatever the service
//! (socket, pool, HTTP limits, logging, remote fronts). A service adds its own
//! sections beside them ([`crate::section`]); [`crate::load`] reads both from
//! one file with file:line:key errors.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::listen::ListenAddr;
use crate::section::InvalidSetting;

/// Bodies read with [`crate::http::read_json`] are capped at this size regardless of `http.max_body`.
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

/// corepool's settings for one instance. Unknown top-level keys are not
/// refused here but by [`crate::load`], which knows the service's sections too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address to bind when *not* socket-activated: `HOST:PORT` or `unix:/path`.
    pub listen: String,
    /// Instance number (the `%i` of `corepool@.service`).
    pub instance: u32,
    /// Pin the event loop to CPU `instance mod ncpu` (of the CPUs allowed to the process).
    /// Off by default: with nginx on the same cores, an unpinned event loop can move to
    /// whichever CPU is free (docs/benchmarks.md, "As shipped").
    pub pin: bool,
    /// How long SIGTERM waits for in-flight requests and jobs.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// HTTP limits and the drain (`[http]`).
    pub http: HttpConfig,
    /// WebSockets and server-sent events (`[streams]`).
    pub streams: StreamsConfig,
    /// The heavy-work pool (`[pool]`).
    pub pool: PoolConfig,
    /// Logging (`[log]`).
    pub log: LogConfig,
    /// Serving remote fronts over TCP (`[backend]`).
    pub backend: BackendConfig,
    /// The host's scrape endpoint (`[metrics]`).
    pub metrics: MetricsConfig,
    /// Fault injection and request spans (`[debug]`).
    pub debug: DebugConfig,
}

/// HTTP limits and the drain (`[http]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted (bytes); larger gets 413.
    pub max_body: u64,
    /// Largest request head (request line + headers, bytes); larger gets 431.
    pub max_header_bytes: usize,
    /// Time allowed to receive a request head, and to wait for the next one on
    /// an idle keep-alive connection. Slow clients are disconnected.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Time allowed to receive a whole request body; slower gets 408.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// On SIGTERM, how long to wait for idle keep-alive connections to be
    /// closed by their peer (a proxy) before closing them ourselves. Keep it
    /// above the proxy's idle timeout (nginx upstream `keepalive_timeout`,
    /// 4s in the generated upstream) and below `header_timeout`. Capped at
    /// `shutdown_timeout`.
    #[serde(with = "humantime_serde")]
    pub drain_idle: Duration,
    /// Also accept HTTP/2 with prior knowledge (h2c) on the same socket.
    pub h2c: bool,
}

/// Long-lived connections: WebSockets (upgraded HTTP/1.1 connections) and
/// server-sent events (`text/event-stream` responses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamsConfig {
    /// WebSockets open at once on one instance; a handshake beyond them is
    /// answered 503 with `Retry-After` before upgrading. Each one also takes a
    /// file descriptor (the unit's `LimitNOFILE=` is sized for this).
    pub max_websockets: usize,
    /// Every WebSocket is sent a ping this often, and an SSE stream that sent
    /// nothing for this long a comment line, so that no proxy closes them as
    /// idle (nginx's `proxy_read_timeout` is 60 s in the packaged site; keep
    /// it below). A WebSocket peer that sends nothing, not even the pong,
    /// for an interval after a ping is taken for dead and its connection cut
    /// (within two intervals of its last sign of life).
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// On drain, how long WebSockets are given to complete the closing
    /// handshake (code 1012) before their connections are cut.
    #[serde(with = "humantime_serde")]
    pub close_timeout: Duration,
    /// Largest WebSocket frame a client may send (bytes); larger: close 1009.
    pub max_frame: usize,
    /// Largest WebSocket message (all its frames, bytes); larger: close 1009.
    pub max_message: usize,
    /// Read and write buffer of each WebSocket (bytes), for the
    /// `corepool::ws::WebSocketUpgrade` extractor: small, since most sockets
    /// are idle most of the time.
    pub buffer: usize,
    /// Most bytes queued for a WebSocket client that reads slower than it is
    /// written to; past it, sending fails instead of growing memory.
    pub max_write_buffer: usize,
    /// The `retry:` hint an SSE stream ends with on drain: how soon the
    /// client's EventSource reconnects (to another instance).
    #[serde(with = "humantime_serde")]
    pub sse_retry: Duration,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        StreamsConfig {
            max_websockets: 10_000,
            ping_interval: Duration::from_secs(30),
            close_timeout: Duration::from_secs(3),
            max_frame: 1 << 20,
            max_message: 1 << 20,
            buffer: 4096,
            max_write_buffer: 1 << 20,
            sse_retry: Duration::from_secs(1),
        }
    }
}

/// The heavy-work pool (`[pool]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// Worker threads for heavy jobs (fixed for the life of the process).
    pub threads: usize,
    /// Jobs allowed to wait for a thread; more are refused with 503.
    pub queue: usize,
    /// Deadline of a job from submission; past it the client gets 504.
    #[serde(with = "humantime_serde")]
    pub job_timeout: Duration,
    /// Nice value of pool threads (0..19), so the event loop wins the CPU.
    pub nice: i32,
    /// Scheduling policy of pool threads: `normal` (SCHED_OTHER at `nice`),
    /// `batch` (SCHED_BATCH) or `idle` (SCHED_IDLE: preempted the moment the
    /// event loop wakes, but across CPU groups it delays other services more).
    pub sched: PoolSched,
    /// The floor under a busy pool thread's CPU share (0..1): below it, the
    /// thread runs at normal priority until it catches up, so heavy requests
    /// are not starved by light work that keeps every CPU busy. 0: strict
    /// priority (light always first).
    pub min_share: f64,
    /// Pin pool threads to the event loop's CPU (when `pin` is on).
    pub pin: bool,
}

/// Scheduling policy of the pool's threads (`pool.sched`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolSched {
    /// SCHED_IDLE.
    Idle,
    /// SCHED_BATCH.
    Batch,
    /// SCHED_OTHER at `pool.nice`.
    Normal,
}

/// How log lines are written (`log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `journal` under systemd (JOURNAL_STREAM set), `human` otherwise.
    Auto,
    /// Plain text with a timestamp.
    Human,
    /// The journal's fields (priority, identifier) on stderr.
    Journal,
    /// One JSON object per line.
    Json,
}

/// Logging (`[log]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// How lines are written.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `corepool=debug`.
    pub level: String,
    /// One line per request (method, path, status, duration, request id).
    /// Off by default: nginx in front already logs every request, and the
    /// second line per request costs about a fifth of the light throughput.
    pub access: bool,
}

/// Serving a remote nginx front over TCP (several hosts behind one front).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendConfig {
    /// Addresses or networks (`10.0.0.1`, `10.0.0.0/24`, `fd00::/64`) of the
    /// nginx fronts. Non-empty: `corepool enable` gives instance N a TCP socket
    /// on `port_base + N` that only these may reach; every TCP peer outside
    /// them is refused. Empty: unix sockets only.
    pub allow: Vec<String>,
    /// Instance N listens on TCP port `port_base + N`.
    pub port_base: u16,
    /// Address those sockets bind; empty binds every address (IPv4 and IPv6).
    pub bind: String,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig { allow: Vec::new(), port_base: 7000, bind: String::new() }
    }
}

impl BackendConfig {
    /// `allow` as networks (an address is a network of one); entries that do
    /// not parse are left out (`validate` rejects them first).
    pub fn networks(&self) -> Vec<ipnet::IpNet> {
        self.allow.iter().filter_map(|a| parse_net(a).ok()).collect()
    }

    /// True when the instances serve a remote front over TCP.
    pub fn enabled(&self) -> bool {
        !self.allow.is_empty()
    }
}

/// `10.0.0.1` or `10.0.0.0/24` (likewise IPv6) as a network.
pub fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(ip.into());
    }
    s.parse::<ipnet::IpNet>().map(|n| n.trunc()).map_err(|_| format!("`{s}` is not an IP address or network (e.g. 10.0.0.1, 10.0.0.0/24, fd00::/64)"))
}

/// The host's scrape endpoint for Prometheus (`NAME-metrics.service`, run
/// by `NAME metrics serve`; see corepool-ctl's `exporter`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `HOST:PORT` it listens on. Empty: `127.0.0.1` and a port derived from
    /// the service's name (so that services on one host differ), which
    /// `NAME metrics targets` shows.
    pub listen: String,
    /// Prometheus servers (addresses or networks) allowed to scrape a
    /// non-loopback `listen` address; loopback peers always may. Empty with a
    /// non-loopback address: everyone.
    pub allow: Vec<String>,
}

impl MetricsConfig {
    /// `allow` as networks (unparsable entries left out: `validate` refuses them first).
    pub fn networks(&self) -> Vec<ipnet::IpNet> {
        self.allow.iter().filter_map(|a| parse_net(a).ok()).collect()
    }
}

/// Fault injection and request spans (`[debug]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DebugConfig {
    /// Enable `/debug/*` fault-injection endpoints. Never in production.
    pub endpoints: bool,
    /// Record per-request spans and write them at shutdown to
    /// `DIR/spans-<instance>-<pid>.jsonl` (see `trace`). Off when empty.
    pub spans: std::path::PathBuf,
    /// Most spans kept in memory; later requests are counted, not kept.
    pub max_spans: usize,
}

impl Default for DebugConfig {
    fn default() -> Self {
        DebugConfig { endpoints: false, spans: Default::default(), max_spans: 1_000_000 }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:3000".into(),
            instance: 0,
            pin: false,
            shutdown_timeout: Duration::from_secs(30),
            http: HttpConfig::default(),
            streams: StreamsConfig::default(),
            pool: PoolConfig::default(),
            log: LogConfig::default(),
            backend: BackendConfig::default(),
            metrics: MetricsConfig::default(),
            debug: DebugConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body: 1024 * 1024,
            max_header_bytes: 16 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 4096,
            drain_idle: Duration::from_secs(5),
            h2c: false,
        }
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig { threads: 1, queue: 64, job_timeout: Duration::from_secs(10), nice: 10, sched: PoolSched::Normal, min_share: 0.3, pin: true }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Auto, level: "info".into(), access: false }
    }
}

/// Range checks serde cannot express; the error names the offending key.
pub fn validate(c: &Config) -> Result<(), InvalidSetting> {
    fn check(ok: bool, key: &str, msg: impl fmt::Display) -> Result<(), InvalidSetting> {
        if ok {
            Ok(())
        } else {
            Err(InvalidSetting::new(key, msg))
        }
    }
    let ms = Duration::from_millis;
    c.listen.parse::<ListenAddr>().map_err(|e| InvalidSetting::new("listen", e))?;
    check(c.shutdown_timeout >= ms(1), "shutdown_timeout", "must be at least 1ms")?;
    check((1..=1 << 30).contains(&c.http.max_body), "http.max_body", "must be 1..=1073741824 bytes")?;
    check((8192..=1 << 20).contains(&c.http.max_header_bytes), "http.max_header_bytes", "must be 8192..=1048576")?;
    check(c.http.header_timeout >= ms(1), "http.header_timeout", "must be at least 1ms")?;
    check(c.http.body_timeout >= ms(1), "http.body_timeout", "must be at least 1ms")?;
    check((1..=1_000_000).contains(&c.http.max_connections), "http.max_connections", "must be 1..=1000000")?;
    check((1..=1_000_000).contains(&c.streams.max_websockets), "streams.max_websockets", "must be 1..=1000000")?;
    let hour = Duration::from_secs(3600);
    check(c.streams.ping_interval >= ms(10) && c.streams.ping_interval <= hour, "streams.ping_interval", "must be between 10ms and 1h")?;
    check(c.streams.close_timeout >= ms(1) && c.streams.close_timeout <= hour, "streams.close_timeout", "must be between 1ms and 1h")?;
    check((125..=1 << 30).contains(&c.streams.max_frame), "streams.max_frame", "must be 125..=1073741824 bytes")?;
    check(
        c.streams.max_message >= c.streams.max_frame && c.streams.max_message <= 1 << 30,
        "streams.max_message",
        "must be streams.max_frame..=1073741824 bytes",
    )?;
    check((256..=1 << 24).contains(&c.streams.buffer), "streams.buffer", "must be 256..=16777216 bytes")?;
    // tungstenite requires more room than its write buffer (it asserts it).
    check(c.streams.max_write_buffer > c.streams.buffer, "streams.max_write_buffer", "must be more than streams.buffer")?;
    check(c.streams.sse_retry >= ms(1), "streams.sse_retry", "must be at least 1ms")?;
    check((1..=256).contains(&c.pool.threads), "pool.threads", "must be 1..=256")?;
    check((1..=1_000_000).contains(&c.pool.queue), "pool.queue", "must be 1..=1000000")?;
    check(c.pool.job_timeout >= ms(1) && c.pool.job_timeout <= Duration::from_secs(3600), "pool.job_timeout", "must be between 1ms and 1h")?;
    check((0..=19).contains(&c.pool.nice), "pool.nice", "must be 0..=19 (pool threads may only lower their priority)")?;
    check((0.0..=1.0).contains(&c.pool.min_share), "pool.min_share", "must be between 0 and 1 (a share of one CPU)")?;
    for a in &c.backend.allow {
        parse_net(a).map_err(|e| InvalidSetting::new("backend.allow", e))?;
    }
    check(c.backend.port_base >= 1, "backend.port_base", "must be 1..=65535")?;
    check(
        c.metrics.listen.is_empty() || c.metrics.listen.parse::<std::net::SocketAddr>().is_ok(),
        "metrics.listen",
        "must be HOST:PORT with an IP address (e.g. 127.0.0.1:9500, [::1]:9500), or empty",
    )?;
    for a in &c.metrics.allow {
        parse_net(a).map_err(|e| InvalidSetting::new("metrics.allow", e))?;
    }
    check(
        c.backend.bind.is_empty() || c.backend.bind.parse::<std::net::IpAddr>().is_ok(),
        "backend.bind",
        "must be an IP address, or empty for every address",
    )?;
    tracing_subscriber::EnvFilter::try_new(&c.log.level).map(|_| ()).map_err(|e| InvalidSetting::new("log.level", format!("not a valid filter: {e}")))
}
