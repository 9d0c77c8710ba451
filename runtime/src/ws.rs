//! WebSockets for handlers (feature `ws`): [`WebSocketUpgrade`] is axum's
//! extractor with corepool's sizes — `streams.buffer` for the read and write
//! buffers (tungstenite's default is 128 KiB each, per connection, allocated
//! up front), `streams.max_write_buffer` for a client that reads slower than
//! it is written to, `streams.max_frame` and `streams.max_message` — and a
//! refused handshake answered with corepool's JSON error.
//!
//! ```no_run
//! use corepool_runtime::axum::{routing::get, Router};
//! use corepool_runtime::ws::{Message, WebSocket, WebSocketUpgrade};
//!
//! async fn echo(ws: WebSocketUpgrade) -> corepool_runtime::axum::response::Response {
//!     ws.on_upgrade(|mut socket: WebSocket| async move {
//!         while let Some(Ok(msg)) = socket.recv().await {
//!             if matches!(msg, Message::Text(_) | Message::Binary(_)) && socket.send(msg).await.is_err() {
//!                 break;
//!             }
//!         }
//!     })
//! }
//! let app: Router = Router::new().route("/ws", get(echo));
//! ```
//!
//! axum's own `WebSocketUpgrade` works as well, with tungstenite's sizes:
//! whichever is used, the runtime limits, pings and drains the connection
//! (close 1012 on reload; see the runtime's `websocket` module).

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;

pub use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket};

use crate::http::ApiError;

/// axum's WebSocket extractor with corepool's sizes (module docs).
#[derive(Debug)]
pub struct WebSocketUpgrade(axum::extract::ws::WebSocketUpgrade);

impl WebSocketUpgrade {
    /// Completes the handshake (101) and runs `callback` on the socket in a
    /// task of its own.
    pub fn on_upgrade<C, Fut>(self, callback: C) -> Response
    where
        C: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.0.on_upgrade(callback)
    }

    /// The subprotocols the server speaks, in its order of preference.
    pub fn protocols<I>(self, protocols: I) -> WebSocketUpgrade
    where
        I: IntoIterator,
        I::Item: Into<std::borrow::Cow<'static, str>>,
    {
        WebSocketUpgrade(self.0.protocols(protocols))
    }

    /// axum's extractor, to change any other setting.
    pub fn into_inner(self) -> axum::extract::ws::WebSocketUpgrade {
        self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let upgrade = axum::extract::ws::WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map_err(|r| ApiError::new(r.status(), format!("WebSocket handshake refused: {}", r.body_text())).into_response())?;
        let Some(state) = crate::scope::state() else {
            return Ok(WebSocketUpgrade(upgrade));
        };
        let s = &state.config().streams;
        Ok(WebSocketUpgrade(
            upgrade
                .read_buffer_size(s.buffer)
                .write_buffer_size(s.buffer)
                .max_write_buffer_size(s.max_write_buffer)
                .max_frame_size(s.max_frame)
                .max_message_size(s.max_message),
        ))
    }
}
