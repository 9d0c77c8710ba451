//! HTTP routes: the router (built-in and user routes alike), JSON errors, body
//! and query helpers, and the built-in handlers. Heavy handlers hand their work
//! to the pool and only await it; nothing CPU-bound runs on the event loop.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use crate::config::JSON_BODY_LIMIT;
use crate::jobs::{self, HashAlg, PasswordError};
use crate::pool::JobError;
use crate::server::State;

/// Response body type of every route.
pub type Body = Full<Bytes>;
/// What a handler gets besides the request: the instance's shared state.
pub type Ctx = Arc<State>;
/// What a handler returns.
pub type HandlerResult = Result<Response<Body>, ApiError>;
type HandlerFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send>>;
type Handler = Arc<dyn Fn(Request<Incoming>, Ctx) -> HandlerFuture + Send + Sync>;

/// An error answered as `{"error": "...", "code": N}`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds, for 503.
    pub retry_after: Option<u32>,
    /// Methods allowed, for 405.
    pub allow: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), retry_after: None, allow: None }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unavailable(message: impl Into<String>, retry_after: u32) -> ApiError {
        ApiError { retry_after: Some(retry_after), ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message) }
    }

    pub fn into_response(self) -> Response<Body> {
        #[derive(Serialize)]
        struct E<'a> {
            error: &'a str,
            code: u16,
        }
        let mut r = json_response(self.status, &E { error: &self.message, code: self.status.as_u16() });
        if let Some(s) = self.retry_after {
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(s));
        }
        if let Some(allow) = self.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            r.headers_mut().insert(ALLOW, allow);
        }
        r
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> ApiError {
        match e {
            JobError::Full(_) => ApiError::unavailable("server busy: heavy-work queue is full, retry later", 1),
            JobError::TimedOut(d) => ApiError::new(StatusCode::GATEWAY_TIMEOUT, format!("job did not finish within {d:?}")),
            JobError::Cancelled => ApiError::unavailable("job was cancelled", 1),
            JobError::Panicked(msg) => {
                tracing::error!(panic = %msg, "job panicked");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "job failed unexpectedly")
            }
        }
    }
}

/// A JSON response.
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{\"error\":\"serialization failed\",\"code\":500}".to_vec());
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A 200 JSON response.
pub fn json<T: Serialize + ?Sized>(value: &T) -> HandlerResult {
    Ok(json_response(StatusCode::OK, value))
}

struct Route {
    label: &'static str,
    methods: Vec<(Method, Handler)>,
}

/// Maps exact paths and methods to handlers.
#[derive(Clone, Default)]
pub struct Router {
    routes: Arc<HashMap<String, Route>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.routes.keys()).finish()
    }
}

/// The metrics label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

impl Router {
    /// Adds a handler for `method` on exactly `path`. A later registration of
    /// the same method and path replaces the earlier one.
    pub fn route<F, Fut>(mut self, method: Method, path: &str, handler: F) -> Router
    where
        F: Fn(Request<Incoming>, Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req, ctx| Box::pin(handler(req, ctx)));
        let routes = Arc::get_mut(&mut self.routes).expect("routes are only added before serving");
        let route = routes.entry(path.to_string()).or_insert_with(|| Route {
            // Route labels live as long as the process; a few dozen bytes, once.
            label: Box::leak(path.to_string().into_boxed_str()),
            methods: Vec::new(),
        });
        route.methods.retain(|(m, _)| m != method);
        route.methods.push((method, handler));
        self
    }

    /// Finds the handler, answering 404/405 itself. Returns the route label for metrics.
    pub async fn dispatch(&self, req: Request<Incoming>, ctx: Ctx) -> (&'static str, Response<Body>) {
        let Some(route) = self.routes.get(req.uri().path()) else {
            let msg = format!("no route for {}", req.uri().path());
            return (UNMATCHED, ApiError::new(StatusCode::NOT_FOUND, msg).into_response());
        };
        let method = req.method();
        let found = route
            .methods
            .iter()
            .find(|(m, _)| m == method)
            .or_else(|| (method == Method::HEAD).then(|| route.methods.iter().find(|(m, _)| m == Method::GET)).flatten());
        let Some((_, handler)) = found else {
            let allow: Vec<&str> = route.methods.iter().map(|(m, _)| m.as_str()).collect();
            let err = ApiError {
                allow: Some(allow.join(", ")),
                ..ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} not allowed on {}", route.label))
            };
            return (route.label, err.into_response());
        };
        let resp = handler(req, ctx).await.unwrap_or_else(ApiError::into_response);
        (route.label, resp)
    }
}

/// The value of query parameter `name`, if present (no percent-decoding:
/// built-in parameters are plain tokens).
pub fn query_param<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    query_value(req.uri().query(), name)
}

/// The value of `name` in a raw query string (the part after `?`).
pub fn query_value<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

/// A required unsigned integer query parameter in `0..=max`.
pub fn query_u64(req: &Request<Incoming>, name: &str, max: u64) -> Result<u64, ApiError> {
    parse_u64_param(name, query_param(req, name), max)
}

/// Checks a raw parameter value: present, an unsigned integer, at most `max`.
pub fn parse_u64_param(name: &str, raw: Option<&str>, max: u64) -> Result<u64, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::bad_request(format!("query parameter `{name}` is required")))?;
    let n: u64 = raw
        .parse()
        .map_err(|_| ApiError::bad_request(format!("query parameter `{name}` must be an unsigned integer, got {raw:?}")))?;
    if n > max {
        return Err(ApiError::bad_request(format!("query parameter `{name}` must be at most {max}, got {n}")));
    }
    Ok(n)
}

/// Reads a request body frame by frame: 413 past `limit` (at once when
/// Content-Length says so), 408 if it does not arrive within `timeout`,
/// 400 if the framing is broken.
pub async fn read_body(req: Request<Incoming>, limit: usize, timeout: Duration) -> Result<Vec<Bytes>, ApiError> {
    let too_large = || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body exceeds {limit} bytes"));
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = req.into_body();
    let read = async {
        let mut chunks = Vec::new();
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ApiError::bad_request(format!("malformed request body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                total += data.len();
                if total > limit {
                    return Err(too_large());
                }
                chunks.push(data);
            }
        }
        Ok(chunks)
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, format!("request body not received within {timeout:?}"))))
}

/// Reads and parses a JSON body (at most [`JSON_BODY_LIMIT`] bytes).
pub async fn read_json<T: for<'de> Deserialize<'de>>(req: Request<Incoming>, ctx: &Ctx) -> Result<T, ApiError> {
    let cfg = ctx.config();
    let limit = JSON_BODY_LIMIT.min(cfg.http.max_body as usize);
    let chunks = read_body(req, limit, cfg.http.body_timeout).await?;
    parse_json(&chunks.concat())
}

/// Parses a JSON body; any failure is a 400 naming what is wrong.
pub fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// The built-in routes; `debug` adds the fault-injection endpoints.
pub fn builtin(debug: bool) -> Router {
    let r = Router::default()
        .route(Method::GET, "/", index)
        .route(Method::GET, "/healthz", |_, _| async { json(&serde_json::json!({"status": "ok"})) })
        .route(Method::GET, "/readyz", readyz)
        .route(Method::GET, "/metrics", metrics)
        .route(Method::GET, "/compute", compute)
        .route(Method::POST, "/v1/hash", hash)
        .route(Method::POST, "/v1/password/hash", password_hash)
        .route(Method::POST, "/v1/password/verify", password_verify);
    if debug { debug_routes(r) } else { r }
}

#[derive(Serialize)]
struct PoolView {
    threads: usize,
    busy: usize,
    queued: usize,
    capacity: usize,
    completed: u64,
    rejected: u64,
    timed_out: u64,
    cancelled: u64,
    panicked: u64,
}

#[derive(Serialize)]
struct IndexView<'a> {
    service: &'static str,
    version: &'static str,
    host: &'a str,
    instance: u32,
    pid: u32,
    cpu: Option<usize>,
    uptime_s: f64,
    requests: u64,
    /// Instances enabled on this host (what `corepool front add HOST` counts on).
    instances: usize,
    pool: PoolView,
}

async fn index(_req: Request<Incoming>, ctx: Ctx) -> HandlerResult {
    let p = &ctx.pool;
    let s = p.stats();
    json(&IndexView {
        service: "corepool",
        version: env!("CARGO_PKG_VERSION"),
        host: &ctx.hostname,
        instance: ctx.instance,
        pid: ctx.pid,
        cpu: ctx.cpu,
        uptime_s: (ctx.started.elapsed().as_millis() as f64) / 1000.0,
        requests: ctx.metrics.total_requests(),
        instances: ctx.enabled_instances(),
        pool: PoolView {
            threads: p.threads(),
            busy: p.busy(),
            queued: p.queued(),
            capacity: p.capacity(),
            completed: s.completed.get(),
            rejected: s.rejected.get(),
            timed_out: s.timed_out.get(),
            cancelled: s.cancelled.get(),
            panicked: s.panicked.get(),
        },
    })
}

async fn readyz(_req: Request<Incoming>, ctx: Ctx) -> HandlerResult {
    if ctx.is_shutting_down() {
        return Err(ApiError::unavailable("shutting down", 1));
    }
    if ctx.pool.saturated() {
        return Err(ApiError::unavailable("heavy-work queue is full", 1));
    }
    json(&serde_json::json!({"status": "ready", "queued": ctx.pool.queued(), "capacity": ctx.pool.capacity()}))
}

async fn metrics(_req: Request<Incoming>, ctx: Ctx) -> HandlerResult {
    let mut r = Response::new(Full::new(Bytes::from(ctx.metrics.encode())));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(r)
}

async fn compute(req: Request<Incoming>, ctx: Ctx) -> HandlerResult {
    let cfg = ctx.config();
    let n = query_u64(&req, "n", cfg.compute.max_n)?;
    let started = std::time::Instant::now();
    let sum = ctx.pool.run(cfg.pool.job_timeout, move |c| jobs::compute(n, c)).await?;
    // A job only returns None when cancelled, and then the pool reports the cancellation.
    let sum = sum.ok_or(JobError::Cancelled)?;
    json(&serde_json::json!({"n": n, "sum": sum.to_string(), "ms": started.elapsed().as_secs_f64() * 1000.0}))
}

async fn hash(req: Request<Incoming>, ctx: Ctx) -> HandlerResult {
    let cfg = ctx.config();
    let alg_name = query_param(&req, "alg").unwrap_or("sha256");
    let alg: HashAlg = alg_name
        .parse()
        .map_err(|_| ApiError::bad_request(format!("query parameter `alg` must be sha256 or blake3, got {alg_name:?}")))?;
    let chunks = read_body(req, cfg.http.max_body as usize, cfg.http.body_timeout).await?;
    let bytes: usize = chunks.iter().map(|c| c.len()).sum();
    let digest = ctx.pool.run(cfg.pool.job_timeout, move |_| jobs::hash(alg, chunks.iter().map(|c| c.as_ref()))).await?;
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

fn check_password_len(ctx: &Ctx, password: &str) -> Result<(), ApiError> {
    let max = ctx.config().password.max_len;
    if password.len() > max {
        return Err(ApiError::bad_request(format!("field `password` must be at most {max} bytes")));
    }
    Ok(())
}

fn password_error(e: PasswordError) -> ApiError {
    match e {
        PasswordError::BadHash(_) | PasswordError::TooCostly(_) => ApiError::bad_request(format!("field {e}")),
        PasswordError::Internal(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn password_hash(req: Request<Incoming>, ctx: Ctx) -> HandlerResult {
    let body: PasswordHashReq = read_json(req, &ctx).await?;
    check_password_len(&ctx, &body.password)?;
    let cfg = ctx.config();
    let params = cfg.password.clone();
    let phc = ctx.pool.run(cfg.pool.job_timeout, move |_| jobs::password_hash(&params, body.password.as_bytes())).await?;
    json(&serde_json::json!({"hash": phc.map_err(password_error)?}))
}

async fn password_verify(req: Request<Incoming>, ctx: Ctx) -> HandlerResult {
    let body: PasswordVerifyReq = read_json(req, &ctx).await?;
    check_password_len(&ctx, &body.password)?;
    if body.hash.len() > 512 {
        return Err(ApiError::bad_request("field `hash` must be at most 512 bytes"));
    }
    let cfg = ctx.config();
    let params = cfg.password.clone();
    let valid = ctx.pool.run(cfg.pool.job_timeout, move |_| jobs::password_verify(&params, body.password.as_bytes(), &body.hash)).await?;
    json(&serde_json::json!({"valid": valid.map_err(password_error)?}))
}

/// Fault injection for tests (`debug.endpoints = true` only).
fn debug_routes(r: Router) -> Router {
    r.route(Method::POST, "/debug/panic", |_, ctx: Ctx| async move {
        let timeout = ctx.config().pool.job_timeout;
        ctx.pool.run(timeout, |_| -> () { panic!("panic requested by /debug/panic") }).await?;
        json(&serde_json::json!({}))
    })
    // A job that ignores cancellation and holds a pool thread for `ms`.
    .route(Method::POST, "/debug/wedge", |req, ctx: Ctx| async move {
        let ms = query_u64(&req, "ms", 3_600_000)?;
        let timeout = ctx.config().pool.job_timeout;
        ctx.pool.run(timeout, move |_| std::thread::sleep(Duration::from_millis(ms))).await?;
        json(&serde_json::json!({"slept_ms": ms}))
    })
    // Blocks the event loop itself for `ms` (what a CPU-bound handler would do).
    .route(Method::POST, "/debug/block", |req, _ctx| async move {
        let ms = query_u64(&req, "ms", 3_600_000)?;
        std::thread::sleep(Duration::from_millis(ms));
        json(&serde_json::json!({"blocked_ms": ms}))
    })
    // Allocates and touches `mb` MiB on a pool thread, holds it for `ms`.
    .route(Method::POST, "/debug/alloc", |req, ctx: Ctx| async move {
        let mb = query_u64(&req, "mb", 1 << 20)? as usize;
        let ms = query_param(&req, "ms").and_then(|v| v.parse().ok()).unwrap_or(0u64);
        let timeout = ctx.config().pool.job_timeout.max(Duration::from_millis(ms + 1000));
        let touched = ctx
            .pool
            .run(timeout, move |_| {
                let v = vec![1u8; mb << 20];
                std::thread::sleep(Duration::from_millis(ms));
                std::hint::black_box(&v).len()
            })
            .await?;
        json(&serde_json::json!({"allocated_bytes": touched}))
    })
}
