//! Server-sent events, corepool's part: every `text/event-stream` response a
//! handler returns (axum's `Sse` or any stream of events) is wrapped in an
//! [`SseBody`] that
//!
//! - sends a comment line (`:`) when the stream has been quiet for
//!   `streams.ping_interval`, so no proxy closes it as idle;
//! - on drain, ends the stream after a `retry:` hint (`streams.sse_retry`),
//!   so the client's EventSource reconnects — to another instance — at once
//!   instead of being cut at `shutdown_timeout`;
//! - counts the open streams, their frames and bytes.
//!
//! Both are written only between events (after a blank line), never inside one.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::time::Sleep;

use crate::drain::{TrackGuard, Waiter};
use crate::metrics::StreamMetrics;
use crate::state::State;

/// True for a response that is an event stream.
pub(crate) fn is_event_stream(headers: &http::HeaderMap) -> bool {
    headers.get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

enum Phase {
    Open,
    /// The retry hint went out; the end comes next.
    Ending,
    Done,
}

/// An event stream's body (module docs).
pub(crate) struct SseBody {
    inner: Body,
    phase: Phase,
    /// The last byte sent ended an event (or nothing was sent yet).
    between: bool,
    last: [u8; 4],
    drain: Waiter,
    drain_began: Option<tokio::time::Instant>,
    close_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    interval: Duration,
    retry: Bytes,
    metrics: StreamMetrics,
    _open: TrackGuard,
}

impl SseBody {
    pub(crate) fn new(inner: Body, state: &State) -> SseBody {
        let cfg = state.config();
        let metrics = state.streams.metrics.clone();
        metrics.sse_open.inc();
        SseBody {
            inner,
            phase: Phase::Open,
            between: true,
            last: *b"\r\n\r\n",
            drain: state.streams.draining(),
            drain_began: None,
            close_timeout: cfg.streams.close_timeout,
            idle: Box::pin(tokio::time::sleep(cfg.streams.ping_interval)),
            interval: cfg.streams.ping_interval,
            retry: Bytes::from(format!("retry: {}\n\n", cfg.streams.sse_retry.as_millis())),
            metrics,
            _open: state.streams.track(),
        }
    }

    /// The retry hint, then the end.
    fn end(&mut self) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.phase = Phase::Ending;
        let retry = self.retry.clone();
        self.ours(retry)
    }

    fn ours(&mut self, b: Bytes) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.sent(&b);
        Poll::Ready(Some(Ok(Frame::data(b))))
    }

    fn sent(&mut self, b: &[u8]) {
        self.metrics.sse_events.inc();
        self.metrics.sse_bytes.inc_by(b.len() as u64);
        for &x in &b[b.len().saturating_sub(4)..] {
            self.last = [self.last[1], self.last[2], self.last[3], x];
        }
        let end = &self.last[2..];
        self.between = end == b"\n\n" || end == b"\r\r" || self.last == *b"\r\n\r\n";
        let now = tokio::time::Instant::now();
        self.idle.as_mut().reset(now + self.interval);
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        self.metrics.sse_open.dec();
    }
}

impl hyper::body::Body for SseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match this.phase {
            Phase::Done => return Poll::Ready(None),
            Phase::Ending => {
                this.phase = Phase::Done;
                return Poll::Ready(None);
            }
            Phase::Open => {}
        }
        // On drain the handler's events still ready go first (its own last
        // word, if it watches `Ctx::draining`); then, between two events, the
        // retry hint and the end — at the latest close_timeout after the
        // drain began, for a stream that never pauses.
        let draining = this.drain.poll_begun(cx);
        let now = tokio::time::Instant::now();
        if draining && this.drain_began.is_none() {
            this.drain_began = Some(now);
        }
        let overdue = this.drain_began.is_some_and(|t| now.duration_since(t) >= this.close_timeout);
        if overdue {
            // A stream that never pauses, or a client that stopped reading:
            // it ends now (the hint only where it cannot split an event).
            return if this.between { this.end() } else { Poll::Ready(None) };
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let data = data.clone();
                    this.sent(&data);
                }
                if draining {
                    // Come back to end it once the handler has nothing ready.
                    cx.waker().wake_by_ref();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            // The handler ended its stream on the drain: the hint still goes.
            Poll::Ready(None) if this.between && draining => this.end(),
            Poll::Ready(None) => {
                this.phase = Phase::Done;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Pending if this.between && draining => this.end(),
            Poll::Pending => {
                if this.between && this.idle.as_mut().poll(cx).is_ready() {
                    return this.ours(Bytes::from_static(b":\n\n"));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_event_streams() {
        let mut h = http::HeaderMap::new();
        assert!(!is_event_stream(&h));
        h.insert(http::header::CONTENT_TYPE, "text/event-stream; charset=utf-8".parse().unwrap());
        assert!(is_event_stream(&h));
        h.insert(http::header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!is_event_stream(&h));
    }
}
