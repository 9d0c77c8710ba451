//! Test helpers: spawn the real `corepool` binary and talk raw HTTP/1.1 to it,
//! so malformed requests can be sent exactly as written.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_corepool");

/// Generous upper bound for anything that should happen "soon" (hangs only).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A running corepool process; killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub log: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `corepool serve` on an ephemeral loopback port with `--set` flags.
    pub fn start(sets: &[&str]) -> Server {
        Self::start_with(sets, &[])
    }

    pub fn start_with(sets: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "human"]);
        for s in sets {
            cmd.args(["--set", s]);
        }
        cmd.env_remove("NOTIFY_SOCKET").env_remove("LISTEN_FDS").env_remove("LISTEN_PID");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd)
    }

    /// Spawns a prepared command and waits for its "serving on ADDR" line.
    pub fn spawn(mut cmd: Command) -> Server {
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn corepool");
        let log = pipe_lines(child.stdout.take().unwrap());
        let line = line_containing(&log, "serving on ").unwrap_or_else(|| panic!("corepool did not report serving; exit: {:?}", child.try_wait()));
        let addr = line.split("serving on ").nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap().to_string();
        Server { child, addr, log }
    }

    /// Waits (bounded) for the next log line containing `text`, skipping the others.
    pub fn logged(&self, text: &str) -> String {
        line_containing(&self.log, text).unwrap_or_else(|| panic!("timed out waiting for a log line containing {text:?}"))
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn get(&self, path: &str) -> Resp {
        http(&self.addr, &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
    }

    /// Sends `raw` on a connection of its own thread, for requests that must
    /// be in flight while the test does something else.
    pub fn spawn_http(&self, raw: &'static str) -> std::thread::JoinHandle<Resp> {
        let addr = self.addr.clone();
        std::thread::spawn(move || http(&addr, raw))
    }

    pub fn post(&self, path: &str, body: &str) -> Resp {
        http(&self.addr, &format!("POST {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len()))
    }

    /// Value of an unlabelled-or-instance-labelled metric line starting with `name`.
    pub fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics").body;
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("metric {name} not found in:\n{text}"))
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// Waits for exit (bounded) and returns the exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "corepool did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `f` holds, polling (bounded).
    pub fn until(&self, what: &str, mut f: impl FnMut(&Server) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !f(self) {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The next line from `log` containing `text`, within PATIENCE; None if none came.
fn line_containing(log: &mpsc::Receiver<String>, text: &str) -> Option<String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let line = log.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok()?;
        if line.contains(text) {
            return Some(line);
        }
    }
}

/// Forwards a pipe's lines to a channel (and to the test's stderr for debugging).
pub fn pipe_lines(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            eprintln!("[corepool] {line}");
            // Keep draining even when nobody listens, so the child never blocks on a full pipe.
            let _ = tx.send(line);
        }
    });
    rx
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
    /// Asserts the uniform error shape and returns the message.
    pub fn error(&self) -> String {
        let j = self.json();
        assert_eq!(j["code"], self.status, "code field matches status: {j}");
        j["error"].as_str().expect("error field").to_string()
    }
}

/// Connects to `HOST:PORT` or `unix:/path`.
pub fn connect(addr: &str) -> Box<dyn ReadWrite> {
    if let Some(p) = addr.strip_prefix("unix:") {
        let s = UnixStream::connect(p).expect("connect unix");
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        Box::new(s)
    } else {
        let s = TcpStream::connect(addr).expect("connect tcp");
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        Box::new(s)
    }
}

pub trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// Sends raw bytes and reads the whole response until the server closes.
pub fn http(addr: &str, raw: &str) -> Resp {
    http_bytes(addr, raw.as_bytes())
}

pub fn http_bytes(addr: &str, raw: &[u8]) -> Resp {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    read_response(&mut s)
}

/// Reads one response (Content-Length framed, or to EOF).
pub fn read_response(s: &mut dyn ReadWrite) -> Resp {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(0) => panic!("connection closed before a full response head: {:?}", String::from_utf8_lossy(&buf)),
            Ok(_) => buf.push(byte[0]),
            Err(e) => panic!("read failed: {e}; got {:?}", String::from_utf8_lossy(&buf)),
        }
    }
    let head = String::from_utf8(buf).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let len = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.parse::<usize>().unwrap());
    let mut body = Vec::new();
    match len {
        Some(n) => {
            body.resize(n, 0);
            s.read_exact(&mut body).unwrap();
        }
        None => {
            let _ = s.read_to_end(&mut body);
        }
    }
    Resp { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

/// True when the peer closed the connection (EOF) within `within`.
pub fn closed_within(s: &mut dyn ReadWrite, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 256];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
    false
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}
