//! An HTTP service on corepool: ordinary axum handlers, one light and one
//! heavy, plus a configuration section of its own. corepool serves them the
//! systemd way (one socket-activated instance per CPU core, a bounded pool for
//! heavy work, nginx in front) and makes this binary the operator's tool too.

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use corepool::section::InvalidSetting;
use corepool::{ApiError, Ctx, Settings};
use serde::{Deserialize, Serialize};

/// `[greeting]` in the service's configuration file: its own settings, with
/// corepool's checks, environment overrides and reload on SIGHUP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Greeting {
    /// What `/hello/{name}` says.
    pub text: String,
}

impl Default for Greeting {
    fn default() -> Self {
        Greeting { text: "hello".into() }
    }
}

impl corepool::Section for Greeting {
    const NAME: &'static str = "greeting";

    fn validate(&self) -> Result<(), InvalidSetting> {
        if self.text.is_empty() || self.text.len() > 64 {
            return Err(InvalidSetting::new("text", "must be 1 to 64 bytes"));
        }
        Ok(())
    }
}

/// Light: answered on the event loop, in microseconds.
async fn hello(Path(name): Path<String>, Settings(greeting): Settings<Greeting>, ctx: Ctx) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "message": format!("{}, {name}", greeting.text), "instance": ctx.instance }))
}

#[derive(Serialize)]
struct Fib {
    n: u32,
    fib: u64,
}

/// Heavy: the work runs on corepool's pool; the event loop only awaits it.
/// A full queue is a 503 with Retry-After, a missed deadline a 504.
async fn fib(Path(n): Path<u32>, ctx: Ctx) -> Result<Json<Fib>, ApiError> {
    if n > 45 {
        return Err(ApiError::bad_request("n must be at most 45"));
    }
    let value = ctx.run(move |cancel| naive_fib(n, cancel)).await?;
    let fib = value.ok_or_else(|| ApiError::unavailable("cancelled", 1))?;
    Ok(Json(Fib { n, fib }))
}

/// Deliberately slow (exponential), and it gives up once cancelled (client
/// gone, or past `pool.job_timeout`).
fn naive_fib(n: u32, cancel: &corepool::pool::Cancel) -> Option<u64> {
    if n < 2 {
        return Some(u64::from(n));
    }
    if n > 25 && cancel.is_cancelled() {
        return None;
    }
    Some(naive_fib(n - 1, cancel)? + naive_fib(n - 2, cancel)?)
}

/// The service: its name (the binary's), its section and its routes.
/// (The packaged nginx caches answers only under the paths given to
/// `.cacheable("/path")`, and there only those that say
/// `Cache-Control: max-age=N`.)
fn service() -> corepool::Service {
    let routes = Router::new().route("/hello/{name}", get(hello)).route("/fib/{n}", get(fib));
    corepool::service!().section::<Greeting>().router(routes)
}

fn main() -> std::process::ExitCode {
    corepool::main(service())
}

#[cfg(test)]
mod tests {
    use super::*;
    use corepool::testing::TestClient;

    #[test]
    fn light_and_heavy_routes() {
        let client = TestClient::new(service()).unwrap();
        let r = client.get("/hello/ann");
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["message"], "hello, ann");
        let r = client.get("/fib/20");
        assert_eq!((r.status, r.json()["fib"].as_u64()), (200, Some(6765)));
        assert_eq!(client.get("/fib/46").status, 400);
        // The section's own setting, and corepool's routes beside ours.
        let client = TestClient::with_settings(service(), &["greeting.text=\"hi\""]).unwrap();
        assert_eq!(client.get("/hello/bo").json()["message"], "hi, bo");
        assert_eq!(client.get("/readyz").status, 200);
    }
}
