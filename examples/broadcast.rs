//! Broadcast load client for `bench/broadcast`: loopback only, bounded counts
//! and durations, one JSON line of results on stdout. Not part of the product.
//!
//! ```text
//! broadcast URL[,URL...] --proto text|socketio --rate MSGS_PER_S [--conns 1000] [--publishers 4]
//!           [--duration 10] [--warmup 2] [--grace 5] [--size 64] [--threads 1]
//!           [--concurrency 256] [--ready FILE]
//! ```
//!
//! Opens `--conns` WebSockets to a chat room (at most `--concurrency`
//! handshakes at a time), every one a member of the same room, and has
//! `--publishers` of them publish `--rate` messages per second in total, open
//! loop: message k is due at `k / rate` s after the start and is written by
//! publisher `k mod publishers` then, whether or not the earlier ones were
//! delivered. Every client in the room receives every message, its sender
//! included.
//!
//! - `--proto text` (corepool's `GET /chat/{room}/ws`): a message is a text
//!   frame, published as it is and received verbatim. A text frame that is
//!   not one of ours is ignored (a `{"hello":{"instance":N}}` one is counted
//!   as the connection's instance, a `{"gap":...}` one, corepool's notice of
//!   missed messages, in `gap_notices`).
//! - `--proto socketio` (socket.io 4, WebSocket transport only, URL
//!   `ws://HOST/socket.io/?EIO=4&transport=websocket&room=R`): Engine.IO v4
//!   framing: the server's open packet `0{...}`, our connect `40` and its
//!   `40{...}` answer, the server's `42["hello",{"instance":N,...}]` (sent
//!   after it joined the room: `bench/node-baseline/chat.js`), events
//!   `42["chat","..."]` both ways, and every ping `2` answered `3`.
//!
//! A message's payload is `--size` bytes of text (the socket.io framing adds
//! its 12 bytes around it): `<seq> <scheduled µs> <written µs> xxx...`.
//!
//! Before the schedule starts, a barrier: publisher 0 sends probes until one
//! probe reaches every open connection (a new subscription may take a
//! moment to be in place on its instance), so no loss is counted because a
//! client was not yet in the room.
//!
//! Measured, for the messages due in the `--duration` s after `--warmup` s:
//! - `last_us`: publish-to-last-delivery, from the moment the message was
//!   written to the moment the last of the clients received it (only the
//!   messages every client received); `last_sched_us` the same from the
//!   moment it was due (which also counts any lateness of the publisher:
//!   coordinated omission); `first_us` to the first delivery; `delivery_us`
//!   every single delivery (a histogram, <1 % resolution).
//! - `delivered_rate`: deliveries (frames received by any client) that
//!   arrived inside the counted window, per second; `complete_rate`:
//!   messages per second that reached every client.
//! - `lost_deliveries`: what a client never received by the end of
//!   `--grace` s after the last message was due, `incomplete` the messages
//!   concerned; `lag_growth_us`: the median `last_us` of the window's second
//!   half minus its first half's (a stack that cannot keep up grows it).
//!
//! `--ready FILE` gets a line `{"phase":"ready",...}` once the barrier is
//! passed and `{"phase":"done"}` once the last delivery is in, each with the
//! client's CPU time so far; then 0.5 s with the connections still open
//! before they are closed: the window in which `bench/broadcast/run`
//! measures the servers' CPU.
//!
//! With several URLs, connection i goes to the (i mod n)th. The client raises
//! its own `RLIMIT_NOFILE` soft limit to the hard one.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

#[derive(Clone, Copy, PartialEq)]
enum Proto {
    Text,
    SocketIo,
}

struct Args {
    url: String,
    proto: Proto,
    conns: usize,
    publishers: usize,
    rate: f64,
    duration: f64,
    warmup: f64,
    grace: f64,
    size: usize,
    threads: usize,
    concurrency: usize,
    ready: Option<String>,
}

fn usage() -> ! {
    eprintln!("usage: broadcast ws://127.0.0.1:PORT/PATH --proto text|socketio --rate R [--conns N] [--publishers P] [--duration S] [--warmup S] [--grace S] [--size B] [--threads T] [--concurrency C] [--ready FILE]");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let url = it.next().unwrap_or_else(|| usage());
    let mut a = Args {
        url,
        proto: Proto::Text,
        conns: 1000,
        publishers: 4,
        rate: 0.0,
        duration: 10.0,
        warmup: 2.0,
        grace: 5.0,
        size: 64,
        threads: 1,
        concurrency: 256,
        ready: None,
    };
    let mut proto = None;
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| usage());
        let num = |v: &str| v.parse::<f64>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--proto" => proto = Some(v),
            "--conns" => a.conns = num(&v) as usize,
            "--publishers" => a.publishers = num(&v) as usize,
            "--rate" => a.rate = num(&v),
            "--duration" => a.duration = num(&v),
            "--warmup" => a.warmup = num(&v),
            "--grace" => a.grace = num(&v),
            "--size" => a.size = num(&v) as usize,
            "--threads" => a.threads = num(&v) as usize,
            "--concurrency" => a.concurrency = num(&v) as usize,
            "--ready" => a.ready = Some(v),
            _ => usage(),
        }
    }
    a.proto = match proto.as_deref() {
        Some("text") => Proto::Text,
        Some("socketio") => Proto::SocketIo,
        _ => usage(),
    };
    // Bounded: no run longer than a few minutes, no more than 20,000 sockets,
    // at most 2 million messages in a run.
    let bounded = (1..=20_000).contains(&a.conns)
        && a.publishers >= 1
        && a.publishers <= a.conns
        && a.rate > 0.0
        && a.rate <= 100_000.0
        && a.duration > 0.0
        && a.duration <= 300.0
        && (0.0..=60.0).contains(&a.warmup)
        && (0.5..=60.0).contains(&a.grace)
        && (32..=65_536).contains(&a.size)
        && (1..=64).contains(&a.threads)
        && a.concurrency >= 1
        && a.rate * (a.warmup + a.duration) <= 2e6;
    if !bounded {
        eprintln!("broadcast: out of bounds (conns 1..=20000, publishers 1..=conns, 0 < rate <= 1e5, duration <= 300 s, warmup <= 60 s, grace 0.5..=60 s, size 32..=65536, threads 1..=64, rate x (warmup + duration) <= 2e6)");
        std::process::exit(2);
    }
    a
}

/// host:port of a ws:// URL on a loopback address.
fn target(url: &str) -> (String, String) {
    let uri: http::Uri = url.parse().unwrap_or_else(|e| {
        eprintln!("broadcast: bad URL {url}: {e}");
        std::process::exit(2)
    });
    if uri.scheme_str() != Some("ws") {
        eprintln!("broadcast: only ws:// URLs");
        std::process::exit(2);
    }
    let host = uri.host().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false);
    if !loopback {
        eprintln!("broadcast: loopback addresses only (got {host})");
        std::process::exit(2);
    }
    let port = uri.port_u16().unwrap_or(80);
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
    (format!("{host}:{port}"), url.to_string())
}

/// Raises the soft fd limit to the hard one; exits if `need` will not fit.
fn raise_nofile(need: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
    let soft = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() { hard } else { soft };
    if soft < need {
        eprintln!("broadcast: {need} file descriptors needed, RLIMIT_NOFILE is {soft} (hard {hard})");
        std::process::exit(2);
    }
}

/// Counts of named outcomes (errors by kind, close codes, instances).
#[derive(Default)]
struct Tally(Mutex<std::collections::BTreeMap<String, u64>>);
impl Tally {
    fn add(&self, k: impl Into<String>) {
        *self.0.lock().unwrap().entry(k.into()).or_default() += 1;
    }
    fn json(&self) -> serde_json::Value {
        serde_json::to_value(&*self.0.lock().unwrap()).unwrap()
    }
    fn total(&self) -> u64 {
        self.0.lock().unwrap().values().sum()
    }
}

/// A log-linear histogram of µs: exact below 256, then 128 steps per power of two.
struct Hist(Vec<AtomicU64>);
impl Hist {
    const SUB: u64 = 128;
    fn new() -> Hist {
        Hist((0..(2 * Self::SUB + 40 * Self::SUB)).map(|_| AtomicU64::new(0)).collect())
    }
    fn index(v: u64) -> usize {
        if v < 2 * Self::SUB {
            return v as usize;
        }
        let shift = 63 - v.leading_zeros() as u64 - 7; // v >> shift is in [128, 256)
        (2 * Self::SUB + (shift - 1) * Self::SUB + ((v >> shift) - Self::SUB)) as usize
    }
    /// The highest value of bucket i.
    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < 2 * Self::SUB {
            return i;
        }
        let shift = (i - 2 * Self::SUB) / Self::SUB + 1;
        let m = (i - 2 * Self::SUB) % Self::SUB + Self::SUB;
        ((m + 1) << shift) - 1
    }
    fn add(&self, v: u64) {
        let i = Self::index(v).min(self.0.len() - 1);
        self.0[i].fetch_add(1, Relaxed);
    }
    fn summary(&self) -> serde_json::Value {
        let counts: Vec<u64> = self.0.iter().map(|c| c.load(Relaxed)).collect();
        let n: u64 = counts.iter().sum();
        let at = |p: f64| -> u64 {
            if n == 0 {
                return 0;
            }
            let want = ((p / 100.0) * n as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= want {
                    return Self::value(i);
                }
            }
            0
        };
        serde_json::json!({"p50": at(50.0), "p90": at(90.0), "p99": at(99.0), "p999": at(99.9), "max": at(100.0), "n": n})
    }
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

fn summary(mut v: Vec<u64>) -> serde_json::Value {
    v.sort_unstable();
    serde_json::json!({
        "p50": pct(&v, 50.0), "p90": pct(&v, 90.0), "p99": pct(&v, 99.0), "p999": pct(&v, 99.9),
        "max": v.last().copied().unwrap_or(0), "n": v.len(),
    })
}

/// What every connection task records into.
struct Shared {
    base: Instant,
    /// Per message: deliveries, first and last arrival (µs since base), when written.
    count: Vec<AtomicU32>,
    first: Vec<AtomicU64>,
    last: Vec<AtomicU64>,
    wrote: Vec<AtomicU64>,
    /// Per barrier probe: deliveries.
    probes: Vec<AtomicU32>,
    delivery: Hist,
    /// Deliveries that arrived in the counted window (µs since base, set at the start).
    window_from: AtomicU64,
    window_to: AtomicU64,
    in_window: AtomicU64,
    delivered: AtomicU64,
    foreign: AtomicU64,
    bad: AtomicU64,
    pings: AtomicU64,
    gaps: AtomicU64,
    closed: Tally,
    instances: Tally,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }
}

const PROBES: usize = 100;

/// Text to send for a payload.
fn frame(proto: Proto, payload: &str) -> Message {
    match proto {
        Proto::Text => Message::text(payload),
        Proto::SocketIo => Message::text(format!("42[\"chat\",\"{payload}\"]")),
    }
}

/// The instance a hello names: `{"hello":{"instance":N}}` or socket.io's `42["hello",{"instance":N}]`.
fn hello_instance(t: &str) -> Option<String> {
    let v: serde_json::Value = if let Some(rest) = t.strip_prefix("42") {
        serde_json::from_str::<serde_json::Value>(rest).ok()?.get(1)?.clone()
    } else {
        serde_json::from_str::<serde_json::Value>(t).ok()?.get("hello")?.clone()
    };
    v.get("instance")?.as_u64().map(|i| i.to_string())
}

/// Connects; for socket.io, runs the Engine.IO/socket.io handshake up to the hello.
async fn open(addr: &str, url: &str, proto: Proto) -> Result<(Ws, Option<String>), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect: {}", e.kind()))?;
    let _ = tcp.set_nodelay(true);
    let cfg = WebSocketConfig::default().read_buffer_size(16384).write_buffer_size(4096);
    let (mut ws, _resp) = tokio_tungstenite::client_async_with_config(url, tcp, Some(cfg)).await.map_err(|e| match e {
        tokio_tungstenite::tungstenite::Error::Http(r) => format!("handshake: HTTP {}", r.status().as_u16()),
        e => format!("handshake: {e}"),
    })?;
    if proto == Proto::Text {
        return Ok((ws, None));
    }
    let hello = tokio::time::timeout(Duration::from_secs(10), async {
        let mut connected = false;
        loop {
            let t = match ws.next().await {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(m)) => return Err(format!("socket.io handshake: unexpected {m:?}")),
                Some(Err(e)) => return Err(format!("socket.io handshake: {e}")),
                None => return Err("socket.io handshake: closed".into()),
            };
            let t = t.as_str();
            if t.starts_with("0{") {
                ws.send(Message::text("40")).await.map_err(|e| format!("socket.io connect: {e}"))?;
            } else if t == "2" {
                ws.send(Message::text("3")).await.map_err(|e| format!("socket.io pong: {e}"))?;
            } else if t.starts_with("40") {
                connected = true;
            } else if t.starts_with("44") {
                return Err(format!("socket.io connect refused: {t}"));
            } else if connected && t.starts_with("42[\"hello\"") {
                return Ok(hello_instance(t));
            }
        }
    })
    .await
    .map_err(|_| "socket.io handshake: timeout".to_string())??;
    Ok((ws, hello))
}

/// What a connection task needs besides its socket.
struct Role {
    /// Publisher p of n: sends messages p, p + n, p + 2n, ...
    publisher: Option<(u64, u64)>,
    /// Barrier probes to send (publisher 0 only).
    probes: Option<mpsc::UnboundedReceiver<usize>>,
}

/// The schedule, once the barrier is passed: (start µs since base, rate, total messages, end of the run µs).
type Schedule = Option<(u64, f64, u64, u64)>;

/// Handles one text frame; returns whether it was a chat message of ours.
fn on_text(sh: &Shared, proto: Proto, t: &str, pong: &mut bool, hello_seen: &mut bool, total: u64) -> bool {
    let payload = match proto {
        Proto::Text => t,
        Proto::SocketIo => match t.strip_prefix("42[\"chat\",\"").and_then(|r| r.strip_suffix("\"]")) {
            Some(p) => p,
            None => {
                if t == "2" {
                    *pong = true;
                    sh.pings.fetch_add(1, Relaxed);
                } else {
                    sh.foreign.fetch_add(1, Relaxed);
                }
                return false;
            }
        },
    };
    let now = sh.now_us();
    if let Some(p) = payload.strip_prefix('s') {
        match p.parse::<usize>() {
            Ok(j) if j < PROBES => {
                sh.probes[j].fetch_add(1, Relaxed);
            }
            _ => {
                sh.bad.fetch_add(1, Relaxed);
            }
        }
        return false;
    }
    let mut f = payload.split(' ');
    let (Some(Ok(k)), Some(Ok(_at)), Some(Ok(wrote))) = (f.next().map(str::parse::<u64>), f.next().map(str::parse::<u64>), f.next().map(str::parse::<u64>))
    else {
        if payload.starts_with("{\"gap\"") {
            // corepool's notice that this client missed messages (it fell behind).
            sh.gaps.fetch_add(1, Relaxed);
            return false;
        }
        if !*hello_seen {
            if let Some(i) = hello_instance(payload) {
                *hello_seen = true;
                sh.instances.add(i);
                return false;
            }
        }
        sh.foreign.fetch_add(1, Relaxed);
        return false;
    };
    if k >= total || k as usize >= sh.count.len() {
        sh.bad.fetch_add(1, Relaxed);
        return false;
    }
    let k = k as usize;
    sh.count[k].fetch_add(1, Relaxed);
    sh.first[k].fetch_min(now, Relaxed);
    sh.last[k].fetch_max(now, Relaxed);
    sh.delivered.fetch_add(1, Relaxed);
    sh.delivery.add(now.saturating_sub(wrote));
    if now >= sh.window_from.load(Relaxed) && now < sh.window_to.load(Relaxed) {
        sh.in_window.fetch_add(1, Relaxed);
    }
    true
}

/// One connection: receives until it has every message (or the end of the
/// run), publishing its share of the schedule if it is a publisher. Returns
/// the socket (closed by the caller once every task is done) and the
/// publisher's send lateness (µs).
async fn conn_task(mut ws: Ws, sh: Arc<Shared>, proto: Proto, size: usize, mut role: Role, mut sched: watch::Receiver<Schedule>) -> (Option<Ws>, Vec<u64>) {
    let mut lag = Vec::new();
    let mut received = 0u64;
    let mut hello_seen = false;
    let mut next_k: Option<u64> = None;
    let mut plan: Schedule = None;
    // Until the schedule is known: at most 60 s.
    let mut deadline = tokio::time::Instant::from_std(sh.base + Duration::from_secs(60));
    loop {
        let due = match (plan, next_k) {
            (Some((start, rate, _, _)), Some(k)) => {
                Some(tokio::time::Instant::from_std(sh.base + Duration::from_micros(start + (k as f64 * 1e6 / rate) as u64)))
            }
            _ => None,
        };
        let mut pong = false;
        tokio::select! {
            biased;
            _ = async { tokio::time::sleep_until(due.unwrap()).await }, if due.is_some() => {
                let (start, rate, total, _) = plan.unwrap();
                let k = next_k.unwrap();
                let at = start + (k as f64 * 1e6 / rate) as u64;
                let now = sh.now_us();
                let mut msg = format!("{k} {at} {now} ");
                msg.extend(std::iter::repeat_n('x', size.saturating_sub(msg.len())));
                sh.wrote[k as usize].store(now, Relaxed);
                lag.push(now.saturating_sub(at));
                if ws.send(frame(proto, &msg)).await.is_err() {
                    sh.closed.add("send failed");
                    return (None, lag);
                }
                let (_, n) = role.publisher.unwrap();
                next_k = Some(k + n).filter(|&k| k < total);
            }
            j = async { role.probes.as_mut().unwrap().recv().await }, if role.probes.is_some() => {
                match j {
                    Some(j) => {
                        if ws.send(frame(proto, &format!("s{j}"))).await.is_err() {
                            sh.closed.add("send failed");
                            return (None, lag);
                        }
                    }
                    None => role.probes = None,
                }
            }
            r = sched.changed(), if plan.is_none() => {
                if r.is_err() {
                    return (Some(ws), lag);
                }
                plan = *sched.borrow_and_update();
                if let Some((_, _, total, end)) = plan {
                    deadline = tokio::time::Instant::from_std(sh.base + Duration::from_micros(end));
                    next_k = role.publisher.map(|(p, _)| p).filter(|&k| k < total);
                    if received >= total {
                        return (Some(ws), lag);
                    }
                }
            }
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let total = plan.map(|p| p.2).unwrap_or(u64::MAX);
                    if on_text(&sh, proto, t.as_str(), &mut pong, &mut hello_seen, total) {
                        received += 1;
                        if plan.is_some() && received >= total && next_k.is_none() {
                            return (Some(ws), lag);
                        }
                    }
                }
                Some(Ok(Message::Close(f))) => {
                    sh.closed.add(format!("close {}", f.map(|f| u16::from(f.code)).unwrap_or(1005)));
                    return (None, lag);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    sh.closed.add(format!("error: {e}"));
                    return (None, lag);
                }
                None => {
                    sh.closed.add("eof");
                    return (None, lag);
                }
            },
            _ = tokio::time::sleep_until(deadline) => return (Some(ws), lag),
        }
        if pong && ws.send(Message::text("3")).await.is_err() {
            sh.closed.add("send failed");
            return (None, lag);
        }
    }
}

async fn run(a: Args, targets: Vec<(String, String)>) -> serde_json::Value {
    let total = (a.rate * (a.warmup + a.duration)).round() as u64;
    let sh = Arc::new(Shared {
        base: Instant::now(),
        count: (0..total).map(|_| AtomicU32::new(0)).collect(),
        first: (0..total).map(|_| AtomicU64::new(u64::MAX)).collect(),
        last: (0..total).map(|_| AtomicU64::new(0)).collect(),
        wrote: (0..total).map(|_| AtomicU64::new(u64::MAX)).collect(),
        probes: (0..PROBES).map(|_| AtomicU32::new(0)).collect(),
        delivery: Hist::new(),
        window_from: AtomicU64::new(u64::MAX),
        window_to: AtomicU64::new(u64::MAX),
        in_window: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        foreign: AtomicU64::new(0),
        bad: AtomicU64::new(0),
        pings: AtomicU64::new(0),
        gaps: AtomicU64::new(0),
        closed: Tally::default(),
        instances: Tally::default(),
    });

    // Open every connection.
    let errors = Arc::new(Tally::default());
    let t0 = Instant::now();
    let sem = Arc::new(Semaphore::new(a.concurrency));
    let mut opening = Vec::with_capacity(a.conns);
    for i in 0..a.conns {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (addr, url) = targets[i % targets.len()].clone();
        let (errors, proto) = (errors.clone(), a.proto);
        opening.push(tokio::spawn(async move {
            let r = open(&addr, &url, proto).await;
            drop(permit);
            r.map_err(|e| errors.add(e)).ok()
        }));
    }
    let mut conns = Vec::with_capacity(a.conns);
    for t in opening {
        if let Ok(Some(c)) = t.await {
            conns.push(c);
        }
    }
    let open_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let opened = conns.len();
    if opened == 0 {
        return serde_json::json!({"url": a.url, "opened": 0, "open_errors": errors.json()});
    }
    for (_, inst) in &conns {
        if let Some(i) = inst {
            sh.instances.add(i.clone());
        }
    }

    // Publishers: round-robin over the instances when the handshake named
    // them, else spread over the connections (odd and even positions alike).
    let publishers = a.publishers.min(opened);
    let mut pub_idx: Vec<usize> = Vec::with_capacity(publishers);
    if conns.iter().all(|(_, i)| i.is_some()) {
        let mut by: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
        for (n, (_, i)) in conns.iter().enumerate() {
            by.entry(i.clone().unwrap()).or_default().push(n);
        }
        let lists: Vec<Vec<usize>> = by.into_values().collect();
        let per = publishers.div_ceil(lists.len());
        'pick: for r in 0..per {
            for l in &lists {
                let n = l[r * l.len() / per];
                if pub_idx.len() == publishers {
                    break 'pick;
                }
                if !pub_idx.contains(&n) {
                    pub_idx.push(n);
                }
            }
        }
        // (An instance with fewer connections than its share of publishers.)
        let mut n = 0;
        while pub_idx.len() < publishers {
            if !pub_idx.contains(&n) {
                pub_idx.push(n);
            }
            n += 1;
        }
    } else {
        for p in 0..publishers {
            pub_idx.push((p * opened / publishers + p) % opened);
        }
    }
    let pub_instances: Vec<Option<String>> = pub_idx.iter().map(|&n| conns[n].1.clone()).collect();

    let (sched_tx, sched_rx) = watch::channel::<Schedule>(None);
    let (probe_tx, probe_rx) = mpsc::unbounded_channel::<usize>();
    let mut probe_rx = Some(probe_rx);
    let mut tasks = Vec::with_capacity(opened);
    for (n, (ws, _)) in conns.into_iter().enumerate() {
        let p = pub_idx.iter().position(|&x| x == n);
        let role = Role { publisher: p.map(|p| (p as u64, publishers as u64)), probes: if p == Some(0) { probe_rx.take() } else { None } };
        tasks.push(tokio::spawn(conn_task(ws, sh.clone(), a.proto, a.size, role, sched_rx.clone())));
    }

    // The barrier: a probe every 100 ms until one reached every connection.
    let sync0 = Instant::now();
    let mut synced = None;
    for j in 0..PROBES {
        let _ = probe_tx.send(j);
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(j) = (0..=j).find(|&j| sh.probes[j].load(Relaxed) as usize >= opened) {
            synced = Some(j);
            break;
        }
    }
    drop(probe_tx);
    let sync_ms = sync0.elapsed().as_secs_f64() * 1000.0;
    let probe_best = sh.probes.iter().map(|c| c.load(Relaxed)).max().unwrap_or(0);
    let ready = serde_json::json!({"phase": "ready", "opened": opened, "wanted": a.conns, "open_ms": open_ms.round(),
        "sync_ms": sync_ms.round(), "synced": synced.is_some(), "probe_best": probe_best,
        "errors": errors.json(), "instances": sh.instances.json(), "client_cpu_s": cpu_s()});
    eprintln!("broadcast: {ready}");
    if let Some(f) = &a.ready {
        std::fs::write(f, format!("{ready}\n")).unwrap_or_else(|e| eprintln!("broadcast: cannot write {f}: {e}"));
    }

    // The schedule: from 300 ms from now.
    let start = sh.now_us() + 300_000;
    let from = start + (a.warmup * 1e6) as u64;
    let to = from + (a.duration * 1e6) as u64;
    let end = to + (a.grace * 1e6) as u64;
    sh.window_from.store(from, Relaxed);
    sh.window_to.store(to, Relaxed);
    let _ = sched_tx.send(Some((start, a.rate, total, end)));

    let mut socks = Vec::with_capacity(opened);
    let mut lag = Vec::new();
    for t in tasks {
        if let Ok((ws, l)) = t.await {
            socks.extend(ws);
            lag.extend(l);
        }
    }
    let finished_us = sh.now_us();
    if let Some(f) = &a.ready {
        use std::io::Write;
        let line = format!("{}\n", serde_json::json!({"phase": "done", "client_cpu_s": cpu_s()}));
        let _ = std::fs::OpenOptions::new().append(true).open(f).and_then(|mut f| f.write_all(line.as_bytes()));
        // A moment with every connection still open, in which the caller
        // reads the servers' CPU (so the closes are not counted).
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Close them all, together, once every one is done.
    let closing: Vec<_> = socks
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    let _ = ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() })).await;
                    while let Some(Ok(_)) = ws.next().await {}
                })
                .await;
            })
        })
        .collect();
    for c in closing {
        let _ = c.await;
    }

    // The counted messages: due in [from, to).
    let k_from = (a.warmup * a.rate).round() as u64;
    let k_to = total;
    let (mut last, mut last_sched, mut firsts) = (Vec::new(), Vec::new(), Vec::new());
    let (mut lost, mut incomplete, mut unsent, mut complete, mut over) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut halves: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    for k in k_from..k_to {
        let i = k as usize;
        let wrote = sh.wrote[i].load(Relaxed);
        if wrote == u64::MAX {
            unsent += 1;
            continue;
        }
        let at = start + (k as f64 * 1e6 / a.rate) as u64;
        let c = sh.count[i].load(Relaxed) as u64;
        if c > opened as u64 {
            over += 1;
        }
        if c < opened as u64 {
            lost += opened as u64 - c;
            incomplete += 1;
        } else {
            complete += 1;
            let l = sh.last[i].load(Relaxed).saturating_sub(wrote);
            last.push(l);
            last_sched.push(sh.last[i].load(Relaxed).saturating_sub(at));
            halves[usize::from((k - k_from) * 2 >= k_to - k_from)].push(l);
        }
        if c > 0 {
            firsts.push(sh.first[i].load(Relaxed).saturating_sub(wrote));
        }
    }
    let med = |v: &mut Vec<u64>| {
        v.sort_unstable();
        pct(v, 50.0)
    };
    let lag_growth = med(&mut halves[1]) as i64 - med(&mut halves[0]) as i64;
    let counted = k_to - k_from;
    serde_json::json!({
        "url": a.url, "proto": if a.proto == Proto::Text { "text" } else { "socketio" },
        "wanted": a.conns, "opened": opened, "open_ms": open_ms.round(), "open_errors": errors.json(),
        "instances": sh.instances.json(), "publishers": publishers, "publisher_instances": pub_instances,
        "sync_ms": sync_ms.round(), "synced": synced.is_some(),
        "offered_rate": a.rate, "duration_s": a.duration, "warmup_s": a.warmup, "grace_s": a.grace, "size": a.size, "threads": a.threads,
        "messages": counted, "unsent": unsent, "complete": complete, "incomplete": incomplete, "lost_deliveries": lost, "over_delivered": over,
        "delivered_rate": (sh.in_window.load(Relaxed) as f64 / a.duration).round(),
        "complete_rate": (complete as f64 / a.duration * 10.0).round() / 10.0,
        "offered_deliveries_rate": (a.rate * opened as f64).round(),
        "delivered_total": sh.delivered.load(Relaxed),
        "last_us": summary(last), "last_sched_us": summary(last_sched), "first_us": summary(firsts),
        "delivery_us": sh.delivery.summary(), "lag_us": summary(lag), "lag_growth_us": lag_growth,
        "finished_after_end_ms": ((finished_us as f64 - to as f64) / 1000.0).round(),
        "closed": sh.closed.json(), "bad_payload": sh.bad.load(Relaxed), "foreign": sh.foreign.load(Relaxed), "pings": sh.pings.load(Relaxed), "gap_notices": sh.gaps.load(Relaxed),
        "errors": errors.total() + sh.closed.total() + sh.bad.load(Relaxed),
    })
}

/// The client's own CPU time so far (all threads), in seconds.
fn cpu_s() -> f64 {
    match nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let s = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            ((s(u.user_time()) + s(u.system_time())) * 1000.0).round() / 1000.0
        }
        Err(_) => 0.0,
    }
}

fn main() {
    let started = Instant::now();
    let a = parse_args();
    let targets: Vec<(String, String)> = a.url.split(',').map(target).collect();
    raise_nofile(a.conns as u64 + 64);
    let rt = if a.threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(a.threads).enable_all().build()
    }
    .expect("tokio runtime");
    let mut out = rt.block_on(run(a, targets));
    out["client_cpu_s"] = serde_json::json!(cpu_s());
    out["client_wall_s"] = serde_json::json!((started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
    println!("{out}");
}
