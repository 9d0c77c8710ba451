//! systemd protocols for real, without systemd as PID 1: socket activation
//! through `systemd-socket-activate` (exec on first connection, LISTEN_FDS=1,
//! LISTEN_PID=own pid), and sd_notify against a datagram socket we bind.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;

fn socket_activate(listens: &[&str], extra: &[&str]) -> (std::process::Child, mpsc::Receiver<String>) {
    let tool = "/usr/bin/systemd-socket-activate";
    assert!(std::path::Path::new(tool).exists(), "{tool} is required (package systemd); tests/run installs it");
    let mut child = Command::new(tool)
        .args(listens.iter().flat_map(|l| ["-l", l]))
        .args(["--", BIN, "--log-format", "human"])
        .args(extra)
        .env_remove("LISTEN_FDS")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = pipe_lines(child.stdout.take().unwrap());
    let _ = pipe_lines(child.stderr.take().unwrap());
    (child, log)
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn unix_socket_activation_starts_on_first_connection() {
    let dir = tempdir();
    let sock = dir.path().join("0.sock");
    let fallback = format!("127.0.0.1:{}", free_port());
    let (mut child, log) = socket_activate(&[sock.to_str().unwrap()], &["--instance", "4", "--listen", &fallback]);
    wait_for("socket file", || sock.exists());
    std::thread::sleep(Duration::from_millis(100));
    assert_ne!(comm(child.id()), "corepool", "not started before the first connection");

    let addr = format!("unix:{}", sock.display());
    let r = http(&addr, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["instance"], 4);
    assert_eq!(j["pid"], child.id(), "the activated process itself answered");
    assert_eq!(comm(child.id()), "corepool");
    let started = log.iter().find(|l| l.contains("serving on")).unwrap();
    assert!(started.contains("(systemd)"), "{started}");
    // The fallback address was not bound: the socket came from the activator.
    assert!(std::net::TcpStream::connect(&fallback).is_err());
    for _ in 0..20 {
        assert_eq!(http(&addr, "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").status, 200);
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn tcp_socket_activation() {
    let addr = format!("127.0.0.1:{}", free_port());
    let (mut child, _log) = socket_activate(&[&addr], &[]);
    wait_for("tcp listener", || std::net::TcpStream::connect(&addr).is_ok());
    let r = http(&addr, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["pid"], child.id());
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn malformed_listen_fds_is_a_startup_error() {
    for (fds, pid, needle) in [
        ("abc", None, "LISTEN_FDS=\"abc\" is not a positive number"),
        ("0", None, "LISTEN_FDS=\"0\""),
        ("1", Some("1"), "LISTEN_FDS is set for process 1"),
        // fd 3 is not a socket at all.
        ("1", Some(""), "neither a TCP nor a unix stream listener"),
    ] {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0"]).env("LISTEN_FDS", fds).env_remove("LISTEN_PID");
        if let Some(p) = pid {
            cmd.env("LISTEN_PID", p);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{fds}: {err}");
        assert!(err.contains(needle), "{fds}: {err}");
    }
}

/// Collects sd_notify datagrams with their arrival time.
fn notify_listener(path: &std::path::Path) -> mpsc::Receiver<(Instant, String)> {
    let sock = UnixDatagram::bind(path).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            for line in String::from_utf8_lossy(&buf[..n]).lines() {
                if tx.send((Instant::now(), line.to_string())).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

fn next_matching(rx: &mpsc::Receiver<(Instant, String)>, prefix: &str) -> (Instant, String) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let m = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).unwrap_or_else(|_| panic!("no {prefix} message"));
        if m.1.starts_with(prefix) {
            return m;
        }
    }
}

/// Messages received during `window` from now (older ones are discarded).
fn collect(rx: &mpsc::Receiver<(Instant, String)>, window: Duration) -> Vec<String> {
    let start = Instant::now();
    let until = start + window;
    while rx.try_recv().is_ok() {}
    let mut out = Vec::new();
    while let Ok((at, m)) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
        if at >= start {
            out.push(m);
        }
    }
    out
}

#[test]
fn notify_ready_status_watchdog_and_stopping() {
    let dir = tempdir();
    let nsock = dir.path().join("notify.sock");
    let rx = notify_listener(&nsock);
    let mut s = Server::start_with(
        &["debug.endpoints=true", "pool.job_timeout=\"300ms\"", "shutdown_timeout=\"1s\""],
        &[("NOTIFY_SOCKET", nsock.to_str().unwrap()), ("WATCHDOG_USEC", "400000")],
    );
    next_matching(&rx, "READY=1");
    // READY means accepting.
    assert_eq!(s.get("/healthz").status, 200);
    let (_, status) = next_matching(&rx, "STATUS=");
    assert!(status.contains("req/s") || status.contains("serving on"), "{status}");
    let (_, status) = next_matching(&rx, "STATUS=");
    assert!(status.contains("req/s, pool 0/1 busy, 0/64 queued"), "{status}");
    let pings = collect(&rx, Duration::from_secs(2)).iter().filter(|m| *m == "WATCHDOG=1").count();
    assert!(pings >= 5, "healthy instance pings every 200ms, got {pings} in 2s");

    // Wedge the pool with a job that ignores its cancel flag: the client gets
    // 504 at the deadline, and once the job has run for 2 × job_timeout the
    // pings stop so systemd would restart us.
    let addr = s.addr.clone();
    let wedge = std::thread::spawn(move || http(&addr, "POST /debug/wedge?ms=5000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"));
    assert_eq!(wedge.join().unwrap().status, 504);
    std::thread::sleep(Duration::from_millis(600));
    let during = collect(&rx, Duration::from_millis(1200));
    assert!(!during.iter().any(|m| m == "WATCHDOG=1"), "pings must stop while the pool is wedged: {during:?}");
    // The job ends, the pool is healthy again, the pings resume.
    next_matching(&rx, "WATCHDOG=1");

    // A blocked event loop cannot ping either.
    let addr = s.addr.clone();
    // (The window starts 500 ms after the request is sent and ends 1.5 s
    // before the loop is free again: room on both sides for a loaded machine.)
    let block = std::thread::spawn(move || http(&addr, "POST /debug/block?ms=3000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"));
    std::thread::sleep(Duration::from_millis(500));
    let during = collect(&rx, Duration::from_millis(1000));
    assert!(!during.iter().any(|m| m == "WATCHDOG=1"), "no pings from a blocked loop: {during:?}");
    assert_eq!(block.join().unwrap().status, 200);
    next_matching(&rx, "WATCHDOG=1");

    s.signal(Signal::SIGTERM);
    next_matching(&rx, "STOPPING=1");
    assert_eq!(s.wait_exit(), Some(0));
}

/// A backend host's instance: the unit's unix socket and its TCP socket for a
/// remote front come together (LISTEN_FDS=2); TCP peers outside backend.allow
/// are reset without an answer, and counted.
#[test]
fn unix_and_tcp_sockets_together_and_peers_outside_backend_allow_reset() {
    let dir = tempdir();
    let sock = dir.path().join("0.sock");
    let tcp = format!("127.0.0.1:{}", free_port());
    let (mut child, log) = socket_activate(&[sock.to_str().unwrap(), &tcp], &["--set", r#"backend.allow=["127.0.0.1"]"#]);
    wait_for("socket file", || sock.exists());
    let unix = format!("unix:{}", sock.display());
    let get = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    assert_eq!(http(&unix, get).json()["pid"], child.id());
    assert_eq!(http(&tcp, get).json()["pid"], child.id(), "the TCP socket is served by the same process");
    let started = log.iter().find(|l| l.contains("serving on")).unwrap();
    assert!(started.contains(&format!("unix:{} and {tcp} (systemd)", sock.display())), "{started}");

    // 127.0.0.2 is loopback too, but not in backend.allow.
    for _ in 0..3 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(&"127.0.0.2:0".parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
        s.connect(&tcp.parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
        let mut s: std::net::TcpStream = s.into();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // The reset may already have failed the write; then the read sees the end.
        let wrote = std::io::Write::write_all(&mut s, get.as_bytes());
        let mut buf = [0u8; 64];
        match std::io::Read::read(&mut s, &mut buf) {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
            Ok(0) => assert!(wrote.is_err(), "closed without a reset"),
            Ok(n) => panic!("a peer outside backend.allow got {n} bytes: {:?}", String::from_utf8_lossy(&buf[..n])),
        }
    }
    let metrics = http(&unix, "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").body;
    assert!(metrics.contains("corepool_tcp_refused_total 3"), "{metrics}");
    assert_eq!(http(&tcp, get).status, 200, "still serving allowed peers");
    let _ = child.kill();
    let _ = child.wait();
}
