//! The obvious Rust alternative to corepool, for the benchmarks: one
//! multi-threaded tokio process (a worker per core), hyper HTTP/1.1, heavy work
//! on `spawn_blocking`, all defaults. Same routes and JSON as corepool's
//! `GET /` and `GET /compute?n=N`, and `GET /fixed` byte for byte: the same
//! fixed body with the same headers as the demo's (`Content-Type`, an
//! `X-Request-Id` made up the same way, `Cache-Control: no-store`), so the
//! two can be compared on equal work. Not part of the product.
//!
//! `cargo run --release --example plain_tokio -- 127.0.0.1:3200`

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

fn json(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", http::HeaderValue::from_static("application/json"));
    r
}

/// The demo's `FIXED_BODY` (src/lib.rs).
const FIXED_BODY: &str = r#"{"message":"Hello, World!"}"#;
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(0);

/// `GET /fixed` as the demo answers it: the body, its type, and the two
/// headers corepool puts on every answer.
fn fixed() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(FIXED_BODY.as_bytes())));
    let n = NEXT_REQUEST.fetch_add(1, Ordering::Relaxed);
    let h = r.headers_mut();
    h.insert("content-type", http::HeaderValue::from_static("application/json"));
    h.insert("x-request-id", http::HeaderValue::try_from(format!("0-{}-{n}", std::process::id())).expect("ascii"));
    h.insert("cache-control", http::HeaderValue::from_static("no-store"));
    r
}

async fn handle(req: Request<Incoming>, started: Instant) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match req.uri().path() {
        "/" => json(StatusCode::OK, serde_json::json!({"service": "plain-tokio", "pid": std::process::id(), "uptime_s": started.elapsed().as_secs_f64()})),
        "/fixed" => fixed(),
        "/compute" => {
            let n = req.uri().query().and_then(|q| q.strip_prefix("n=")).and_then(|v| v.parse::<u64>().ok());
            match n {
                None => json(StatusCode::BAD_REQUEST, serde_json::json!({"error": "n must be an unsigned integer", "code": 400})),
                Some(n) => {
                    let t0 = Instant::now();
                    let sum = tokio::task::spawn_blocking(move || {
                        let mut s: u64 = 0;
                        for i in 0..n {
                            s = s.wrapping_add(std::hint::black_box(i));
                        }
                        s
                    })
                    .await
                    .unwrap_or(0);
                    json(StatusCode::OK, serde_json::json!({"n": n, "sum": sum.to_string(), "ms": t0.elapsed().as_secs_f64() * 1000.0}))
                }
            }
        }
        _ => json(StatusCode::NOT_FOUND, serde_json::json!({"error": "not found", "code": 404})),
    })
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:3200".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let started = Instant::now();
    eprintln!("plain_tokio serving on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(req, started));
            let _ = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}
