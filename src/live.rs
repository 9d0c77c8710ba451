//! The demo's long-lived routes, written as any axum service writes them:
//! `GET /ws/echo`, a WebSocket that says which instance answered, then echoes
//! every message; `GET /events`, a server-sent event stream of the
//! instance's own figures (requests, open streams, pool) every
//! `interval_ms` (default 1000). corepool keeps both alive through nginx and
//! moves them to another instance on reload (close 1012, `retry:`).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::RawQuery;
use axum::response::sse::{Event, Sse};
use axum::response::Response;
use corepool::http::{parse_u64_param, query_value, ApiError};
use corepool::ws::{Message, WebSocket, WebSocketUpgrade};
use corepool::Ctx;

/// Who answered, as the first message of a WebSocket and event of a stream.
fn hello(ctx: &Ctx) -> String {
    serde_json::json!({ "instance": ctx.instance, "pid": ctx.pid, "host": ctx.hostname }).to_string()
}

/// `GET /ws/echo`.
pub async fn echo(ws: WebSocketUpgrade, ctx: Ctx) -> Response {
    ws.on_upgrade(move |socket| serve_echo(socket, ctx))
}

async fn serve_echo(mut socket: WebSocket, ctx: Ctx) {
    if socket.send(Message::text(format!("{{\"hello\":{}}}", hello(&ctx)))).await.is_err() {
        return;
    }
    while let Some(Ok(msg)) = socket.recv().await {
        if matches!(msg, Message::Text(_) | Message::Binary(_)) && socket.send(msg).await.is_err() {
            return;
        }
    }
}

/// `GET /events`.
pub async fn events(ctx: Ctx, RawQuery(q): RawQuery) -> Result<Sse<impl futures_core::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let every = match query_value(q.as_deref(), "interval_ms") {
        None => Duration::from_millis(1000),
        raw => Duration::from_millis(parse_u64_param("interval_ms", raw, 3_600_000)?.max(50)),
    };
    let first = Event::default().event("hello").data(hello(&ctx));
    let stream = async_stream(ctx, every, first);
    Ok(Sse::new(stream))
}

/// The hello event, then the figures every `every`.
fn async_stream(ctx: Ctx, every: Duration, first: Event) -> impl futures_core::Stream<Item = Result<Event, Infallible>> {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = Some(first);
    futures_util::stream::poll_fn(move |cx| {
        if let Some(f) = first.take() {
            return std::task::Poll::Ready(Some(Ok(f)));
        }
        std::task::ready!(tick.poll_tick(cx));
        let id = ctx.identity();
        let data = serde_json::json!({
            "instance": id.instance,
            "requests": id.requests,
            "websockets": id.websockets,
            "sse": id.sse,
            "pool": { "busy": id.pool.busy, "queued": id.pool.queued },
        });
        std::task::Poll::Ready(Some(Ok(Event::default().event("stats").data(data.to_string()))))
    })
}
