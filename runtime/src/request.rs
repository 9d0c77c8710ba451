//! One request through the service's router, with everything corepool does
//! around any handler: a request id, the instance's [`crate::Ctx`] for
//! extractors, the `http.max_body` limit, panics turned into 500s, JSON for
//! corepool's own 404/405 and for a refused WebSocket handshake, a
//! `Cache-Control` default, metrics by route, an access line and, while
//! draining, `Connection: close`.
//!
//! Streams pass through here too: a WebSocket handshake takes its place under
//! `streams.max_websockets` before routing (503 with `Retry-After` when there
//! is none, or while draining) and, answered 101, hands it to its connection
//! ([`crate::websocket::Slot`]); an event stream's body is wrapped
//! ([`crate::sse`]). What cannot apply to a tunnel (Cache-Control, the
//! drain's `Connection: close`) is left off a 101.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::header::{HeaderValue, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, UPGRADE};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Body as _;
use tower::ServiceExt;

use crate::access::Entry;
use crate::http::ApiError;
use crate::metrics::Route;
use crate::scope;
use crate::sse::{self, SseBody};
use crate::state::State;
use crate::websocket::Slot;

/// Counts a request in flight for as long as it is handled (also when the
/// client goes away and hyper drops the handler).
struct InFlight<'a>(&'a prometheus_client::metrics::gauge::Gauge);

impl<'a> InFlight<'a> {
    fn new(g: &'a prometheus_client::metrics::gauge::Gauge) -> Self {
        g.inc();
        InFlight(g)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The 500 a panicking handler's request gets (the instance goes on).
fn handler_panicked(panic: &str, route: &str) -> Response {
    tracing::error!(panic = %panic, route = %route, "handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "handler failed unexpectedly").into_response()
}

/// True for an EventSource's request (`Accept: text/event-stream`).
fn asks_for_event_stream<B>(req: &Request<B>) -> bool {
    req.headers().get(http::header::ACCEPT).is_some_and(|v| v.as_bytes().windows(17).any(|w| w.eq_ignore_ascii_case(b"text/event-stream")))
}

/// True for a WebSocket handshake (`Upgrade: websocket`).
fn is_websocket_handshake<B>(req: &Request<B>) -> bool {
    req.headers().get(UPGRADE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// One request through the service's router, with everything corepool does
/// around it. `upgrade` is the connection's, where it can be upgraded.
pub(crate) async fn handle<B>(state: Arc<State>, app: Router, upgrade: Option<Arc<Slot>>, req: Request<B>) -> Result<Response, Infallible>
where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let started = Instant::now();
    let _in_flight = InFlight::new(&state.metrics.in_flight);
    let id = request_id(&state, &req);
    let (access, max_body) = {
        let cfg = state.config.load();
        (cfg.log.access, cfg.http.max_body as usize)
    };
    let (method, uri, version) = (req.method().clone(), req.uri().clone(), req.version());
    let done = Done { started, id, access, method, uri, version };
    // A WebSocket handshake takes its place first; without one it is refused here.
    let mut place = None;
    // hyper marks a request that asks for an upgrade (a cheap look, unlike a header's).
    let asks = req.extensions().get::<hyper::upgrade::OnUpgrade>().is_some();
    if upgrade.is_some() && asks && is_websocket_handshake(&req) {
        match websocket_place(&state) {
            Ok(p) => place = Some(p),
            Err(refused) => return Ok(done.finish(&state, refused.into_response(), Route::Unmatched, None)),
        }
    }
    // Draining: a client (re)opening an event stream is sent elsewhere (nginx
    // retries a GET answered 503 on another instance), as a handshake is.
    if state.is_shutting_down() && asks_for_event_stream(&req) {
        let busy = ApiError::unavailable("this instance is restarting: reconnect (to another instance)", 1);
        return Ok(done.finish(&state, busy.into_response(), Route::Unmatched, None));
    }
    let mut req = req.map(|b| Body::new(Limited::new(b, max_body)));
    // The limit is corepool's, above: axum's extractors must not add their own.
    axum::extract::DefaultBodyLimit::disable().apply(&mut req);
    // Inline, not a function of its own: this future is the biggest part of
    // every request's, and each move of it is a copy.
    let routed = scope::Routed::new(state.clone(), app.oneshot(req));
    let (routed, matched) = match &state.spans {
        None => routed.await,
        Some(rec) => {
            let route_status = |(r, m): &(Result<Result<Response, Infallible>, String>, Option<MatchedPath>)| {
                let route = m.as_ref().map_or(Route::UNMATCHED, |m| m.as_str()).to_string();
                (route, r.as_ref().ok().map_or(500, |r| r.as_ref().map_or(500, |r| r.status().as_u16())))
            };
            rec.record(done.started, route_status, routed).await
        }
    };
    let route = match matched {
        Some(m) => Route::Matched(m),
        None => Route::Unmatched,
    };
    let mut resp = match routed {
        Ok(Ok(resp)) => resp,
        Ok(Err(never)) => match never {},
        Err(panic) => handler_panicked(&panic, route.as_str()),
    };
    if let (Some(permit), Some(slot)) = (place, &upgrade) {
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            slot.arm(permit, state.clone(), resp.headers());
        } else {
            // Rare: boxed, so that every request's future stays small.
            Box::pin(handshake_error_as_json(&mut resp)).await;
        }
    }
    Ok(done.finish(&state, resp, route, upgrade.as_deref()))
}

/// What the end of a request needs from its start.
struct Done {
    started: Instant,
    id: HeaderValue,
    access: bool,
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
}

impl Done {
    /// corepool's headers on the response, an event stream's body wrapped,
    /// the access line and the metrics.
    fn finish(self, state: &Arc<State>, mut resp: Response, route: Route, conn: Option<&Slot>) -> Response {
        corepool_errors(&mut resp, &self.method, self.uri.path());
        let switched = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        let headers = resp.headers_mut();
        headers.insert(X_REQUEST_ID.clone(), self.id.clone());
        if !switched {
            // Nothing is cacheable unless its handler says so (see README: caching).
            headers.entry(CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
            if state.is_shutting_down() {
                // Draining: the client (nginx) closes this connection after the
                // answer, instead of us closing it under a request it is sending.
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            // An event stream has no length: answers that have one skip the look.
            if resp.body().size_hint().exact().is_none() && sse::is_event_stream(resp.headers()) {
                // nginx passes each event on as it comes, whatever the site's
                // buffering; the connection ends with the stream (a drain then
                // waits for no idle connection left behind by one).
                resp.headers_mut().insert(X_ACCEL_BUFFERING.clone(), HeaderValue::from_static("no"));
                resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
                resp = resp.map(|b| Body::new(SseBody::new(b, state)));
                if let Some(conn) = conn {
                    conn.serves_stream(state);
                }
            }
        }
        let elapsed = self.started.elapsed();
        let status = resp.status().as_u16();
        if self.access {
            state.access.write(&Entry { method: &self.method, uri: &self.uri, version: self.version, status, elapsed, id: self.id.as_bytes() });
        }
        state.metrics.observe(route, status, elapsed);
        resp
    }
}

/// A WebSocket's place on this instance, or the 503 that says why there is none.
fn websocket_place(state: &State) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    let refuse = |why: String| {
        state.streams.metrics.ws_refused.inc();
        Err(ApiError::unavailable(why, 1))
    };
    if state.is_shutting_down() {
        return refuse("this instance is restarting: reconnect (to another instance)".into());
    }
    match state.streams.try_websocket() {
        Some(p) => Ok(p),
        None => refuse(format!("too many WebSockets on this instance (streams.max_websockets = {}): retry later", state.streams.max_websockets())),
    }
}

/// A handshake the handler's extractor refused (axum answers in plain text:
/// wrong version, missing key) becomes corepool's JSON error, same status;
/// a 400 says which version this server speaks (RFC 6455 §4.4).
async fn handshake_error_as_json(resp: &mut Response) {
    let status = resp.status();
    let plain = resp.headers().get(CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    let small = resp.body().size_hint().exact().is_some_and(|n| n <= 1024);
    if status.is_client_error() && plain && small {
        let body = std::mem::take(resp.body_mut());
        let text = body.collect().await.map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned()).unwrap_or_default();
        let ext = std::mem::take(resp.extensions_mut());
        let mut headers = std::mem::take(resp.headers_mut());
        *resp = ApiError::new(status, format!("WebSocket handshake refused: {text}")).into_response();
        headers.remove(CONTENT_TYPE);
        headers.remove(http::header::CONTENT_LENGTH);
        resp.headers_mut().extend(headers);
        *resp.extensions_mut() = ext;
    }
    if status == StatusCode::BAD_REQUEST {
        resp.headers_mut().insert(http::header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    }
}

/// axum's own 404 and 405 have empty bodies; corepool answers JSON like
/// every other error it makes (a handler's own 404 is left alone).
fn corepool_errors(resp: &mut Response, method: &http::Method, path: &str) {
    let status = resp.status();
    if !(status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED) || resp.body().size_hint().exact() != Some(0) {
        return;
    }
    let err = if status == StatusCode::NOT_FOUND {
        ApiError::new(status, format!("no route for {path}"))
    } else {
        let allow = resp.headers().get(http::header::ALLOW).and_then(|v| v.to_str().ok()).map(String::from);
        ApiError { allow, ..ApiError::new(status, format!("{method} not allowed on {path}")) }
    };
    let ext = std::mem::take(resp.extensions_mut());
    *resp = err.into_response();
    *resp.extensions_mut() = ext;
}

static X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");
static X_ACCEL_BUFFERING: http::HeaderName = http::HeaderName::from_static("x-accel-buffering");

/// The caller's `X-Request-Id` if it is sane, else `<instance>-<pid>-<n>`.
fn request_id<B>(state: &State, req: &Request<B>) -> HeaderValue {
    if let Some(v) = req.headers().get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic()) {
            return v.clone();
        }
    }
    let n = state.next_request.fetch_add(1, Ordering::Relaxed);
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n).as_bytes();
    let mut id = Vec::with_capacity(state.id_prefix.len() + digits.len());
    id.extend_from_slice(&state.id_prefix);
    id.extend_from_slice(digits);
    // Digits and '-' only: always a valid header value; "-" is unreachable.
    HeaderValue::from_maybe_shared(bytes::Bytes::from(id)).unwrap_or(HeaderValue::from_static("-"))
}
