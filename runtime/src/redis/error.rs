//! [`RedisError`]: why a Redis operation failed (into an `ApiError` in `handle`).

use std::time::Duration;

/// Why a Redis operation failed. Into [`ApiError`](crate::ApiError): 503 with `Retry-After`
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
