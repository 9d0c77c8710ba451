//! Long-lived connections, the instance's part: how many WebSockets and SSE
//! streams are open, the limit on WebSockets, the drain signal they all obey,
//! and cutting the WebSockets that did not close in time.
//!
//! Both kinds are served the axum way by the service's own handlers
//! (`WebSocketUpgrade`, `Sse`); corepool adds, around any handler, what a
//! reload needs: on drain every WebSocket is sent a close frame 1012 ("service
//! restart") at a frame boundary and its closing handshake completed
//! ([`crate::websocket`]), and every SSE stream ends at an event boundary
//! after a `retry:` hint ([`crate::sse`]), so clients reconnect to another
//! instance within `streams.close_timeout` rather than at `shutdown_timeout`.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::StreamsConfig;
use crate::drain::{Signal, TrackGuard, Tracked, Waiter};
use crate::metrics::StreamMetrics;

/// [`crate::State::draining`]: completes at the drain; counted as a handler
/// waiting for it until dropped (not merely until it completes: the handler's
/// last message comes after).
pub(crate) struct Draining {
    waiter: Waiter,
    watchers: Arc<AtomicUsize>,
}

impl std::future::Future for Draining {
    type Output = ();
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::pin::Pin::new(&mut self.get_mut().waiter).poll(cx)
    }
}

impl Drop for Draining {
    fn drop(&mut self) {
        self.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The instance's streams.
pub(crate) struct Streams {
    limit: Arc<Semaphore>,
    max: usize,
    drain: Arc<Signal>,
    /// Every open stream, WebSocket or SSE, for the drain to wait on.
    open: Arc<Tracked>,
    /// Each open WebSocket's socket, to cut it when its close times out.
    sockets: Mutex<HashMap<u64, RawFd>>,
    next: AtomicU64,
    /// Handlers waiting for the drain (`State::draining`): while there are
    /// any, WebSockets get a moment for their last word before the 1012.
    watchers: Arc<AtomicUsize>,
    pub(crate) metrics: StreamMetrics,
}

impl Streams {
    pub(crate) fn new(cfg: &StreamsConfig, metrics: StreamMetrics) -> Streams {
        metrics.ws_capacity.set(cfg.max_websockets as i64);
        Streams {
            limit: Arc::new(Semaphore::new(cfg.max_websockets)),
            max: cfg.max_websockets,
            drain: Arc::default(),
            open: Arc::default(),
            sockets: Mutex::default(),
            next: AtomicU64::new(0),
            watchers: Arc::default(),
            metrics,
        }
    }

    /// Room for one more WebSocket, held for as long as it is open; None
    /// when `streams.max_websockets` are open.
    pub(crate) fn try_websocket(&self) -> Option<OwnedSemaphorePermit> {
        self.limit.clone().try_acquire_owned().ok()
    }

    /// `streams.max_websockets`.
    pub(crate) fn max_websockets(&self) -> usize {
        self.max
    }

    /// WebSockets open now.
    pub(crate) fn websockets(&self) -> usize {
        self.max - self.limit.available_permits()
    }

    /// SSE streams open now.
    pub(crate) fn sse(&self) -> usize {
        self.metrics.sse_open.get().max(0) as usize
    }

    /// Streams of either kind open now.
    pub(crate) fn open(&self) -> usize {
        self.open.open()
    }

    /// Counts a stream as open until the guard drops.
    pub(crate) fn track(&self) -> TrackGuard {
        self.open.track()
    }

    /// Registers an open WebSocket's socket; [`Streams::forget`] before it closes.
    pub(crate) fn register(&self, fd: RawFd) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.sockets.lock().unwrap_or_else(|p| p.into_inner()).insert(id, fd);
        id
    }

    /// Unregisters a WebSocket's socket (before its descriptor is closed).
    pub(crate) fn forget(&self, id: u64) {
        self.sockets.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    /// Begins the drain for every stream.
    pub(crate) fn begin_drain(&self) {
        self.drain.begin();
    }

    /// Completes when the drain begins.
    pub(crate) fn draining(&self) -> Waiter {
        self.drain.waiter()
    }

    /// The drain, for a handler: counted while it waits, so that WebSockets
    /// give it a moment for its last message.
    pub(crate) fn watched_drain(&self) -> Draining {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        Draining { waiter: self.drain.waiter(), watchers: self.watchers.clone() }
    }

    /// True while some handler waits for the drain.
    pub(crate) fn watched(&self) -> bool {
        self.watchers.load(Ordering::Relaxed) > 0
    }

    /// Waits until every stream has ended.
    pub(crate) async fn all_closed(&self) {
        self.open.all_closed().await
    }

    /// Cuts every stream still open (its close timed out): both directions
    /// of each WebSocket's, and of each SSE stream's connection, are shut
    /// down, so its handler's next read (or hyper's next write) ends.
    pub(crate) fn cut_all(&self) -> usize {
        let sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        for fd in sockets.values() {
            // SAFETY: shutdown(2) on a descriptor that stays open while its
            // entry exists: the entry is removed, under this lock, before the
            // socket is closed (`websocket::Tap`'s Drop).
            unsafe { libc::shutdown(*fd, libc::SHUT_RDWR) };
        }
        sockets.len()
    }
}
