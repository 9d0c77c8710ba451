//! The instance's one connection to Redis: set up, watched and set up again.
//!
//! One multiplexed connection (RESP3) carries every command of every request
//! and the instance's broadcast subscriptions; the event loop is single
//! threaded, so a pool of connections would only add handshakes. A task (the
//! supervisor) owns the connecting: it connects with a bounded timeout,
//! subscribes to the topics local subscribers want, then watches the
//! connection — the driver reports a closed socket, a PING every
//! `ping_interval` catches a Redis that stopped answering, and commands that
//! time out in a row end it too — and after a loss reconnects with
//! exponential backoff (100 ms doubling to 5 s, jittered). While there is no
//! connection, commands fail at once (503) instead of queueing behind it.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind};
use serde::Serialize;
use tokio::sync::{mpsc, Notify};

use super::config::{RedisConfig, Target};
use super::error::RedisError;
use super::hub::Hub;
use super::metrics::{KindLabels, RedisMetrics};

/// Commands timed out one after another before the connection is deemed dead.
const TIMEOUTS_IN_A_ROW: u32 = 3;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Where the link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// The first attempt is under way.
    Connecting,
    /// Connected: commands are sent.
    Up,
    /// Not connected (Redis down or unreachable); reconnecting.
    Down,
    /// Redis answered but refused us (password, socket permission, database):
    /// a configuration problem; still retried, at the longest backoff.
    Refused,
}

impl LinkState {
    /// `connecting`, `up`, `down` or `refused`.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::Up => "up",
            LinkState::Down => "down",
            LinkState::Refused => "refused",
        }
    }
}

/// The link as `/healthz` and `NAME status` show it.
#[derive(Debug, Clone, Serialize)]
pub struct LinkView {
    /// `connecting`, `up`, `down` or `refused`.
    pub state: LinkState,
    /// `[redis] url` (it never carries a password).
    pub url: String,
    /// Seconds in this state.
    pub since_s: f64,
    /// Connections lost and set up again since start.
    pub reconnects: u64,
    /// Why it is down or refused.
    pub error: Option<String>,
}

struct Status {
    state: LinkState,
    since: Instant,
    error: Option<String>,
    reconnects: u64,
}

/// A failed connection attempt: whether Redis refused us (configuration) or
/// could not be reached (an outage), and what it said.
#[derive(Debug, Clone)]
pub(crate) struct ConnectError {
    pub refused: bool,
    /// The setting to blame: `url` or `password_credential`.
    pub key: &'static str,
    pub message: String,
}

pub(crate) struct Link {
    pub(crate) cfg: RedisConfig,
    client: Result<Source, ConnectError>,
    /// The connection when up, with its generation (one per connection set up).
    conn: ArcSwapOption<(MultiplexedConnection, u64)>,
    /// The generation a command asked to end: a kick meant for an earlier
    /// connection (its permit still stored in `kick`) ends no later one.
    kick_gen: AtomicU64,
    status: Mutex<Status>,
    /// Ends the current connection (too many timeouts in a row).
    kick: Notify,
    timeouts: AtomicU32,
    started: AtomicBool,
    pub(crate) metrics: RedisMetrics,
    pub(crate) hub: Hub,
    /// `NAME:`: every key and channel corepool uses is under it.
    pub(crate) prefix: String,
}

/// The password from the systemd credential: `$CREDENTIALS_DIRECTORY/NAME`
/// (what `LoadCredential=` provides), else `/etc/SERVICE/credentials/NAME`
/// (readable by root: `config check` run by the operator); none if neither
/// exists.
fn password(cfg: &RedisConfig, service: &str) -> Result<Option<String>, ConnectError> {
    if cfg.password_credential.is_empty() {
        return Ok(None);
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        candidates.push(std::path::PathBuf::from(dir).join(&cfg.password_credential));
    }
    candidates.push(std::path::Path::new("/etc").join(service).join("credentials").join(&cfg.password_credential));
    for path in candidates {
        match std::fs::read_to_string(&path) {
            Ok(p) => return Ok(Some(p.trim_end_matches(['\n', '\r']).to_string()).filter(|p| !p.is_empty())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && !path.starts_with("/etc") => {
                return Err(ConnectError { refused: true, key: "password_credential", message: format!("{}: {e}", path.display()) })
            }
            Err(_) => continue,
        }
    }
    Ok(None)
}

/// Where connections come from: one server, or whichever primary the
/// sentinels name at each attempt (a failover moves the next connection).
enum Source {
    Direct(redis::Client),
    Sentinel(tokio::sync::Mutex<redis::sentinel::SentinelClient>),
}

/// The source for `cfg`: RESP3 (pushes and commands on one connection), the
/// password from the credential.
fn source(cfg: &RedisConfig, service: &str) -> Result<Source, ConnectError> {
    let bad = |key: &'static str| move |message: String| ConnectError { refused: true, key, message };
    let lib = |s: redis::RedisConnectionInfo| s.set_protocol(ProtocolVersion::RESP3).set_lib_name("corepool", env!("CARGO_PKG_VERSION"));
    let pw = password(cfg, service)?;
    let url = match cfg.target().map_err(bad("url"))? {
        // A bare path; a URL as written (its ?db= kept).
        Target::Unix(path) if cfg.url.trim().starts_with('/') => format!("redis+unix://{}", path.display()),
        Target::Unix(_) => cfg.url.trim().to_string(),
        Target::Tcp(url) => url,
        Target::Sentinels(sentinels) => {
            let mut settings = lib(redis::RedisConnectionInfo::default()).set_db(i64::from(cfg.sentinel_db));
            if let Some(p) = pw {
                settings = settings.set_password(p);
            }
            let node = redis::sentinel::SentinelNodeConnectionInfo::default().set_redis_connection_info(settings);
            let client =
                redis::sentinel::SentinelClient::build(sentinels, cfg.sentinel_master.clone(), Some(node), redis::sentinel::SentinelServerType::Master)
                    .map_err(|e| bad("sentinels")(e.to_string()))?;
            return Ok(Source::Sentinel(tokio::sync::Mutex::new(client)));
        }
    };
    let info = url.as_str().into_connection_info().map_err(|e| bad("url")(e.to_string()))?;
    let mut settings = lib(info.redis_settings().clone());
    if let Some(p) = pw {
        settings = settings.set_password(p);
    }
    redis::Client::open(info.set_redis_settings(settings)).map(Source::Direct).map_err(|e| bad("url")(e.to_string()))
}

impl Link {
    /// The link for `cfg` (its URL already checked by validation); not
    /// connected until [`Link::start`]. A URL the client refuses or a
    /// password credential that cannot be read makes every attempt fail
    /// with that error (state `refused`).
    pub(crate) fn new(cfg: &RedisConfig, service: &str) -> Link {
        let prefix = format!("{service}:");
        Link {
            cfg: cfg.clone(),
            client: source(cfg, service),
            conn: ArcSwapOption::empty(),
            kick_gen: AtomicU64::new(0),
            status: Mutex::new(Status { state: LinkState::Connecting, since: Instant::now(), error: None, reconnects: 0 }),
            kick: Notify::new(),
            timeouts: AtomicU32::new(0),
            started: AtomicBool::new(false),
            metrics: RedisMetrics::default(),
            hub: Hub::new(cfg.broadcast_buffer, format!("{prefix}bc:")),
            prefix,
        }
    }

    /// Starts the supervisor on the current tokio runtime (once).
    pub(crate) fn start(self: &Arc<Self>) {
        if !self.started.swap(true, Ordering::AcqRel) {
            tokio::spawn(self.clone().supervise());
        }
    }

    pub(crate) fn state(&self) -> LinkState {
        self.status.lock().map(|s| s.state).unwrap_or(LinkState::Down)
    }

    pub(crate) fn view(&self) -> LinkView {
        let s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        LinkView { state: s.state, url: self.cfg.describe(), since_s: s.since.elapsed().as_secs_f64(), reconnects: s.reconnects, error: s.error.clone() }
    }

    fn set(&self, state: LinkState, error: Option<String>) {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if s.state != state || s.error != error {
            match (state, &error) {
                (LinkState::Up, _) => tracing::info!(url = %self.cfg.describe(), "connected to Redis"),
                (_, Some(e)) if s.state != state => tracing::warn!(url = %self.cfg.describe(), error = %e, state = ?state, "Redis connection"),
                _ => {}
            }
            s.state = state;
            s.since = Instant::now();
            s.error = error;
        }
    }

    /// The connection, if up: commands fail at once when it is not.
    pub(crate) fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        self.current().map(|(c, _)| c)
    }

    fn current(&self) -> Result<(MultiplexedConnection, u64), RedisError> {
        match self.conn.load_full() {
            Some(c) => Ok((*c).clone()),
            None => {
                let v = self.view();
                self.metrics.errors.get_or_create(&KindLabels { kind: "unavailable" }).inc();
                Err(RedisError::Unavailable(v.error.unwrap_or_else(|| v.state.as_str().to_string())))
            }
        }
    }

    /// Runs one command or pipeline within `redis.timeout`, counted and timed.
    pub(crate) async fn call<T, F>(&self, f: impl FnOnce(MultiplexedConnection) -> F) -> Result<T, RedisError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let (conn, generation) = self.current()?;
        let kick = || {
            self.kick_gen.store(generation, Ordering::Relaxed);
            self.kick.notify_one();
        };
        let t = Instant::now();
        match tokio::time::timeout(self.cfg.timeout, f(conn)).await {
            Ok(Ok(v)) => {
                self.metrics.duration.observe(t.elapsed().as_secs_f64());
                self.timeouts.store(0, Ordering::Relaxed);
                Ok(v)
            }
            Ok(Err(e)) => {
                self.metrics.duration.observe(t.elapsed().as_secs_f64());
                // READONLY (also inside a transaction: EXECABORT): the
                // primary became a replica, a failover: reconnect to the new one.
                let demoted = e.code() == Some("READONLY") || (e.code() == Some("EXECABORT") && e.to_string().contains("READONLY"));
                let connection = e.is_io_error() || e.is_connection_dropped() || demoted;
                // Answers that say "not now": loading its data after a restart, a busy script, no primary, out of memory.
                let busy = matches!(e.code(), Some("LOADING" | "BUSY" | "MASTERDOWN" | "TRYAGAIN" | "OOM" | "CLUSTERDOWN"));
                let kind = if connection {
                    "connection"
                } else if busy {
                    "unavailable"
                } else {
                    "server"
                };
                self.metrics.errors.get_or_create(&KindLabels { kind }).inc();
                if connection {
                    kick();
                    Err(RedisError::Connection(e))
                } else if busy {
                    Err(RedisError::Unavailable(e.to_string()))
                } else {
                    // A wrong type, an unexpected reply's shape: the handler's bug, not the link's.
                    Err(RedisError::Command(e))
                }
            }
            Err(_) => {
                self.metrics.errors.get_or_create(&KindLabels { kind: "timeout" }).inc();
                if self.timeouts.fetch_add(1, Ordering::Relaxed) + 1 >= TIMEOUTS_IN_A_ROW {
                    kick();
                }
                Err(RedisError::Timeout(self.cfg.timeout))
            }
        }
    }

    /// One connection attempt, with the handshake (HELLO 3, AUTH, SELECT) and
    /// a PING, within `connect_timeout`; pushes (messages, the driver's
    /// disconnection notice) go to `push`.
    pub(crate) async fn connect(&self, push: mpsc::UnboundedSender<PushInfo>) -> Result<MultiplexedConnection, ConnectError> {
        let config = AsyncConnectionConfig::new().set_connection_timeout(Some(self.cfg.connect_timeout)).set_response_timeout(None).set_push_sender(push);
        let source = self.client.as_ref().map_err(Clone::clone)?;
        let attempt = async {
            let client = match source {
                Source::Direct(c) => c.clone(),
                // Asked at every attempt: after a failover, the new primary.
                Source::Sentinel(s) => s.lock().await.async_get_client().await?,
            };
            let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
            redis::cmd("PING").query_async::<()>(&mut conn).await?;
            Ok::<_, redis::RedisError>(conn)
        };
        match tokio::time::timeout(self.cfg.connect_timeout, attempt).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(classify(&e).blaming(&self.cfg)),
            Err(_) => {
                Err(ConnectError { refused: false, key: "url", message: format!("no answer within {:?} (redis.connect_timeout)", self.cfg.connect_timeout) })
            }
        }
    }

    /// Connects, watches, reconnects; runs as long as the runtime does.
    async fn supervise(self: Arc<Self>) {
        let mut failures = 0u32;
        let mut ever_up = false;
        let mut generation = 0u64;
        loop {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let outcome = match self.connect(tx).await {
                Ok(conn) => self.subscribe_all(conn).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(conn) => {
                    failures = 0;
                    self.timeouts.store(0, Ordering::Relaxed);
                    generation += 1;
                    self.conn.store(Some(Arc::new((conn.clone(), generation))));
                    self.metrics.connected.set(1);
                    self.set(LinkState::Up, None);
                    if ever_up {
                        // Messages published while we were away are lost:
                        // tell the subscribers there was a gap.
                        self.hub.gap();
                    }
                    ever_up = true;
                    let why = self.watch(conn, generation, &mut rx).await;
                    self.conn.store(None);
                    // From now on messages are missed: the subscribers hear
                    // of it at once (and again when the link is back).
                    self.hub.gap();
                    self.metrics.connected.set(0);
                    self.metrics.reconnects.inc();
                    if let Ok(mut s) = self.status.lock() {
                        s.reconnects += 1;
                    }
                    self.set(LinkState::Down, Some(why));
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    self.set(if e.refused { LinkState::Refused } else { LinkState::Down }, Some(e.message));
                }
            }
            let wait = if self.state() == LinkState::Refused { BACKOFF_MAX } else { backoff(failures) };
            tokio::time::sleep(wait).await;
        }
    }

    /// Subscribes a new connection to every topic local subscribers hold.
    async fn subscribe_all(&self, mut conn: MultiplexedConnection) -> Result<MultiplexedConnection, ConnectError> {
        let channels = self.hub.channels();
        if channels.is_empty() {
            return Ok(conn);
        }
        match tokio::time::timeout(self.cfg.timeout, conn.subscribe(&channels)).await {
            Ok(Ok(())) => Ok(conn),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(ConnectError { refused: false, key: "url", message: "SUBSCRIBE not answered within redis.timeout".into() }),
        }
    }

    /// Serves pushes until the connection is lost; says why.
    async fn watch(&self, mut conn: MultiplexedConnection, generation: u64, rx: &mut mpsc::UnboundedReceiver<PushInfo>) -> String {
        let mut tick = tokio::time::interval(self.cfg.ping_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                push = rx.recv() => match push {
                    None => return "connection closed".into(),
                    Some(p) if p.kind == PushKind::Disconnection => return "connection lost".into(),
                    Some(p) if p.kind == PushKind::Message => self.hub.deliver(p.data, &self.metrics),
                    Some(_) => {}
                },
                _ = tick.tick() => {
                    let ping = redis::cmd("PING");
                    match tokio::time::timeout(self.cfg.timeout, conn.req_packed_command(&ping)).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return format!("PING failed: {e}"),
                        Err(_) => return format!("PING not answered within {:?} (redis.timeout)", self.cfg.timeout),
                    }
                }
                _ = self.kick.notified() => {
                    if self.kick_gen.load(Ordering::Relaxed) == generation {
                        return format!("{TIMEOUTS_IN_A_ROW} commands in a row not answered within redis.timeout, or the connection failed");
                    }
                }
            }
        }
    }
}

/// 100 ms doubling up to 5 s, each wait jittered to 50–100 % so that the
/// instances of a host (and hosts) do not reconnect in step.
fn backoff(failures: u32) -> Duration {
    let base = BACKOFF_MIN.saturating_mul(1u32 << failures.saturating_sub(1).min(6)).min(BACKOFF_MAX);
    let noise = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
        ^ std::process::id().wrapping_mul(2_654_435_761);
    base.mul_f64(0.5 + f64::from(noise % 1000) / 2000.0)
}

/// A failed attempt: refused (password, ACL, socket permission, database)
/// or unreachable (refused connection, no socket, timeouts).
fn classify(e: &redis::RedisError) -> ConnectError {
    let io = io_kind(e);
    let code = e.code().unwrap_or_default();
    let text = e.to_string();
    if e.kind() == redis::ErrorKind::AuthenticationFailed || ["NOAUTH", "WRONGPASS", "NOPERM"].contains(&code) || text.contains("WRONGPASS") {
        return ConnectError { refused: true, key: "password_credential", message: format!("Redis refused the credentials: {text}") };
    }
    if io == Some(std::io::ErrorKind::PermissionDenied) {
        return ConnectError { refused: true, key: "url", message: format!("{text} (the service's user needs the socket's group: docs/redis.md)") };
    }
    if text.contains("DB index is out of range") || text.contains("invalid DB index") {
        return ConnectError { refused: true, key: "url", message: format!("Redis refused the database: {text}") };
    }
    ConnectError { refused: false, key: "url", message: text }
}

impl ConnectError {
    /// With sentinels, a problem reaching Redis is theirs to answer for.
    fn blaming(mut self, cfg: &RedisConfig) -> ConnectError {
        if !cfg.sentinels.is_empty() && self.key == "url" {
            self.key = "sentinels";
        }
        self
    }
}

fn io_kind(e: &redis::RedisError) -> Option<std::io::ErrorKind> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = err.source();
    }
    None
}

/// The link for the configuration's `[redis]`, if it names one. A password
/// credential that cannot be read leaves the link refusing (reported at
/// start and by `/readyz`).
pub(crate) fn link_for(service: &crate::name::ServiceName, sections: &crate::section::Sections) -> Option<Arc<Link>> {
    let cfg = sections.get::<RedisConfig>()?;
    if !cfg.enabled() {
        return None;
    }
    Some(Arc::new(Link::new(&cfg, service.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        for f in 0..20 {
            let b = backoff(f);
            assert!(b >= BACKOFF_MIN / 2 && b <= BACKOFF_MAX, "{f}: {b:?}");
        }
        assert!(backoff(1) <= BACKOFF_MIN);
        assert!(backoff(12) >= BACKOFF_MAX / 2);
    }
}
