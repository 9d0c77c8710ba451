//! Socket acquisition: take the listeners systemd passed us (socket activation,
//! `LISTEN_FDS`/`LISTEN_PID`: the unit's unix socket, plus a TCP one on a
//! backend host of a remote front), or bind `listen` ourselves when run by hand.
//!
//! Binding is only allowed when `LISTEN_FDS` is absent; a present but malformed
//! `LISTEN_FDS` (or one meant for another process) is a startup error, because
//! silently binding a different socket would hide a broken unit.

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where to listen when not socket-activated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(format!("`{s}`: unix socket path must be absolute"));
            }
            return Ok(ListenAddr::Unix(path.into()));
        }
        s.parse::<SocketAddr>().map(ListenAddr::Tcp).map_err(|_| format!("`{s}` is neither HOST:PORT (e.g. 127.0.0.1:3000, [::1]:3000) nor unix:/path"))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A listening socket, not yet registered with the runtime.
#[derive(Debug)]
pub enum StdListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// A listening socket registered with tokio.
#[derive(Debug)]
pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

/// The listeners and how we got them.
#[derive(Debug)]
pub struct Acquired {
    /// One when bound by hand; every socket of the unit when activated.
    pub listeners: Vec<StdListener>,
    /// True when systemd passed the socket.
    pub activated: bool,
    /// Human description, e.g. `unix:/run/corepool/0.sock (systemd)`.
    pub describe: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("LISTEN_FDS={0:?} is not a positive number of sockets")]
    BadFds(String),
    #[error("LISTEN_PID={0:?} is not a process id")]
    BadPid(String),
    #[error("LISTEN_FDS is set for process {expected}, not for this one ({actual})")]
    WrongPid { expected: u32, actual: u32 },
    #[error("socket from systemd (fd {0}) is neither a TCP nor a unix stream listener: {1}")]
    NotAListener(usize, std::io::Error),
    #[error("cannot bind {addr}: {error}")]
    Bind { addr: ListenAddr, error: std::io::Error },
    #[error("cannot bind {0}: another process is listening there")]
    InUse(ListenAddr),
}

/// Takes the socket systemd passed, or binds `fallback` if there is none.
pub fn acquire(fallback: &ListenAddr) -> Result<Acquired, ListenError> {
    acquire_from(std::env::var("LISTEN_FDS").ok(), std::env::var("LISTEN_PID").ok(), fallback)
}

fn acquire_from(fds: Option<String>, pid: Option<String>, fallback: &ListenAddr) -> Result<Acquired, ListenError> {
    let Some(fds) = fds else {
        let listener = bind(fallback)?;
        let describe = match &listener {
            StdListener::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| fallback.to_string()),
            StdListener::Unix(_) => fallback.to_string(),
        };
        return Ok(Acquired { listeners: vec![listener], activated: false, describe });
    };
    let count: u32 = fds.trim().parse().ok().filter(|&n| n >= 1).ok_or_else(|| ListenError::BadFds(fds.clone()))?;
    if let Some(pid) = pid.filter(|p| !p.is_empty()) {
        let expected: u32 = pid.trim().parse().map_err(|_| ListenError::BadPid(pid.clone()))?;
        let actual = std::process::id();
        if expected != actual {
            return Err(ListenError::WrongPid { expected, actual });
        }
    }
    // Every socket the unit lists: its unix socket, and a TCP one for a remote
    // front when `[backend]` gave it one (see `units::backend_dropin`).
    let mut fds = listenfd::ListenFd::from_env();
    let mut listeners = Vec::new();
    let mut names = Vec::new();
    for idx in 0..count as usize {
        // Try TCP first; a unix socket makes that fail without consuming the fd.
        let listener = match fds.take_tcp_listener(idx) {
            Ok(Some(l)) => StdListener::Tcp(l),
            _ => match fds.take_unix_listener(idx) {
                Ok(Some(l)) => StdListener::Unix(l),
                Ok(None) => return Err(ListenError::NotAListener(idx + 3, std::io::Error::other("fd already taken"))),
                Err(e) => return Err(ListenError::NotAListener(idx + 3, e)),
            },
        };
        names.push(match &listener {
            StdListener::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            StdListener::Unix(l) => format!("unix:{}", l.local_addr().ok().and_then(|a| a.as_pathname().map(|p| p.display().to_string())).unwrap_or_default()),
        });
        listeners.push(listener);
    }
    let describe = format!("{} (systemd)", names.join(" and "));
    Ok(Acquired { listeners, activated: true, describe })
}

fn bind(addr: &ListenAddr) -> Result<StdListener, ListenError> {
    let err = |error| ListenError::Bind { addr: addr.clone(), error };
    match addr {
        ListenAddr::Tcp(sa) => {
            use socket2::{Domain, Socket, Type};
            let sock = Socket::new(Domain::for_address(*sa), Type::STREAM, None).map_err(err)?;
            sock.set_reuse_address(true).map_err(err)?;
            sock.bind(&(*sa).into()).map_err(err)?;
            // A deep backlog: connections wait there while we are at max_connections.
            sock.listen(4096).map_err(err)?;
            Ok(StdListener::Tcp(sock.into()))
        }
        ListenAddr::Unix(path) => {
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if !meta.file_type().is_socket() {
                    return Err(err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "path exists and is not a socket")));
                }
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(ListenError::InUse(addr.clone()));
                }
                // Stale socket from a previous run.
                std::fs::remove_file(path).map_err(err)?;
            }
            std::os::unix::net::UnixListener::bind(path).map(StdListener::Unix).map_err(err)
        }
    }
}

/// A classic BPF socket filter for a listening TCP socket: drops a segment
/// with SYN set and ACK clear (a new connection), passes everything else (the
/// ACK completing a handshake already under way, so that connection still
/// reaches the accept queue). The kernel runs it on the TCP header.
const DROP_NEW_SYN: [(u16, u8, u8, u32); 5] = [
    (0x30, 0, 0, 13),          // ldb [13]: the TCP flags
    (0x45, 2, 0, 0x10),        // jset #ACK -> pass
    (0x45, 0, 1, 0x02),        // jset #SYN -> drop, else pass
    (0x06, 0, 0, 0),           // ret #0: drop
    (0x06, 0, 0, 0xffff_ffff), // ret #-1: pass
];

/// Holds new connections off a listening TCP socket that is about to close
/// for good (`NAME scale` down, `disable` on a backend host): their SYNs are
/// dropped, so none completes into a backlog that the kernel resets when the
/// socket closes (a reset after nginx has written a request into the
/// connection fails it, and nginx cannot retry a POST). The peer retransmits,
/// finds the port closed (refused) or times out connecting, and nginx sends
/// the request to another server. Connections already completed stay queued
/// for the instance to accept. The filter is on the socket, so it reaches
/// every process holding it: `corepool-ctl` sets it on the instance's socket
/// as root (some kernels refuse socket filters to unprivileged processes).
pub fn hold_off(socket: impl AsFd) -> std::io::Result<()> {
    let prog: Vec<socket2::SockFilter> = DROP_NEW_SYN.iter().map(|&(c, t, f, k)| socket2::SockFilter::new(c, t, f, k)).collect();
    socket2::SockRef::from(&socket).attach_filter(&prog)
}

/// Removes a filter [`hold_off`] left on the socket (a socket that did not
/// close after all, say an interrupted `disable`, comes back with it); no
/// filter is not an error.
pub fn accept_new(socket: impl AsFd) -> std::io::Result<()> {
    match socket2::SockRef::from(&socket).detach_filter() {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}

/// Whether `fd` is a listening TCP socket.
pub fn is_tcp_listener(fd: impl AsFd) -> bool {
    let s = socket2::SockRef::from(&fd);
    s.is_listener().unwrap_or(false) && s.r#type().ok() == Some(socket2::Type::STREAM) && s.local_addr().ok().and_then(|a| a.as_socket()).is_some()
}

impl Listener {
    /// Removes a hold-off filter from a TCP listener (see [`accept_new`]).
    pub fn accept_new(&self) -> std::io::Result<()> {
        match self {
            Listener::Tcp(l) => accept_new(l),
            Listener::Unix(_) => Ok(()),
        }
    }
}

impl StdListener {
    /// Registers the socket with the current tokio runtime.
    pub fn into_tokio(self) -> std::io::Result<Listener> {
        Ok(match self {
            StdListener::Tcp(l) => {
                l.set_nonblocking(true)?;
                Listener::Tcp(tokio::net::TcpListener::from_std(l)?)
            }
            StdListener::Unix(l) => {
                l.set_nonblocking(true)?;
                Listener::Unix(tokio::net::UnixListener::from_std(l)?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A connection completed before `hold_off` is still accepted; a new one
    /// is not (its SYN is dropped: connecting times out); `accept_new` undoes
    /// it. (Run as root: some kernels refuse socket filters to other users.)
    #[tokio::test]
    async fn hold_off_keeps_the_queue_and_drops_new_connections() {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        assert!(is_tcp_listener(&std_listener));
        let l = StdListener::Tcp(std_listener).into_tokio().unwrap();
        let Listener::Tcp(t) = &l else { unreachable!() };
        let _early = std::net::TcpStream::connect(addr).unwrap();
        hold_off(t).expect("attaching the socket filter (needs root on some kernels)");
        let late = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300));
        assert_eq!(late.unwrap_err().kind(), std::io::ErrorKind::TimedOut, "a new connection completed while held off");
        tokio::time::timeout(Duration::from_secs(2), t.accept()).await.expect("the early connection was lost").unwrap();
        l.accept_new().unwrap();
        l.accept_new().unwrap(); // no filter left: not an error
        let _again = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("still held off after accept_new");
        tokio::time::timeout(Duration::from_secs(2), t.accept()).await.unwrap().unwrap();
    }

    #[test]
    fn only_a_listening_tcp_socket_is_one() {
        let dir = tempfile::tempdir().unwrap();
        let unix = std::os::unix::net::UnixListener::bind(dir.path().join("s.sock")).unwrap();
        assert!(!is_tcp_listener(&unix));
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let conn = std::net::TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
        assert!(!is_tcp_listener(&conn));
        assert!(is_tcp_listener(&tcp));
    }

    #[test]
    fn parses_addresses() {
        assert_eq!("127.0.0.1:3000".parse::<ListenAddr>().unwrap(), ListenAddr::Tcp("127.0.0.1:3000".parse().unwrap()));
        assert_eq!("unix:/run/x.sock".parse::<ListenAddr>().unwrap(), ListenAddr::Unix("/run/x.sock".into()));
        assert!("unix:rel.sock".parse::<ListenAddr>().is_err());
        assert!("localhost".parse::<ListenAddr>().is_err());
    }

    #[test]
    fn malformed_listen_fds_is_an_error_not_a_bind() {
        let addr: ListenAddr = "127.0.0.1:0".parse().unwrap();
        for bad in ["", "x", "0", "-1"] {
            let e = acquire_from(Some(bad.into()), None, &addr).unwrap_err();
            assert!(matches!(e, ListenError::BadFds(_)), "{bad}: {e}");
        }
        let e = acquire_from(Some("1".into()), Some("nope".into()), &addr).unwrap_err();
        assert!(matches!(e, ListenError::BadPid(_)));
        let e = acquire_from(Some("1".into()), Some("1".into()), &addr).unwrap_err();
        assert!(matches!(e, ListenError::WrongPid { expected: 1, .. }), "{e}");
    }

    #[test]
    fn binds_when_not_activated() {
        let a = acquire_from(None, None, &"127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(!a.activated);
        assert!(matches!(a.listeners[..], [StdListener::Tcp(_)]));
    }

    #[test]
    fn unix_bind_replaces_stale_socket_but_not_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let addr = ListenAddr::Unix(path.clone());
        let live = bind(&addr).unwrap();
        assert!(matches!(bind(&addr), Err(ListenError::InUse(_))));
        drop(live); // the file stays behind, stale
        assert!(path.exists());
        bind(&addr).unwrap();
    }
}
