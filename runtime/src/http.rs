//! What handlers use: the [`Ctx`] and [`Settings`] extractors (the instance,
//! its pool and configuration), [`ApiError`] for corepool's JSON errors, and
//! helpers for bodies and query strings that answer 400/408/413 by
//! themselves. Handlers are ordinary axum handlers; heavy ones hand their
//! work to the pool ([`Ctx::run`]) and only await it, so nothing CPU-bound
//! runs on the event loop.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::request::Parts;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};

use crate::config::JSON_BODY_LIMIT;
use crate::pool::{Cancel, JobError};
use crate::state::State;

/// The running instance, for handlers: its number, pool, configuration and
/// the service's sections. An axum extractor (`ctx: Ctx`), cheap to clone.
#[derive(Clone, Debug)]
pub struct Ctx(pub Arc<State>);

impl std::ops::Deref for Ctx {
    type Target = State;
    fn deref(&self) -> &State {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = ApiError;
    async fn from_request_parts(_: &mut Parts, _: &S) -> Result<Ctx, ApiError> {
        crate::scope::state().map(Ctx).ok_or_else(not_served_by_corepool)
    }
}

fn not_served_by_corepool() -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "this route needs corepool's context: serve the router with corepool::Service")
}

impl Ctx {
    /// Runs `job` on the heavy-work pool with the configured deadline
    /// (`pool.job_timeout`) and awaits it: a full queue is a 503 with
    /// `Retry-After`, a missed deadline a 504, a panic a 500. Dropping the
    /// future (the client went away) cancels the job; long jobs should look
    /// at their [`Cancel`] now and then.
    pub async fn run<T, F>(&self, job: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Cancel) -> T + Send + 'static,
    {
        let timeout = self.config().pool.job_timeout;
        Ok(self.pool.run(timeout, job).await?)
    }
}

/// The current value of one of the service's configuration sections (it
/// follows SIGHUP reloads): `Settings(greeting): Settings<Greeting>`.
#[derive(Debug, Clone)]
pub struct Settings<T>(pub Arc<T>);

impl<T> std::ops::Deref for Settings<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<S: Send + Sync, T: crate::Section> FromRequestParts<S> for Settings<T> {
    type Rejection = ApiError;
    async fn from_request_parts(_: &mut Parts, _: &S) -> Result<Settings<T>, ApiError> {
        let state = crate::scope::state().ok_or_else(not_served_by_corepool)?;
        state.section::<T>().map(Settings).ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("configuration section [{}] is not registered: add .section::<{}>() to the Service", T::NAME, std::any::type_name::<T>()),
            )
        })
    }
}

/// An error answered as `{"error": "...", "code": N}`, never cached.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// The status answered.
    pub status: StatusCode,
    /// What went wrong, for the client (the `error` field).
    pub message: String,
    /// Seconds, for 503.
    pub retry_after: Option<u32>,
    /// Methods allowed, for 405.
    pub allow: Option<String>,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), retry_after: None, allow: None }
    }
    /// 400, naming what is wrong.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    /// 503 with `Retry-After: retry_after`.
    pub fn unavailable(message: impl Into<String>, retry_after: u32) -> ApiError {
        ApiError { retry_after: Some(retry_after), ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct E<'a> {
            error: &'a str,
            code: u16,
        }
        let mut r = json_response(self.status, &E { error: &self.message, code: self.status.as_u16() });
        let h = r.headers_mut();
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(s) = self.retry_after {
            h.insert(RETRY_AFTER, HeaderValue::from(s));
        }
        if let Some(allow) = self.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            h.insert(ALLOW, allow);
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
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{\"error\":\"serialization failed\",\"code\":500}".to_vec());
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A 200 JSON response.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, value))
}

/// The value of `name` in a raw query string (the part after `?`), not
/// percent-decoded (for plain tokens; use axum's `Query` for the rest).
pub fn query_value<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

/// Checks a raw parameter value: present, an unsigned integer, at most `max`;
/// else a 400 naming the parameter.
pub fn parse_u64_param(name: &str, raw: Option<&str>, max: u64) -> Result<u64, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::bad_request(format!("query parameter `{name}` is required")))?;
    let n: u64 = raw.parse().map_err(|_| ApiError::bad_request(format!("query parameter `{name}` must be an unsigned integer, got {raw:?}")))?;
    if n > max {
        return Err(ApiError::bad_request(format!("query parameter `{name}` must be at most {max}, got {n}")));
    }
    Ok(n)
}

/// A required unsigned integer query parameter in `0..=max`.
pub fn query_u64<B>(req: &Request<B>, name: &str, max: u64) -> Result<u64, ApiError> {
    parse_u64_param(name, query_value(req.uri().query(), name), max)
}

/// True when a body error is corepool's size limit (`http.max_body`) being hit.
pub fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Reads a request body frame by frame: 413 past `limit` (at once when
/// Content-Length says so), 408 if it does not arrive within `timeout`,
/// 400 if the framing is broken.
pub async fn read_body(req: Request<Body>, limit: usize, timeout: Duration) -> Result<Vec<Bytes>, ApiError> {
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
            let frame = frame.map_err(|e| if is_length_limit(&e) { too_large() } else { ApiError::bad_request(format!("malformed request body: {e}")) })?;
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

/// Reads and parses a JSON body (at most [`JSON_BODY_LIMIT`] bytes, within
/// `http.body_timeout`); any failure is a 400/408/413 naming what is wrong.
pub async fn read_json<T: for<'de> Deserialize<'de>>(req: Request<Body>, ctx: &Ctx) -> Result<T, ApiError> {
    let cfg = ctx.config();
    let limit = JSON_BODY_LIMIT.min(cfg.http.max_body as usize);
    let chunks = read_body(req, limit, cfg.http.body_timeout).await?;
    parse_json(&chunks.concat())
}

/// Parses a JSON body; any failure is a 400 naming what is wrong.
pub fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}
