//! What a request carries while the service's router handles it: the
//! instance (for the [`crate::Ctx`] and [`crate::Settings`] extractors) and
//! the route it matched (for the metrics and spans), in a scope the server
//! opens around each request: [`Routed`], the router's future, polled in
//! place with the scope set and a panic caught.
//!
//! A scope instead of request and response extensions: nothing is
//! allocated per request, and the route is known even when its handler
//! panics. Extractors run in the request's own task, so they always see it;
//! a task a handler spawns does not (pass it the `Ctx` instead). It is what
//! tokio's `task_local!` does (a thread-local set for each poll), in the same
//! future as the panic guard: a request's future is the biggest part of its
//! cost in copies, and each layer of futures around it moved it again. (One
//! difference: a future dropped unfinished, its request abandoned mid-way
//! or its handler panicked, is dropped without the scope set, where
//! tokio's scope was set during that drop; nothing reads it in a destructor.)

use std::cell::RefCell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::MatchedPath;

use crate::state::State;

/// The scope of one request.
pub(crate) struct Scope {
    pub(crate) state: Arc<State>,
    pub(crate) route: RefCell<Option<MatchedPath>>,
}

thread_local! {
    /// The scope of the request being polled on this thread, if any.
    static CURRENT: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

pin_project_lite::pin_project! {
    /// The router's handling of one request (`fut`), run inside its scope:
    /// gives back its output, or the message of a panic in it, and the route
    /// it matched.
    pub(crate) struct Routed<F> {
        scope: Option<Scope>,
        #[pin]
        fut: F,
    }
}

impl<F> Routed<F> {
    pub(crate) fn new(state: Arc<State>, fut: F) -> Routed<F> {
        Routed { scope: Some(Scope { state, route: RefCell::new(None) }), fut }
    }
}

impl<F: Future> Future for Routed<F> {
    type Output = (Result<F::Output, String>, Option<MatchedPath>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(scope) = this.scope.take() else {
            panic!("a request's future polled after it finished");
        };
        // Set for this poll, the previous one (if any) put back after it,
        // also when the handler panicked (caught here).
        let previous = CURRENT.with(|c| c.replace(Some(scope)));
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| this.fut.as_mut().poll(cx)));
        let scope = CURRENT.with(|c| c.replace(previous));
        let route = |scope: Option<Scope>| scope.and_then(|s| s.route.into_inner());
        match polled {
            Ok(Poll::Pending) => {
                *this.scope = scope;
                Poll::Pending
            }
            Ok(Poll::Ready(out)) => Poll::Ready((Ok(out), route(scope))),
            Err(payload) => Poll::Ready((Err(crate::pool::panic_message(payload.as_ref())), route(scope))),
        }
    }
}

/// The instance handling the current request, if the request is being served by corepool.
pub(crate) fn state() -> Option<Arc<State>> {
    CURRENT.try_with(|c| c.borrow().as_ref().map(|s| s.state.clone())).ok().flatten()
}

/// A route layer: notes which route matched, then calls the route. Adds
/// nothing to the route's future (no boxing, no allocation).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NoteRoute;

impl<S> tower::Layer<S> for NoteRoute {
    type Service = NoteRouteService<S>;
    fn layer(&self, inner: S) -> NoteRouteService<S> {
        NoteRouteService(inner)
    }
}

/// The service of [`NoteRoute`].
#[derive(Clone, Debug)]
pub(crate) struct NoteRouteService<S>(S);

impl<S, B> tower::Service<http::Request<B>> for NoteRouteService<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> S::Future {
        if let Some(m) = req.extensions().get::<MatchedPath>() {
            let _ = CURRENT.try_with(|c| {
                if let Some(s) = c.borrow().as_ref() {
                    *s.route.borrow_mut() = Some(m.clone());
                }
            });
        }
        self.0.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a_state() -> Arc<State> {
        let c = crate::testing::TestClient::new(crate::Service::new("scoped").router(axum::Router::new())).expect("a test instance");
        c.state().clone()
    }

    fn poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
        fut.poll(&mut Context::from_waker(std::task::Waker::noop()))
    }

    #[test]
    fn the_scope_is_set_while_polled_and_put_back_after_a_panic_or_inside_another() {
        let (outer, inner) = (a_state(), a_state());
        assert!(state().is_none(), "no scope outside a request");
        // A panicking request: its message, and no scope left behind.
        let mut boom = std::pin::pin!(Routed::new(outer.clone(), async {
            assert!(state().is_some());
            panic!("handler bug")
        }));
        match poll_once(boom.as_mut()) {
            Poll::Ready((Err(msg), None)) => assert!(msg.contains("handler bug"), "{msg}"),
            other => panic!("expected the panic's message, got {:?}", other.map(|(r, _)| r.is_ok())),
        }
        assert!(state().is_none(), "the scope was put back after the panic");
        // A request polled inside another's poll sees its own scope, and the
        // outer one is back after it; a pending request keeps its scope for
        // its next poll.
        let seen = |s: &Arc<State>| state().is_some_and(|now| Arc::ptr_eq(&now, s));
        let mut yielded = false;
        let mut nested = std::pin::pin!(Routed::new(
            outer.clone(),
            std::future::poll_fn(|_| {
                assert!(seen(&outer));
                let mut inside = std::pin::pin!(Routed::new(inner.clone(), async { seen(&inner) }));
                assert!(matches!(poll_once(inside.as_mut()), Poll::Ready((Ok(true), None))));
                assert!(seen(&outer), "the outer scope is back after the inner request");
                if yielded {
                    Poll::Ready(7)
                } else {
                    yielded = true;
                    Poll::Pending
                }
            })
        ));
        assert!(poll_once(nested.as_mut()).is_pending());
        assert!(state().is_none());
        assert!(matches!(poll_once(nested.as_mut()), Poll::Ready((Ok(7), None))));
        assert!(state().is_none());
    }
}
