//! WebSockets at the transport: what corepool does to every upgraded
//! connection, whatever library its handler speaks WebSocket with (axum's
//! `WebSocketUpgrade`, tungstenite directly).
//!
//! Every connection's stream is a [`Tap`]. It passes bytes through untouched
//! until the request wrapper answers a WebSocket handshake with 101 and
//! [arms](Slot::arm) it; from then on it follows the frames in both
//! directions (their headers only: payloads are never copied) and
//!
//! - counts messages and bytes each way, and the close code;
//! - refuses a client frame over `streams.max_frame` or a message over
//!   `streams.max_message` with close 1009, and a frame no WebSocket peer may
//!   send (reserved bits without an extension, an unknown opcode, an unmasked
//!   client frame, a fragmented or oversized control frame, a continuation
//!   with no message open) with close 1002 — the offending frame never reaches
//!   the handler, which sees its connection end;
//! - sends a ping every `streams.ping_interval` (so no proxy times the
//!   tunnel out), and cuts a peer that sent nothing, not even the pong, for
//!   an interval after a ping (dead, or unreachable) — bytes waiting unread
//!   in the socket count as a sign of life, for handlers that only write;
//! - on drain, after a moment for the handler's own last message, sends a
//!   close frame 1012 and lets the handler's library complete the closing
//!   handshake; after it, the handler's own close reply is dropped and any
//!   other write fails (a handler that only writes learns the session is
//!   over); what has not closed by `streams.close_timeout` is cut;
//! - accepts RSV1 on data frames when the 101 agreed permessage-deflate;
//!
//! Frames of its own are written only between the handler's frames (a
//! control frame may also sit between the fragments of a message, RFC 6455
//! §5.4), so the stream the peer reads stays well-formed.
//!
//! Limits: bytes a client sent after its handshake *before* reading the
//! 101 (RFC 6455 §4.1 forbids it; browsers and common libraries never do)
//! were already read by hyper and are not seen here. Pings and the close go
//! out when the handler's task polls its socket (reads or writes): axum's
//! and tokio-tungstenite's sockets wake every task using either half, but a
//! handler that splits the raw upgraded stream into halves of its own, or
//! polls it not at all, gets them late or only by the cut at
//! `streams.close_timeout`.

use std::future::Future as _;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

use crate::drain::{TrackGuard, Waiter};
use crate::metrics::{CloseLabels, DirectionLabels, StreamMetrics};
use crate::state::State;

/// Close codes (RFC 6455 §7.4.1; 1012 from the IANA registry).
pub(crate) mod code {
    pub const PROTOCOL: u16 = 1002;
    pub const ABNORMAL: u16 = 1006;
    pub const TOO_BIG: u16 = 1009;
    pub const RESTART: u16 = 1012;

    /// A close code as a metric label: the registered codes each, the
    /// ranges for libraries (3xxx) and applications (4xxx), `invalid` for
    /// the rest — so a client cannot add series at will.
    pub fn label(code: u16) -> &'static str {
        const REGISTERED: [&str; 16] =
            ["1000", "1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008", "1009", "1010", "1011", "1012", "1013", "1014", "1015"];
        match code {
            1000..=1015 => REGISTERED[(code - 1000) as usize],
            3000..=3999 => "3xxx",
            4000..=4999 => "4xxx",
            _ => "invalid",
        }
    }
}

/// How long after the drain began its close goes out while handlers wait for
/// the drain (at most half of `streams.close_timeout`): their own last
/// message comes first. With none waiting, it goes at once.
const LAST_WORD: Duration = Duration::from_millis(200);

/// Bytes received on `fd` and not read yet (0 when it cannot be told).
fn waiting_bytes(fd: RawFd) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int; the descriptor is our open socket.
    if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) } == 0 {
        n
    } else {
        0
    }
}

/// What the request wrapper hands a connection whose handshake it answered
/// with 101: the WebSocket's place under `streams.max_websockets` and the
/// settings in force.
pub(crate) struct Armed {
    permit: OwnedSemaphorePermit,
    state: Arc<State>,
    /// permessage-deflate was agreed (the 101 says so): RSV1 is allowed.
    deflate: bool,
}

/// The request wrapper's way to a connection's [`Tap`].
#[derive(Default)]
pub(crate) struct Slot {
    armed: AtomicBool,
    pending: Mutex<Option<Armed>>,
    /// The connection's socket, and its entry in the instance's registry of
    /// stream sockets once it serves an SSE stream (so the drain can cut it).
    fd: RawFd,
    stream: Mutex<Option<(u64, Arc<State>)>>,
}

impl Slot {
    /// The slot of the connection on socket `fd`.
    pub(crate) fn new(fd: RawFd) -> Slot {
        Slot { fd, ..Slot::default() }
    }

    /// Turns the connection into a WebSocket once the 101 goes out.
    pub(crate) fn arm(&self, permit: OwnedSemaphorePermit, state: Arc<State>, response: &http::HeaderMap) {
        let deflate = response
            .get(http::header::SEC_WEBSOCKET_EXTENSIONS)
            .is_some_and(|v| v.as_bytes().windows(18).any(|w| w.eq_ignore_ascii_case(b"permessage-deflate")));
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(Armed { permit, state, deflate });
        self.armed.store(true, Ordering::Release);
    }

    /// The connection serves an SSE stream: the drain may cut its socket if
    /// the stream has not ended by `streams.close_timeout` (a client that
    /// stopped reading). Undone when the connection's stream drops.
    pub(crate) fn serves_stream(&self, state: &Arc<State>) {
        let mut s = self.stream.lock().unwrap_or_else(|p| p.into_inner());
        if s.is_none() {
            *s = Some((state.streams.register(self.fd), state.clone()));
        }
    }

    fn forget_stream(&self) {
        if let Some((id, state)) = self.stream.lock().unwrap_or_else(|p| p.into_inner()).take() {
            state.streams.forget(id);
        }
    }

    #[inline]
    fn take(&self) -> Option<Armed> {
        // A load first: this is asked on every read and write of every connection.
        if !self.armed.load(Ordering::Acquire) || !self.armed.swap(false, Ordering::AcqRel) {
            return None;
        }
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// A connection's stream: plain until armed, then a WebSocket (module docs).
pub(crate) struct Tap<IO> {
    // Before `io`: fields drop in order, and `Ws` must leave the registry of
    // sockets (`Streams::forget`) before the descriptor is closed.
    ws: Option<Box<Ws>>,
    io: IO,
    slot: Arc<Slot>,
}

impl<IO> Tap<IO> {
    pub(crate) fn new(io: IO, slot: Arc<Slot>) -> Tap<IO> {
        Tap { ws: None, io, slot }
    }
}

impl<IO> Drop for Tap<IO> {
    fn drop(&mut self) {
        // Before the fields, so before the socket closes.
        self.slot.forget_stream();
    }
}

impl<IO: AsRawFd> Tap<IO> {
    #[inline]
    fn activate(&mut self) {
        if self.ws.is_none() {
            if let Some(armed) = self.slot.take() {
                self.ws = Some(Box::new(Ws::new(armed, self.io.as_raw_fd())));
            }
        }
    }
}

/// A WebSocket's bookkeeping.
struct Ws {
    state: Arc<State>,
    metrics: StreamMetrics,
    /// Until the 101's head has been written: the last bytes seen of it.
    head: Option<u32>,
    out: Cursor,
    inn: Cursor,
    /// Bytes of our own frame being written, and how far.
    inject: Vec<u8>,
    injected: usize,
    /// A frame of ours waiting for the handler to finish one of its own.
    queued: Option<Control>,
    /// We sent a close: what the handler writes from now on is dropped.
    closed_by_us: bool,
    /// A close frame went either way (the first one is counted).
    close_seen: bool,
    /// A frame from the client broke a rule: the handler reads no more.
    refused: bool,
    drain: Waiter,
    /// When the drain's close goes out: a moment after the drain began, so
    /// that a handler watching `Ctx::draining` gets its last word in first.
    closing_at: Option<Instant>,
    ping: Pin<Box<Sleep>>,
    interval: Duration,
    /// Last sign of life from the peer: bytes the handler read, or bytes
    /// waiting in the socket that it has not read yet.
    last_heard: Instant,
    waiting: i32,
    /// When our last ping went out: a peer that sent nothing for an
    /// interval after it is taken for dead.
    pinged: Option<Instant>,
    /// The peer closed its side without a close frame.
    peer_gone: bool,
    max_frame: u64,
    max_message: u64,
    rsv_allowed: u8,
    bytes_in: prometheus_client::metrics::counter::Counter,
    bytes_out: prometheus_client::metrics::counter::Counter,
    messages_in: prometheus_client::metrics::counter::Counter,
    messages_out: prometheus_client::metrics::counter::Counter,
    fd: RawFd,
    id: u64,
    _permit: OwnedSemaphorePermit,
    _open: TrackGuard,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Control {
    Ping,
    Close(u16, &'static str),
}

impl Ws {
    fn new(armed: Armed, fd: RawFd) -> Ws {
        let state = armed.state;
        let cfg = state.config();
        let s = &cfg.streams;
        let metrics = state.streams.metrics.clone();
        metrics.websockets_open.inc();
        let id = state.streams.register(fd);
        let counter = |f: &prometheus_client::metrics::family::Family<DirectionLabels, prometheus_client::metrics::counter::Counter>, direction| {
            f.get_or_create(&DirectionLabels { direction }).clone()
        };
        Ws {
            bytes_in: counter(&metrics.ws_bytes, "in"),
            bytes_out: counter(&metrics.ws_bytes, "out"),
            messages_in: counter(&metrics.ws_messages, "in"),
            messages_out: counter(&metrics.ws_messages, "out"),
            metrics,
            head: Some(0),
            out: Cursor::default(),
            inn: Cursor::default(),
            inject: Vec::new(),
            injected: 0,
            queued: None,
            closed_by_us: false,
            close_seen: false,
            refused: false,
            drain: state.streams.draining(),
            closing_at: None,
            ping: Box::pin(tokio::time::sleep(s.ping_interval)),
            interval: s.ping_interval,
            last_heard: Instant::now(),
            waiting: 0,
            pinged: None,
            peer_gone: false,
            max_frame: s.max_frame as u64,
            max_message: s.max_message as u64,
            rsv_allowed: if armed.deflate { 0x4 } else { 0 },
            fd,
            id,
            _permit: armed.permit,
            _open: state.streams.track(),
            state,
        }
    }

    fn closed(&mut self, code: u16, by: &'static str) {
        if !self.close_seen {
            self.close_seen = true;
            self.metrics.ws_closes.get_or_create(&CloseLabels { code: code::label(code), by }).inc();
        }
    }

    /// Queues a frame of ours (a close replaces a ping; nothing follows a close).
    fn queue(&mut self, c: Control) {
        if self.closed_by_us || self.out.closed {
            return;
        }
        match (self.queued, c) {
            (Some(Control::Close(..)), _) => {}
            _ => self.queued = Some(c),
        }
    }

    /// Turns the queued frame into bytes when the handler is between frames.
    fn materialize(&mut self) {
        if self.injected < self.inject.len() || !self.out.at_boundary() || self.head.is_some() {
            return;
        }
        let Some(c) = self.queued.take() else { return };
        self.inject.clear();
        self.injected = 0;
        match c {
            Control::Ping => {
                self.inject.extend_from_slice(&[0x89, 0x00]);
                self.pinged = Some(Instant::now());
            }
            Control::Close(code, reason) => {
                self.inject.extend_from_slice(&[0x88, (2 + reason.len()) as u8]);
                self.inject.extend_from_slice(&code.to_be_bytes());
                self.inject.extend_from_slice(reason.as_bytes());
                self.closed_by_us = true;
                self.closed(code, "server");
            }
        }
    }

    /// Writes what is materialized of our frames; Ready once none is left.
    fn flush_inject<IO: AsyncWrite + Unpin>(&mut self, io: &mut IO, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.materialize();
        while self.injected < self.inject.len() {
            let n = std::task::ready!(Pin::new(&mut *io).poll_write(cx, &self.inject[self.injected..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.bytes_out.inc_by(n as u64);
            self.injected += n;
        }
        Poll::Ready(Ok(()))
    }

    /// The drain and the ping timer: queue what they call for.
    fn tick(&mut self, cx: &mut Context<'_>) {
        if self.closing_at.is_none() && self.drain.poll_begun(cx) {
            // The timer now waits for the close (no ping is needed after it).
            let grace = if self.state.streams.watched() { LAST_WORD.min(self.state.config().streams.close_timeout / 2) } else { Duration::ZERO };
            let now = Instant::now();
            self.closing_at = Some(now + grace);
            if grace.is_zero() {
                self.queue(Control::Close(code::RESTART, "service restart"));
                self.ping.as_mut().reset(now + Duration::from_secs(3600));
                return;
            }
            self.ping.as_mut().reset(now + grace);
        }
        while self.ping.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            if self.closing_at.is_some_and(|at| now >= at) {
                self.queue(Control::Close(code::RESTART, "service restart"));
                self.ping.as_mut().reset(now + Duration::from_secs(3600));
                return;
            }
            // Bytes waiting unread in the socket are a sign of life too (a
            // handler that only writes, or is busy, reads none of them).
            let waiting = waiting_bytes(self.fd);
            if waiting != self.waiting {
                self.waiting = waiting;
                self.last_heard = now;
            }
            // Silence counts from a ping that went out, not from a handler
            // that was busy elsewhere and let nothing out.
            let unanswered = self.pinged.is_some_and(|p| self.last_heard < p && now.duration_since(p) >= self.interval);
            if unanswered {
                tracing::debug!("websocket peer silent for {:?} after a ping: cutting it", now.duration_since(self.last_heard));
                self.closed(code::ABNORMAL, "server");
                // SAFETY: our own open socket; the handler's next read ends.
                unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
                self.ping.as_mut().reset(now + Duration::from_secs(3600));
                return;
            }
            self.queue(Control::Ping);
            self.ping.as_mut().reset(now + self.interval);
        }
    }

    /// Follows the handler's bytes as written.
    fn wrote(&mut self, mut data: &[u8]) {
        if let Some(tail) = self.head.as_mut() {
            // The 101 head ends at the first blank line written after arming.
            let mut t = *tail;
            let mut end = None;
            for (i, b) in data.iter().enumerate() {
                t = (t << 8) | *b as u32;
                if t == u32::from_be_bytes(*b"\r\n\r\n") {
                    end = Some(i + 1);
                    break;
                }
            }
            *tail = t;
            match end {
                None => return,
                Some(e) => {
                    self.head = None;
                    data = &data[e..];
                }
            }
        }
        self.bytes_out.inc_by(data.len() as u64);
        let mut messages = 0;
        let mut close = None;
        let _ = self.out.feed::<()>(data, |ev| {
            match ev {
                Event::End(h) if h.fin && h.opcode < 0x8 => messages += 1,
                Event::Close(c) => close = Some(c),
                _ => {}
            }
            Ok(())
        });
        if messages > 0 {
            self.messages_out.inc_by(messages);
        }
        if let Some(c) = close {
            self.closed(c, "server");
        }
    }

    /// Checks the client's bytes as read; Err(code, offset) names the frame
    /// that broke a rule and where it began in `data`.
    fn read(&mut self, data: &[u8]) -> Result<(), (u16, usize)> {
        self.last_heard = Instant::now();
        self.waiting = 0;
        self.bytes_in.inc_by(data.len() as u64);
        let (max_frame, max_message, rsv) = (self.max_frame, self.max_message, self.rsv_allowed);
        let mut messages = 0;
        let mut close = None;
        let verdict = self.inn.feed(data, |ev| match ev {
            Event::Prelude(h, open_message) | Event::Head(h, open_message) => check_client_frame(h, open_message, max_frame, max_message, rsv),
            Event::End(h) => {
                if h.fin && h.opcode < 0x8 {
                    messages += 1;
                }
                Ok(())
            }
            Event::Close(c) => {
                close = Some(c);
                Ok(())
            }
        });
        if messages > 0 {
            self.messages_in.inc_by(messages);
        }
        if let Some(c) = close {
            self.closed(c, "client");
        }
        verdict
    }
}

impl Drop for Ws {
    fn drop(&mut self) {
        self.closed(code::ABNORMAL, if self.peer_gone { "client" } else { "server" });
        self.metrics.websockets_open.dec();
        self.state.streams.forget(self.id);
    }
}

/// The rules a client's frame must keep (module docs); Err(close code).
fn check_client_frame(h: &Head, open_message: Option<u64>, max_frame: u64, max_message: u64, rsv_allowed: u8) -> Result<(), u16> {
    let control = h.opcode >= 0x8;
    let known = matches!(h.opcode, 0x0..=0x2 | 0x8..=0xA);
    // RSV1 marks a compressed message's first frame, when permessage-deflate was agreed.
    let rsv_ok = h.rsv == 0 || (h.rsv & !rsv_allowed == 0 && matches!(h.opcode, 0x1 | 0x2));
    if !rsv_ok || !known || !h.masked || (control && (!h.fin || h.len > 125)) {
        return Err(code::PROTOCOL);
    }
    match (h.opcode, open_message) {
        (0x0, None) | (0x1 | 0x2, Some(_)) => return Err(code::PROTOCOL),
        _ => {}
    }
    if h.len > max_frame || (!control && open_message.unwrap_or(0) + h.len > max_message) {
        return Err(code::TOO_BIG);
    }
    Ok(())
}

impl<IO: AsyncRead + AsyncWrite + AsRawFd + Unpin> AsyncRead for Tap<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.activate();
        let Some(ws) = this.ws.as_mut() else {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        };
        ws.tick(cx);
        // Our frames go out from here too: a handler awaiting its next
        // message is polling this, not writing. Pending here only means the
        // socket is full; reading goes on.
        if let Poll::Ready(Err(e)) = ws.flush_inject(&mut this.io, cx) {
            return Poll::Ready(Err(e));
        }
        if ws.refused {
            // The handler reads the end once our close is out.
            return match ws.flush_inject(&mut this.io, cx) {
                Poll::Ready(_) => Poll::Ready(Ok(())),
                Poll::Pending => Poll::Pending,
            };
        }
        let before = buf.filled().len();
        std::task::ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        if buf.filled().len() == before {
            ws.peer_gone = true;
            return Poll::Ready(Ok(()));
        }
        if let Err((code, at)) = ws.read(&buf.filled()[before..]) {
            buf.set_filled(before + at);
            tracing::debug!(code, "websocket frame refused; closing");
            ws.refused = true;
            ws.queued = None;
            ws.queue(Control::Close(code, if code == code::TOO_BIG { "frame or message too big" } else { "protocol error" }));
            let _ = ws.flush_inject(&mut this.io, cx);
            if at == 0 {
                // Nothing for the handler this time: wake it again for the end.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + AsyncWrite + AsRawFd + Unpin> AsyncWrite for Tap<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.activate();
        let Some(ws) = this.ws.as_mut() else {
            return Pin::new(&mut this.io).poll_write(cx, buf);
        };
        if ws.head.is_none() {
            ws.tick(cx);
            std::task::ready!(ws.flush_inject(&mut this.io, cx))?;
        }
        if ws.closed_by_us {
            // After our close, the handler's own close (its reply to the
            // peer's) is dropped: a second close would break the protocol.
            // Anything else fails, so a handler that only writes learns that
            // the session is over.
            if buf.first().is_some_and(|b| b & 0x0f == 0x8) {
                return Poll::Ready(Ok(buf.len()));
            }
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "the WebSocket was closed (service restart)")));
        }
        let n = std::task::ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
        ws.wrote(&buf[..n]);
        // Between two of the handler's frames now: ours may go.
        let _ = ws.flush_inject(&mut this.io, cx);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        if self.ws.is_none() && !self.slot.armed.load(Ordering::Acquire) {
            let this = self.get_mut();
            return Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        }
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &b[..]);
        self.poll_write(cx, first)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(ws) = this.ws.as_mut() {
            std::task::ready!(ws.flush_inject(&mut this.io, cx))?;
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(ws) = this.ws.as_mut() {
            std::task::ready!(ws.flush_inject(&mut this.io, cx))?;
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// A frame's header.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Head {
    fin: bool,
    rsv: u8,
    opcode: u8,
    masked: bool,
    mask: [u8; 4],
    len: u64,
}

/// What [`Cursor::feed`] reports.
enum Event<'a> {
    /// A frame's first two bytes are in (`len` is the 7-bit length field).
    Prelude(&'a Head, Option<u64>),
    /// A frame's header is complete; with the length so far of the message
    /// it continues, if one is open.
    Head(&'a Head, Option<u64>),
    /// A close frame's code (1005 when it has none).
    Close(u16),
    /// A frame's last byte went by.
    End(&'a Head),
}

/// Where a byte stream of WebSocket frames is: in a header (collecting it),
/// in a payload (skipping it), or between frames.
#[derive(Default)]
struct Cursor {
    hdr: [u8; 14],
    have: usize,
    frame: Option<Head>,
    left: u64,
    /// A close frame's first two payload bytes, while they come.
    close: Option<(u16, u8)>,
    /// Length so far of the fragmented message open, if any.
    message: Option<u64>,
    /// A close frame went by: the stream is over.
    closed: bool,
}

impl Cursor {
    fn at_boundary(&self) -> bool {
        self.have == 0 && self.frame.is_none()
    }

    /// Bytes of the header needed so far (2, then 2 + length + mask).
    fn need(&self) -> usize {
        if self.have < 2 {
            return 2;
        }
        let ext = match self.hdr[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        2 + ext + if self.hdr[1] & 0x80 != 0 { 4 } else { 0 }
    }

    /// Follows `data`. `on` may refuse a frame at its header; then feeding
    /// stops and the error carries where that frame began in `data` (0 if
    /// before it).
    fn feed<E>(&mut self, data: &[u8], mut on: impl FnMut(Event<'_>) -> Result<(), E>) -> Result<(), (E, usize)> {
        let mut i = 0;
        let mut frame_start = 0;
        while i < data.len() {
            if self.frame.is_none() {
                if self.have == 0 {
                    frame_start = i;
                }
                while self.have < self.need() && i < data.len() {
                    self.hdr[self.have] = data[i];
                    self.have += 1;
                    i += 1;
                    if self.have == 2 {
                        // What the first two bytes say can be judged at once
                        // (a bad frame may never send the rest).
                        let b = &self.hdr;
                        let h = Head {
                            fin: b[0] & 0x80 != 0,
                            rsv: (b[0] >> 4) & 0x7,
                            opcode: b[0] & 0x0f,
                            masked: b[1] & 0x80 != 0,
                            mask: [0; 4],
                            len: (b[1] & 0x7f) as u64,
                        };
                        on(Event::Prelude(&h, self.message)).map_err(|e| (e, frame_start))?;
                    }
                }
                if self.have < self.need() {
                    return Ok(());
                }
                let h = self.parse_head();
                self.have = 0;
                on(Event::Head(&h, self.message)).map_err(|e| (e, frame_start))?;
                if h.opcode < 0x8 {
                    let so_far = self.message.unwrap_or(0) + h.len;
                    self.message = (!h.fin).then_some(so_far);
                }
                self.left = h.len;
                if h.opcode == 0x8 {
                    self.close = Some((0, 0));
                }
                self.frame = Some(h);
            }
            let h = self.frame.expect("in a frame");
            let take = (self.left.min((data.len() - i) as u64)) as usize;
            if let Some((code, got)) = self.close.as_mut() {
                let offset = (h.len - self.left) as usize;
                for (k, b) in data[i..i + take].iter().enumerate().take(2usize.saturating_sub(offset)) {
                    let at = offset + k;
                    let b = if h.masked { b ^ h.mask[at % 4] } else { *b };
                    *code = (*code << 8) | b as u16;
                    *got += 1;
                }
            }
            i += take;
            self.left -= take as u64;
            if self.left == 0 {
                self.frame = None;
                if let Some((code, got)) = self.close.take() {
                    self.closed = true;
                    let _ = on(Event::Close(if got == 2 { code } else { 1005 }));
                }
                let _ = on(Event::End(&h));
            }
        }
        Ok(())
    }

    fn parse_head(&self) -> Head {
        let b = &self.hdr;
        let (len, at) = match b[1] & 0x7f {
            126 => (u16::from_be_bytes([b[2], b[3]]) as u64, 4),
            127 => (u64::from_be_bytes([b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9]]), 10),
            n => (n as u64, 2),
        };
        let masked = b[1] & 0x80 != 0;
        let mask = if masked { [b[at], b[at + 1], b[at + 2], b[at + 3]] } else { [0; 4] };
        Head { fin: b[0] & 0x80 != 0, rsv: (b[0] >> 4) & 0x7, opcode: b[0] & 0x0f, masked, mask, len }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut f = vec![(fin as u8) << 7 | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => f.push(m | n as u8),
            n if n < 65536 => {
                f.push(m | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(k) => {
                f.extend_from_slice(&k);
                f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => f.extend_from_slice(payload),
        }
        f
    }

    /// Feeds `bytes` in pieces of `step`; returns heads, close codes, ends.
    fn follow(bytes: &[u8], step: usize) -> (Vec<Head>, Vec<u16>, usize, bool) {
        let mut c = Cursor::default();
        let (mut heads, mut closes, mut ends) = (Vec::new(), Vec::new(), 0);
        for piece in bytes.chunks(step) {
            c.feed::<()>(piece, |ev| {
                match ev {
                    Event::Head(h, _) => heads.push(*h),
                    Event::Close(code) => closes.push(code),
                    Event::End(_) => ends += 1,
                    Event::Prelude(..) => {}
                }
                Ok(())
            })
            .unwrap();
        }
        (heads, closes, ends, c.at_boundary())
    }

    #[test]
    fn follows_frames_however_the_bytes_are_cut() {
        let k = Some([1, 2, 3, 4]);
        let mut s = frame(true, 0x1, b"hello", k);
        s.extend(frame(false, 0x2, &[7; 300], k));
        s.extend(frame(true, 0x9, b"", k));
        s.extend(frame(true, 0x0, &[8; 70_000], k));
        s.extend(frame(true, 0x8, &[0x03, 0xF4, b'b', b'y', b'e'], k));
        for step in [1, 2, 3, 7, 100, s.len()] {
            let (heads, closes, ends, boundary) = follow(&s, step);
            assert_eq!(heads.iter().map(|h| (h.opcode, h.len)).collect::<Vec<_>>(), [(1, 5), (2, 300), (9, 0), (0, 70_000), (8, 5)], "step {step}");
            assert_eq!(closes, [1012], "step {step}");
            assert_eq!((ends, boundary), (5, true));
        }
        let (_, closes, _, _) = follow(&frame(true, 0x8, &[], None), 1);
        assert_eq!(closes, [1005]);
        let (_, closes, _, _) = follow(&frame(true, 0x8, &1012u16.to_be_bytes(), None), 1);
        assert_eq!(closes, [1012]);
    }

    #[test]
    fn client_frames_are_held_to_the_rules() {
        let h = |fin, rsv, opcode, masked, len| Head { fin, rsv, opcode, masked, mask: [0; 4], len };
        let ok = |h: Head, open| check_client_frame(&h, open, 1000, 1500, 0);
        assert_eq!(ok(h(true, 0, 1, true, 10), None), Ok(()));
        assert_eq!(ok(h(true, 0, 1, false, 10), None), Err(code::PROTOCOL), "unmasked");
        assert_eq!(ok(h(true, 4, 1, true, 10), None), Err(code::PROTOCOL), "reserved bit");
        assert_eq!(ok(h(true, 0, 3, true, 10), None), Err(code::PROTOCOL), "unknown opcode");
        assert_eq!(ok(h(false, 0, 9, true, 1), None), Err(code::PROTOCOL), "fragmented ping");
        assert_eq!(ok(h(true, 0, 9, true, 126), None), Err(code::PROTOCOL), "ping too long");
        assert_eq!(ok(h(true, 0, 0, true, 1), None), Err(code::PROTOCOL), "continuation of nothing");
        assert_eq!(ok(h(true, 0, 1, true, 1), Some(3)), Err(code::PROTOCOL), "new message inside one");
        assert_eq!(ok(h(true, 0, 9, true, 1), Some(3)), Ok(()), "a ping between fragments");
        assert_eq!(ok(h(true, 0, 2, true, 1001), None), Err(code::TOO_BIG), "frame");
        assert_eq!(ok(h(true, 0, 0, true, 600), Some(1000)), Err(code::TOO_BIG), "message");
    }

    #[test]
    fn a_refused_frame_is_located() {
        let mut s = frame(true, 0x1, b"fine", Some([9; 4]));
        let at = s.len();
        s.extend(frame(true, 0x1, b"unmasked", None));
        let mut c = Cursor::default();
        let r = c.feed(&s, |ev| match ev {
            Event::Prelude(h, open) | Event::Head(h, open) => check_client_frame(h, open, 100, 100, 0),
            _ => Ok(()),
        });
        assert_eq!(r, Err((code::PROTOCOL, at)));
    }
}
