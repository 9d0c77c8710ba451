//! The demo's state shared by every instance and host, on Redis
//! (`[redis] url`), written as any axum service writes it:
//!
//! * `POST /session` `{"user": "..."}` logs in (a new session id), `GET
//!   /session` says who is logged in and which instance answered, `DELETE
//!   /session` logs out — whichever instance or host each request reaches;
//! * `POST /counter` adds one to a counter all instances share, `GET
//!   /counter` reads it;
//! * a chat: `GET /chat/{room}/ws` (a WebSocket: each text message is sent to
//!   everyone in the room, on every instance and host, the sender included),
//!   `GET /chat/{room}/events` (the room as server-sent events) and `POST
//!   /chat/{room}` (a message from outside: a script, a webhook).
//!
//! What a chat client gets is at most once: a message reaches whoever was in
//! the room when it was sent. After a gap — the client fell behind, or its
//! instance lost Redis for a while — it receives `{"gap": true, "missed": N}`
//! (N null when unknown) over WebSockets, an event `gap` over SSE.

use std::convert::Infallible;

use axum::extract::{Path, RawQuery, Request};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use corepool::http::{json, json_response, query_value, read_body, read_json, ApiError};
use corepool::redis::{cmd, sessions, Broadcast, Received, RedisConfig, Session, Subscription};
use corepool::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use corepool::Ctx;
use http::StatusCode;
use serde::Deserialize;

/// The shared-state routes.
pub fn routes() -> Router {
    Router::new()
        .route("/session", get(whoami).post(login).delete(logout))
        .layer(sessions())
        .route("/counter", get(counter).post(count))
        .route("/chat/{room}", axum::routing::post(post_message))
        .route("/chat/{room}/ws", get(chat_ws))
        .route("/chat/{room}/events", get(chat_events))
}

#[derive(Deserialize)]
struct Login {
    user: String,
}

/// `POST /session`.
async fn login(ctx: Ctx, session: Session, req: Request) -> Result<Response, ApiError> {
    let Login { user } = read_json(req, &ctx).await?;
    if user.is_empty() || user.len() > 64 || user.chars().any(char::is_control) {
        return Err(ApiError::bad_request("user: 1 to 64 characters, no control characters"));
    }
    // A new id on login: one an attacker planted before it is worthless.
    session.rotate();
    session.insert("user", &user).await?;
    session.insert("login_instance", ctx.instance).await?;
    json(&serde_json::json!({"user": user, "instance": ctx.instance, "host": ctx.hostname}))
}

/// `GET /session`.
async fn whoami(ctx: Ctx, session: Session) -> Result<Response, ApiError> {
    let user: Option<String> = session.get("user").await?;
    let login_instance: Option<u32> = session.get("login_instance").await?;
    json(&serde_json::json!({"user": user, "login_instance": login_instance, "instance": ctx.instance, "host": ctx.hostname}))
}

/// `DELETE /session`.
async fn logout(ctx: Ctx, session: Session) -> Result<Response, ApiError> {
    session.destroy();
    json(&serde_json::json!({"user": null, "instance": ctx.instance}))
}

/// `GET /counter`.
async fn counter(ctx: Ctx) -> Result<Response, ApiError> {
    let redis = ctx.redis()?;
    let n: Option<u64> = redis.query(cmd("GET").arg(redis.key("counter"))).await?;
    json(&serde_json::json!({"count": n.unwrap_or(0), "instance": ctx.instance}))
}

/// `POST /counter`.
async fn count(ctx: Ctx) -> Result<Response, ApiError> {
    let redis = ctx.redis()?;
    let n: u64 = redis.query(cmd("INCR").arg(redis.key("counter"))).await?;
    json(&serde_json::json!({"count": n, "instance": ctx.instance}))
}

/// A room's name: 1 to 64 of `A-Z a-z 0-9 . _ -`.
fn room_topic(room: &str) -> Result<String, ApiError> {
    if room.is_empty() || room.len() > 64 || !room.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Err(ApiError::bad_request("room: 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-'"));
    }
    Ok(format!("chat:{room}"))
}

fn max_message(ctx: &Ctx) -> usize {
    ctx.section::<RedisConfig>().map(|c| c.max_message).unwrap_or(64 * 1024)
}

/// `POST /chat/{room}`: the body (text) to everyone in the room.
async fn post_message(ctx: Ctx, Path(room): Path<String>, req: Request) -> Result<Response, ApiError> {
    let topic = room_topic(&room)?;
    let chunks = read_body(req, max_message(&ctx), ctx.config().http.body_timeout).await?;
    let text = String::from_utf8(chunks.concat()).map_err(|_| ApiError::bad_request("a chat message is UTF-8 text"))?;
    let instances = ctx.broadcast()?.publish(&topic, text).await?;
    Ok(json_response(StatusCode::ACCEPTED, &serde_json::json!({"room": room, "instances": instances})))
}

/// `GET /chat/{room}/ws[?hello=1]`: joins before the handshake completes,
/// so a Redis outage is a 503 the client sees, not a socket that never
/// hears anything. With `hello=1` the first message says which instance and
/// host the client reached (`{"hello": {...}}`).
async fn chat_ws(ws: WebSocketUpgrade, ctx: Ctx, Path(room): Path<String>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let topic = room_topic(&room)?;
    let broadcast = ctx.broadcast()?;
    let sub = broadcast.subscribe(&topic).await?;
    let limit = max_message(&ctx);
    let hello = (query_value(q.as_deref(), "hello") == Some("1"))
        .then(|| serde_json::json!({"hello": {"instance": ctx.instance, "pid": ctx.pid, "host": ctx.hostname}}).to_string());
    Ok(ws
        .on_upgrade(move |mut socket| async move {
            if let Some(h) = hello {
                if socket.send(Message::text(h)).await.is_err() {
                    return;
                }
            }
            chat(socket, broadcast, sub, topic, limit).await
        })
        .into_response())
}

fn gap_notice(missed: Option<u64>) -> String {
    serde_json::json!({"gap": true, "missed": missed}).to_string()
}

async fn close(mut socket: WebSocket, code: u16, reason: &'static str) {
    let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
}

async fn chat(mut socket: WebSocket, broadcast: Broadcast, mut sub: Subscription, topic: String, limit: usize) {
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if text.len() > limit {
                        return close(socket, close_code::SIZE, "chat message exceeds redis.max_message").await;
                    }
                    if broadcast.publish(&topic, text.as_str().to_owned()).await.is_err() {
                        // 1013: try again later (Redis is unavailable).
                        return close(socket, 1013, "chat unavailable, reconnect later").await;
                    }
                }
                Some(Ok(Message::Binary(_))) => return close(socket, close_code::UNSUPPORTED, "chat messages are text").await,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
            received = sub.recv() => {
                let msg = match received {
                    Some(Received::Message(m)) => match String::from_utf8(m.to_vec()) {
                        Ok(t) => Message::text(t),
                        Err(_) => continue,
                    },
                    Some(Received::Gap(missed)) => Message::text(gap_notice(missed)),
                    None => return,
                };
                if socket.send(msg).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// `GET /chat/{room}/events`: the room's messages as `data:`, gaps as `event: gap`.
async fn chat_events(ctx: Ctx, Path(room): Path<String>) -> Result<Sse<impl futures_core::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let topic = room_topic(&room)?;
    let sub = ctx.broadcast()?.subscribe(&topic).await?;
    let stream = futures_util::stream::unfold(sub, |mut sub| async move {
        let event = match sub.recv().await? {
            Received::Message(m) => Event::default().data(String::from_utf8_lossy(&m)),
            Received::Gap(missed) => Event::default().event("gap").data(gap_notice(missed)),
        };
        Some((Ok(event), sub))
    });
    Ok(Sse::new(stream))
}
