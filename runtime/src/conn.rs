//! Accepting connections: the instance's listeners behind one [`Listeners`]
//! abstraction (unix and TCP alike, in the manner of axum's
//! `serve::Listener`), the stream type every connection is served on
//! ([`Socket`], so hyper's `serve_connection` appears once), accept errors
//! handled as axum's `handle_accept_error` does, and hyper's settings.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::Config;
use crate::listen::Listener;
use crate::state::State;

/// One accepted client connection, unix or TCP.
pub(crate) enum Socket {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

impl std::os::fd::AsRawFd for Socket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            Socket::Tcp(s) => s.as_raw_fd(),
            Socket::Unix(s) => s.as_raw_fd(),
        }
    }
}

macro_rules! either {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Socket::Tcp($s) => $e,
            Socket::Unix($s) => $e,
        }
    };
}

impl AsyncRead for Socket {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        either!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Socket {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        either!(self, s => Pin::new(s).poll_write(cx, buf))
    }
    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        either!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self, s => Pin::new(s).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// The instance's listening sockets, accepted from in turn.
pub(crate) struct Listeners {
    listeners: Vec<Listener>,
    /// Which listener is asked first next time, so none starves another.
    turn: usize,
}

impl Listeners {
    pub(crate) fn new(listeners: Vec<Listener>) -> Listeners {
        Listeners { listeners, turn: 0 }
    }

    /// The next connection a peer may have: a TCP peer outside
    /// `backend.allow` is reset at once and never served. Per-connection
    /// accept errors are skipped; resource exhaustion waits a while first
    /// ([`handle_accept_error`]), so a persistent EMFILE cannot spin the loop.
    pub(crate) async fn accept(&mut self, state: &State) -> Socket {
        loop {
            match self.poll_once().await {
                Ok((Socket::Tcp(s), Some(peer))) if !state.allowed(peer.ip()) => {
                    state.metrics.refused.inc();
                    tracing::debug!(%peer, "refused: not in backend.allow");
                    // RST instead of FIN: the peer sees "connection reset", not an empty answer.
                    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                }
                Ok((Socket::Tcp(s), _)) => {
                    let _ = s.set_nodelay(true);
                    return Socket::Tcp(s);
                }
                Ok((s, _)) => return s,
                Err(e) => handle_accept_error(e).await,
            }
        }
    }

    /// A connection already waiting in a backlog, without waiting for one.
    pub(crate) async fn accept_ready(&mut self, state: &State) -> Option<Socket> {
        tokio::time::timeout(Duration::ZERO, self.accept(state)).await.ok()
    }

    async fn poll_once(&mut self) -> io::Result<(Socket, Option<std::net::SocketAddr>)> {
        let turn = self.turn;
        self.turn = self.turn.wrapping_add(1);
        let listeners = &self.listeners;
        std::future::poll_fn(|cx| {
            let n = listeners.len();
            for k in 0..n {
                let polled = match &listeners[(turn + k) % n] {
                    Listener::Tcp(l) => l.poll_accept(cx).map_ok(|(s, peer)| (Socket::Tcp(s), Some(peer))),
                    Listener::Unix(l) => l.poll_accept(cx).map_ok(|(s, _)| (Socket::Unix(s), None)),
                };
                if polled.is_ready() {
                    return polled;
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// An error of one connection (the peer gave up before we accepted it)
/// rather than of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset)
        || matches!(e.raw_os_error(), Some(libc::EPROTO | libc::ENETDOWN | libc::ENONET | libc::EHOSTUNREACH | libc::ENETUNREACH))
}

/// How long an accept that failed for want of resources (EMFILE, ENFILE,
/// ENOBUFS, ENOMEM) waits before the next: axum's `serve` waits a second.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// axum's `handle_accept_error`: a connection's own error is ignored (the
/// next accept goes on at once); any other — resource exhaustion above all —
/// is logged and waited out, so the loop never spins on it.
async fn handle_accept_error(e: io::Error) {
    if is_connection_error(&e) {
        tracing::debug!(error = %e, "accept: connection gone before it was accepted");
        return;
    }
    tracing::warn!(error = %e, "accept failed; waiting {ACCEPT_BACKOFF:?} before the next");
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

/// How connections are served: HTTP/1.1 only (hyper's own HTTP/1 server,
/// nothing read ahead to guess the version), or also HTTP/2 with prior
/// knowledge (`http.h2c`: hyper-util's auto-detection).
pub(crate) enum Protocols {
    Http1(hyper::server::conn::http1::Builder),
    Auto(Box<auto::Builder<TokioExecutor>>),
}

/// hyper's settings from corepool's (fixed at start).
pub(crate) fn protocols(cfg: &Config) -> Protocols {
    if !cfg.http.h2c {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(TokioTimer::new()).keep_alive(true).header_read_timeout(cfg.http.header_timeout).max_buf_size(cfg.http.max_header_bytes);
        return Protocols::Http1(b);
    }
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1().timer(TokioTimer::new()).keep_alive(true).header_read_timeout(cfg.http.header_timeout).max_buf_size(cfg.http.max_header_bytes);
    b.http2().timer(TokioTimer::new()).keep_alive_interval(Some(Duration::from_secs(30)));
    Protocols::Auto(Box::new(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_error_is_not_the_listeners() {
        assert!(is_connection_error(&io::Error::from(io::ErrorKind::ConnectionAborted)));
        assert!(is_connection_error(&io::Error::from_raw_os_error(libc::EPROTO)));
        assert!(!is_connection_error(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(!is_connection_error(&io::Error::from_raw_os_error(libc::ENFILE)));
    }

    #[tokio::test(start_paused = true)]
    async fn resource_exhaustion_is_waited_out() {
        let t = tokio::time::Instant::now();
        handle_accept_error(io::Error::from_raw_os_error(libc::EMFILE)).await;
        assert_eq!(t.elapsed(), ACCEPT_BACKOFF);
        let t = tokio::time::Instant::now();
        handle_accept_error(io::Error::from(io::ErrorKind::ConnectionReset)).await;
        assert_eq!(t.elapsed(), Duration::ZERO);
    }
}
