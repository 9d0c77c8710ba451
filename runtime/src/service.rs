//! [`Service`]: a service built on corepool — its name, its own configuration
//! sections and its axum router — and how corepool composes it with its own
//! routes and middleware before serving.
//!
//! ```no_run
//! use corepool_runtime::{axum::{routing::get, Router}, Ctx, ApiError, Service};
//!
//! async fn hello() -> &'static str { "hello" }
//! async fn heavy(ctx: Ctx) -> Result<String, ApiError> {
//!     let n = ctx.run(|_cancel| (0..10_000_000u64).sum::<u64>()).await?;
//!     Ok(n.to_string())
//! }
//!
//! let app = Router::new().route("/hello", get(hello)).route("/heavy", get(heavy));
//! let svc = Service::new("myapp").router(app);
//! ```

use std::path::PathBuf;

use axum::routing::on;
use axum::Router;

use crate::builtin;
use crate::load::{self, Loaded, Override, Schema, Source};
use crate::name::{NameError, ServiceName};
use crate::section::{Section, SectionSpec};
use crate::server::{self, ServeError};

/// What a service's crate says about itself (its Cargo.toml), for `--version`,
/// `/healthz` and the package. The `corepool::service!()` macro fills it in.
#[derive(Debug, Clone, Default)]
pub struct PackageInfo {
    /// The crate's version.
    pub version: &'static str,
    /// One line.
    pub description: &'static str,
    /// `Name <address>, ...`
    pub authors: &'static str,
    /// An SPDX expression, e.g. `MIT`.
    pub license: &'static str,
    /// The crate's homepage, if any.
    pub homepage: &'static str,
    /// The crate's repository, if any.
    pub repository: &'static str,
    /// The crate's directory when it was built (for `package`: README, LICENSE, target/).
    pub manifest_dir: &'static str,
}

/// A service: its name, its configuration sections and its routes.
#[derive(Clone)]
pub struct Service {
    name: Result<ServiceName, NameError>,
    info: PackageInfo,
    sections: Vec<SectionSpec>,
    router: Router,
    cacheable: Vec<&'static str>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("name", &self.name).field("sections", &self.sections).field("cacheable", &self.cacheable).finish()
    }
}

impl Service {
    /// A service called `name` (usually its binary's: `env!("CARGO_BIN_NAME")`).
    /// An invalid name is reported when the binary runs, before anything else.
    pub fn new(name: &str) -> Service {
        let s = Service { name: ServiceName::new(name), info: PackageInfo::default(), sections: Vec::new(), router: Router::new(), cacheable: Vec::new() };
        // Every service built with Redis has its sections (empty url: none).
        #[cfg(feature = "redis")]
        let s = s.section::<crate::redis::config::RedisConfig>().section::<crate::redis::config::SessionConfig>();
        s
    }

    /// What the crate says about itself.
    pub fn info(mut self, info: PackageInfo) -> Service {
        self.info = info;
        self
    }

    /// Adds configuration section `T` (`[T::NAME]` in the file).
    pub fn section<T: Section>(mut self) -> Service {
        self.sections.retain(|s| s.name != T::NAME);
        self.sections.push(SectionSpec::of::<T>());
        self
    }

    /// Adds routes: an ordinary axum router (with its own layers and state
    /// already applied). Called again, the routers are merged.
    pub fn router(mut self, router: Router) -> Service {
        self.router = self.router.merge(router);
        self
    }

    /// Serves any tower service for the requests no route matched (with no
    /// router at all: for every request but corepool's own routes).
    pub fn fallback_service<S>(mut self, svc: S) -> Service
    where
        S: tower::Service<axum::extract::Request, Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.router = self.router.fallback_service(svc);
        self
    }

    /// Lets the packaged nginx site cache answers under `path`: the path
    /// itself and everything below it (`/report` covers `/report` and
    /// `/report/7`, not `/reports`). Only these requests are looked up in the
    /// response cache, stored in it (when their answer says `max-age` or
    /// `s-maxage`) and wait for its lock, so that N identical requests for an
    /// entry not cached yet cost one handler call; every other request goes
    /// straight to an instance (`X-Cache-Status: BYPASS`), which spares it
    /// the lookup and the lock: behind the lock, concurrent identical
    /// requests for an answer that turns out not to be cacheable wait for
    /// each other in 500 ms steps. Called again, the paths add up.
    ///
    /// # Panics
    /// When `path` does not start with `/` or holds anything but letters,
    /// digits and `/ . _ ~ -` (as axum panics on a malformed route): a
    /// mistake in the program, found when it starts.
    pub fn cacheable(mut self, path: &'static str) -> Service {
        let ok = path.starts_with('/') && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._~-".contains(&b));
        assert!(ok, "Service::cacheable({path:?}): a path starts with `/` and holds only letters, digits and `/ . _ ~ -`");
        if !self.cacheable.contains(&path) {
            self.cacheable.push(path);
        }
        self
    }

    /// The paths nginx may cache ([`Service::cacheable`]).
    pub fn cacheable_paths(&self) -> &[&'static str] {
        &self.cacheable
    }

    /// The service's name, or why it is not valid.
    pub fn name(&self) -> Result<&ServiceName, NameError> {
        self.name.as_ref().map_err(Clone::clone)
    }

    /// What the crate says about itself.
    pub fn package_info(&self) -> &PackageInfo {
        &self.info
    }

    /// The service's version (its crate's), or corepool's when not given.
    pub fn version(&self) -> &'static str {
        if self.info.version.is_empty() {
            env!("CARGO_PKG_VERSION")
        } else {
            self.info.version
        }
    }

    /// What its configuration file may hold.
    pub fn schema(&self) -> Result<Schema, NameError> {
        Ok(Schema::new(self.name()?, self.sections.clone()))
    }

    /// The service's own sections.
    pub fn sections(&self) -> &[SectionSpec] {
        &self.sections
    }

    /// Where the configuration comes from: `path` if given (it must exist),
    /// else `/etc/NAME/NAME.toml` (built-in defaults if absent).
    pub fn source(&self, path: Option<PathBuf>) -> Result<Source, NameError> {
        Ok(match path {
            Some(path) => Source { path, required: true },
            None => Source::default_for(self.name()?),
        })
    }

    /// Loads and validates the configuration (file, then `PREFIX_*`
    /// variables, then `overrides`).
    pub fn load(&self, source: &Source, overrides: &[Override]) -> Result<Loaded, ServeError> {
        let schema = self.schema()?;
        let mut all = schema.env_overrides(std::env::vars());
        all.extend_from_slice(overrides);
        Ok(load::load(source, &all, &schema)?)
    }

    /// The service's router with corepool's routes: refuses a route on one of
    /// corepool's paths, and notes which route each request matched (for the
    /// metrics and spans).
    pub fn compose(&self, debug: bool) -> Result<Router, ServeError> {
        // One path at a time, so the error can say which.
        for path in builtin::RESERVED {
            let _probe = merge_checked(self.router.clone(), Router::new().route(path, on(builtin::EVERY_METHOD, || async {})), || {
                format!(
                    "this service has a route on {path}, which corepool serves itself: /healthz (liveness), /readyz (readiness) \
                     and /metrics (Prometheus) are in every corepool service; give yours another path"
                )
            })?;
        }
        for path in builtin::DEBUG_PATHS.iter().filter(|_| debug) {
            let _probe = merge_checked(self.router.clone(), Router::new().route(path, on(builtin::EVERY_METHOD, || async {})), || {
                format!("this service has a route on {path}, one of corepool's fault-injection routes (debug.endpoints = true)")
            })?;
        }
        let app = self.router.clone().merge(builtin::routes(debug));
        // with_state(()): handlers become routes now, not on every request
        // (axum otherwise boxes each handler anew per call). The body limit
        // is corepool's (http.max_body, live), set per request by the server.
        Ok(app.route_layer(crate::scope::NoteRoute).with_state(()))
    }

    /// Loads the configuration and serves until SIGTERM (the drain: docs/architecture.md).
    pub fn serve(self, source: Source, overrides: Vec<Override>) -> Result<(), ServeError> {
        let service = self.name()?.clone();
        let schema = self.schema()?;
        let mut all = schema.env_overrides(std::env::vars());
        all.extend(overrides);
        let loaded = load::load(&source, &all, &schema)?;
        let app = self.compose(loaded.config.debug.endpoints)?;
        server::run(server::Instance { service, version: self.version().to_string(), app, schema, source, overrides: all, loaded })
    }
}

/// `a.merge(b)`, with axum's panic on overlapping routes turned into a
/// [`ServeError::Routes`] with `why`'s message.
fn merge_checked(a: Router, b: Router, why: impl FnOnce() -> String) -> Result<Router, ServeError> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let merged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || a.merge(b)));
    std::panic::set_hook(hook);
    merged.map_err(|_| ServeError::Routes(why()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};

    #[test]
    fn routes_on_corepools_paths_are_refused_whatever_the_method() {
        for (path, r) in [
            ("/healthz", Router::new().route("/healthz", get(|| async { "mine" }))),
            ("/metrics", Router::new().route("/metrics", post(|| async { "mine" }))),
            ("/readyz", Router::new().nest("/readyz", Router::new().route("/", get(|| async {})))),
        ] {
            let e = Service::new("myapp").router(r).compose(false).unwrap_err().to_string();
            assert!(e.contains(&format!("route on {path}")) && e.contains("give yours another path"), "{e}");
        }
        let ok = Router::new().route("/healthz/deep", get(|| async {})).route("/users/{id}", get(|| async {}));
        let _ = Service::new("myapp").router(ok).compose(true).unwrap();
        let debug = Router::new().route("/debug/panic", get(|| async {}));
        let _ = Service::new("myapp").router(debug.clone()).compose(false).unwrap();
        assert!(Service::new("myapp").router(debug).compose(true).unwrap_err().to_string().contains("/debug/"));
    }

    #[test]
    fn an_invalid_name_is_an_error_when_used() {
        let s = Service::new("My App");
        assert!(s.name().is_err());
        assert!(s.schema().is_err());
    }
}
