//! corepool-runtime: what a running corepool instance links.
//!
//! One instance is one process: a single-threaded tokio event loop serving
//! HTTP/1.1 (hyper) on the socket systemd passed it, with a fixed, bounded,
//! low-priority thread pool for heavy work. Around the service's own axum
//! router it keeps socket activation, sd_notify (READY, STATUS, WATCHDOG,
//! RELOADING, STOPPING), the pool's 503/504/500 answers, metrics per route,
//! access lines, `X-Request-Id`, `Cache-Control`, WebSockets and server-sent
//! events that move to another instance on reload, graceful drain and SIGHUP
//! reload. The operator commands live in `corepool-ctl`; a service depends on
//! the `corepool` crate, which re-exports what it needs from this one.
//!
//! | module | owns |
//! |---|---|
//! | `service` | [`Service`]: the service's name, its config sections and its router, composed with corepool's |
//! | `server` | `run` and `Server::serve(listeners, shutdown)`: the accept loop, SIGHUP, the drain's sequence |
//! | `state` | [`State`]: what an instance shares between connections, requests and tasks |
//! | `conn` | the listeners behind one abstraction, the stream connections are served on, accept errors |
//! | `request` | the per-request wrapper: request id, limits, panics, JSON errors, Cache-Control, metrics, access lines |
//! | `drain` | counting open connections and streams, the drain signal |
//! | `streams`, `websocket`, `sse` | long-lived connections: their count and limit; WebSockets at the transport (limits, pings, close 1012); SSE bodies (keep-alive, end on drain) |
//! | [`ws`] (feature `ws`) | the WebSocket extractor with corepool's sizes and JSON rejections |
//! | `redis` (feature `redis`) | one Redis connection per instance: commands, sessions, broadcast, rate limits |
//! | `monitor` | STATUS=, WATCHDOG=1, the enabled-instance count, the `min_share` governor's tick |
//! | `listen`, `linger`, `notify` | sockets from systemd (`LISTEN_FDS`) or bound by hand; lingering close; sd_notify |
//! | [`pool`], `share` | the bounded heavy-work pool, and the floor under its CPU share (`pool.min_share`) |
//! | [`http`] | [`Ctx`] and [`Settings`] extractors, JSON errors, body and query helpers |
//! | `builtin` | `/healthz`, `/readyz`, `/metrics` and the fault-injection routes |
//! | [`config`], `load`, [`section`] | corepool's settings, the service's own sections, loading with file:line:key errors |
//! | `name` | the service's name and every name derived from it |
//! | `metrics`, `logging`, `access`, `trace` | Prometheus exposition, tracing output, access lines, request spans |
//! | `cli` | the `serve`, `config` and `healthcheck` commands every service binary has |
//! | `client` | a tiny blocking HTTP client with hard timeouts (health checks, the operator commands) |
//! | [`testing`] | an in-process client, and an in-process server with its shutdown trigger, for a service's own tests |
//!
//! Modules shown without a link are corepool's own: either private, or
//! public but hidden from the documentation because `corepool-ctl` (the
//! operator's side, a separate crate) or corepool's own fuzz targets use
//! them; services should not.

#![deny(missing_docs)]

mod access;
mod buckets;
mod builtin;
mod conn;
mod drain;
mod linger;
mod logging;
mod metrics;
mod monitor;
mod request;
mod scope;
mod server;
mod service;
mod share;
mod sse;
mod state;
mod streams;
mod trace;
mod websocket;

pub mod config;
pub mod http;
pub mod pool;
#[cfg(feature = "redis")]
pub mod redis;
pub mod section;
pub mod testing;
#[cfg(feature = "ws")]
pub mod ws;

#[doc(hidden)]
pub mod affinity;
#[doc(hidden)]
pub mod cli;
#[doc(hidden)]
pub mod client;
#[doc(hidden)]
pub mod listen;
#[doc(hidden)]
pub mod load;
#[doc(hidden)]
pub mod name;
#[doc(hidden)]
pub mod notify;

pub use self::http::{ApiError, Ctx, Settings};
pub use builtin::{Identity, PoolView};
pub use name::ServiceName;
pub use section::Section;
pub use server::ServeError;
pub use service::{PackageInfo, Service};
pub use state::State;

/// Re-exported so a service names the same axum corepool was built with.
pub use axum;
