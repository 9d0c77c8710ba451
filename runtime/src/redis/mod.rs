//! State shared by every instance and host, on Redis (feature `redis`):
//! commands ([`Redis`]), sessions ([`sessions`], [`Session`]), broadcast to
//! WebSockets and SSE streams ([`Broadcast`]) and counters ([`RateLimit`]).
//!
//! ```toml
//! [redis]
//! url = "/run/redis/redis-server.sock"   # or redis://10.0.0.5:6379/0
//! required = true                         # /readyz follows Redis
//! ```
//!
//! ```no_run
//! use corepool_runtime::{ApiError, Ctx};
//! use corepool_runtime::redis::cmd;
//!
//! async fn hits(ctx: Ctx) -> Result<String, ApiError> {
//!     let redis = ctx.redis()?;
//!     let n: u64 = redis.query(cmd("INCR").arg(redis.key("hits"))).await?;
//!     Ok(n.to_string())
//! }
//! ```
//!
//! Each instance keeps one multiplexed connection (`link`), reconnecting
//! with backoff; every command is bounded by `redis.timeout`, and while
//! Redis is unreachable the routes that need it answer 503 with
//! `Retry-After` (an [`ApiError`] from [`RedisError`]) and the others are
//! untouched. `docs/redis.md` covers running Redis for several hosts.
//!
//! | module | owns |
//! |---|---|
//! | `config` | `[redis]` and `[session]` |
//! | `link` | the connection: connect, watch (PING), reconnect, bounded commands |
//! | `broadcast` | one Redis subscription per topic per instance, fanned out locally |
//! | `session` | the session layer and extractor |
//! | `limit` | a per-client rate limit across instances |
//! | `metrics` | `corepool_redis_*`, `corepool_broadcast_*` |

mod broadcast;
mod config;
mod limit;
mod link;
mod metrics;
mod session;

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

pub use self::broadcast::{Broadcast, Received, Subscription, MAX_TOPIC};
pub use self::config::{RedisConfig, SameSite, Secure, SessionConfig};
pub use self::limit::{Allowed, RateLimit};
pub use self::link::{LinkState, LinkView};
pub use self::session::{sessions, Session, SessionLayer, SessionService};
/// The Redis client corepool uses (`redis`), for commands of its own.
pub use ::redis::{cmd, pipe, Cmd, FromRedisValue, Pipeline, ToRedisArgs};

pub(crate) use self::link::Link;
pub(crate) use self::metrics::RedisMetrics;

use crate::http::{ApiError, Ctx};

/// Why a Redis operation failed. Into [`ApiError`]: 503 with `Retry-After`
/// for an outage, 413 for an oversized message, 400 for a bad topic, 500 for
/// the rest.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The service has no `[redis] url`.
    #[error("this service has no Redis: set [redis] url in its configuration")]
    NotConfigured,
    /// No connection now (Redis down, unreachable or refusing us).
    #[error("Redis is unavailable: {0}")]
    Unavailable(String),
    /// No answer within `redis.timeout`.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed during the command.
    #[error("the connection to Redis failed")]
    Connection(#[source] ::redis::RedisError),
    /// Redis answered with an error (a wrong type, a script error...).
    #[error("Redis refused the command")]
    Command(#[source] ::redis::RedisError),
    /// A message larger than `redis.max_message`.
    #[error("message of {size} bytes exceeds redis.max_message ({limit} bytes)")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A malformed argument (a topic's name).
    #[error("{0}")]
    Invalid(String),
}

impl From<RedisError> for ApiError {
    fn from(e: RedisError) -> ApiError {
        match &e {
            RedisError::Unavailable(_) | RedisError::Timeout(_) | RedisError::Connection(_) => {
                let cause = std::error::Error::source(&e).map(|s| format!(": {s}")).unwrap_or_default();
                tracing::debug!(error = %e, "Redis unavailable for a request");
                ApiError::unavailable(format!("{e}{cause}; retry later"), 1)
            }
            RedisError::TooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
            RedisError::Invalid(_) => ApiError::bad_request(e.to_string()),
            RedisError::NotConfigured => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            RedisError::Command(source) => {
                tracing::error!(error = %source, "Redis refused a command");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Redis refused the command")
            }
        }
    }
}

/// Commands on the instance's connection: `ctx.redis()?`.
///
/// Every request of the instance shares this one multiplexed connection:
/// commands that block it (`BLPOP`, `XREAD BLOCK`, `WAIT`) stall everyone's
/// commands behind them until `redis.timeout` ends the connection, and
/// commands that change the connection's state (`SELECT`, `MULTI` sent as
/// separate commands, `WATCH`, `CLIENT REPLY`) change it for everyone. Use
/// [`pipe`]`().atomic()` for a transaction, and a connection of your own
/// (the `redis` crate, [`::redis::Client`]) for blocking reads.
#[derive(Clone)]
pub struct Redis {
    link: Arc<Link>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").field("state", &self.link.state()).finish()
    }
}

impl Redis {
    /// Sends one command within `redis.timeout`.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        self.link.call(|mut c| async move { cmd.query_async(&mut c).await }).await
    }

    /// Sends a pipeline (`pipe().atomic()` for MULTI/EXEC) within `redis.timeout`.
    pub async fn pipe<T: FromRedisValue>(&self, pipeline: &Pipeline) -> Result<T, RedisError> {
        self.link.call(|mut c| async move { pipeline.query_async(&mut c).await }).await
    }

    /// `NAME:name`: a key under the service's name, so services can share a Redis.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.link.prefix)
    }

    /// Where the connection stands.
    pub fn state(&self) -> LinkState {
        self.link.state()
    }
}

impl Ctx {
    /// The instance's Redis (`[redis] url`): an error (500) if the service
    /// has none. Commands fail with 503 while it is unreachable.
    pub fn redis(&self) -> Result<Redis, RedisError> {
        let link = self.redis.clone().ok_or(RedisError::NotConfigured)?;
        link.start();
        Ok(Redis { link })
    }

    /// Publishing to and subscribing to topics shared by every instance and host.
    pub fn broadcast(&self) -> Result<Broadcast, RedisError> {
        let link = self.redis.clone().ok_or(RedisError::NotConfigured)?;
        link.start();
        Ok(Broadcast { link })
    }
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

/// At start: one attempt to connect. Refused (password, permission,
/// database) with `required`: the error, naming the setting (exit 78);
/// otherwise a warning, and the instance serves (503 on the routes that need
/// Redis, `/readyz` failing if required) while the link keeps trying.
pub(crate) async fn check_at_start(link: &Link, file: Option<&std::path::Path>) -> Result<(), crate::load::ConfigError> {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    match link.connect(tx).await {
        Ok(_) => Ok(()),
        Err(e) if e.refused && link.cfg.required => Err(crate::load::error_at(file, &format!("redis.{}", e.key), e.message)),
        Err(e) => {
            tracing::warn!(url = %link.cfg.describe(), error = %e.message, required = link.cfg.required, "Redis not reachable at start: serving; routes that need it answer 503 until it is");
            Ok(())
        }
    }
}

/// `config check`: the same attempt, on a runtime of its own. Refused with
/// `required`: an error naming the setting; otherwise (unreachable, or not
/// required) a warning on standard error.
pub(crate) fn check_now(
    service: &crate::name::ServiceName,
    sections: &crate::section::Sections,
    file: Option<&std::path::Path>,
) -> Result<(), crate::load::ConfigError> {
    let Some(link) = link_for(service, sections) else { return Ok(()) };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(_) => return Ok(()),
    };
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    match rt.block_on(link.connect(tx)) {
        Ok(_) => {
            eprintln!("redis: connected to {}", link.cfg.describe());
            Ok(())
        }
        // Refused (password, permission, database): wrong whatever Redis does.
        Err(e) if e.refused && link.cfg.required => Err(crate::load::error_at(file, &format!("redis.{}", e.key), e.message)),
        // Unreachable: maybe a wrong address, maybe Redis restarting — the
        // instance starts and retries, and this check runs before every
        // reload (ExecReload=), which an outage must not block.
        Err(e) => {
            let effect = if link.cfg.required { "/readyz fails" } else { "the service starts" };
            eprintln!("warning: redis.{}: {} ({effect} until Redis answers; the routes that need it answer 503)", e.key, e.message);
            Ok(())
        }
    }
}
