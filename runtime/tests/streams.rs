//! WebSockets and server-sent events through a real instance in this process
//! ([`TestServer`]): the upgrade, the drain's close 1012 and SSE end, the
//! limits and the bad input, with a real WebSocket client (tungstenite) and
//! raw sockets where the client must misbehave.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use corepool_runtime::axum::response::sse::{Event, Sse};
use corepool_runtime::axum::routing::get;
use corepool_runtime::axum::Router;
use corepool_runtime::testing::TestServer;
use corepool_runtime::ws::{Message, WebSocketUpgrade};
use corepool_runtime::{Ctx, Service};
use tungstenite::protocol::frame::coding::CloseCode;

async fn echo(ws: WebSocketUpgrade) -> corepool_runtime::axum::response::Response {
    ws.on_upgrade(|mut socket| async move {
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Text(_) | Message::Binary(_)) && socket.send(msg).await.is_err() {
                break;
            }
        }
    })
}

/// axum's own extractor, as a service that never heard of corepool's writes it.
async fn plain_echo(ws: corepool_runtime::axum::extract::ws::WebSocketUpgrade) -> corepool_runtime::axum::response::Response {
    use corepool_runtime::axum::extract::ws::Message as M;
    ws.on_upgrade(|mut socket| async move {
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, M::Text(_) | M::Binary(_)) && socket.send(msg).await.is_err() {
                break;
            }
        }
    })
}

/// One event now, then one a minute (so the stream is idle in between), and
/// a last word of the handler's own when the drain begins.
async fn events(ctx: Ctx) -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let drain = ctx.draining();
    let stream = futures_util::stream::unfold((0u32, Some(Box::pin(drain))), |(n, drain)| async move {
        if n == 0 {
            return Some((Ok(Event::default().event("hello").data("0")), (1, drain)));
        }
        let mut drain = drain?;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => Some((Ok(Event::default().data(n.to_string())), (n + 1, Some(drain)))),
            _ = &mut drain => Some((Ok(Event::default().event("bye").data("restarting")), (n + 1, None))),
        }
    });
    Sse::new(stream)
}

/// A push feed: writes every 50 ms, never reads (the common "server push" shape).
async fn push(ws: WebSocketUpgrade) -> corepool_runtime::axum::response::Response {
    ws.on_upgrade(|mut socket| async move {
        while socket.send(Message::text("tick")).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// Reads a message, works on it for 1 s (longer than two ping intervals), answers.
async fn slow(ws: WebSocketUpgrade) -> corepool_runtime::axum::response::Response {
    ws.on_upgrade(|mut socket| async move {
        while let Some(Ok(msg)) = socket.recv().await {
            if let Message::Text(_) = msg {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if socket.send(msg).await.is_err() {
                    return;
                }
            }
        }
    })
}

/// The README's pattern: on `ctx.draining()`, a last message, then the handshake.
async fn last_word(ws: WebSocketUpgrade, ctx: Ctx) -> corepool_runtime::axum::response::Response {
    ws.on_upgrade(move |mut socket| async move {
        let mut drain = std::pin::pin!(ctx.draining());
        loop {
            tokio::select! {
                biased;
                _ = &mut drain => {
                    let _ = socket.send(Message::text("bye")).await;
                    break;
                }
                m = socket.recv() => if !matches!(m, Some(Ok(_))) { return },
            }
        }
        while let Some(Ok(_)) = socket.recv().await {}
    })
}

/// An SSE stream that never pauses: 64 KiB events back to back.
async fn firehose() -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let big = "x".repeat(64 * 1024);
    Sse::new(futures_util::stream::repeat_with(move || Ok(Event::default().data(big.clone()))))
}

/// Messages the counting handler received (axum's extractor: its own limits are 16/64 MiB).
static COUNTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

async fn count(ws: corepool_runtime::axum::extract::ws::WebSocketUpgrade) -> corepool_runtime::axum::response::Response {
    ws.on_upgrade(|mut socket| async move {
        while let Some(Ok(_)) = socket.recv().await {
            COUNTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    })
}

fn service() -> Service {
    Service::new("streams").router(
        Router::new()
            .route("/ws", get(echo))
            .route("/plain", get(plain_echo))
            .route("/events", get(events))
            .route("/push", get(push))
            .route("/slow", get(slow))
            .route("/last", get(last_word))
            .route("/firehose", get(firehose))
            .route("/count", get(count))
            .route("/hello", get(|| async { "hello" })),
    )
}

const FAST: &[&str] = &["http.drain_idle=\"1s\"", "streams.close_timeout=\"2s\""];

fn start(extra: &[&str]) -> TestServer {
    let sets: Vec<&str> = FAST.iter().chain(extra).copied().collect();
    TestServer::start(service(), &sets).expect("the test server starts")
}

fn connect(addr: SocketAddr, path: &str) -> tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>> {
    let (ws, resp) = tungstenite::connect(format!("ws://{addr}{path}")).expect("handshake");
    assert_eq!(resp.status(), 101);
    assert!(resp.headers().get("x-request-id").is_some(), "the wrapper covers the handshake: {:?}", resp.headers());
    assert!(resp.headers().get("cache-control").is_none(), "no Cache-Control on a tunnel");
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    ws
}

/// A raw HTTP/1.1 exchange: writes `req`, reads the head and what follows
/// within the timeout.
fn raw(addr: SocketAddr, req: &str) -> (String, TcpStream) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    // Byte by byte: whatever follows the head stays in the socket for the caller.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    (head, s)
}

fn handshake(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n")
}

/// A masked client frame.
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65536 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = [0x12, 0x34, 0x56, 0x78];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Reads server frames until a close; its code (None if the stream ended first).
fn read_close(s: &mut TcpStream) -> Option<u16> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Unmasked server frames: find the close among them.
        let mut i = 0;
        while i + 2 <= buf.len() {
            let (op, len) = (buf[i] & 0x0f, (buf[i + 1] & 0x7f) as usize);
            let (len, at) = match len {
                126 if i + 4 <= buf.len() => (u16::from_be_bytes([buf[i + 2], buf[i + 3]]) as usize, i + 4),
                126 | 127 => break,
                n => (n, i + 2),
            };
            if at + len > buf.len() {
                break;
            }
            if op == 0x8 {
                return Some(u16::from_be_bytes([buf[at], buf[at + 1]]));
            }
            i = at + len;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Waits until `done` holds, polling; fails the test after 10 s.
fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `corepool_http_requests_in_flight`, counting the request that asks.
fn in_flight(addr: SocketAddr) -> u64 {
    metrics(addr)
        .lines()
        .find_map(|l| l.strip_prefix("corepool_http_requests_in_flight").filter(|r| r.starts_with([' ', '{'])))
        .and_then(|r| r.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

fn metrics(addr: SocketAddr) -> String {
    let (head, mut s) = raw(addr, "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

#[test]
fn websockets_upgrade_and_echo_with_either_extractor() {
    let server = start(&[]);
    for path in ["/ws", "/plain"] {
        let mut ws = connect(server.addr(), path);
        ws.send(tungstenite::Message::text("hi")).unwrap();
        assert_eq!(ws.read().unwrap(), tungstenite::Message::text("hi"));
        ws.send(tungstenite::Message::binary(vec![7u8; 70_000])).unwrap();
        assert_eq!(ws.read().unwrap().into_data().len(), 70_000);
        ws.close(None).unwrap();
        while ws.read().is_ok() {}
    }
    let m = metrics(server.addr());
    assert!(m.contains(r#"corepool_http_requests_total{route="/ws",status="101"} 1"#), "{m}");
    assert!(m.contains(r#"corepool_websocket_messages_total{direction="in"} 4"#), "{m}");
    assert!(m.contains(r#"corepool_websocket_messages_total{direction="out"} 4"#), "{m}");
    assert!(m.contains(r#"corepool_websocket_closes_total{code="1005",by="client"} 2"#), "{m}");
}

#[test]
fn on_shutdown_every_websocket_gets_1012_and_the_handshake_completes() {
    // close_timeout far above what a completed handshake takes: a socket cut
    // at the deadline instead would end after it.
    let mut server = start(&["streams.close_timeout=\"6s\""]);
    let mut sockets: Vec<_> = (0..5).map(|i| connect(server.addr(), if i % 2 == 0 { "/ws" } else { "/plain" })).collect();
    for ws in &mut sockets {
        ws.send(tungstenite::Message::text("before")).unwrap();
        assert_eq!(ws.read().unwrap(), tungstenite::Message::text("before"));
    }
    assert_eq!(server.state().identity().websockets, 5);
    let t = Instant::now();
    server.shutdown();
    for ws in &mut sockets {
        match ws.read() {
            Ok(tungstenite::Message::Close(Some(f))) => assert_eq!(f.code, CloseCode::Restart, "{f:?}"),
            other => panic!("expected a close frame 1012, got {other:?}"),
        }
        // tungstenite has queued its close reply; the server then closes.
        match ws.read() {
            Err(tungstenite::Error::ConnectionClosed) => {}
            Err(e) => panic!("the closing handshake did not complete cleanly: {e}"),
            Ok(m) => panic!("nothing after the close: {m:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(3), "ended by the handshake, not cut at close_timeout: {:?}", t.elapsed());
    }
    let (r, _) = server.join();
    r.unwrap();
    // drain_idle is 1 s; the streams closed well within close_timeout (2 s).
    assert!(t.elapsed() < Duration::from_secs(5), "the drain took {:?}", t.elapsed());
}

#[test]
fn on_shutdown_an_sse_stream_ends_after_its_last_event_and_a_retry_hint() {
    let mut server = start(&["streams.sse_retry=\"250ms\""]);
    let (head, s) = raw(server.addr(), "GET /events HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("x-accel-buffering: no"), "{head}");
    assert!(head.to_ascii_lowercase().contains("connection: close"), "the connection ends with the stream: {head}");
    assert!(head.to_ascii_lowercase().contains("cache-control: no-cache"), "axum's Sse says no-cache, and it stays: {head}");
    let mut r = BufReader::new(s);
    let mut text = String::new();
    while !text.contains("data: 0\n") {
        r.read_line(&mut text).unwrap();
    }
    assert_eq!(server.state().identity().sse, 1);
    let t = Instant::now();
    server.shutdown();
    // Chunked: read to the final 0-length chunk.
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 {
            panic!("the stream was cut, not ended: {text:?}");
        }
        text.push_str(&line);
        if text.ends_with("\r\n0\r\n\r\n") {
            break;
        }
    }
    assert!(text.contains("event: bye\ndata: restarting\n\n"), "the handler's own last word: {text:?}");
    let bye = text.find("event: bye").unwrap();
    assert!(text[bye..].contains("retry: 250\n\n"), "retry hint after it: {text:?}");
    // Reconnecting to the draining instance: sent elsewhere (503, which nginx retries on another).
    let (again, _) = raw(server.addr(), "GET /events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n");
    assert!(again.starts_with("HTTP/1.1 503") && again.to_ascii_lowercase().contains("retry-after: 1"), "{again}");
    assert!(t.elapsed() < Duration::from_secs(5));
    server.join().0.unwrap();
}

#[test]
fn idle_streams_are_pinged_and_a_dead_peer_is_cut() {
    let server = start(&["streams.ping_interval=\"200ms\""]);
    // A live client answers pings (tungstenite does it in read).
    let mut ws = connect(server.addr(), "/ws");
    let t = Instant::now();
    let mut pings = 0;
    while t.elapsed() < Duration::from_millis(1500) {
        match ws.read().unwrap() {
            tungstenite::Message::Ping(_) => pings += 1,
            m => panic!("{m:?}"),
        }
    }
    assert!(pings >= 4, "pings every 200 ms: {pings}");
    ws.send(tungstenite::Message::text("still here")).unwrap();
    loop {
        match ws.read().unwrap() {
            tungstenite::Message::Ping(_) => {}
            m => break assert_eq!(m, tungstenite::Message::text("still here")),
        }
    }
    // A peer that sends nothing at all (no pong) is cut after two intervals.
    let (head, mut dead) = raw(server.addr(), &handshake("/ws", "Sec-WebSocket-Version: 13\r\n"));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let t = Instant::now();
    let mut sink = [0u8; 1024];
    while dead.read(&mut sink).map(|n| n > 0).unwrap_or(false) {}
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(350) && took < Duration::from_secs(3), "cut after {took:?}");
    // An idle SSE stream gets a comment line.
    let (_, s) = raw(server.addr(), "GET /events HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut r = BufReader::new(s);
    let mut text = String::new();
    while !text.contains(":\n\n") {
        r.read_line(&mut text).unwrap();
    }
}

#[test]
fn the_websocket_limit_answers_503_before_upgrading() {
    let server = start(&["streams.max_websockets=2"]);
    let _a = connect(server.addr(), "/ws");
    let _b = connect(server.addr(), "/plain");
    let (head, mut s) = raw(server.addr(), &handshake("/ws", "Sec-WebSocket-Version: 13\r\n"));
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.to_ascii_lowercase().contains("retry-after: 1"), "{head}");
    let mut body = [0u8; 200];
    let n = s.read(&mut body).unwrap();
    assert!(String::from_utf8_lossy(&body[..n]).contains("streams.max_websockets = 2"));
    drop(_a);
    // A place is free again once a socket closed.
    let t = Instant::now();
    loop {
        let (head, _) = raw(server.addr(), &handshake("/ws", "Sec-WebSocket-Version: 13\r\n"));
        if head.starts_with("HTTP/1.1 101") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "the closed socket's place never came back");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_handshakes_are_400_json_and_other_routes_answer_as_usual() {
    let server = start(&[]);
    let (head, mut s) = raw(server.addr(), &handshake("/ws", "Sec-WebSocket-Version: 8\r\n"));
    assert!(head.starts_with("HTTP/1.1 400") && head.contains("application/json"), "{head}");
    assert!(head.to_ascii_lowercase().contains("sec-websocket-version: 13"), "{head}");
    let mut body = [0u8; 300];
    let n = s.read(&mut body).unwrap();
    assert!(String::from_utf8_lossy(&body[..n]).contains(r#""code":400"#));
    for path in ["/ws", "/plain"] {
        let (head, _) =
            raw(server.addr(), &format!("GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"));
        assert!(head.starts_with("HTTP/1.1 400") && head.contains("application/json"), "no key on {path}: {head}");
    }
    let (head, _) = raw(server.addr(), &handshake("/nowhere", "Sec-WebSocket-Version: 13\r\n"));
    assert!(head.starts_with("HTTP/1.1 404") && head.contains("application/json"), "{head}");
    let (head, _) = raw(server.addr(), &handshake("/hello", "Sec-WebSocket-Version: 13\r\n"));
    assert!(head.starts_with("HTTP/1.1 200"), "a route without a WebSocket handler answers as usual: {head}");
}

#[test]
fn oversized_frames_get_1009_and_garbage_1002_without_disturbing_others() {
    let server = start(&["streams.max_frame=1000", "streams.max_message=1500"]);
    let mut bystander = connect(server.addr(), "/ws");
    let refused = |bytes: Vec<u8>| {
        let (head, mut s) = raw(server.addr(), &handshake("/plain", "Sec-WebSocket-Version: 13\r\n"));
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        s.write_all(&bytes).unwrap();
        read_close(&mut s)
    };
    assert_eq!(refused(frame(0x2, &[1; 1001])), Some(1009), "frame over streams.max_frame");
    let mut fragmented = frame(0x2, &[1; 1000]);
    fragmented[0] &= 0x7f; // not FIN: a message continues
    fragmented.extend(frame(0x0, &[1; 600]));
    assert_eq!(refused(fragmented), Some(1009), "message over streams.max_message");
    assert_eq!(refused(vec![0xff; 64]), Some(1002), "garbage");
    let mut unmasked = vec![0x81, 0x02];
    unmasked.extend_from_slice(b"hi");
    assert_eq!(refused(unmasked), Some(1002), "an unmasked client frame");
    // Judged on its first two bytes: a bad frame that never sends the rest.
    let mut bytes = frame(0x1, b"ok");
    bytes.extend(vec![0xff; 8]);
    assert_eq!(refused(bytes), Some(1002), "garbage after a valid frame, its header incomplete");

    // The refused frame never reaches the handler: it sees the valid one only.
    COUNTED.store(0, std::sync::atomic::Ordering::SeqCst);
    let (head, mut s) = raw(server.addr(), &handshake("/count", "Sec-WebSocket-Version: 13\r\n"));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut bytes = frame(0x1, b"counted");
    bytes.extend(frame(0x2, &[1; 1001]));
    s.write_all(&bytes).unwrap();
    assert_eq!(read_close(&mut s), Some(1009));
    // The valid frame reaches the handler (its task may run after the close
    // is read), then a moment in which a second count would show.
    until("the valid frame counted", || COUNTED.load(std::sync::atomic::Ordering::SeqCst) > 0);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(COUNTED.load(std::sync::atomic::Ordering::SeqCst), 1, "the handler saw the valid frame only");

    bystander.send(tungstenite::Message::text("unbothered")).unwrap();
    assert_eq!(bystander.read().unwrap(), tungstenite::Message::text("unbothered"));
    let (head, _) = raw(server.addr(), "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200"));
    let m = metrics(server.addr());
    assert!(m.contains(r#"corepool_websocket_closes_total{code="1009",by="server"} 3"#), "{m}");
    assert!(m.contains(r#"corepool_websocket_closes_total{code="1002",by="server"} 3"#), "{m}");
}

#[test]
fn the_instance_exits_promptly_when_a_handler_ignores_the_close() {
    // A handler that never reads: only the cut at close_timeout ends it.
    async fn deaf(ws: WebSocketUpgrade) -> corepool_runtime::axum::response::Response {
        ws.on_upgrade(|socket| async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(socket);
        })
    }
    let svc = Service::new("streams").router(Router::new().route("/deaf", get(deaf)));
    let svc = svc.router(Router::new().route("/sleep", get(|| async { tokio::time::sleep(Duration::from_secs(4)).await })));
    let mut server = TestServer::start(svc, &["http.drain_idle=\"1s\"", "streams.close_timeout=\"1s\"", "shutdown_timeout=\"20s\""]).unwrap();
    let (head, mut s) = raw(server.addr(), &handshake("/deaf", "Sec-WebSocket-Version: 13\r\n"));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // A request in flight keeps the server up past close_timeout: the cut,
    // not the process's exit, must end the WebSocket.
    let addr = server.addr();
    let busy = std::thread::spawn(move || raw(addr, "GET /sleep HTTP/1.1\r\nHost: t\r\n\r\n").0);
    // In flight: /sleep and the /metrics request that asks.
    until("/sleep in flight", || in_flight(addr) >= 2);
    let t = Instant::now();
    server.shutdown();
    let mut sink = [0u8; 64];
    while s.read(&mut sink).map(|n| n > 0).unwrap_or(false) {}
    let cut = t.elapsed();
    assert!(cut >= Duration::from_millis(900) && cut < Duration::from_millis(2500), "cut at close_timeout (1 s): {cut:?}");
    assert!(busy.join().unwrap().starts_with("HTTP/1.1 200"), "the request in flight is answered");
    let (r, _) = server.join();
    r.unwrap();
    assert!(t.elapsed() < Duration::from_secs(8), "not held to shutdown_timeout: {:?}", t.elapsed());
}

#[test]
fn a_write_only_handler_keeps_a_live_peer() {
    let server = start(&["streams.ping_interval=\"200ms\""]);
    let mut ws = connect(server.addr(), "/push");
    let t = Instant::now();
    let (mut ticks, mut pings) = (0, 0);
    while t.elapsed() < Duration::from_millis(1500) {
        // tungstenite answers each ping with a pong from inside read().
        match ws.read() {
            Ok(tungstenite::Message::Text(_)) => ticks += 1,
            Ok(tungstenite::Message::Ping(_)) => pings += 1,
            Ok(m) => panic!("{m:?}"),
            Err(e) => panic!("a live, ponging peer was cut after {:?} ({ticks} ticks, {pings} pings): {e}", t.elapsed()),
        }
    }
    assert!(ticks > 10 && pings >= 4, "{ticks} ticks, {pings} pings");
}

#[test]
fn a_handler_busy_for_two_intervals_keeps_a_live_peer() {
    let server = start(&["streams.ping_interval=\"200ms\""]);
    let mut ws = connect(server.addr(), "/slow");
    ws.send(tungstenite::Message::text("work")).unwrap();
    let t = Instant::now();
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Ping(_)) => {}
            Ok(m) => break assert_eq!(m, tungstenite::Message::text("work")),
            Err(e) => panic!("cut while its handler worked, after {:?}: {e}", t.elapsed()),
        }
    }
}

#[test]
fn a_handlers_last_word_on_drain_goes_before_the_1012() {
    let mut server = start(&[]);
    let mut ws = connect(server.addr(), "/last");
    std::thread::sleep(Duration::from_millis(100));
    server.shutdown();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text("bye"), "ctx.draining() is the cue for a last message");
    match ws.read() {
        Ok(tungstenite::Message::Close(Some(f))) => assert_eq!(f.code, CloseCode::Restart),
        other => panic!("then the close 1012: {other:?}"),
    }
}

#[test]
fn a_write_only_handler_ends_soon_after_the_1012() {
    let mut server = start(&["streams.close_timeout=\"3s\""]);
    let mut ws = connect(server.addr(), "/push");
    std::thread::sleep(Duration::from_millis(100));
    server.shutdown();
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(f)) => break assert_eq!(f.unwrap().code, CloseCode::Restart),
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let t = Instant::now();
    while ws.read().is_ok() {}
    assert!(t.elapsed() < Duration::from_secs(1), "the handler learnt the session was over: the client waited {:?}", t.elapsed());
}

#[test]
fn client_close_codes_are_bounded_metric_labels() {
    let server = start(&[]);
    for code in [4321u16, 3001, 1000] {
        let mut ws = connect(server.addr(), "/plain");
        ws.close(Some(tungstenite::protocol::CloseFrame { code: code.into(), reason: "".into() })).unwrap();
        while ws.read().is_ok() {}
    }
    std::thread::sleep(Duration::from_millis(100));
    let m = metrics(server.addr());
    assert!(!m.contains(r#"code="4321""#), "{m}");
    for label in [r#"code="4xxx",by="client"} 1"#, r#"code="3xxx",by="client"} 1"#, r#"code="1000",by="client"} 1"#] {
        assert!(m.contains(label), "{label} in {m}");
    }
}

#[test]
fn a_stalled_sse_reader_does_not_hold_the_drain() {
    let mut server = TestServer::start(service(), &["http.drain_idle=\"1s\"", "streams.close_timeout=\"1s\"", "shutdown_timeout=\"8s\""]).unwrap();
    let (head, _s) = raw(server.addr(), "GET /firehose HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The client stops reading: the socket fills, hyper stops polling the body.
    std::thread::sleep(Duration::from_millis(500));
    server.shutdown();
    let (r, took) = server.join();
    r.unwrap();
    assert!(took < Duration::from_secs(4), "streams.close_timeout is 1 s; the drain took {took:?}");
}

#[test]
fn stream_settings_that_load_serve_websockets() {
    // tungstenite asserts its write limit is above its buffer: refused at load, not at the upgrade.
    let e = TestServer::start(service(), &["streams.max_write_buffer=4096"]).err().expect("refused");
    assert!(e.to_string().contains("streams.max_write_buffer"), "{e}");
    let server = start(&["streams.max_write_buffer=4097"]);
    let mut ws = connect(server.addr(), "/ws");
    ws.send(tungstenite::Message::text("hi")).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text("hi"));
}
