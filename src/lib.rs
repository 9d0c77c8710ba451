//! corepool: the Node.js scaling recipe (a process per core, a worker pool for
//! CPU-heavy work, a process manager, nginx in front) rebuilt on systemd.
//!
//! Each instance is one single-threaded tokio event loop serving hyper HTTP/1.1
//! on a socket systemd passed it, with a fixed-size, bounded, low-priority
//! thread pool for heavy jobs. Embed it with [`App`]:
//!
//! ```no_run
//! use corepool::{App, http::{json, Ctx}};
//! use corepool::http::ApiError;
//! let app = App::with_config(Default::default())
//!     .route(http::Method::GET, "/hello", |_req, ctx: Ctx| async move {
//!         let timeout = ctx.config().pool.job_timeout;
//!         let v = ctx.pool.run(timeout, |_cancel| 6 * 7).await.map_err(ApiError::from)?;
//!         json(&serde_json::json!({ "answer": v }))
//!     });
//! app.run().unwrap();
//! ```

pub mod admin;
pub mod affinity;
pub mod cli;
pub mod client;
pub mod config;
pub mod front;
pub mod http;
pub mod jobs;
pub mod listen;
pub mod logging;
pub mod logs;
pub mod metrics;
pub mod nginx;
pub mod notify;
pub mod pool;
pub mod server;
pub mod top;
pub mod trace;
pub mod units;

pub use server::{App, ServeError, State};
