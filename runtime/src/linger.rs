//! Lingering close: when the server closes a connection, it first shuts down
//! only its sending side, then keeps reading (and discarding) what the client
//! still sends, for a bounded time and amount, before closing for good.
//!
//! Without it, a client that writes a whole request body before reading (many
//! HTTP libraries do) never sees an early answer such as a 413: closing a
//! socket that still has unread data makes the kernel send a reset, which
//! destroys the answer in flight. nginx does the same (`lingering_close`).
//! hyper closes through `poll_shutdown`, so the wrapper does its part there.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest wait for the next piece of data while lingering (nginx: `lingering_timeout` 5s).
pub const LINGER_IDLE: Duration = Duration::from_secs(2);
/// Longest linger in all (nginx: `lingering_time` 30s).
pub const LINGER_TOTAL: Duration = Duration::from_secs(10);
/// Most bytes read and discarded while lingering.
pub const LINGER_BYTES: usize = 16 << 20;

enum Phase {
    Open,
    /// Our side is shut down; reading until EOF or a bound.
    Lingering {
        discarded: usize,
        total: Pin<Box<tokio::time::Sleep>>,
        idle: Pin<Box<tokio::time::Sleep>>,
    },
    Done,
}

/// An I/O stream whose shutdown lingers (see the module docs).
pub struct Linger<IO> {
    io: IO,
    phase: Phase,
}

impl<IO> Linger<IO> {
    pub fn new(io: IO) -> Linger<IO> {
        Linger { io, phase: Phase::Open }
    }
}

impl<IO: std::os::fd::AsRawFd> std::os::fd::AsRawFd for Linger<IO> {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.io.as_raw_fd()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Linger<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Linger<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.phase {
                Phase::Open => {
                    std::task::ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
                    this.phase =
                        Phase::Lingering { discarded: 0, total: Box::pin(tokio::time::sleep(LINGER_TOTAL)), idle: Box::pin(tokio::time::sleep(LINGER_IDLE)) };
                }
                Phase::Lingering { discarded, total, idle } => {
                    if total.as_mut().poll(cx).is_ready() || idle.as_mut().poll(cx).is_ready() || *discarded >= LINGER_BYTES {
                        this.phase = Phase::Done;
                        continue;
                    }
                    let mut scratch = [0u8; 8192];
                    let mut buf = ReadBuf::new(&mut scratch);
                    match Pin::new(&mut this.io).poll_read(cx, &mut buf) {
                        Poll::Ready(Ok(())) if buf.filled().is_empty() => this.phase = Phase::Done,
                        Poll::Ready(Ok(())) => {
                            *discarded += buf.filled().len();
                            let deadline = tokio::time::Instant::now() + LINGER_IDLE;
                            idle.as_mut().reset(deadline);
                        }
                        // A reset or any error ends it: the peer is gone.
                        Poll::Ready(Err(_)) => this.phase = Phase::Done,
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Phase::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

use std::future::Future as _;

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn shutdown_reads_what_the_peer_still_sends_then_ends_at_its_eof() {
        let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
        let mut a = Linger::new(a);
        a.write_all(b"413").await.unwrap();
        let writer = tokio::spawn(async move {
            // The peer keeps sending its body, then reads the answer and closes.
            b.write_all(&vec![7u8; 1 << 20]).await.unwrap();
            let mut answer = String::new();
            b.read_to_string(&mut answer).await.unwrap();
            answer
        });
        let started = std::time::Instant::now();
        a.shutdown().await.unwrap();
        assert!(started.elapsed() < LINGER_IDLE, "ended at the peer's EOF, not by timeout");
        assert_eq!(writer.await.unwrap(), "413");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_given_up_on() {
        let (a, _b) = tokio::net::UnixStream::pair().unwrap();
        let mut a = Linger::new(a);
        let started = tokio::time::Instant::now();
        a.shutdown().await.unwrap();
        assert_eq!(started.elapsed(), LINGER_IDLE);
    }
}
