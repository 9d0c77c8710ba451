//! Counting across instances and hosts: a fixed-window rate limit per
//! client, the shape of express-rate-limit with rate-limit-redis (or
//! rate-limiter-flexible's Redis limiter).
//!
//! One `INCR` and `EXPIRE` per request, in one round trip, on a key named by
//! the limit, the client and the window (`NAME:limit:NAME:CLIENT:WINDOW`), so
//! every instance counts into the same number. Past the limit: 429 with
//! `Retry-After` (seconds to the window's end). Windows are aligned to the
//! hosts' clocks (NTP keeps them within far less than a window).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;

use crate::http::{ApiError, Ctx};

/// A limit of `limit` requests per `window` per client.
#[derive(Debug, Clone)]
pub struct RateLimit {
    name: &'static str,
    limit: u64,
    window: Duration,
}

/// A request let through: how many more the client may send in this window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    /// Requests left in the window.
    pub remaining: u64,
    /// Seconds until the window resets.
    pub reset_s: u64,
}

impl RateLimit {
    /// `limit` requests per `window` (at least a second) under `name`.
    pub const fn new(name: &'static str, limit: u64, window: Duration) -> RateLimit {
        RateLimit { name, limit, window }
    }

    /// Counts one request of `client` (an address, a user id); 429 with
    /// `Retry-After` past the limit, 503 while Redis is unreachable.
    pub async fn check(&self, ctx: &Ctx, client: &str) -> Result<Allowed, ApiError> {
        let redis = ctx.redis()?;
        let window = self.window.as_secs().max(1);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let index = now / window;
        let reset_s = (index + 1) * window - now;
        let client: String = client.chars().filter(|c| !c.is_control()).take(128).collect();
        let key = redis.key(&format!("limit:{}:{client}:{index}", self.name));
        let mut p = redis::pipe();
        p.cmd("INCR").arg(&key).cmd("EXPIRE").arg(&key).arg(window + 1).ignore();
        let (count,): (u64,) = redis.pipe(&p).await?;
        if count > self.limit {
            return Err(ApiError {
                retry_after: Some(reset_s.min(u64::from(u32::MAX)) as u32),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("rate limit: {} requests per {window}s for {:?}; retry in {reset_s}s", self.limit, self.name),
                )
            });
        }
        Ok(Allowed { remaining: self.limit - count, reset_s })
    }
}
