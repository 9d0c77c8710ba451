//! WebSocket load client for `bench/streams`: loopback only, bounded counts
//! and durations, one JSON line of results on stdout. Not part of the product.
//!
//! Both modes expect the demo's `/ws/echo` behaviour (corepool's and
//! `bench/node-baseline`'s): a first message `{"hello":{"instance":N,...}}`,
//! then every message echoed.
//!
//! ```text
//! wsload idle URL[,URL...] [--conns 10000] [--hold 120] [--concurrency 256] [--ready FILE]
//! wsload echo URL[,URL...] [--conns 1000] --rate MSGS_PER_S [--duration 10] [--warmup 2]
//!                           [--size 64] [--threads 1] [--concurrency 256]
//! ```
//!
//! - `idle`: opens `--conns` connections (at most `--concurrency` handshakes
//!   at a time), waits for each one's hello, writes `{"phase":"open",...}` to
//!   `--ready FILE` (and stderr), then holds them, answering the server's
//!   pings, until SIGUSR1 or `--hold` seconds. Then it sends one message on
//!   each and waits for its echo (were they all still alive?), closes each
//!   with 1000 and prints the result.
//! - `echo`: opens `--conns` connections, then sends `--rate` messages per
//!   second in total, open loop: connection i sends every `conns / rate`
//!   seconds on a fixed schedule (phases spread evenly), whether or not its
//!   earlier messages came back. Messages scheduled in the `--warmup` seconds
//!   are not counted; those scheduled in the next `--duration` seconds are.
//!   Round trip: from the moment a message was written to its echo
//!   (`rtt_us`), and from the moment it was scheduled (`sched_us`, which also
//!   counts any lateness of the client itself: coordinated omission); `lag_us`
//!   is how late the sends were. After the last send, up to 5 s more for
//!   the echoes still in flight; any missing then is `lost`. `rate` is the echoes
//!   that arrived inside the counted window, per second (what was delivered,
//!   not what was offered).
//!
//! With several URLs, connection i goes to the (i mod n)th.
//!
//! The client raises its own `RLIMIT_NOFILE` soft limit to the hard one and
//! refuses to start if `--conns` would not fit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

struct Args {
    mode: String,
    url: String,
    conns: usize,
    rate: f64,
    duration: f64,
    warmup: f64,
    size: usize,
    threads: usize,
    concurrency: usize,
    hold: f64,
    ready: Option<String>,
}

fn usage() -> ! {
    eprintln!("usage: wsload idle|echo ws://127.0.0.1:PORT/PATH [--conns N] [--rate R] [--duration S] [--warmup S] [--size B] [--threads T] [--concurrency C] [--hold S] [--ready FILE]");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let mode = it.next().unwrap_or_else(|| usage());
    let url = it.next().unwrap_or_else(|| usage());
    if mode != "idle" && mode != "echo" {
        usage();
    }
    let mut a = Args {
        conns: if mode == "idle" { 10_000 } else { 1_000 },
        mode,
        url,
        rate: 0.0,
        duration: 10.0,
        warmup: 2.0,
        size: 64,
        threads: 1,
        concurrency: 256,
        hold: 120.0,
        ready: None,
    };
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| usage());
        let num = |v: &str| v.parse::<f64>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--conns" => a.conns = num(&v) as usize,
            "--rate" => a.rate = num(&v),
            "--duration" => a.duration = num(&v),
            "--warmup" => a.warmup = num(&v),
            "--size" => a.size = num(&v) as usize,
            "--threads" => a.threads = num(&v) as usize,
            "--concurrency" => a.concurrency = num(&v) as usize,
            "--hold" => a.hold = num(&v),
            "--ready" => a.ready = Some(v),
            _ => usage(),
        }
    }
    // Bounded: no run longer than a few minutes, no more than 60,000 sockets.
    let bounded = a.conns >= 1
        && a.conns <= 60_000
        && a.duration > 0.0
        && a.duration <= 300.0
        && a.warmup >= 0.0
        && a.warmup <= 60.0
        && a.hold > 0.0
        && a.hold <= 900.0
        && (32..=65_536).contains(&a.size)
        && (1..=64).contains(&a.threads)
        && a.concurrency >= 1;
    if !bounded || (a.mode == "echo" && !(a.rate > 0.0 && a.rate <= 2_000_000.0)) {
        eprintln!("wsload: out of bounds (conns 1..=60000, duration ≤ 300 s, warmup ≤ 60 s, hold ≤ 900 s, size 32..=65536, threads 1..=64, echo needs 0 < --rate ≤ 2e6)");
        std::process::exit(2);
    }
    a
}

/// host:port and the request path of a ws:// URL on a loopback address.
fn target(url: &str) -> (String, String) {
    let uri: http::Uri = url.parse().unwrap_or_else(|e| {
        eprintln!("wsload: bad URL {url}: {e}");
        std::process::exit(2)
    });
    if uri.scheme_str() != Some("ws") {
        eprintln!("wsload: only ws:// URLs");
        std::process::exit(2);
    }
    let host = uri.host().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false);
    if !loopback {
        eprintln!("wsload: loopback addresses only (got {host})");
        std::process::exit(2);
    }
    let port = uri.port_u16().unwrap_or(80);
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
    (format!("{host}:{port}"), url.to_string())
}

/// Raises the soft fd limit to the hard one; exits if `need` will not fit.
fn raise_nofile(need: u64) -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
    let soft = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() { hard } else { soft };
    if soft < need {
        eprintln!("wsload: {need} file descriptors needed, RLIMIT_NOFILE is {soft} (hard {hard}): raise it (ulimit -n) or use fewer --conns");
        std::process::exit(2);
    }
    soft
}

fn ws_config() -> WebSocketConfig {
    // Small buffers: the client holds as many idle sockets as the server.
    WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(4096)
}

/// Connects and reads the hello; returns the socket and the instance it named.
async fn open(addr: &str, url: &str) -> Result<(Ws, Option<u64>), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect: {}", e.kind()))?;
    let _ = tcp.set_nodelay(true);
    let (mut ws, _resp) = tokio_tungstenite::client_async_with_config(url, tcp, Some(ws_config())).await.map_err(|e| match e {
        tokio_tungstenite::tungstenite::Error::Http(r) => format!("handshake: HTTP {}", r.status().as_u16()),
        e => format!("handshake: {e}"),
    })?;
    let hello = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(m)) => return Err(format!("hello: unexpected {m:?}")),
                Some(Err(e)) => return Err(format!("hello: {e}")),
                None => return Err("hello: closed".into()),
            }
        }
    })
    .await
    .map_err(|_| "hello: timeout".to_string())??;
    let instance = serde_json::from_str::<serde_json::Value>(&hello).ok().and_then(|v| v["hello"]["instance"].as_u64());
    Ok((ws, instance))
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

/// Opens `n` connections, `concurrency` handshakes at a time; failures go to `errors`.
/// Connection i goes to `targets[i % targets.len()]`.
async fn open_all(targets: &[(String, String)], n: usize, concurrency: usize, errors: &Arc<Tally>, instances: &Arc<Tally>) -> Vec<Ws> {
    let sem = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (addr, url) = targets[i % targets.len()].clone();
        let (errors, instances) = (errors.clone(), instances.clone());
        tasks.push(tokio::spawn(async move {
            let r = open(&addr, &url).await;
            drop(permit);
            match r {
                Ok((ws, inst)) => {
                    instances.add(inst.map(|i| i.to_string()).unwrap_or_else(|| "?".into()));
                    Some(ws)
                }
                Err(e) => {
                    errors.add(e);
                    None
                }
            }
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        if let Ok(Some(ws)) = t.await {
            out.push(ws);
        }
    }
    out
}

fn pct(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

fn summary(mut v: Vec<u32>) -> serde_json::Value {
    v.sort_unstable();
    serde_json::json!({
        "p50": pct(&v, 50.0), "p90": pct(&v, 90.0), "p99": pct(&v, 99.0), "p999": pct(&v, 99.9),
        "max": v.last().copied().unwrap_or(0), "n": v.len(),
    })
}

async fn idle(a: Args, targets: Vec<(String, String)>) -> serde_json::Value {
    let url = a.url.clone();
    let errors = Arc::new(Tally::default());
    let instances = Arc::new(Tally::default());
    let t0 = Instant::now();
    let conns = open_all(&targets, a.conns, a.concurrency, &errors, &instances).await;
    let open_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let opened = conns.len();
    let line = serde_json::json!({"phase": "open", "opened": opened, "wanted": a.conns, "open_ms": open_ms.round(), "errors": errors.json(), "instances": instances.json()});
    eprintln!("wsload: {line}");
    if let Some(f) = &a.ready {
        std::fs::write(f, format!("{line}\n")).unwrap_or_else(|e| eprintln!("wsload: cannot write {f}: {e}"));
    }

    // Hold until SIGUSR1 or --hold; then probe each connection and close it.
    let (tx, rx) = watch::channel(false);
    let closed = Arc::new(Tally::default());
    let probe_ok = Arc::new(AtomicU64::new(0));
    let probe_failed = Arc::new(Tally::default());
    let mut tasks = Vec::with_capacity(opened);
    for mut ws in conns {
        let (mut rx, closed, probe_ok, probe_failed) = (rx.clone(), closed.clone(), probe_ok.clone(), probe_failed.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    m = ws.next() => match m {
                        Some(Ok(Message::Close(f))) => { closed.add(format!("close {}", f.map(|f| u16::from(f.code)).unwrap_or(1005))); return; }
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => { closed.add(format!("error: {e}")); return; }
                        None => { closed.add("eof"); return; }
                    },
                    _ = rx.changed() => break,
                }
            }
            let probe = tokio::time::timeout(Duration::from_secs(20), async {
                ws.send(Message::text("probe")).await.map_err(|e| format!("send: {e}"))?;
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) if t.as_str() == "probe" => return Ok(()),
                        Some(Ok(Message::Close(f))) => return Err(format!("close {}", f.map(|f| u16::from(f.code)).unwrap_or(1005))),
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return Err(format!("error: {e}")),
                        None => return Err("eof".into()),
                    }
                }
            })
            .await;
            match probe {
                Ok(Ok(())) => {
                    probe_ok.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Err(e)) => probe_failed.add(e),
                Err(_) => probe_failed.add("timeout"),
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), async {
                let _ = ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() })).await;
                while let Some(Ok(_)) = ws.next().await {}
            })
            .await;
        }));
    }
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()).expect("SIGUSR1 handler");
    let held = Instant::now();
    tokio::select! {
        _ = usr1.recv() => {}
        _ = tokio::time::sleep(Duration::from_secs_f64(a.hold)) => {}
    }
    let held_s = held.elapsed().as_secs_f64();
    let _ = tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    serde_json::json!({
        "mode": "idle", "url": url, "wanted": a.conns, "opened": opened, "open_ms": open_ms.round(),
        "open_errors": errors.json(), "instances": instances.json(), "held_s": (held_s * 10.0).round() / 10.0,
        "closed_while_held": closed.json(), "probe_ok": probe_ok.load(Ordering::Relaxed), "probe_failed": probe_failed.json(),
    })
}

/// Per-connection results of the echo run.
#[derive(Default)]
struct Samples {
    rtt: Vec<u32>,
    sched: Vec<u32>,
    lag: Vec<u32>,
    sent: u64,
    received: u64,
    /// Echoes (of any message) that arrived inside the counted window.
    in_window: u64,
}

async fn echo(a: Args, targets: Vec<(String, String)>) -> serde_json::Value {
    let url = a.url.clone();
    let errors = Arc::new(Tally::default());
    let instances = Arc::new(Tally::default());
    let t0 = Instant::now();
    let conns = open_all(&targets, a.conns, a.concurrency, &errors, &instances).await;
    let open_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let opened = conns.len();
    if opened == 0 {
        return serde_json::json!({"mode": "echo", "url": url, "opened": 0, "open_errors": errors.json()});
    }
    // Every connection sends every `period`; connection i starts at i/opened of it.
    let period = Duration::from_secs_f64(opened as f64 / a.rate);
    let base = Instant::now() + Duration::from_millis(200);
    let measure_from = Duration::from_secs_f64(a.warmup);
    let measure_to = measure_from + Duration::from_secs_f64(a.duration);
    let closed = Arc::new(Tally::default());
    let bad = Arc::new(AtomicU64::new(0));
    let size = a.size;
    let mut tasks = Vec::with_capacity(opened);
    for (i, ws) in conns.into_iter().enumerate() {
        let (closed, bad) = (closed.clone(), bad.clone());
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut stream) = ws.split();
            let phase = period.mul_f64(i as f64 / opened as f64);
            // How many the sender wrote in all, once it is done: the receiver
            // stops when it has them all back (or at the deadline).
            let (total, done) = (AtomicU64::new(u64::MAX), tokio::sync::Notify::new());
            let (total, done) = (&total, &done);
            let sender = async move {
                let (mut sent, mut lag) = (0u64, Vec::new());
                let mut k: u32 = 0;
                loop {
                    let at = phase + period * k;
                    if at >= measure_to {
                        break;
                    }
                    tokio::time::sleep_until((base + at).into()).await;
                    let now = base.elapsed();
                    // "<scheduled µs> <written µs> " then padding to `size` bytes.
                    let mut msg = format!("{} {} ", at.as_micros(), now.as_micros());
                    msg.extend(std::iter::repeat_n('x', size.saturating_sub(msg.len())));
                    if sink.send(Message::text(msg)).await.is_err() {
                        break;
                    }
                    if at >= measure_from {
                        sent += 1;
                        lag.push((now.saturating_sub(at)).as_micros().min(u32::MAX as u128) as u32);
                    }
                    k += 1;
                }
                total.store(u64::from(k), Ordering::Relaxed);
                done.notify_one();
                (sent, lag, sink)
            };
            let receiver = async {
                let mut s = Samples::default();
                let mut echoed = 0u64;
                let deadline = tokio::time::sleep_until((base + measure_to + Duration::from_secs(5)).into());
                tokio::pin!(deadline);
                loop {
                    let m = tokio::select! {
                        m = stream.next() => m,
                        _ = done.notified() => {
                            if echoed >= total.load(Ordering::Relaxed) { break; }
                            continue;
                        }
                        _ = &mut deadline => break,
                    };
                    match m {
                        Some(Ok(Message::Text(t))) => {
                            echoed += 1;
                            let now = base.elapsed().as_micros();
                            let mut f = t.as_str().split(' ');
                            let (Some(Ok(at)), Some(Ok(wrote))) = (f.next().map(str::parse::<u128>), f.next().map(str::parse::<u128>)) else {
                                bad.fetch_add(1, Ordering::Relaxed);
                                continue;
                            };
                            let at_d = Duration::from_micros(at as u64);
                            let now_d = Duration::from_micros(now as u64);
                            if now_d >= measure_from && now_d < measure_to {
                                s.in_window += 1;
                            }
                            if at_d >= measure_from && at_d < measure_to {
                                s.received += 1;
                                s.rtt.push(now.saturating_sub(wrote).min(u32::MAX as u128) as u32);
                                s.sched.push(now.saturating_sub(at).min(u32::MAX as u128) as u32);
                            }
                            if echoed >= total.load(Ordering::Relaxed) {
                                break;
                            }
                        }
                        Some(Ok(Message::Close(f))) => {
                            closed.add(format!("close {}", f.map(|f| u16::from(f.code)).unwrap_or(1005)));
                            break;
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            closed.add(format!("error: {e}"));
                            break;
                        }
                        None => {
                            closed.add("eof");
                            break;
                        }
                    }
                }
                s
            };
            let ((sent, lag, sink), mut s) = tokio::join!(sender, receiver);
            s.sent = sent;
            s.lag = lag;
            if let Ok(mut ws) = sink.reunite(stream) {
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    let _ = ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() })).await;
                    while let Some(Ok(_)) = ws.next().await {}
                })
                .await;
            }
            s
        }));
    }
    let mut all = Samples::default();
    for t in tasks {
        if let Ok(s) = t.await {
            all.sent += s.sent;
            all.received += s.received;
            all.in_window += s.in_window;
            all.rtt.extend(s.rtt);
            all.sched.extend(s.sched);
            all.lag.extend(s.lag);
        }
    }
    let lost = all.sent.saturating_sub(all.received);
    serde_json::json!({
        "mode": "echo", "url": url, "wanted": a.conns, "opened": opened, "open_ms": open_ms.round(),
        "open_errors": errors.json(), "instances": instances.json(),
        "offered_rate": a.rate, "duration_s": a.duration, "warmup_s": a.warmup, "size": a.size, "threads": a.threads,
        "sent": all.sent, "received": all.received, "lost": lost,
        "rate": (all.in_window as f64 / a.duration).round(),
        "rtt_us": summary(all.rtt), "sched_us": summary(all.sched), "lag_us": summary(all.lag),
        "closed": closed.json(), "bad_payload": bad.load(Ordering::Relaxed),
        "errors": errors.total() + closed.total() + lost + bad.load(Ordering::Relaxed),
    })
}

fn main() {
    let started = Instant::now();
    let a = parse_args();
    // Several URLs, comma-separated: the connections are spread over them in turn.
    let targets: Vec<(String, String)> = a.url.split(',').map(target).collect();
    raise_nofile(a.conns as u64 + 64);
    let rt = if a.threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(a.threads).enable_all().build()
    }
    .expect("tokio runtime");
    let out = rt.block_on(async move {
        match a.mode.as_str() {
            "idle" => idle(a, targets).await,
            _ => echo(a, targets).await,
        }
    });
    let mut out = out;
    // The client's own CPU time (all threads): near wall time × --threads, the
    // client itself was the limit.
    if let Ok(u) = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) {
        let s = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        out["client_cpu_s"] = serde_json::json!(((s(u.user_time()) + s(u.system_time())) * 1000.0).round() / 1000.0);
    }
    out["client_wall_s"] = serde_json::json!((started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
    println!("{out}");
}
