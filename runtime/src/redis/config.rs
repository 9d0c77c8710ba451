//! `[redis]` and `[session]`: where Redis is, how long a command may take,
//! and the session cookie's attributes. Sections of the service's own file,
//! registered by every service built with the `redis` feature.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::section::{InvalidSetting, Section};

/// `[redis]`: the shared Redis every instance (and host) of the service uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// Where Redis listens: a unix socket (`/run/redis/redis-server.sock`,
    /// `unix:///path`) or `redis://[user@]host[:port][/db]`; empty: no Redis
    /// (or the primary the sentinels name).
    pub url: String,
    /// Redis Sentinels (`host:port`, several): the primary is the one they
    /// name `sentinel_master`, asked again on every reconnect, so a failover
    /// moves every instance to the new primary. Instead of `url`.
    pub sentinels: Vec<String>,
    /// The primary's name in the sentinels' configuration (`sentinel monitor NAME ...`).
    pub sentinel_master: String,
    /// The database on the primary the sentinels name.
    pub sentinel_db: u16,
    /// The service cannot work without it: `/readyz` fails while Redis is
    /// unreachable, and a refused password or socket permission at start
    /// exits 78 (EX_CONFIG). When false those are warnings.
    pub required: bool,
    /// The systemd credential holding the password (`LoadCredential=NAME:...`),
    /// read from `$CREDENTIALS_DIRECTORY/NAME`; absent: no password.
    pub password_credential: String,
    /// Longest wait for one command's answer; past it the request answers 503.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Longest wait for a connection (and its handshake) to be set up.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How often an idle connection is checked with PING: a Redis that stopped
    /// answering (a hung host, a partition) is noticed within this plus `timeout`.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// Messages one topic holds for a local subscriber that has not read them
    /// yet; a subscriber further behind misses the oldest (counted as dropped).
    /// Allocated up front per topic with local subscribers (about 56 bytes a
    /// message, rounded up to a power of two: 14 KiB at 256).
    pub broadcast_buffer: usize,
    /// Largest broadcast message (bytes); larger is refused at publish.
    pub max_message: usize,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: String::new(),
            sentinels: Vec::new(),
            sentinel_master: "mymaster".into(),
            sentinel_db: 0,
            required: false,
            password_credential: "redis-password".into(),
            timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(1),
            ping_interval: Duration::from_secs(1),
            broadcast_buffer: 256,
            max_message: 64 * 1024,
        }
    }
}

/// What `[redis] url` names, checked: a unix socket or a TCP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A unix socket's path.
    Unix(std::path::PathBuf),
    /// `redis://...` as written.
    Tcp(String),
    /// The primary that these sentinels (`redis://host:port`) name.
    Sentinels(Vec<String>),
}

impl RedisConfig {
    /// Whether a Redis is configured.
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty() || !self.sentinels.is_empty()
    }

    /// What the link is to, for logs and `/healthz`: the URL, or the sentinels' primary.
    pub fn describe(&self) -> String {
        if self.sentinels.is_empty() {
            self.url.trim().to_string()
        } else {
            format!("sentinel:{}@{}", self.sentinel_master, self.sentinels.join(","))
        }
    }

    /// The URL, checked: no password in it (the file is world-readable; the
    /// password comes from the credential), a scheme this build speaks.
    pub(crate) fn target(&self) -> Result<Target, String> {
        if !self.sentinels.is_empty() {
            let mut out = Vec::new();
            for s in &self.sentinels {
                let (host, port) = s.rsplit_once(':').ok_or_else(|| format!("{s:?}: a sentinel is host:port (10.0.0.5:26379)"))?;
                if host.is_empty() || port.parse::<u16>().is_err() || s.contains(['/', '@']) {
                    return Err(format!("{s:?}: a sentinel is host:port (10.0.0.5:26379)"));
                }
                out.push(format!("redis://{s}"));
            }
            return Ok(Target::Sentinels(out));
        }
        let url = self.url.trim();
        if url.starts_with('/') {
            return Ok(Target::Unix(url.into()));
        }
        for scheme in ["unix://", "redis+unix://"] {
            if let Some(rest) = url.strip_prefix(scheme) {
                let path = rest.split(['?', '#']).next().unwrap_or_default();
                if !path.starts_with('/') {
                    return Err(format!("{url:?}: a unix socket URL needs an absolute path ({scheme}/run/redis/redis-server.sock)"));
                }
                if rest.contains("pass=") || rest.contains("password=") {
                    return Err(password_in_url());
                }
                return Ok(Target::Unix(path.into()));
            }
        }
        if url.starts_with("rediss://") {
            return Err(format!(
                "{url:?}: TLS to Redis is not built into this service; use a unix socket, a private network or a TLS tunnel (stunnel, spiped)"
            ));
        }
        let Some(rest) = url.strip_prefix("redis://") else {
            return Err(format!("{url:?}: expected a unix socket path (/run/redis/redis-server.sock) or redis://host[:port][/db]"));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if userinfo.contains(':') {
                return Err(password_in_url());
            }
        }
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if host.is_empty() || host.starts_with(':') {
            return Err(format!("{url:?}: no host (redis://127.0.0.1:6379)"));
        }
        let db = rest.split_once('/').map(|(_, d)| d.split(['?', '#']).next().unwrap_or_default()).unwrap_or_default();
        if !db.is_empty() && db.parse::<u16>().is_err() {
            return Err(format!("{url:?}: the database after the host must be a number (redis://host:6379/0), got {db:?}"));
        }
        Ok(Target::Tcp(url.to_string()))
    }
}

fn password_in_url() -> String {
    "carries a password, and the configuration file is readable by everyone: put the password in the systemd credential named by \
     redis.password_credential (docs/redis.md)"
        .into()
}

impl Section for RedisConfig {
    const NAME: &'static str = "redis";
    const DOC: &'static str = "Redis, shared by every instance and host: sessions, broadcast, counters (docs/redis.md).\n\
        url: a unix socket (/run/redis/redis-server.sock) or redis://host:port/db; empty: none.\n\
        sentinels, sentinel_master: instead of url, the primary these Redis Sentinels name.\n\
        required: /readyz follows Redis, a refused password or socket exits 78 at start.\n\
        password_credential: the systemd credential with the password ($CREDENTIALS_DIRECTORY/NAME).";

    fn validate(&self) -> Result<(), InvalidSetting> {
        if !self.sentinels.is_empty() {
            if !self.url.trim().is_empty() {
                return Err(InvalidSetting::new("sentinels", "either url or sentinels, not both: with sentinels the primary is whichever they name"));
            }
            if self.sentinel_master.is_empty() {
                return Err(InvalidSetting::new("sentinel_master", "must name the primary (sentinel monitor NAME ...)"));
            }
            self.target().map_err(|e| InvalidSetting::new("sentinels", e))?;
        } else if self.enabled() {
            self.target().map_err(|e| InvalidSetting::new("url", e))?;
        }
        let positive = [("timeout", self.timeout), ("connect_timeout", self.connect_timeout), ("ping_interval", self.ping_interval)];
        if let Some((key, _)) = positive.iter().find(|(_, d)| d.is_zero()) {
            return Err(InvalidSetting::new(*key, "must be more than 0"));
        }
        if self.broadcast_buffer == 0 || self.broadcast_buffer > 1 << 20 {
            return Err(InvalidSetting::new("broadcast_buffer", "must be between 1 and 1048576 messages"));
        }
        if self.max_message == 0 || self.max_message > 512 << 20 {
            return Err(InvalidSetting::new("max_message", "must be between 1 byte and 512 MiB (Redis's own limit)"));
        }
        if self.password_credential.contains('/') {
            return Err(InvalidSetting::new("password_credential", "is a credential's name, not a path (LoadCredential=NAME:/path sets the path)"));
        }
        Ok(())
    }
}

/// When the session cookie carries `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Secure {
    /// When the request came over HTTPS (nginx's `X-Forwarded-Proto: https`),
    /// as express-session's `secure: "auto"`.
    #[default]
    Auto,
    /// Always (the browser then sends it over HTTPS only).
    Always,
    /// Never (plain-HTTP development only).
    Never,
}

/// The cookie's `SameSite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    /// Sent on top-level navigations from other sites, not on their subrequests.
    #[default]
    Lax,
    /// Never sent from another site.
    Strict,
    /// Always sent (requires `Secure`).
    None,
}

impl SameSite {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

/// `[session]`: the session cookie (`NAME_session`, HttpOnly, Path=/) and expiry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// A session unused this long expires in Redis (each request that reads
    /// or changes it renews it). The cookie itself lasts until the browser
    /// closes (no Max-Age), as express-session's default.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// `auto` (when the request came over HTTPS), `always` or `never`.
    pub secure: Secure,
    /// `lax`, `strict` or `none`.
    pub same_site: SameSite,
    /// Largest session, serialized (bytes); a handler storing more gets a 500 naming it.
    pub max_size: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig { ttl: Duration::from_secs(24 * 3600), secure: Secure::Auto, same_site: SameSite::Lax, max_size: 16 * 1024 }
    }
}

impl Section for SessionConfig {
    const NAME: &'static str = "session";
    const DOC: &'static str = "Sessions in Redis ([redis] url): cookie NAME_session, HttpOnly.\n\
        ttl: idle expiry; secure: auto (HTTPS per nginx), always or never; same_site: lax, strict or none.";

    fn validate(&self) -> Result<(), InvalidSetting> {
        if self.ttl < Duration::from_secs(1) {
            return Err(InvalidSetting::new("ttl", "must be at least 1s"));
        }
        if self.same_site == SameSite::None && self.secure == Secure::Never {
            return Err(InvalidSetting::new("same_site", "\"none\" needs secure = \"auto\" or \"always\": browsers refuse SameSite=None without Secure"));
        }
        if self.max_size == 0 {
            return Err(InvalidSetting::new("max_size", "must be more than 0"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(u: &str) -> Result<Target, String> {
        RedisConfig { url: u.into(), ..Default::default() }.target()
    }

    #[test]
    fn urls_name_a_socket_or_a_host_and_never_a_password() {
        assert_eq!(url("/run/redis/redis-server.sock"), Ok(Target::Unix("/run/redis/redis-server.sock".into())));
        assert_eq!(url("unix:///run/r.sock"), Ok(Target::Unix("/run/r.sock".into())));
        assert_eq!(url("redis+unix:///run/r.sock?db=2"), Ok(Target::Unix("/run/r.sock".into())), "the path (the URL itself, with its db, is what connects)");
        assert_eq!(url("redis://10.0.0.5:6379/1"), Ok(Target::Tcp("redis://10.0.0.5:6379/1".into())));
        assert_eq!(url("redis://app@10.0.0.5"), Ok(Target::Tcp("redis://app@10.0.0.5".into())));
        assert!(url("redis://app:secret@10.0.0.5").unwrap_err().contains("password_credential"));
        assert!(url("unix:///r.sock?pass=x").unwrap_err().contains("password"));
        assert!(url("rediss://h").unwrap_err().contains("TLS"));
        assert!(url("http://h").unwrap_err().contains("expected"));
        assert!(url("redis://:6379").unwrap_err().contains("no host"));
        assert!(url("redis://h/x").unwrap_err().contains("number"));
        assert!(url("unix://r.sock").unwrap_err().contains("absolute"));
        let s = RedisConfig { sentinels: vec!["10.0.0.5:26379".into(), "h:1".into()], ..Default::default() };
        assert_eq!(s.target(), Ok(Target::Sentinels(vec!["redis://10.0.0.5:26379".into(), "redis://h:1".into()])));
        let bad = RedisConfig { sentinels: vec!["10.0.0.5".into()], ..Default::default() };
        assert_eq!(bad.validate().unwrap_err().key, "sentinels");
        let both = RedisConfig { sentinels: vec!["h:1".into()], url: "/r.sock".into(), ..Default::default() };
        assert!(both.validate().unwrap_err().message.contains("not both"));
    }

    #[test]
    fn checks_name_the_key() {
        let bad = RedisConfig { timeout: Duration::ZERO, ..Default::default() };
        assert_eq!(bad.validate().unwrap_err().key, "timeout");
        let bad = RedisConfig { url: "nope".into(), ..Default::default() };
        assert_eq!(bad.validate().unwrap_err().key, "url");
        assert!(RedisConfig::default().validate().is_ok());
        let bad = SessionConfig { same_site: SameSite::None, secure: Secure::Never, ..Default::default() };
        assert_eq!(bad.validate().unwrap_err().key, "same_site");
    }
}
