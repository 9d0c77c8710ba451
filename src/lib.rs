//! corepool's demo service: the seed's heavy endpoint (`GET /compute?n=N`,
//! the sum of 0..N, one addition at a time) and two more realistic heavy
//! jobs (hashing a body, argon2 passwords), each run on the pool, plus a
//! status page. It is built exactly as `corepool new` builds a service: an
//! axum router, two configuration sections of its own (`[compute]`,
//! `[password]`), served through `corepool::main` (see `main.rs`).

pub mod jobs;
pub mod live;
pub mod shared;

use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use corepool::http::{json, query_u64, query_value, read_body, read_json, ApiError};
use corepool::pool::{Cancel, JobError};
use corepool::redis::RateLimit;
use corepool::section::InvalidSetting;
use corepool::{Ctx, Settings};
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use serde::{Deserialize, Serialize};

use crate::jobs::{HashAlg, PasswordError};

/// `[compute]`: the seed's benchmark endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComputeConfig {
    /// Largest `n` accepted by `GET /compute`.
    pub max_n: u64,
    /// How long caches (the nginx site's, a CDN) may reuse a result: the same
    /// `n` always gives the same sum. `0s`: not at all (`no-store`).
    #[serde(with = "humantime_serde")]
    pub cache_max_age: Duration,
    /// Benchmarks only: run the loop on the event loop instead of the pool,
    /// as a Node app without workers does (every other request on the
    /// instance waits while it runs). Never in production.
    pub inline: bool,
    /// Requests per minute one client (nginx's `X-Real-IP`) may send, counted
    /// across every instance and host in Redis (`[redis] url`); past it, 429
    /// with `Retry-After`. 0: no limit.
    pub rate_limit: u64,
}

impl Default for ComputeConfig {
    fn default() -> Self {
        ComputeConfig { max_n: 10_000_000_000, cache_max_age: Duration::from_secs(60), inline: false, rate_limit: 0 }
    }
}

impl corepool::Section for ComputeConfig {
    const NAME: &'static str = "compute";
    const DOC: &'static str = "GET /compute?n=N, the seed's benchmark loop (live).\n\
        max_n: the largest n accepted.\n\
        cache_max_age: how long caches may reuse a result (Cache-Control:\n\
        max-age; the same n always gives the same sum); \"0s\": no-store.\n\
        inline: benchmarks only (the \"without workers\" comparison): run the\n\
        loop on the event loop, blocking the instance while it runs.\n\
        rate_limit: requests per minute per client across all instances and\n\
        hosts (needs [redis] url); past it 429 with Retry-After. 0: none.";
    fn validate(&self) -> Result<(), InvalidSetting> {
        if self.max_n < 1 {
            return Err(InvalidSetting::new("max_n", "must be at least 1"));
        }
        Ok(())
    }
}

/// `[password]`: argon2id cost of `POST /v1/password/hash`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    /// argon2id memory cost in KiB (OWASP: 19456).
    pub memory_kib: u32,
    /// argon2id time cost.
    pub iterations: u32,
    /// argon2id lanes.
    pub parallelism: u32,
    /// Longest password accepted, in bytes.
    pub max_len: usize,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        PasswordConfig { memory_kib: 19456, iterations: 2, parallelism: 1, max_len: 1024 }
    }
}

impl corepool::Section for PasswordConfig {
    const NAME: &'static str = "password";
    const DOC: &'static str = "POST /v1/password/hash and /verify (live): argon2id cost (OWASP\n\
        minimum: 19456 KiB, 2 iterations, 1 lane) and the longest password\n\
        accepted, in bytes. /verify refuses a hash asking for more than 4x this cost.";
    fn validate(&self) -> Result<(), InvalidSetting> {
        let bad = |k: &str, m: &str| Err(InvalidSetting::new(k, m));
        if !(1..=16).contains(&self.parallelism) {
            return bad("parallelism", "must be 1..=16");
        }
        if self.memory_kib < 8 * self.parallelism || self.memory_kib > 4 * 1024 * 1024 {
            return bad("memory_kib", "must be at least 8 × parallelism and at most 4194304 (4 GiB)");
        }
        if !(1..=100).contains(&self.iterations) {
            return bad("iterations", "must be 1..=100");
        }
        if !(1..=65536).contains(&self.max_len) {
            return bad("max_len", "must be 1..=65536");
        }
        Ok(())
    }
}

/// The demo's routes.
pub fn routes() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/fixed", get(fixed))
        .route("/compute", get(compute))
        .route("/ws/echo", get(live::echo))
        .route("/events", get(live::events))
        .route("/v1/hash", post(hash))
        .route("/v1/password/hash", post(password_hash))
        .route("/v1/password/verify", post(password_verify))
        .merge(shared::routes())
}

/// `GET /`: which instance answered, and its counters (corepool's identity).
async fn index(ctx: Ctx) -> Result<Response, ApiError> {
    json(&ctx.identity())
}

/// The body of `GET /fixed`.
pub const FIXED_BODY: &str = r#"{"message":"Hello, World!"}"#;

/// `GET /fixed`: a fixed small JSON body and no other work, the benchmarks'
/// route for comparing frameworks on equal work (`examples/plain_tokio.rs`
/// answers the same bytes with the same headers).
async fn fixed() -> Response {
    let mut r = Response::new(FIXED_BODY.into());
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `GET /compute?n=N`: the sum of `0..N` on the pool.
async fn compute(ctx: Ctx, Settings(cfg): Settings<ComputeConfig>, req: Request) -> Result<Response, ApiError> {
    let n = query_u64(&req, "n", cfg.max_n)?;
    if cfg.rate_limit > 0 {
        // nginx's X-Real-IP: the client's address (direct callers share one bucket).
        let client = req.headers().get("x-real-ip").and_then(|v| v.to_str().ok()).unwrap_or("direct");
        RateLimit::new("compute", cfg.rate_limit, Duration::from_secs(60)).check(&ctx, client).await?;
    }
    let started = Instant::now();
    let sum = if cfg.inline { jobs::compute(n, &Cancel::never()) } else { ctx.run(move |c| jobs::compute(n, c)).await? };
    // A job only returns None when cancelled, and then the pool reports the cancellation.
    let sum = sum.ok_or(JobError::Cancelled)?;
    let mut r = json(&serde_json::json!({"n": n, "sum": sum.to_string(), "ms": started.elapsed().as_secs_f64() * 1000.0}))?;
    // The same n always gives the same sum: caches may keep it.
    let max_age = cfg.cache_max_age.as_secs();
    if max_age > 0 {
        r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_str(&format!("max-age={max_age}")).expect("digits"));
    }
    Ok(r)
}

/// `POST /v1/hash?alg=sha256|blake3`: the hex digest of the (size-limited) body.
async fn hash(ctx: Ctx, req: Request) -> Result<Response, ApiError> {
    let cfg = ctx.config();
    let alg_name = query_value(req.uri().query(), "alg").unwrap_or("sha256").to_string();
    let alg: HashAlg = alg_name.parse().map_err(|_| ApiError::bad_request(format!("query parameter `alg` must be sha256 or blake3, got {alg_name:?}")))?;
    let chunks = read_body(req, cfg.http.max_body as usize, cfg.http.body_timeout).await?;
    let bytes: usize = chunks.iter().map(|c| c.len()).sum();
    let digest = ctx.run(move |_| jobs::hash(alg, chunks.iter().map(|c| c.as_ref()))).await?;
    json(&serde_json::json!({"alg": alg.name(), "bytes": bytes, "hex": digest}))
}

/// Body of `POST /v1/password/hash`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordHashReq {
    pub password: String,
}

/// Body of `POST /v1/password/verify`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordVerifyReq {
    pub password: String,
    pub hash: String,
}

fn check_password_len(cfg: &PasswordConfig, password: &str) -> Result<(), ApiError> {
    if password.len() > cfg.max_len {
        return Err(ApiError::bad_request(format!("field `password` must be at most {} bytes", cfg.max_len)));
    }
    Ok(())
}

fn password_error(e: PasswordError) -> ApiError {
    match e {
        PasswordError::BadHash(_) | PasswordError::TooCostly(_) => ApiError::bad_request(format!("field {e}")),
        PasswordError::Internal(_) => ApiError::new(http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn password_hash(ctx: Ctx, Settings(cfg): Settings<PasswordConfig>, req: Request) -> Result<Response, ApiError> {
    let body: PasswordHashReq = read_json(req, &ctx).await?;
    check_password_len(&cfg, &body.password)?;
    let phc = ctx.run(move |_| jobs::password_hash(&cfg, body.password.as_bytes())).await?;
    json(&serde_json::json!({"hash": phc.map_err(password_error)?}))
}

async fn password_verify(ctx: Ctx, Settings(cfg): Settings<PasswordConfig>, req: Request) -> Result<Response, ApiError> {
    let body: PasswordVerifyReq = read_json(req, &ctx).await?;
    check_password_len(&cfg, &body.password)?;
    if body.hash.len() > 512 {
        return Err(ApiError::bad_request("field `hash` must be at most 512 bytes"));
    }
    let valid = ctx.run(move |_| jobs::password_verify(&cfg, body.password.as_bytes(), &body.hash)).await?;
    json(&serde_json::json!({"valid": valid.map_err(password_error)?}))
}
