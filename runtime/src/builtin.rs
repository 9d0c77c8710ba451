//! corepool's own routes, in every service: `/healthz` (liveness, and the
//! instance's identity for the operator commands), `/readyz` (readiness:
//! serving and room in the pool's queue) and `/metrics` (Prometheus); with
//! `debug.endpoints`, the fault-injection routes under `/debug/`.
//!
//! They answer any method (405 for all but GET and HEAD), so a service route
//! on one of these paths, whatever its method, clashes with them and is
//! refused at start ([`crate::service`]).

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::{on, post, MethodFilter};
use axum::Router;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, StatusCode};
use serde::Serialize;

use crate::http::{json, query_u64, query_value, ApiError, Ctx};
use crate::state::State;

/// The paths corepool serves itself.
pub const RESERVED: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The fault-injection routes' paths (`debug.endpoints = true`).
pub const DEBUG_PATHS: [&str; 5] = ["/debug/panic", "/debug/handler-panic", "/debug/wedge", "/debug/block", "/debug/alloc"];

/// Every method, one by one: axum's `any()` is a fallback, which merges with
/// a service's route on the same path instead of clashing with it.
pub const EVERY_METHOD: MethodFilter = MethodFilter::CONNECT
    .or(MethodFilter::DELETE)
    .or(MethodFilter::GET)
    .or(MethodFilter::HEAD)
    .or(MethodFilter::OPTIONS)
    .or(MethodFilter::PATCH)
    .or(MethodFilter::POST)
    .or(MethodFilter::PUT)
    .or(MethodFilter::TRACE);

/// The built-in routes; `debug` adds the fault-injection endpoints.
pub fn routes(debug: bool) -> Router {
    let r = Router::new().route("/healthz", on(EVERY_METHOD, healthz)).route("/readyz", on(EVERY_METHOD, readyz)).route("/metrics", on(EVERY_METHOD, metrics));
    if debug {
        debug_routes(r)
    } else {
        r
    }
}

/// 405 unless GET or HEAD.
fn get_only(req: &Request) -> Result<(), ApiError> {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return Ok(());
    }
    Err(ApiError {
        allow: Some("GET, HEAD".into()),
        ..ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{} not allowed on {}", req.method(), req.uri().path()))
    })
}

/// The pool as `/healthz` and `GET /` of the demo report it.
#[derive(Debug, Serialize)]
pub struct PoolView {
    /// Pool threads (`pool.threads`).
    pub threads: usize,
    /// Threads running a job now.
    pub busy: usize,
    /// Jobs waiting for a thread.
    pub queued: usize,
    /// Jobs the queue holds before refusing with 503.
    pub capacity: usize,
    /// Jobs completed since start.
    pub completed: u64,
    /// Jobs refused: the queue was full.
    pub rejected: u64,
    /// Jobs past their deadline (504).
    pub timed_out: u64,
    /// Jobs cancelled: their client went away.
    pub cancelled: u64,
    /// Jobs that panicked (500).
    pub panicked: u64,
}

/// Who answered: what `corepool status`, `front add` and `enable` read from
/// `/healthz`, and what a service may show on a page of its own.
#[derive(Debug, Serialize)]
pub struct Identity<'a> {
    /// Always `ok` (the instance answers).
    pub status: &'static str,
    /// The service's name.
    pub service: &'a str,
    /// The service's version.
    pub version: &'a str,
    /// The host's name.
    pub host: &'a str,
    /// The instance number.
    pub instance: u32,
    /// The instance's process id.
    pub pid: u32,
    /// The CPU its event loop is pinned to, if pinned.
    pub cpu: Option<usize>,
    /// Seconds since start.
    pub uptime_s: f64,
    /// Requests answered since start.
    pub requests: u64,
    /// WebSockets open now.
    pub websockets: usize,
    /// Server-sent event streams open now.
    pub sse: usize,
    /// Instances enabled on this host (what `front add HOST` counts on).
    pub instances: usize,
    /// The heavy-work pool.
    pub pool: PoolView,
    /// The connection to Redis, when `[redis] url` is set.
    #[cfg(feature = "redis")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<crate::redis::link::LinkView>,
}

impl State {
    /// This instance's identity and counters.
    pub fn identity(&self) -> Identity<'_> {
        let p = &self.pool;
        let s = p.stats();
        Identity {
            status: "ok",
            service: self.service.as_str(),
            version: &self.version,
            host: &self.hostname,
            instance: self.instance,
            pid: self.pid,
            cpu: self.cpu,
            uptime_s: (self.started.elapsed().as_millis() as f64) / 1000.0,
            requests: self.metrics.total_requests(),
            websockets: self.streams.websockets(),
            sse: self.streams.sse(),
            instances: self.enabled_instances(),
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
            #[cfg(feature = "redis")]
            redis: self.redis.as_ref().map(|l| l.view()),
        }
    }
}

async fn healthz(ctx: Ctx, req: Request) -> Result<Response, ApiError> {
    get_only(&req)?;
    json(&ctx.identity())
}

async fn readyz(ctx: Ctx, req: Request) -> Result<Response, ApiError> {
    get_only(&req)?;
    if ctx.is_shutting_down() {
        return Err(ApiError::unavailable("shutting down", 1));
    }
    if ctx.pool.saturated() {
        return Err(ApiError::unavailable("heavy-work queue is full", 1));
    }
    // Only a service that says it cannot work without Redis follows it.
    #[cfg(feature = "redis")]
    if let Some(link) = ctx.redis.as_ref().filter(|l| l.cfg.required) {
        link.start();
        if link.state() != crate::redis::link::LinkState::Up {
            let v = link.view();
            return Err(ApiError::unavailable(format!("redis {}: {}", v.state.as_str(), v.error.unwrap_or_default()), 1));
        }
    }
    json(&serde_json::json!({"status": "ready", "queued": ctx.pool.queued(), "capacity": ctx.pool.capacity()}))
}

async fn metrics(ctx: Ctx, req: Request) -> Result<Response, ApiError> {
    get_only(&req)?;
    let mut r = Response::new(Body::from(ctx.metrics.encode()));
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    Ok(r)
}

/// Fault injection for tests (`debug.endpoints = true` only).
fn debug_routes(r: Router) -> Router {
    r.route(
        "/debug/panic",
        post(|ctx: Ctx| async move {
            ctx.run(|_| -> () { panic!("panic requested by /debug/panic") }).await?;
            json(&serde_json::json!({}))
        }),
    )
    // A handler that panics on the event loop itself (not in a pool job).
    .route("/debug/handler-panic", post(handler_panic))
    // A job that ignores cancellation and holds a pool thread for `ms`.
    .route(
        "/debug/wedge",
        post(|ctx: Ctx, req: Request| async move {
            let ms = query_u64(&req, "ms", 3_600_000)?;
            ctx.run(move |_| std::thread::sleep(Duration::from_millis(ms))).await?;
            json(&serde_json::json!({"slept_ms": ms}))
        }),
    )
    // Blocks the event loop itself for `ms` (what a CPU-bound handler would do).
    .route(
        "/debug/block",
        post(|req: Request| async move {
            let ms = query_u64(&req, "ms", 3_600_000)?;
            std::thread::sleep(Duration::from_millis(ms));
            json(&serde_json::json!({"blocked_ms": ms}))
        }),
    )
    // Allocates and touches `mb` MiB on a pool thread, holds it for `ms`.
    .route(
        "/debug/alloc",
        post(|ctx: Ctx, req: Request| async move {
            let mb = query_u64(&req, "mb", 1 << 20)? as usize;
            let ms = query_value(req.uri().query(), "ms").and_then(|v| v.parse().ok()).unwrap_or(0u64);
            let timeout = ctx.config().pool.job_timeout.max(Duration::from_millis(ms + 1000));
            let touched = ctx
                .pool
                .run(timeout, move |_| {
                    let v = vec![1u8; mb << 20];
                    std::thread::sleep(Duration::from_millis(ms));
                    std::hint::black_box(&v).len()
                })
                .await
                .map_err(ApiError::from)?;
            json(&serde_json::json!({"allocated_bytes": touched}))
        }),
    )
}

async fn handler_panic() -> Response {
    panic!("panic requested by /debug/handler-panic")
}
