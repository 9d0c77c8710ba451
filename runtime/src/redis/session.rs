//! Sessions in Redis, seen alike by every instance and host: the
//! [`sessions`] layer on the routes that use them and the [`Session`]
//! extractor in their handlers (express-session with connect-redis, or
//! tower-sessions, in their shape).
//!
//! The cookie `NAME_session` carries only a random 256-bit id (HttpOnly,
//! Path=/, SameSite from `[session]`, Secure over HTTPS); the data is a JSON
//! object under `NAME:session:ID` in Redis. A session is read from Redis only
//! when a handler asks (one `GETEX`, which also renews its expiry: `ttl` is
//! idle time) and written back only if it changed. A cookie naming no
//! session — forged, expired, from another deployment — is an anonymous
//! session, never an error. [`Session::rotate`] gives the session a new id
//! (call it on login: an id known before login is worthless after it).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::header::{HeaderValue, CACHE_CONTROL, COOKIE, SET_COOKIE};
use http::request::Parts;
use http::{Request, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::config::{Secure, SessionConfig};
use super::error::RedisError;
use super::link::Link;
use crate::http::ApiError;
use crate::state::State;

type Map = serde_json::Map<String, serde_json::Value>;

/// The layer that gives a router's handlers a [`Session`]:
/// `Router::new().route(...).layer(corepool::redis::sessions())`.
pub fn sessions() -> SessionLayer {
    SessionLayer
}

/// See [`sessions`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionLayer;

impl<S> tower::Layer<S> for SessionLayer {
    type Service = SessionService<S>;
    fn layer(&self, inner: S) -> SessionService<S> {
        SessionService(inner)
    }
}

/// The service of [`SessionLayer`].
#[derive(Debug, Clone)]
pub struct SessionService<S>(S);

struct Inner {
    link: Option<Arc<Link>>,
    cfg: Arc<SessionConfig>,
    cookie: String,
    key_prefix: String,
    secure: bool,
    /// The id the request's cookie named (valid in form; maybe unknown to Redis).
    id: Option<String>,
    /// None until loaded.
    data: Option<Map>,
    /// Redis had it.
    stored: bool,
    changed: bool,
    rotate: bool,
    destroyed: bool,
    /// A key to delete when saving: the id a destroy or a rotation retired.
    retired: Option<String>,
}

/// A request's session: `session: Session` in a handler under [`sessions`].
/// Cheap to clone (shared).
#[derive(Clone)]
pub struct Session(Arc<Mutex<Inner>>);

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.lock();
        f.debug_struct("Session").field("loaded", &i.data.is_some()).field("changed", &i.changed).finish()
    }
}

/// A session id: 64 lowercase hex digits (32 random bytes).
fn valid_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn new_id() -> Result<String, ApiError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("no randomness for a session id: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The first well-formed value of cookie `name` in the request.
fn cookie_value(parts: &http::HeaderMap, name: &str) -> Option<String> {
    parts.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name && valid_id(v)).then(|| v.to_string())
    })
}

impl Session {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn from_request(state: &State, headers: &http::HeaderMap) -> Session {
        let cfg = state.section::<SessionConfig>().unwrap_or_default();
        let https = headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
        let secure = match cfg.secure {
            Secure::Always => true,
            Secure::Never => false,
            Secure::Auto => https,
        };
        let cookie = state.service.session_cookie();
        let id = cookie_value(headers, &cookie);
        Session(Arc::new(Mutex::new(Inner {
            link: state.redis.clone(),
            key_prefix: format!("{}:session:", state.service),
            cfg,
            cookie,
            secure,
            data: id.is_none().then(Map::new),
            id,
            stored: false,
            changed: false,
            rotate: false,
            destroyed: false,
            retired: None,
        })))
    }

    fn link(&self) -> Result<Arc<Link>, ApiError> {
        let link = self.lock().link.clone().ok_or(RedisError::NotConfigured)?;
        link.start();
        Ok(link)
    }

    /// Reads the session from Redis once (renewing its expiry).
    async fn load(&self) -> Result<(), ApiError> {
        let (key, ttl) = {
            let i = self.lock();
            if i.data.is_some() {
                return Ok(());
            }
            let id = i.id.clone().unwrap_or_default();
            (format!("{}{id}", i.key_prefix), i.cfg.ttl.as_secs().max(1))
        };
        let link = self.link()?;
        let raw: Option<Vec<u8>> = link.call(|mut c| async move { redis::cmd("GETEX").arg(&key).arg("EX").arg(ttl).query_async(&mut c).await }).await?;
        let mut i = self.lock();
        if i.data.is_some() {
            return Ok(());
        }
        match raw.map(|r| serde_json::from_slice::<Map>(&r)) {
            Some(Ok(m)) => {
                i.data = Some(m);
                i.stored = true;
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "a session in Redis is not a JSON object: starting it afresh");
                i.data = Some(Map::new());
            }
            // Expired, forged or from elsewhere: an anonymous session.
            None => i.data = Some(Map::new()),
        }
        Ok(())
    }

    /// The value stored under `key`, if any (and of type `T`).
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ApiError> {
        self.load().await?;
        let i = self.lock();
        Ok(i.data.as_ref().and_then(|d| d.get(key)).and_then(|v| serde_json::from_value(v.clone()).ok()))
    }

    /// Stores `value` under `key`; written to Redis when the handler returns.
    pub async fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), ApiError> {
        let value = serde_json::to_value(value).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("session value for {key:?}: {e}")))?;
        self.load().await?;
        let mut i = self.lock();
        i.data.get_or_insert_with(Map::new).insert(key.to_string(), value);
        i.changed = true;
        i.destroyed = false;
        Ok(())
    }

    /// Removes `key`, answering what it held.
    pub async fn remove(&self, key: &str) -> Result<Option<serde_json::Value>, ApiError> {
        self.load().await?;
        let mut i = self.lock();
        let old = i.data.as_mut().and_then(|d| d.remove(key));
        i.changed |= old.is_some();
        Ok(old)
    }

    /// Gives the session a new id when it is saved (its data kept): call it
    /// on login and on any change of privilege.
    pub fn rotate(&self) {
        let mut i = self.lock();
        i.rotate = true;
        i.changed = true;
    }

    /// Ends the session: deleted from Redis, the cookie cleared (logout).
    /// Anything inserted afterwards starts a new session, under a new id.
    pub fn destroy(&self) {
        let mut i = self.lock();
        if let Some(id) = i.id.take() {
            i.retired = Some(id);
        }
        i.destroyed = true;
        i.stored = false;
        i.changed = false;
        i.data = Some(Map::new());
    }

    /// Whether the request came with a session Redis knows (after a `get`).
    pub fn is_stored(&self) -> bool {
        self.lock().stored
    }

    /// Writes a changed session to Redis and sets or clears the cookie.
    async fn save(&self, response: &mut Response) -> Result<(), ApiError> {
        enum Plan {
            Nothing,
            Delete { key: String },
            Write { retired: Option<String>, key: String, body: Vec<u8>, ttl: u64, id: String, fresh: bool },
        }
        let plan = {
            let mut i = self.lock();
            let prefix = i.key_prefix.clone();
            if i.changed {
                let body = serde_json::to_vec(i.data.as_ref().unwrap_or(&Map::new()))
                    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("session: {e}")))?;
                if body.len() > i.cfg.max_size {
                    return Err(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("the session ({} bytes) exceeds session.max_size ({})", body.len(), i.cfg.max_size),
                    ));
                }
                // A new id: on rotation, for a session Redis did not know
                // (never one a client chose), or after a destroy.
                let fresh = i.rotate || !i.stored || i.id.is_none();
                if fresh && i.rotate && i.stored {
                    i.retired = i.id.take();
                }
                let id = if fresh { new_id()? } else { i.id.clone().unwrap_or_default() };
                i.id = Some(id.clone());
                let retired = i.retired.take().map(|r| format!("{prefix}{r}"));
                Plan::Write { retired, key: format!("{prefix}{id}"), body, ttl: i.cfg.ttl.as_secs().max(1), id, fresh }
            } else if i.destroyed {
                match i.retired.take() {
                    Some(id) => Plan::Delete { key: format!("{prefix}{id}") },
                    None => Plan::Nothing,
                }
            } else {
                Plan::Nothing
            }
        };
        let link = match plan {
            Plan::Nothing => return Ok(()),
            _ => self.link()?,
        };
        let cookie = match plan {
            Plan::Nothing => return Ok(()),
            Plan::Delete { key } => {
                link.call(|mut c| async move { redis::cmd("DEL").arg(key).query_async::<()>(&mut c).await }).await?;
                self.cookie_header("", Some(0))
            }
            Plan::Write { retired, key, body, ttl, id, fresh } => {
                // An existing session is only updated while it exists (XX): a
                // logout or rotation another request made meanwhile wins over
                // this request's changes, instead of being undone by them.
                let (written,): (Option<String>,) = link
                    .call(|mut c| async move {
                        let mut p = redis::pipe();
                        p.atomic().cmd("SET").arg(&key).arg(body).arg("EX").arg(ttl);
                        if !fresh {
                            p.arg("XX");
                        }
                        if let Some(old) = retired {
                            p.cmd("DEL").arg(old).ignore();
                        }
                        p.query_async(&mut c).await
                    })
                    .await?;
                if written.is_none() {
                    return Ok(());
                }
                self.cookie_header(&id, None)
            }
        };
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            let h = response.headers_mut();
            h.append(SET_COOKIE, v);
            // A response that sets a session cookie is nobody else's.
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        Ok(())
    }

    fn cookie_header(&self, id: &str, max_age: Option<u64>) -> String {
        let i = self.lock();
        let mut c = format!("{}={id}; Path=/; HttpOnly; SameSite={}", i.cookie, i.cfg.same_site.as_str());
        if i.secure {
            c.push_str("; Secure");
        }
        if let Some(a) = max_age {
            c.push_str(&format!("; Max-Age={a}"));
        }
        c
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Session, ApiError> {
        parts.extensions.get::<Session>().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "this route uses Session but has no session layer: add .layer(corepool::redis::sessions()) to its router",
            )
        })
    }
}

impl<S, B> tower::Service<Request<B>> for SessionService<S>
where
    S: tower::Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let Some(state) = crate::scope::state() else {
            let fut = self.0.call(req);
            return Box::pin(fut);
        };
        let session = Session::from_request(&state, req.headers());
        req.extensions_mut().insert(session.clone());
        let fut = self.0.call(req);
        Box::pin(async move {
            let mut response = fut.await?;
            if let Err(e) = session.save(&mut response).await {
                // The handler's answer stands only if what it stored did.
                return Ok(e.into_response());
            }
            Ok(response)
        })
    }
}
