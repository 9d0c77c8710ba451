//! What a request carries while the service's router handles it: the
//! instance (for the [`crate::Ctx`] and [`crate::Settings`] extractors) and
//! the route it matched (for the metrics and spans), in a task-local scope
//! the server opens around each request.
//!
//! A task-local instead of request and response extensions: nothing is
//! allocated per request, and the route is known even when its handler
//! panics. Extractors run in the request's own task, so they always see it;
//! a task a handler spawns does not (pass it the `Ctx` instead).

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::MatchedPath;

use crate::state::State;

/// The scope of one request.
pub(crate) struct Scope {
    pub(crate) state: Arc<State>,
    pub(crate) route: RefCell<Option<MatchedPath>>,
}

tokio::task_local! {
    static CURRENT: Scope;
}

/// Runs `fut` (the router's handling of one request) inside its scope; gives
/// back its output and the route it matched.
pub(crate) async fn run<F: Future>(state: Arc<State>, fut: F) -> (F::Output, Option<MatchedPath>) {
    CURRENT
        .scope(Scope { state, route: RefCell::new(None) }, async {
            let out = fut.await;
            (out, CURRENT.with(|s| s.route.borrow_mut().take()))
        })
        .await
}

/// The instance handling the current request, if the request is being served by corepool.
pub(crate) fn state() -> Option<Arc<State>> {
    CURRENT.try_with(|s| s.state.clone()).ok()
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
            let _ = CURRENT.try_with(|s| *s.route.borrow_mut() = Some(m.clone()));
        }
        self.0.call(req)
    }
}
