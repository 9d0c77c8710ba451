//! Embedding corepool as a library: add your own routes and pool jobs, and get
//! socket activation, systemd notify, the bounded pool, metrics, access logs
//! and graceful shutdown with them.
//!
//! Run: `cargo run --example embed` then `curl 'localhost:3000/v1/fib?n=40'`.

use corepool::config::{env_overrides, Source};
use corepool::http::{json, query_u64, ApiError, Ctx};
use corepool::App;
use http::Method;

/// A deliberately CPU-heavy function: naive Fibonacci, checking for cancellation.
fn fib(n: u64, cancel: &corepool::pool::Cancel) -> Option<u64> {
    if cancel.is_cancelled() {
        return None;
    }
    if n < 2 {
        return Some(n);
    }
    Some(fib(n - 1, cancel)? + fib(n - 2, cancel)?)
}

fn main() -> anyhow::Result<()> {
    let app = App::load(Source::default_path(), env_overrides(std::env::vars()))?
        // Light route: answered on the event loop.
        .route(Method::GET, "/hello", |_req, ctx: Ctx| async move {
            json(&serde_json::json!({ "hello": "world", "instance": ctx.instance }))
        })
        // Heavy route: the work goes to the pool; the loop only awaits it.
        .route(Method::GET, "/v1/fib", |req, ctx: Ctx| async move {
            let n = query_u64(&req, "n", 60)?;
            let timeout = ctx.config().pool.job_timeout;
            let value = ctx.pool.run(timeout, move |cancel| fib(n, cancel)).await?;
            let value = value.ok_or_else(|| ApiError::unavailable("cancelled", 1))?;
            json(&serde_json::json!({ "n": n, "fib": value }))
        });
    app.run()?;
    Ok(())
}
