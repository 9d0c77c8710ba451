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
//! `Retry-After` (an [`ApiError`](crate::ApiError) from [`RedisError`]) and the others are
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
pub(crate) mod check;
pub(crate) mod config;
mod error;
mod handle;
mod hub;
mod limit;
pub(crate) mod link;
pub(crate) mod metrics;
mod session;

pub use self::broadcast::{Broadcast, Received, Subscription, MAX_TOPIC};
pub use self::config::{RedisConfig, SameSite, Secure, SessionConfig};
pub use self::error::RedisError;
pub use self::handle::Redis;
pub use self::limit::{Allowed, RateLimit};
pub use self::link::{LinkState, LinkView};
pub use self::session::{sessions, Session, SessionLayer, SessionService};
/// The Redis client corepool uses (`redis`), for commands of its own.
pub use ::redis::{cmd, pipe, Cmd, FromRedisValue, Pipeline, ToRedisArgs};
