//! The built binary, end to end: binding, routes, pool behaviour, shutdown,
//! and every bad-input case answered with its status and a JSON error.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;

#[test]
fn pin_true_pins_the_event_loop_to_its_cpu() {
    let s = Server::start(&["instance=0", "pin=true"]);
    let j = s.get("/").json();
    // The server inherits this process's affinity.
    let want = corepool::runtime::affinity::cpu_for_instance(0, &corepool::runtime::affinity::allowed_cpus()).expect("a CPU");
    assert_eq!(j["cpu"].as_u64(), Some(want as u64), "instance 0 on the first allowed CPU: {j}");
}

#[test]
fn standalone_bind_serves_identity_json() {
    let s = Server::start(&["instance=1"]);
    let r = s.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let j = r.json();
    assert_eq!(j["instance"], 1);
    assert_eq!(j["pid"], s.pid());
    assert_eq!(j["pool"]["threads"], 1);
    assert!(j["cpu"].is_null(), "not pinned by default: {j}");
    assert_eq!(s.get("/healthz").json()["status"], "ok");
    assert_eq!(s.get("/readyz").status, 200);
    // Request ids: ours is echoed, otherwise one is made up.
    let r = http(&s.addr, "GET / HTTP/1.1\r\nHost: t\r\nX-Request-Id: abc-123\r\nConnection: close\r\n\r\n");
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    assert!(s.get("/").header("x-request-id").unwrap().starts_with(&format!("1-{}-", s.pid())));
}

/// `GET /fixed`: the benchmarks' equal-work route, the same bytes every time
/// (examples/plain_tokio.rs answers them too).
#[test]
fn fixed_answers_the_same_small_json_body() {
    let s = Server::start(&[]);
    let r = s.get("/fixed");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(r.header("x-request-id").is_some());
    assert_eq!(r.body, corepool_demo::FIXED_BODY);
    assert_eq!(r.body, r#"{"message":"Hello, World!"}"#);
}

/// `corepool healthcheck URL` (the container image's HEALTHCHECK): 0 on a
/// 200, 1 with the reason on anything else.
#[test]
fn healthcheck_command_exits_by_the_answer() {
    let s = Server::start(&[]);
    let run = |url: &str| std::process::Command::new(common::BIN).args(["healthcheck", url]).output().unwrap();
    let ok = run(&format!("http://{}/healthz", s.addr));
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let missing = run(&format!("http://{}/no-such-route", s.addr));
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("answered 404"), "{}", String::from_utf8_lossy(&missing.stderr));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let down = run(&format!("http://{closed}/healthz"));
    assert_eq!(down.status.code(), Some(1));
    assert!(!down.stderr.is_empty());
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let s = Server::start(&[]);
    let mut c = connect(&s.addr);
    for _ in 0..50 {
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut *c).status, 200);
    }
}

#[test]
fn heavy_routes_run_on_the_pool() {
    let s = Server::start(&["password.memory_kib=64", "password.iterations=1"]);
    let j = s.get("/compute?n=1000").json();
    assert_eq!(j["sum"], "499500");
    let j = s.post("/v1/hash?alg=sha256", "abc").json();
    assert_eq!(j["hex"], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(s.post("/v1/hash?alg=blake3", "abc").json()["hex"], "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
    // Streamed chunked upload is hashed the same as a plain one.
    let chunked =
        http(&s.addr, "POST /v1/hash?alg=sha256 HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n2\r\nbc\r\n0\r\n\r\n");
    assert_eq!(chunked.json()["hex"], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    let h = s.post("/v1/password/hash", r#"{"password":"correct horse"}"#).json()["hash"].as_str().unwrap().to_string();
    assert!(h.starts_with("$argon2id$"));
    let ok = s.post("/v1/password/verify", &serde_json::json!({"password": "correct horse", "hash": h}).to_string());
    assert_eq!(ok.json()["valid"], true);
    let bad = s.post("/v1/password/verify", &serde_json::json!({"password": "wrong", "hash": h}).to_string());
    assert_eq!(bad.json()["valid"], false);
    assert_eq!(s.metric("corepool_pool_jobs_completed_total"), 7.0);
}

#[test]
fn metrics_count_requests_and_jobs() {
    let s = Server::start(&[]);
    s.get("/");
    s.get("/nope");
    s.get("/compute?n=10");
    let m = s.get("/metrics");
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("application/openmetrics-text"));
    assert!(m.body.contains(r#"corepool_http_requests_total{route="/",status="200"} 1"#), "{}", m.body);
    assert!(m.body.contains(r#"route="unmatched",status="404"} 1"#));
    assert!(m.body.contains("corepool_http_request_duration_seconds_bucket"));
    assert!(m.body.contains("corepool_http_open_connections"));
    assert!(m.body.contains("corepool_pool_busy_threads"));
    assert!(m.body.contains("corepool_pool_queue_depth"));
    for outcome in ["completed", "rejected", "timed_out", "cancelled", "panicked"] {
        assert!(m.body.contains(&format!("corepool_pool_jobs_{outcome}_total")), "{outcome}");
    }
}

#[test]
fn full_queue_gets_503_with_retry_after() {
    let s = Server::start(&["debug.endpoints=true", "pool.threads=1", "pool.queue=1", "pool.job_timeout=\"20s\""]);
    // (Long enough for the steps below on a loaded machine: the queued job
    // must still be waiting when the third request comes.)
    let hold = s.spawn_http("POST /debug/wedge?ms=5000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    s.until("pool busy", |s| s.get("/").json()["pool"]["busy"] == 1);
    let queued = s.spawn_http("GET /compute?n=10 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    s.until("one job queued", |s| s.get("/").json()["pool"]["queued"] == 1);
    let r = s.get("/compute?n=10");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.error().contains("queue is full"));
    assert_eq!(s.get("/readyz").status, 503, "not ready while saturated");
    assert_eq!(hold.join().unwrap().status, 200);
    assert_eq!(queued.join().unwrap().status, 200);
    assert_eq!(s.metric("corepool_pool_jobs_rejected_total"), 1.0);
    assert_eq!(s.get("/readyz").status, 200);
}

#[test]
fn job_past_deadline_gets_504() {
    let s = Server::start(&["pool.job_timeout=\"200ms\""]);
    let r = s.get("/compute?n=10000000000");
    assert_eq!(r.status, 504);
    assert!(r.error().contains("did not finish within"));
    s.until("timeout counted", |s| s.metric("corepool_pool_jobs_timed_out_total") == 1.0);
    // The job noticed its deadline and freed the thread.
    s.until("pool idle", |s| s.get("/").json()["pool"]["busy"] == 0);
}

#[test]
fn panicking_job_gets_500_and_pool_keeps_full_size() {
    let s = Server::start(&["debug.endpoints=true", "pool.threads=2", "pool.job_timeout=\"20s\""]);
    let r = s.post("/debug/panic", "");
    assert_eq!(r.status, 500);
    assert_eq!(r.error(), "job failed unexpectedly");
    assert_eq!(s.post("/debug/panic", "").status, 500);
    assert_eq!(s.metric("corepool_pool_jobs_panicked_total"), 2.0);
    // Both threads still take jobs at the same time (each long enough for
    // the other to start beside it on a loaded machine).
    let holds: Vec<_> =
        (0..2).map(|_| s.spawn_http("POST /debug/wedge?ms=2000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")).collect();
    s.until("both threads busy", |s| s.get("/").json()["pool"]["busy"] == 2);
    for h in holds {
        assert_eq!(h.join().unwrap().status, 200);
    }
}

#[test]
fn client_disconnect_cancels_its_job() {
    let s = Server::start(&["pool.job_timeout=\"60s\""]);
    let mut c = connect(&s.addr);
    c.write_all(b"GET /compute?n=10000000000 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    s.until("job running", |s| s.get("/").json()["pool"]["busy"] == 1);
    drop(c);
    s.until("job cancelled", |s| s.metric("corepool_pool_jobs_cancelled_total") == 1.0);
    assert_eq!(s.get("/").json()["pool"]["busy"], 0);
    assert_eq!(s.get("/compute?n=10").status, 200);
}

#[test]
fn sigterm_finishes_in_flight_heavy_requests_then_exits_0() {
    let mut s = Server::start(&["pool.threads=2", "pool.job_timeout=\"60s\""]);
    let clients: Vec<_> = (0..6).map(|_| s.spawn_http("GET /compute?n=60000000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")).collect();
    s.until("jobs in flight", |s| s.metric("corepool_pool_busy_threads") == 2.0);
    s.signal(Signal::SIGTERM);
    for c in clients {
        let r = c.join().unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json()["n"], 60000000);
    }
    assert_eq!(s.wait_exit(), Some(0));
}

#[test]
fn drain_answers_an_idle_keep_alive_connection_once_more_then_closes_it() {
    // What nginx does with an upstream connection it keeps: a request, then
    // nothing for a while, then the next request on the same connection. The
    // instance got SIGTERM in between: it must answer (closing afterwards),
    // not close the connection under the request.
    let mut s = Server::start(&["http.drain_idle=\"3s\""]);
    let mut c = connect(&s.addr);
    let get = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    c.write_all(get).unwrap();
    let r = read_response(&mut c);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), None, "keep-alive before the drain");
    s.signal(Signal::SIGTERM);
    // The drain has begun once the instance says so (a fixed pause was too
    // short for a loaded machine), plus a moment for the connection's task to
    // see it.
    s.logged(": draining ");
    std::thread::sleep(Duration::from_millis(100));
    let body = b"abc";
    c.write_all(format!("POST /v1/hash HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes()).unwrap();
    c.write_all(body).unwrap();
    let r = read_response(&mut c);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["bytes"], 3);
    assert_eq!(r.header("connection"), Some("close"), "the answer closes the connection");
    let mut rest = Vec::new();
    assert_eq!(c.read_to_end(&mut rest).unwrap(), 0, "closed after the answer: {:?}", String::from_utf8_lossy(&rest));
    // The client closes its end too (as nginx does on `Connection: close`):
    // with every connection it had gone, the instance stops at once.
    drop(c);
    let t = std::time::Instant::now();
    assert_eq!(s.wait_exit(), Some(0));
    assert!(t.elapsed() < Duration::from_secs(2), "waited {:?} with no connection left", t.elapsed());
}

#[test]
fn drain_closes_a_connection_that_stays_idle_after_drain_idle() {
    let mut s = Server::start(&["http.drain_idle=\"1s\""]);
    let mut c = connect(&s.addr);
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut c).status, 200);
    let t = std::time::Instant::now();
    s.signal(Signal::SIGTERM);
    // Still accepting while draining: a new connection is answered, and closed.
    let r = s.get("/healthz");
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    let mut rest = Vec::new();
    assert_eq!(c.read_to_end(&mut rest).unwrap(), 0, "the idle connection is closed by the instance");
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(5), "closed after {waited:?}, drain_idle is 1s");
    assert_eq!(s.wait_exit(), Some(0));
}

#[test]
fn request_spans_are_written_at_shutdown_when_asked() {
    let dir = tempdir();
    let spans = dir.path().join("spans");
    let set = format!("debug.spans={}", spans.display());
    let mut s = Server::start(&["instance=2", "pool.threads=2", &set]);
    assert_eq!(s.get("/").status, 200);
    let heavy: Vec<_> = (0..3).map(|_| s.spawn_http("GET /compute?n=20000000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")).collect();
    for h in heavy {
        assert_eq!(h.join().unwrap().status, 200);
    }
    assert_eq!(s.get("/nope").status, 404);
    s.signal(Signal::SIGTERM);
    assert_eq!(s.wait_exit(), Some(0));
    let file = spans.join(format!("spans-2-{}.jsonl", s.pid()));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5, "{text}");
    let jobs: Vec<_> = lines.iter().filter(|l| l["route"] == "/compute").collect();
    assert_eq!(jobs.len(), 3, "{text}");
    let mut threads = std::collections::BTreeSet::new();
    for j in &jobs {
        let t = |k: &str| j[k].as_u64().unwrap_or_else(|| panic!("{k} in {j}"));
        assert!(t("accepted_us") <= t("queued_us") && t("queued_us") <= t("started_us"), "{j}");
        assert!(t("started_us") < t("job_done_us") && t("job_done_us") <= t("finished_us"), "{j}");
        assert_eq!((j["instance"].as_u64(), j["status"].as_u64()), (Some(2), Some(200)));
        threads.insert(t("thread"));
    }
    assert!(threads.iter().all(|t| *t < 2), "{threads:?}");
    let light: Vec<_> = lines.iter().filter(|l| l["route"] != "/compute").collect();
    assert!(light.iter().all(|l| l.get("queued_us").is_none() && l.get("thread").is_none()), "{text}");
    assert!(light.iter().any(|l| l["status"] == 404));
}

#[test]
fn sighup_reloads_live_settings() {
    let dir = tempdir();
    let file = write(dir.path(), "c.toml", "[compute]\nmax_n = 100\n");
    let mut cmd = Command::new(BIN);
    cmd.args(["--config", file.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0", "--log-format", "human"]);
    let s = Server::spawn(cmd);
    assert_eq!(s.get("/compute?n=1000").status, 400);
    write(dir.path(), "c.toml", "[compute]\nmax_n = 5000\n");
    s.signal(Signal::SIGHUP);
    s.until("reloaded", |s| s.get("/compute?n=1000").status == 200);
    // A broken file on reload keeps the running configuration.
    write(dir.path(), "c.toml", "[compute]\nmax_n = \"lots\"\n");
    s.signal(Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(s.get("/compute?n=1000").status, 200);
    assert_eq!(s.get("/compute?n=6000").status, 400);
}

// ---- bad input ----

#[test]
fn malformed_http_gets_400() {
    let s = Server::start(&[]);
    assert_eq!(http(&s.addr, "GARBAGE\r\n\r\n").status, 400);
    assert_eq!(http(&s.addr, "GET / HTTP/9.9\r\nHost: t\r\n\r\n").status, 400);
    let r = http_bytes(&s.addr, b"GET / HTTP/1.1\r\nHost: t\r\nX-Bad: \x00\x01\r\n\r\n");
    assert_eq!(r.status, 400);
    // Bad chunked framing.
    let r = http(&s.addr, "POST /v1/hash HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n");
    assert_eq!(r.status, 400);
    // Smuggling pair: Content-Length and Transfer-Encoding together.
    let r = http(&s.addr, "POST /v1/hash HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n");
    assert!(r.status == 400 || r.status == 200 && r.header("connection") == Some("close"), "{r:?}");
    // The server is still fine.
    assert_eq!(s.get("/healthz").status, 200);
}

#[test]
fn oversize_bodies_get_413() {
    let s = Server::start(&["http.max_body=1024"]);
    let big = "x".repeat(2000);
    let r = s.post("/v1/hash", &big);
    assert_eq!(r.status, 413);
    assert!(r.error().contains("exceeds 1024 bytes"));
    // Without Content-Length: cut off while streaming.
    let chunk = format!("{:x}\r\n{}\r\n", 600, "y".repeat(600));
    let r = http(&s.addr, &format!("POST /v1/hash HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}{chunk}0\r\n\r\n"));
    assert_eq!(r.status, 413);
    // JSON endpoints are capped lower than max_body by nothing but max_body here.
    let r = s.post("/v1/password/hash", &format!("{{\"password\":\"{}\"}}", "p".repeat(1100)));
    assert_eq!(r.status, 413);
}

#[test]
fn a_client_that_sends_its_whole_body_first_still_reads_its_413() {
    // Many HTTP clients write the whole request before reading. The answer is
    // early (the declared length is over http.max_body); if the instance then
    // closed with the body still arriving, the kernel would reset the
    // connection and the client would see that instead of the 413.
    let s = Server::start(&[]);
    let body = vec![b'x'; 1 << 20];
    for round in 0..3 {
        let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let head = format!("POST /v1/hash HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", 4 << 20);
        c.write_all(head.as_bytes()).unwrap();
        // 1 MiB after the head, all of it, before reading anything.
        c.write_all(&body).unwrap_or_else(|e| panic!("round {round}: writing the body failed: {e}"));
        let mut answer = Vec::new();
        let read = c.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer);
        assert!(read.is_ok(), "round {round}: {read:?}, got {text:?}");
        assert!(text.starts_with("HTTP/1.1 413 "), "round {round}: {text:?}");
        assert!(text.contains("exceeds 1048576 bytes"), "{text}");
    }
}

#[test]
fn oversize_headers_get_431() {
    let s = Server::start(&["http.max_header_bytes=8192"]);
    let r = http(&s.addr, &format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\nConnection: close\r\n\r\n", "h".repeat(20000)));
    assert_eq!(r.status, 431);
}

#[test]
fn routes_and_methods() {
    let s = Server::start(&[]);
    let r = s.get("/no/such/thing");
    assert_eq!(r.status, 404);
    assert!(r.error().contains("/no/such/thing"));
    let r = s.post("/compute?n=1", "");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET,HEAD"));
    assert_eq!(r.error(), "POST not allowed on /compute");
    let r = s.get("/v1/hash");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    // HEAD is answered like GET, without a body.
    let mut c = connect(&s.addr);
    c.write_all(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let mut all = String::new();
    std::io::Read::read_to_string(&mut c, &mut all).unwrap();
    assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
    assert!(all.ends_with("\r\n\r\n"), "HEAD has no body: {all}");
}

#[test]
fn bad_query_and_json_name_the_field() {
    let s = Server::start(&["compute.max_n=1000"]);
    assert!(s.get("/compute").error().contains("`n` is required"));
    assert!(s.get("/compute?n=-1").error().contains("`n` must be an unsigned integer"));
    assert!(s.get("/compute?n=99999999999999999999999").error().contains("`n` must be an unsigned integer"));
    let r = s.get("/compute?n=1001");
    assert_eq!(r.status, 400);
    assert!(r.error().contains("`n` must be at most 1000"));
    assert!(s.post("/v1/hash?alg=md5", "x").error().contains("`alg` must be sha256 or blake3"));
    for (body, needle) in [
        ("{}", "missing field `password`"),
        (r#"{"password": 5}"#, "invalid type: integer `5`"),
        (r#"{"password": "x", "extra": 1}"#, "unknown field `extra`"),
        ("not json", "invalid JSON body"),
        (&format!("{}1{}", "[".repeat(5000), "]".repeat(5000)), "invalid JSON body"),
        (&format!("{{\"password\":\"x\",\"a\":{}1{}}}", "[".repeat(5000), "]".repeat(5000)), "unknown field `a`"),
    ] {
        let r = s.post("/v1/password/hash", body);
        assert_eq!(r.status, 400, "{body}");
        assert!(r.error().contains(needle), "{body}: {}", r.body);
    }
    let r = s.post("/v1/password/verify", r#"{"password":"x","hash":"not-a-phc"}"#);
    assert_eq!(r.status, 400);
    assert!(r.error().contains("`hash`"));
    let r = s.post("/v1/password/hash", &format!("{{\"password\":\"{}\"}}", "p".repeat(2000)));
    assert_eq!(r.status, 400);
    assert!(r.error().contains("`password` must be at most 1024 bytes"));
    // Invalid UTF-8 inside a JSON string.
    let mut raw = b"POST /v1/password/hash HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 17\r\n\r\n".to_vec();
    raw.extend_from_slice(b"{\"password\":\"\xff\xfe\"}");
    assert_eq!(http_bytes(&s.addr, &raw).status, 400);
}

#[test]
fn slow_body_gets_408_and_slow_headers_are_cut_off() {
    let s = Server::start(&["http.body_timeout=\"300ms\"", "http.header_timeout=\"300ms\""]);
    let mut c = connect(&s.addr);
    c.write_all(b"POST /v1/hash HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab").unwrap();
    let r = read_response(&mut *c);
    assert_eq!(r.status, 408);
    assert!(r.error().contains("not received within"));
    // Slowloris: a head that never finishes is dropped at header_timeout.
    let mut c = connect(&s.addr);
    c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ").unwrap();
    assert!(closed_within(&mut *c, Duration::from_secs(10)), "slow head connection was not closed");
    // An idle keep-alive connection is closed too.
    let mut c = connect(&s.addr);
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut *c).status, 200);
    assert!(closed_within(&mut *c, Duration::from_secs(10)), "idle keep-alive connection was not closed");
    assert_eq!(s.get("/healthz").status, 200);
}

// ---- configuration errors ----

fn run_bin(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("LISTEN_FDS").env_remove("LISTEN_PID");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn config_errors_name_file_line_and_key_and_exit_78() {
    let dir = tempdir();
    let f = write(dir.path(), "bad.toml", "pin = false\n[pool]\nthreads = 0\n");
    let path = f.to_str().unwrap();
    let (code, _, err) = run_bin(&["--config", path, "serve", "--listen", "127.0.0.1:0"], &[]);
    assert_eq!(code, Some(78));
    assert!(err.contains(&format!("{path}:3: pool.threads: must be 1..=256")), "{err}");

    let f = write(dir.path(), "typo.toml", "[http]\nmax_bodyy = 5\n");
    let (code, _, err) = run_bin(&["config", "check", f.to_str().unwrap()], &[]);
    assert_eq!(code, Some(78));
    assert!(err.contains(":2: http.max_bodyy: unknown field `max_bodyy`"), "{err}");

    let (code, _, err) = run_bin(&["config", "check", "/nonexistent.toml"], &[]);
    assert_eq!(code, Some(78));
    assert!(err.contains("/nonexistent.toml: cannot read"), "{err}");

    let ok = write(dir.path(), "ok.toml", "[pool]\nthreads = 3\n");
    let (code, _, err) = run_bin(&["config", "check", ok.to_str().unwrap()], &[("COREPOOL_POOL_QUEUE", "0")]);
    assert_eq!(code, Some(78));
    assert!(err.contains("COREPOOL_POOL_QUEUE: pool.queue: must be 1..=1000000"), "{err}");

    let (code, out, _) = run_bin(&["config", "check", ok.to_str().unwrap()], &[("COREPOOL_POOL_QUEUE", "7")]);
    assert_eq!(code, Some(0));
    let effective: toml::Table = out.parse().unwrap();
    assert_eq!(effective["pool"]["threads"].as_integer(), Some(3));
    assert_eq!(effective["pool"]["queue"].as_integer(), Some(7));

    let (code, _, err) = run_bin(&["serve", "--listen", "nowhere"], &[]);
    assert_eq!(code, Some(78));
    assert!(err.contains("--listen: listen: `nowhere` is neither"), "{err}");
}
