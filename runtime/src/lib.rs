//! corepool-runtime: what a running corepool instance links.
//!
//! One instance is one process: a single-threaded tokio event loop serving
//! HTTP/1.1 (hyper) on the socket systemd passed it, with a fixed, bounded,
//! low-priority thread pool for heavy work. Around the service's own axum
//! router it keeps socket activation, sd_notify (READY, STATUS, WATCHDOG,
//! RELOADING, STOPPING), the pool's 503/504/500 answers, metrics per route,
//! access lines, `X-Request-Id`, `Cache-Control`, graceful drain and SIGHUP
//! reload. The operator commands live in `corepool-ctl`; a service depends on
//! the `corepool` crate, which re-exports this one.
//!
//! | module | owns |
//! |---|---|
//! | [`service`] | [`Service`]: the service's name, its config sections and its router, composed with corepool's |
//! | [`server`] | accepting connections, the per-request wrapper, drain, SIGHUP |
//! | [`listen`] | sockets from systemd (`LISTEN_FDS`), or bound by hand |
//! | [`linger`] | lingering close, so early answers (413) reach clients still sending |
//! | [`notify`] | sd_notify |
//! | [`pool`], [`share`] | the bounded heavy-work pool, and the floor under its CPU share (`pool.min_share`) |
//! | [`http`] | [`Ctx`] and [`Section`](http::Section) extractors, JSON errors, body and query helpers |
//! | [`builtin`] | `/healthz`, `/readyz`, `/metrics` and the fault-injection routes |
//! | [`config`], [`load`], [`section`] | corepool's settings, the service's own sections, loading with file:line:key errors |
//! | [`name`] | the service's name and every name derived from it |
//! | [`metrics`], [`logging`], [`access`], [`trace`] | Prometheus exposition, tracing output, access lines, request spans |
//! | [`cli`] | the `serve`, `config` and `healthcheck` commands every service binary has |
//! | [`client`] | a tiny blocking HTTP client with hard timeouts (health checks, the operator commands) |
//! | [`testing`] | an in-process client for a service's own tests |

pub mod access;
pub mod affinity;
pub mod builtin;
pub mod cli;
pub mod client;
pub mod config;
pub mod http;
pub mod linger;
pub mod listen;
pub mod load;
pub mod logging;
pub mod metrics;
pub mod name;
pub mod notify;
pub mod pool;
pub(crate) mod scope;
pub mod section;
pub mod server;
pub mod service;
pub mod share;
pub mod testing;
pub mod trace;

pub use self::http::{ApiError, Ctx, Settings};
pub use name::ServiceName;
pub use section::Section;
pub use server::{ServeError, State};
pub use service::{PackageInfo, Service};

/// Re-exported so a service names the same axum corepool was built with.
pub use axum;
