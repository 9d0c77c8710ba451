//! Testing a service in-process: [`TestClient`] sends requests through the
//! same stack an instance serves (corepool's routes and middleware, the pool,
//! the configuration sections), without sockets or systemd; [`TestServer`]
//! serves it on a real loopback socket, with the shutdown trigger in the
//! test's hands, so the drain (streams closed with 1012, requests answered)
//! can be tested without signals or child processes.
//!
//! ```
//! use corepool_runtime::{axum::{routing::get, Router}, testing::TestClient, Service};
//!
//! let svc = Service::new("myapp").router(Router::new().route("/hi", get(|| async { "hi" })));
//! let client = TestClient::new(svc).unwrap();
//! let r = client.get("/hi");
//! assert_eq!((r.status, r.body.as_str()), (200, "hi"));
//! assert_eq!(client.get("/healthz").json()["service"], "myapp");
//! ```

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use http::{HeaderMap, Method, Request};
use http_body_util::BodyExt;

use crate::load::{self, Override};
use crate::request;
use crate::server::ServeError;
use crate::service::Service;
use crate::state::State;

/// A service's full request stack, in this process.
pub struct TestClient {
    state: Arc<State>,
    app: Router,
    rt: tokio::runtime::Runtime,
}

/// What a request got.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, as text.
    pub body: String,
}

impl TestResponse {
    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header's value as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The service's state and composed router on its built-in defaults and `sets`.
fn instance(service: &Service, sets: &[&str]) -> Result<(Arc<State>, Router), ServeError> {
    let schema = service.schema()?;
    // Tests share the machine: no pinning, no lowered priority.
    let mut overrides: Vec<Override> =
        ["pin=false", "pool.sched=\"normal\"", "pool.nice=0", "log.access=false"].iter().map(|s| Override::parse_flag(s).expect("key=value")).collect();
    for s in sets {
        overrides.push(Override::parse_flag(s).map_err(ServeError::Usage)?);
    }
    let loaded = load::parse(std::path::Path::new("(test)"), None, &overrides, &schema)?;
    let app = service.compose(loaded.config.debug.endpoints)?;
    let state = Arc::new(State::new(service.name()?.clone(), service.version(), &loaded, crate::access::AccessLog::via_tracing()));
    Ok((state, app))
}

impl TestClient {
    /// The service on its built-in defaults (no file, no environment).
    pub fn new(service: Service) -> Result<TestClient, ServeError> {
        TestClient::with_settings(service, &[])
    }

    /// The service with `key=value` settings, as `--set` takes them
    /// (`pool.threads=2`, `greeting.text=hi`).
    pub fn with_settings(service: Service, sets: &[&str]) -> Result<TestClient, ServeError> {
        let (state, app) = instance(&service, sets)?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(TestClient { state, app, rt })
    }

    /// The instance's state (pool, metrics, configuration).
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Sends one request and reads the whole answer.
    pub fn request(&self, req: Request<Body>) -> TestResponse {
        self.rt.block_on(async {
            let resp = request::handle(self.state.clone(), self.app.clone(), None, req).await.unwrap_or_else(|never| match never {});
            let (parts, body) = resp.into_parts();
            let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            TestResponse { status: parts.status.as_u16(), headers: parts.headers, body: String::from_utf8_lossy(&bytes).into_owned() }
        })
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> TestResponse {
        self.request(Request::builder().uri(path).body(Body::empty()).expect("a valid path"))
    }

    /// `POST path` with a body (sent as JSON if it parses as JSON).
    pub fn post(&self, path: &str, body: &str) -> TestResponse {
        let mut req = Request::builder().method(Method::POST).uri(path);
        if serde_json::from_str::<serde_json::Value>(body).is_ok() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        self.request(req.body(Body::from(body.to_string())).expect("a valid path"))
    }
}

/// A service served on a loopback TCP socket by a real instance (its own
/// event loop on a thread of its own), until [`TestServer::shutdown`].
pub struct TestServer {
    addr: std::net::SocketAddr,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServeError>>>,
}

impl TestServer {
    /// Serves `service` with `sets` (as [`TestClient::with_settings`]) on
    /// 127.0.0.1 at a free port.
    pub fn start(service: Service, sets: &[&str]) -> Result<TestServer, ServeError> {
        let (state, app) = instance(&service, sets)?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = crate::server::Server { state: state.clone(), app, reload: None, notifier: crate::notify::Notifier::disabled() };
        let thread = std::thread::Builder::new().name(format!("test-server-{}", addr.port())).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                let listener = crate::listen::Listener::Tcp(tokio::net::TcpListener::from_std(listener)?);
                server
                    .serve(vec![listener], &format!("{addr} (test)"), async move {
                        let _ = stopped.await;
                        "shutdown()"
                    })
                    .await
            })
        })?;
        Ok(TestServer { addr, state, stop: Some(stop), thread: Some(thread) })
    }

    /// Where it listens.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// The instance's state (its metrics, streams, pool).
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Pulls the shutdown trigger: the drain begins now; it goes on in the
    /// server's thread while the test watches its clients.
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Triggers the shutdown if not yet done and waits for the server to
    /// return; gives what `serve` returned and how long the wait took.
    pub fn join(mut self) -> (Result<(), ServeError>, std::time::Duration) {
        self.shutdown();
        let t = std::time::Instant::now();
        let r = self.thread.take().map(|t| t.join().unwrap_or_else(|_| Err(ServeError::Usage("the server thread panicked".into())))).unwrap_or(Ok(()));
        (r, t.elapsed())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{json, Ctx};
    use axum::routing::get;

    fn svc() -> Service {
        let r = Router::new()
            .route("/users/{id}", get(|axum::extract::Path(id): axum::extract::Path<u32>| async move { format!("user {id}") }))
            .route(
                "/sum",
                get(|ctx: Ctx| async move {
                    let n = ctx.run(|_| (1..=100u64).sum::<u64>()).await?;
                    json(&serde_json::json!({ "sum": n, "instance": ctx.instance }))
                }),
            )
            .route("/boom", get(boom))
            .route("/cached", get(|| async { ([(http::header::CACHE_CONTROL, "public, max-age=60")], "c") }));
        Service::new("myapp").router(r)
    }

    async fn boom() -> &'static str {
        panic!("handler bug")
    }

    #[test]
    fn routes_pool_and_corepools_own_behaviour() {
        let c = TestClient::new(svc()).unwrap();
        let r = c.get("/users/42");
        assert_eq!((r.status, r.body.as_str()), (200, "user 42"));
        assert_eq!(r.header("cache-control"), Some("no-store"), "no-store unless the handler says otherwise");
        // Our own ids are `<instance>-<pid>-<n>`, n counting up per request;
        // a sane caller's id (nginx's $request_id) is kept as it came.
        let id = |r: &TestResponse| r.header("x-request-id").unwrap().to_string();
        let prefix = format!("{}-{}-", c.state().instance, std::process::id());
        let first = id(&r);
        let n = first.strip_prefix(&prefix).unwrap_or_else(|| panic!("{first} starts with {prefix}"));
        let n: u64 = n.parse().unwrap();
        assert_eq!(id(&c.get("/users/42")), format!("{prefix}{}", n + 1));
        let req = Request::get("/users/42").header("x-request-id", "abc-123").body(Body::empty()).unwrap();
        assert_eq!(id(&c.request(req)), "abc-123");
        let req = Request::get("/users/42").header("x-request-id", "has space").body(Body::empty()).unwrap();
        assert_eq!(id(&c.request(req)), format!("{prefix}{}", n + 2), "an insane id is replaced by ours");
        assert_eq!(c.get("/sum").json()["sum"], 5050);
        assert_eq!(c.get("/cached").header("cache-control"), Some("public, max-age=60"));
        // A panicking handler fails its own request only, with corepool's JSON 500.
        let r = c.get("/boom");
        assert_eq!((r.status, r.json()["code"].as_u64()), (500, Some(500)));
        assert_eq!(c.get("/users/42").status, 200);
        // corepool's 404 and 405 are JSON; the route label is the pattern.
        let r = c.get("/nope");
        assert_eq!((r.status, r.json()["error"].as_str()), (404, Some("no route for /nope")));
        let r = c.post("/users/1", "");
        assert_eq!(r.status, 405);
        assert_eq!(r.json()["code"], 405);
        assert!(r.header("allow").is_some_and(|a| a.contains("GET")), "{:?}", r.headers);
        let m = c.get("/metrics").body;
        assert!(m.contains(r#"corepool_http_requests_total{route="/users/{id}",status="200"} 5"#), "{m}");
        assert!(m.contains(r#"corepool_http_requests_total{route="unmatched",status="404"} 1"#), "{m}");
        assert!(m.contains(r#"corepool_http_requests_total{route="/boom",status="500"} 1"#), "{m}");
        let h = c.get("/healthz").json();
        assert_eq!((h["status"].as_str(), h["service"].as_str()), (Some("ok"), Some("myapp")));
        assert_eq!(c.post("/healthz", "").status, 405);
    }
}
