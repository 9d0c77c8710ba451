//! State shared across instances on a real Redis (Debian's `redis-server`,
//! started by each test on a unix socket of its own): sessions seen by every
//! instance and rotated on login, the chat fanned out to WebSockets on every
//! instance, the rate limit counted across them, and what an outage, a
//! refused password or an oversized message do.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{http, tempdir, Server, BIN, PATIENCE};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// A redis-server of the test's own, on `DIR/redis.sock`, killed on drop.
struct Redis {
    child: Child,
    dir: PathBuf,
    args: Vec<String>,
}

impl Redis {
    fn start(dir: &Path, extra: &[&str]) -> Redis {
        let mut args: Vec<String> =
            ["--port", "0", "--unixsocket", "redis.sock", "--unixsocketperm", "700", "--save", "", "--dir", "."].iter().map(|s| s.to_string()).collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Self::spawn(dir, &args);
        Redis { child, dir: dir.to_path_buf(), args }
    }

    fn spawn(dir: &Path, args: &[String]) -> Child {
        let child = Command::new("redis-server")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian's package redis-server; tests/run installs it) must be installed for these tests");
        let sock = dir.join("redis.sock");
        let deadline = Instant::now() + PATIENCE;
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {}", sock.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn url(&self) -> String {
        self.dir.join("redis.sock").display().to_string()
    }

    /// SIGTERM (what `systemctl stop redis-server` sends): it saves and exits.
    fn stop(&mut self) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
        self.child.wait().unwrap();
        let _ = std::fs::remove_file(self.dir.join("redis.sock"));
    }

    fn restart(&mut self) {
        self.child = Self::spawn(&self.dir, &self.args);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An instance of the demo with Redis at `url` (required: /readyz follows it).
fn instance(url: &str, n: u32, sets: &[&str]) -> Server {
    let url = format!("redis.url={url}");
    let num = n.to_string();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "human", "--instance", &num, "--set", &url, "--set", "redis.required=true"]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    cmd.env_remove("NOTIFY_SOCKET").env_remove("LISTEN_FDS").env_remove("CREDENTIALS_DIRECTORY");
    let s = Server::spawn(cmd);
    s.until("connected to Redis", |s| s.get("/readyz").status == 200);
    s
}

fn request(s: &Server, method: &str, path: &str, headers: &[&str], body: &str) -> common::Resp {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for h in headers {
        raw.push_str(h);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    http(&s.addr, &raw)
}

/// `NAME_session=ID` from a response's Set-Cookie, and the whole header.
fn session_cookie(r: &common::Resp) -> (String, String) {
    let set = r.header("set-cookie").unwrap_or_else(|| panic!("no Set-Cookie in {:?}", r.headers)).to_string();
    (set.split(';').next().unwrap().to_string(), set)
}

#[test]
fn sessions_are_seen_by_every_instance_and_rotate_on_login() {
    let dir = tempdir();
    let redis = Redis::start(dir.path(), &[]);
    let (a, b) = (instance(&redis.url(), 0, &[]), instance(&redis.url(), 1, &[]));

    // Anonymous: no cookie, no Redis round trip, nobody.
    let r = request(&b, "GET", "/session", &[], "");
    assert_eq!((r.status, r.json()["user"].clone()), (200, serde_json::Value::Null));
    assert!(r.header("set-cookie").is_none());

    let login = request(&a, "POST", "/session", &["Content-Type: application/json", "X-Forwarded-Proto: https"], r#"{"user":"alice"}"#);
    assert_eq!(login.status, 200, "{}", login.body);
    let (c1, set) = session_cookie(&login);
    assert!(c1.starts_with("corepool_session=") && c1.len() == "corepool_session=".len() + 64, "{set}");
    for attr in ["Path=/", "HttpOnly", "SameSite=Lax", "Secure"] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    assert_eq!(login.header("cache-control"), Some("no-store"));

    // The other instance sees it, for every request.
    for _ in 0..20 {
        let r = request(&b, "GET", "/session", &[&format!("Cookie: {c1}")], "");
        let j = r.json();
        assert_eq!((j["user"].as_str(), j["instance"].as_u64(), j["login_instance"].as_u64()), (Some("alice"), Some(1), Some(0)), "{j}");
    }

    // Logging in again (on b, over plain HTTP) rotates the id; the old one is dead.
    let again = request(&b, "POST", "/session", &["Content-Type: application/json", &format!("Cookie: {c1}")], r#"{"user":"bob"}"#);
    let (c2, set2) = session_cookie(&again);
    assert_ne!(c1, c2);
    assert!(!set2.contains("Secure"), "no Secure over plain HTTP with secure = auto: {set2}");
    assert_eq!(request(&a, "GET", "/session", &[&format!("Cookie: {c1}")], "").json()["user"], serde_json::Value::Null);
    assert_eq!(request(&a, "GET", "/session", &[&format!("Cookie: {c2}")], "").json()["user"], "bob");

    // Forged, malformed: an anonymous session, not an error.
    for cookie in [format!("corepool_session={}", "ab".repeat(32)), "corepool_session=../../etc".into(), "corepool_session=".into()] {
        let r = request(&a, "GET", "/session", &[&format!("Cookie: other=1; {cookie}")], "");
        assert_eq!((r.status, r.json()["user"].clone()), (200, serde_json::Value::Null), "{cookie}");
    }

    // Logout clears the cookie and the session.
    let out = request(&a, "DELETE", "/session", &[&format!("Cookie: {c2}")], "");
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"), "{:?}", out.headers);
    assert_eq!(request(&b, "GET", "/session", &[&format!("Cookie: {c2}")], "").json()["user"], serde_json::Value::Null);

    // A bad login body is a 400, and sets nothing.
    let bad = request(&a, "POST", "/session", &["Content-Type: application/json"], r#"{"user":""}"#);
    assert_eq!(bad.status, 400);
    assert!(bad.header("set-cookie").is_none());
}

async fn ws_connect(addr: &str, path: &str) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}{path}"), tcp).await.unwrap_or_else(|e| panic!("{path}: {e}"));
    ws
}

async fn next_text(ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) -> String {
    loop {
        match tokio::time::timeout(PATIENCE, ws.next()).await.expect("a message in time") {
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

#[test]
fn the_chat_reaches_every_instance_and_survives_a_redis_restart() {
    let dir = tempdir();
    // Persistence on, as Debian's redis.conf has it: sessions outlive the restart.
    let mut redis = Redis::start(dir.path(), &["--appendonly", "yes"]);
    let (a, b) = (instance(&redis.url(), 0, &[]), instance(&redis.url(), 1, &[]));
    let login = request(&a, "POST", "/session", &["Content-Type: application/json"], r#"{"user":"carol"}"#);
    let (cookie, _) = session_cookie(&login);

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut clients = Vec::new();
        for i in 0..6 {
            clients.push(ws_connect(if i % 2 == 0 { &a.addr } else { &b.addr }, "/chat/lobby/ws").await);
        }
        // From outside, and from a client: everyone gets both, the sender included.
        let r = request(&a, "POST", "/chat/lobby", &[], "hello from a script");
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.json()["instances"], 2, "both instances subscribed once each: {}", r.body);
        clients[3].send(Message::text("hi from client 3")).await.unwrap();
        for c in clients.iter_mut() {
            assert_eq!(next_text(c).await, "hello from a script");
            assert_eq!(next_text(c).await, "hi from client 3");
        }
        assert!(a.metric("corepool_broadcast_delivered_total") >= 6.0);

        // Redis stops: the routes that need it say 503 with Retry-After, the
        // others are untouched, readiness follows (required = true).
        redis.stop();
        a.until("redis down seen", |s| s.get("/readyz").status == 503);
        let r = request(&a, "POST", "/counter", &[], "");
        assert_eq!((r.status, r.header("retry-after")), (503, Some("1")), "{}", r.body);
        assert!(r.error().contains("Redis"), "{}", r.body);
        assert_eq!(a.get("/").status, 200);
        assert_eq!(a.get("/compute?n=1000").status, 200);
        let handshake = "GET /chat/lobby/ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        let r = http(&b.addr, handshake);
        assert_eq!(r.status, 503, "a new chat client is refused while Redis is down: {}", r.body);
        let r = request(&b, "GET", "/session", &[&format!("Cookie: {cookie}")], "");
        assert_eq!(r.status, 503, "{}", r.body);

        // Back: the link and the subscriptions come back by themselves; the
        // clients are told they may have missed messages, then hear new ones.
        redis.restart();
        a.until("redis back (a)", |s| s.get("/readyz").status == 200);
        b.until("redis back (b)", |s| s.get("/readyz").status == 200);
        let r = request(&b, "POST", "/chat/lobby", &[], "after the restart");
        assert_eq!(r.status, 202, "{}", r.body);
        for c in clients.iter_mut() {
            // Told of the gap (when the link went, and when it came back), then the news.
            let mut gaps = 0;
            loop {
                let text = next_text(c).await;
                if text == "after the restart" {
                    break;
                }
                let gap: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(gap["gap"], true, "{gap}");
                gaps += 1;
            }
            assert!(gaps >= 1, "no gap notice");
        }
        assert!(a.metric("corepool_redis_reconnects_total") >= 1.0);
        assert_eq!(a.metric("corepool_redis_connected"), 1.0);

        // An oversized message: the sender's socket closes with 1009, nothing is sent.
        let big = "x".repeat(64 * 1024 + 1);
        clients[0].send(Message::text(big.clone())).await.unwrap();
        match tokio::time::timeout(PATIENCE, clients[0].next()).await.unwrap() {
            Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 1009, "{f:?}"),
            other => panic!("expected close 1009, got {other:?}"),
        }
        assert_eq!(request(&a, "POST", "/chat/lobby", &[], &big).status, 413);
        assert_eq!(request(&a, "POST", "/chat/no%20spaces", &[], "x").status, 400);
    });

    // The session written before the restart is still valid after it.
    let r = request(&b, "GET", "/session", &[&format!("Cookie: {cookie}")], "");
    assert_eq!(r.json()["user"], "carol", "{}", r.body);
}

#[test]
fn the_rate_limit_counts_across_instances() {
    let dir = tempdir();
    let redis = Redis::start(dir.path(), &[]);
    let (a, b) = (instance(&redis.url(), 0, &["compute.rate_limit=4"]), instance(&redis.url(), 1, &["compute.rate_limit=4"]));
    for i in 0..4 {
        let s = if i % 2 == 0 { &a } else { &b };
        assert_eq!(request(s, "GET", "/compute?n=10", &["X-Real-IP: 192.0.2.7"], "").status, 200, "request {i}");
    }
    let r = request(&b, "GET", "/compute?n=10", &["X-Real-IP: 192.0.2.7"], "");
    assert_eq!(r.status, 429, "{}", r.body);
    let retry: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(r.error().contains("rate limit"));
    // Another client has its own count.
    assert_eq!(request(&a, "GET", "/compute?n=10", &["X-Real-IP: 192.0.2.8"], "").status, 200);
    // The counter is shared too.
    let n1 = request(&a, "POST", "/counter", &[], "").json()["count"].as_u64().unwrap();
    let n2 = request(&b, "POST", "/counter", &[], "").json()["count"].as_u64().unwrap();
    assert_eq!(n2, n1 + 1);
    // A value of the wrong type is the handler's problem (500), not the
    // connection's: nothing reconnects.
    let set = Command::new("redis-cli").args(["-s", &redis.url(), "SET", "corepool:counter", "not a number"]).output().expect("redis-cli");
    assert!(set.status.success());
    let r = request(&a, "GET", "/counter", &[], "");
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(request(&a, "GET", "/readyz", &[], "").status, 200);
    assert_eq!(a.metric("corepool_redis_reconnects_total"), 0.0);
}

#[test]
fn a_refused_password_exits_78_naming_the_setting_and_check_says_so() {
    let dir = tempdir();
    let redis = Redis::start(dir.path(), &["--requirepass", "right"]);
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("redis-password"), "wrong\n").unwrap();
    let conf = common::write(dir.path(), "svc.toml", &format!("[redis]\nurl = \"{}\"\nrequired = true\n", redis.url()));
    let run = |args: &[&str]| {
        Command::new(BIN).args(args).env("CREDENTIALS_DIRECTORY", &creds).env_remove("NOTIFY_SOCKET").env_remove("LISTEN_FDS").output().unwrap()
    };
    let conf_s = conf.to_str().unwrap();

    let out = run(&["--config", conf_s, "serve", "--listen", "127.0.0.1:0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains(&format!("{conf_s}:1: redis.password_credential")) && err.contains("WRONGPASS"), "{err}");
    let out = run(&["config", "check", conf_s]);
    assert_eq!(out.status.code(), Some(78), "{}", String::from_utf8_lossy(&out.stderr));

    // The right password: check passes, and so does a start.
    std::fs::write(creds.join("redis-password"), "right\n").unwrap();
    let out = run(&["config", "check", "--quiet", conf_s]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    // A password in the URL is refused by the check, naming the line.
    let bad = common::write(dir.path(), "bad.toml", "[redis]\nurl = \"redis://app:secret@127.0.0.1:6379\"\n");
    let out = run(&["config", "check", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("bad.toml:2: redis.url") && err.contains("password_credential"), "{err}");

    // Not required: it serves, unready for nothing, and the routes that need Redis answer 503.
    let url = format!("redis.url={}", redis.url());
    let s = Server::start_with(&[&url], &[("CREDENTIALS_DIRECTORY", "/nonexistent")]);
    assert_eq!(s.get("/readyz").status, 200);
    let r = s.post("/counter", "");
    assert_eq!(r.status, 503, "{}", r.body);
    let health = s.get("/healthz").json();
    assert_eq!(health["redis"]["state"], "refused", "{health}");
}

#[test]
fn without_redis_the_shared_routes_say_what_is_missing() {
    let s = Server::start(&[]);
    let r = s.post("/counter", "");
    assert_eq!(r.status, 500);
    assert!(r.error().contains("[redis] url"), "{}", r.body);
    assert!(s.get("/healthz").json().get("redis").is_none());
    assert!(!s.get("/metrics").body.contains("corepool_redis_connected"));
}

/// A free loopback TCP port (bound once, released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn_redis(dir: &Path, args: &[String]) -> Child {
    Command::new("redis-server").args(args).current_dir(dir).stdout(Stdio::null()).spawn().expect("redis-server (Debian's package redis-server)")
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli").args(["-p", &port.to_string()]).args(args).output().expect("redis-cli (Debian's redis-tools)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Killed(Vec<Child>);
impl Drop for Killed {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn with_sentinels_a_failover_moves_every_instance_to_the_new_primary() {
    let dir = tempdir();
    let (p1, p2, s) = (free_port(), free_port(), free_port());
    let common = |port: u16| -> Vec<String> { vec!["--port".into(), port.to_string(), "--bind".into(), "127.0.0.1".into(), "--save".into(), "".into()] };
    let mut primary = spawn_redis(dir.path(), &common(p1));
    until("the primary", || redis_cli(p1, &["ping"]) == "PONG");
    let mut replica_args = common(p2);
    replica_args.extend(["--replicaof".into(), "127.0.0.1".into(), p1.to_string()]);
    let replica = spawn_redis(dir.path(), &replica_args);
    let conf = common::write(
        dir.path(),
        "sentinel.conf",
        &format!("port {s}\nbind 127.0.0.1\nsentinel monitor m 127.0.0.1 {p1} 1\nsentinel down-after-milliseconds m 500\nsentinel failover-timeout m 3000\n"),
    );
    let sentinel = Command::new("redis-server").arg(&conf).arg("--sentinel").current_dir(dir.path()).stdout(Stdio::null()).spawn().unwrap();
    let _guard = Killed(vec![replica, sentinel]);
    until("the sentinel sees the replica", || redis_cli(s, &["sentinel", "replicas", "m"]).contains(&p2.to_string()));

    let sentinels = format!("redis.sentinels=[\"127.0.0.1:{s}\"]");
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "human",
        "--set",
        &sentinels,
        "--set",
        "redis.sentinel_master=\"m\"",
        "--set",
        "redis.required=true",
    ]);
    cmd.env_remove("NOTIFY_SOCKET").env_remove("LISTEN_FDS").env_remove("CREDENTIALS_DIRECTORY");
    let a = Server::spawn(cmd);
    a.until("ready on the primary", |s| s.get("/readyz").status == 200);
    assert_eq!(a.get("/healthz").json()["redis"]["url"], format!("sentinel:m@127.0.0.1:{s}"));
    assert_eq!(request(&a, "POST", "/counter", &[], "").status, 200);
    until("the write reached the replica", || redis_cli(p2, &["get", "corepool:counter"]) == "1");

    // The primary dies; the sentinel promotes the replica; the instance follows.
    primary.kill().unwrap();
    primary.wait().unwrap();
    let t0 = Instant::now();
    let mut unavailable = 0;
    loop {
        let r = request(&a, "POST", "/counter", &[], "");
        match r.status {
            200 => {
                assert_eq!(r.json()["count"], 2, "the count went on from the replica's copy: {}", r.body);
                break;
            }
            503 => unavailable += 1,
            other => panic!("during the failover: {other} {}", r.body),
        }
        assert!(t0.elapsed() < PATIENCE, "no failover within {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(unavailable > 0, "the outage was seen as 503s");
    assert!(redis_cli(p2, &["role"]).starts_with("master"), "the replica is the primary now");
    assert_eq!(a.get("/readyz").status, 200);
    assert!(a.metric("corepool_redis_reconnects_total") >= 1.0);
}
