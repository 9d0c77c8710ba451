//! corepool: serve an axum router the systemd way — one socket-activated
//! instance per CPU core, a fixed, bounded pool for heavy work, nginx in
//! front, certbot for HTTPS — and, with the `cli` feature, make the service's
//! binary the operator's tool under its own name (`myapp enable max`,
//! `myapp reload`, `myapp package`, ...).
//!
//! ```no_run
//! use corepool::axum::{routing::get, Router};
//! use corepool::{ApiError, Ctx};
//!
//! async fn heavy(ctx: Ctx) -> Result<String, ApiError> {
//!     let sum = ctx.run(|_cancel| (0..50_000_000u64).sum::<u64>()).await?;
//!     Ok(sum.to_string())
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     let routes = Router::new().route("/heavy", get(heavy));
//!     corepool::main(corepool::service!("myapp").router(routes))
//! }
//! ```
//!
//! This crate is the one a service depends on: it re-exports what a
//! service needs of `corepool-runtime` (what an instance links) and, with
//! `cli`, `corepool-ctl` (the operator's commands and packaging). Feature
//! `ws` adds [`ws::WebSocketUpgrade`]; feature `redis` adds [`redis`]
//! (sessions, broadcast, counters shared by every instance and host); WebSockets through axum's own
//! extractor (axum's `ws` feature) and server-sent events ([`sse`]) need no
//! feature of corepool's.

#![deny(missing_docs)]

/// Server-sent events: axum's, re-exported for convenience. corepool keeps
/// them alive and ends them on drain, whatever builds the stream.
pub use corepool_runtime::axum::response::sse;
/// corepool's own settings, as handlers read them (`ctx.config()`).
pub use corepool_runtime::config;
/// Handler helpers: JSON answers, bodies and query strings with 400/408/413 built in.
pub use corepool_runtime::http;
/// The heavy-work pool: [`pool::Cancel`] for long jobs, [`pool::JobError`].
pub use corepool_runtime::pool;
/// Sessions, broadcast and counters on a Redis shared by every instance and
/// host (feature `redis`; `[redis] url`).
#[cfg(feature = "redis")]
pub use corepool_runtime::redis;
/// Configuration sections of the service's own.
pub use corepool_runtime::section;
/// Testing a service in-process.
pub use corepool_runtime::testing;
/// WebSockets with corepool's sizes (feature `ws`).
#[cfg(feature = "ws")]
pub use corepool_runtime::ws;
pub use corepool_runtime::{axum, ApiError, Ctx, Identity, PackageInfo, PoolView, Section, ServeError, Service, ServiceName, Settings, State};

/// corepool's own internals, for its tests and tools; not API (no stability promise).
#[doc(hidden)]
pub use corepool_runtime as runtime;

#[cfg(feature = "cli")]
pub use corepool_ctl as ctl;

/// The service's binary: parses its command line and runs the command —
/// `serve` (the default) and `config`, plus, with the `cli` feature, every
/// operator command.
pub fn main(service: Service) -> std::process::ExitCode {
    #[cfg(feature = "cli")]
    {
        corepool_ctl::main(service)
    }
    #[cfg(not(feature = "cli"))]
    {
        corepool_runtime::cli::main(service)
    }
}

/// The [`Service`] of the crate being compiled: named after its binary
/// (`service!()`, from `CARGO_BIN_NAME`) or explicitly (`service!("myapp")`),
/// with its Cargo.toml's version, description, authors and licence.
#[macro_export]
macro_rules! service {
    () => {
        $crate::service!(env!("CARGO_BIN_NAME"))
    };
    ($name:expr) => {
        $crate::Service::new($name).info($crate::PackageInfo {
            version: env!("CARGO_PKG_VERSION"),
            description: env!("CARGO_PKG_DESCRIPTION"),
            authors: env!("CARGO_PKG_AUTHORS"),
            license: env!("CARGO_PKG_LICENSE"),
            homepage: env!("CARGO_PKG_HOMEPAGE"),
            repository: env!("CARGO_PKG_REPOSITORY"),
            manifest_dir: env!("CARGO_MANIFEST_DIR"),
        })
    };
}
