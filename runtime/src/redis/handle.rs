//! What handlers hold: [`Redis`] (commands) and [`Broadcast`], reached
//! through [`Ctx`]; and how a [`RedisError`] becomes an HTTP answer.

use std::sync::Arc;

use http::StatusCode;
use redis::{Cmd, FromRedisValue, Pipeline};

use super::broadcast::Broadcast;
use super::error::RedisError;
use super::link::{Link, LinkState};
use crate::http::{ApiError, Ctx};

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
/// [`::redis::pipe`]`().atomic()` for a transaction, and a connection of your own
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
