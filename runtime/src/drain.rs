//! The drain's building blocks: [`Tracked`] counts open connections or
//! streams and lets the drain wait until they are gone, and [`Signal`] is the
//! moment the drain begins, which every open stream and any handler can await.
//!
//! The drain itself runs in [`crate::server`]: on the shutdown trigger the
//! instance marks itself draining ([`Signal::begin`]), every WebSocket is sent
//! a close frame 1012 and every SSE stream ends after a `retry:` hint
//! ([`crate::streams`]); it keeps answering until the connections opened
//! before the signal are closed by their peers (or `http.drain_idle`), stops
//! accepting, and waits for requests, streams and jobs, each within its bound.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;

/// Counts open connections (or streams) of one kind.
#[derive(Default)]
pub(crate) struct Tracked {
    open: AtomicUsize,
    closed: Notify,
}

impl Tracked {
    /// Counts one until the guard is dropped.
    pub(crate) fn track(self: &Arc<Tracked>) -> TrackGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        TrackGuard(self.clone())
    }

    /// How many are open now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Waits until none is open.
    pub(crate) async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            if self.open() == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// Uncounts its connection from [`Tracked`] when dropped.
pub(crate) struct TrackGuard(Arc<Tracked>);

impl Drop for TrackGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.closed.notify_waiters();
        }
    }
}

/// The moment the drain begins: set once, seen by everyone who waits.
#[derive(Default)]
pub(crate) struct Signal {
    begun: AtomicBool,
    notify: Arc<Notify>,
}

impl Signal {
    /// Begins the drain (a second call does nothing).
    pub(crate) fn begin(&self) {
        if !self.begun.swap(true, Ordering::AcqRel) {
            self.notify.notify_waiters();
        }
    }

    /// True once begun.
    pub(crate) fn begun(&self) -> bool {
        self.begun.load(Ordering::Acquire)
    }

    /// A future completing when the drain begins (at once if it has), owned,
    /// so that an I/O object or a body can keep and poll it.
    pub(crate) fn waiter(self: &Arc<Signal>) -> Waiter {
        // Created before `begun` is read: a `begin` in between still wakes it.
        let notified = Box::pin(self.notify.clone().notified_owned());
        Waiter { signal: self.clone(), notified }
    }
}

/// See [`Signal::waiter`].
pub(crate) struct Waiter {
    signal: Arc<Signal>,
    notified: Pin<Box<OwnedNotified>>,
}

impl Waiter {
    /// Ready once the drain has begun; registers `cx` otherwise.
    pub(crate) fn poll_begun(&mut self, cx: &mut Context<'_>) -> bool {
        self.signal.begun() || self.notified.as_mut().poll(cx).is_ready()
    }
}

impl Future for Waiter {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.get_mut().poll_begun(cx) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_sees_the_drain_whenever_it_was_made() {
        let s = Arc::new(Signal::default());
        let early = s.waiter();
        let t = Arc::new(Tracked::default());
        let g = t.track();
        assert_eq!(t.open(), 1);
        s.begin();
        early.await;
        s.waiter().await;
        drop(g);
        t.all_closed().await;
    }
}
