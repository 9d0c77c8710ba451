//! Hostile input against one instance directly (no nginx in front): request
//! smuggling pairs, broken chunked framing, invalid UTF-8, costly password
//! hashes, many slowloris connections (and the connection limit under them),
//! and a pool flooded with ten times its queue. Each gets its 4xx/503, the
//! instance stays up and keeps serving.
//! Figures (latencies, counts) are printed for docs/reliability.md.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;

/// Everything the server sends on one connection until it closes it.
fn exchange(addr: &str, raw: &[u8]) -> String {
    let mut c = connect(addr);
    c.write_all(raw).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read: {e}; got {:?}", String::from_utf8_lossy(&out)),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn statuses(all: &str) -> Vec<u16> {
    all.match_indices("HTTP/1.1 ").filter_map(|(i, _)| all[i + 9..i + 12].parse().ok()).collect()
}

#[test]
fn smuggling_pairs_never_yield_a_second_request() {
    let s = Server::start(&[]);
    // CL + TE: TE wins (RFC 9112 6.1) or the request is refused; either way
    // the smuggled request behind the chunked body must never be answered.
    let cl_te =
        "POST /v1/hash HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n";
    let te_cl =
        "POST /v1/hash HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n";
    for (name, raw) in [("CL.TE", cl_te), ("TE.CL", te_cl)] {
        let all = exchange(&s.addr, raw.as_bytes());
        let st = statuses(&all);
        eprintln!("{name}: statuses {st:?}");
        assert_eq!(st.len(), 1, "{name}: exactly one response, got {all:?}");
        assert!(st[0] == 400 || st[0] == 200, "{name}: {all:?}");
        assert!(!all.contains("/smuggled"), "{name}: smuggled request was routed: {all:?}");
    }
    // Ambiguous framing is refused outright.
    for (name, raw) in [
        ("two Content-Lengths", "POST /v1/hash HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde"),
        ("TE not ending in chunked", "POST /v1/hash HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        ("space before colon", "POST /v1/hash HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        ("negative Content-Length", "POST /v1/hash HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n"),
    ] {
        let all = exchange(&s.addr, raw.as_bytes());
        let st = statuses(&all);
        eprintln!("{name}: statuses {st:?}");
        assert_eq!(st, vec![400], "{name}: {all:?}");
    }
    assert_eq!(s.get("/healthz").status, 200);
}

#[test]
fn broken_chunked_bodies_get_400() {
    let s = Server::start(&[]);
    for (name, chunks) in
        [("non-hex size", "zz\r\nabc\r\n0\r\n\r\n"), ("size overflow", "ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n"), ("short chunk", "5\r\nab\r\n0\r\n\r\n")]
    {
        let raw = format!("POST /v1/hash HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}");
        let all = exchange(&s.addr, raw.as_bytes());
        assert_eq!(statuses(&all), vec![400], "{name}: {all:?}");
    }
    assert_eq!(s.get("/healthz").status, 200);
}

#[test]
fn invalid_utf8_gets_4xx_not_a_panic() {
    let s = Server::start(&["password.memory_kib=64", "password.iterations=1"]);
    let bad_path = exchange(&s.addr, b"GET /\xff\xfe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(statuses(&bad_path), vec![400], "{bad_path:?}");
    let bad_query = http_bytes(&s.addr, b"GET /compute?n=\xc3\x28 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert!(bad_query.status == 400, "{bad_query:?}");
    let mut body = b"{\"password\":\"".to_vec();
    body.extend_from_slice(b"\xff\xfe\xfd");
    body.extend_from_slice(b"\"}");
    let mut raw = format!("POST /v1/password/hash HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    raw.extend_from_slice(&body);
    let r = http_bytes(&s.addr, &raw);
    assert_eq!(r.status, 400);
    assert!(r.error().contains("invalid JSON body"), "{r:?}");
    // Opaque bytes in a header value are not ours to judge: served.
    assert_eq!(http_bytes(&s.addr, b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Odd: \xff\r\nConnection: close\r\n\r\n").status, 200);
}

#[test]
fn costly_password_hashes_are_refused_before_any_work() {
    let s = Server::start(&["password.memory_kib=64", "password.iterations=1"]);
    // 4 GiB and a million passes: refused at once, the pool never runs it.
    let hash = "$argon2id$v=19$m=4194304,t=1000000,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
    let t0 = Instant::now();
    let r = s.post("/v1/password/verify", &serde_json::json!({"password": "x", "hash": hash}).to_string());
    eprintln!("costly hash refused in {:?}", t0.elapsed());
    assert_eq!(r.status, 400);
    assert!(r.error().contains("asks for more work than allowed"), "{r:?}");
    assert_eq!(s.metric("corepool_pool_jobs_completed_total"), 1.0, "the refusal itself is the only job");
}

#[test]
fn slowloris_connections_are_cut_off_while_others_are_served() {
    let s = Server::start(&["http.header_timeout=\"1s\""]);
    const N: usize = 200;
    let mut slow: Vec<_> = (0..N).map(|_| connect(&s.addr)).collect();
    let t0 = Instant::now();
    // One byte per connection every 200 ms: the head never completes.
    let head = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut sent = 0;
    let mut served = 0;
    while t0.elapsed() < Duration::from_millis(800) {
        for c in slow.iter_mut() {
            let _ = c.write_all(&head[sent..=sent]);
        }
        sent += 1;
        // Meanwhile an ordinary client is answered at once.
        if s.get("/").status == 200 {
            served += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(served >= 3, "ordinary requests served during the attack: {served}");
    // All of them are closed at header_timeout, however they keep trickling.
    let mut closed = 0;
    for c in slow.iter_mut() {
        let _ = c.write_all(&head[sent..=sent]);
        if closed_within(&mut **c, Duration::from_secs(5)) {
            closed += 1;
        }
    }
    eprintln!("slowloris: {closed}/{N} closed by {:?}, {served} ordinary requests served meanwhile", t0.elapsed());
    assert_eq!(closed, N);
    assert_eq!(s.metric("corepool_http_open_connections"), 1.0, "only the metrics request itself is open");
}

#[test]
fn flooded_pool_answers_503_and_light_requests_stay_fast() {
    // One pool thread, queue 4; a job of n = 5e8: ~0.15 s in a release build,
    // 1-2 s in the debug build the tests run on a loaded machine (the five
    // that run must finish within each client's 20 s PATIENCE, which n = 1e9,
    // 3-4 s a job there, did not always). 40 heavy requests at once is ten
    // times the queue.
    let s = Server::start(&["pool.threads=1", "pool.queue=4", "pool.job_timeout=\"60s\""]);
    let heavy: Vec<_> = (0..40).map(|_| s.spawn_http("GET /compute?n=500000000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")).collect();
    s.until("pool busy", |s| s.metric("corepool_pool_busy_threads") == 1.0);
    // Light requests while the pool is saturated: the event loop never runs a job.
    let mut lat: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            assert_eq!(s.get("/healthz").status, 200);
            t.elapsed()
        })
        .collect();
    let busy_after = s.metric("corepool_pool_busy_threads");
    let results: Vec<Resp> = heavy.into_iter().map(|h| h.join().unwrap()).collect();
    lat.sort();
    let p99 = lat[lat.len() * 99 / 100 - 1];
    let ok = results.iter().filter(|r| r.status == 200).count();
    let refused: Vec<_> = results.iter().filter(|r| r.status == 503).collect();
    eprintln!("flood: {ok} ran, {} refused with 503; light p50 {:?} p99 {p99:?} max {:?} (200 requests)", refused.len(), lat[99], lat[199]);
    assert_eq!(ok + refused.len(), 40, "only 200 or 503: {:?}", results.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(ok >= 5, "the running job and the queue of 4 complete: {ok}");
    assert!(refused.len() >= 30, "most of a 10x flood is refused at once: {}", refused.len());
    assert!(refused.iter().all(|r| r.header("retry-after") == Some("1")));
    // Stated bound: one job takes over a second here; a loop that ran it would
    // stall a light request that long. 250 ms leaves room for a loaded CI
    // machine (the p99 of 200 is the second-slowest: two stalls of a debug
    // build beside the other tests' threads).
    assert_eq!(busy_after, 1.0, "the pool was still saturated while light requests ran");
    assert!(p99 < Duration::from_millis(250), "light p99 {p99:?} while the pool was flooded");
    assert_eq!(s.get("/healthz").status, 200);
    assert_eq!(s.metric("corepool_pool_jobs_rejected_total"), refused.len() as f64);
}

#[test]
fn connection_limit_holds_under_slowloris() {
    // 50 slow heads against max_connections = 20: the server holds at most 20
    // (the rest wait in the listen backlog), cutting each at header_timeout,
    // so they are closed in waves of 20, a timeout apart.
    let s = Server::start(&["http.header_timeout=\"1s\"", "http.max_connections=20"]);
    let t0 = Instant::now();
    let mut conns: Vec<std::net::TcpStream> = (0..50)
        .map(|_| {
            let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
            c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: a").unwrap();
            c.set_nonblocking(true).unwrap();
            c
        })
        .collect();
    let mut closed_at: Vec<Option<Duration>> = vec![None; conns.len()];
    let mut buf = [0u8; 512];
    while closed_at.iter().any(Option::is_none) && t0.elapsed() < Duration::from_secs(20) {
        for (c, at) in conns.iter_mut().zip(closed_at.iter_mut()) {
            if at.is_some() {
                continue;
            }
            match c.read(&mut buf) {
                Ok(0) => *at = Some(t0.elapsed()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => *at = Some(t0.elapsed()),
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut times: Vec<Duration> = closed_at.iter().map(|t| t.expect("every slow connection is closed")).collect();
    times.sort();
    let first_wave = times.iter().filter(|t| **t < Duration::from_millis(1500)).count();
    eprintln!("connection limit 20, 50 slow heads: {first_wave} closed in the first wave, last at {:?}", times[49]);
    assert!((1..=20).contains(&first_wave), "more connections were held than max_connections: {first_wave}");
    assert!(times[49] >= Duration::from_millis(2500), "50 connections in waves of 20 need three timeouts: {:?}", times[49]);
    assert_eq!(s.get("/healthz").status, 200);
}
