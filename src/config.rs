//! Configuration: the TOML file, `COREPOOL_*` environment variables and
//! `--set key=value` flags, merged in that order and validated.
//!
//! Every error names where the bad value came from: `file:line: key: what`
//! for the file, `COREPOOL_X: key: what` or `--set: key: what` for overrides.
//! Unknown keys, wrong types and out-of-range values are all errors.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::listen::ListenAddr;

/// Where the packaged configuration lives.
pub const DEFAULT_PATH: &str = "/etc/corepool/corepool.toml";

/// Bodies of JSON endpoints are capped at this size regardless of `http.max_body`.
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

/// The whole configuration of one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to bind when *not* socket-activated: `HOST:PORT` or `unix:/path`.
    pub listen: String,
    /// Instance number (the `%i` of `corepool@.service`).
    pub instance: u32,
    /// Pin the event loop to CPU `instance mod ncpu` (of the CPUs allowed to the process).
    pub pin: bool,
    /// How long SIGTERM waits for in-flight requests and jobs.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    pub http: HttpConfig,
    pub pool: PoolConfig,
    pub compute: ComputeConfig,
    pub password: PasswordConfig,
    pub log: LogConfig,
    pub backend: BackendConfig,
    pub debug: DebugConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted (bytes); larger gets 413.
    pub max_body: u64,
    /// Largest request head (request line + headers, bytes); larger gets 431.
    pub max_header_bytes: usize,
    /// Time allowed to receive a request head, and to wait for the next one on
    /// an idle keep-alive connection. Slow clients are disconnected.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Time allowed to receive a whole request body; slower gets 408.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Also accept HTTP/2 with prior knowledge (h2c) on the same socket.
    pub h2c: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// Worker threads for heavy jobs (fixed for the life of the process).
    pub threads: usize,
    /// Jobs allowed to wait for a thread; more are refused with 503.
    pub queue: usize,
    /// Deadline of a job from submission; past it the client gets 504.
    #[serde(with = "humantime_serde")]
    pub job_timeout: Duration,
    /// Nice value of pool threads (0..19), so the event loop wins the CPU.
    pub nice: i32,
    /// Scheduling policy of pool threads: `idle` (SCHED_IDLE: the event loop
    /// preempts them the moment it wakes), `batch` (SCHED_BATCH) or `normal`.
    pub sched: PoolSched,
    /// Pin pool threads to the event loop's CPU (when `pin` is on).
    pub pin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolSched {
    Idle,
    Batch,
    Normal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComputeConfig {
    /// Largest `n` accepted by `GET /compute`.
    pub max_n: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    /// argon2id memory cost in KiB (OWASP: 19456).
    pub memory_kib: u32,
    /// argon2id time cost.
    pub iterations: u32,
    /// argon2id lanes.
    pub parallelism: u32,
    /// Longest password accepted, in bytes.
    pub max_len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `journal` under systemd (JOURNAL_STREAM set), `human` otherwise.
    Auto,
    Human,
    Journal,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `corepool=debug`.
    pub level: String,
    /// One line per request (method, path, status, duration, request id).
    pub access: bool,
}

/// Serving a remote nginx front over TCP (several hosts behind one front).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendConfig {
    /// Addresses or networks (`10.0.0.1`, `10.0.0.0/24`, `fd00::/64`) of the
    /// nginx fronts. Non-empty: `corepool enable` gives instance N a TCP socket
    /// on `port_base + N` that only these may reach; every TCP peer outside
    /// them is refused. Empty: unix sockets only.
    pub allow: Vec<String>,
    /// Instance N listens on TCP port `port_base + N`.
    pub port_base: u16,
    /// Address those sockets bind; empty binds every address (IPv4 and IPv6).
    pub bind: String,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig { allow: Vec::new(), port_base: 7000, bind: String::new() }
    }
}

impl BackendConfig {
    /// `allow` as networks (an address is a network of one); entries that do
    /// not parse are left out (`validate` rejects them first).
    pub fn networks(&self) -> Vec<ipnet::IpNet> {
        self.allow.iter().filter_map(|a| parse_net(a).ok()).collect()
    }

    /// True when the instances serve a remote front over TCP.
    pub fn enabled(&self) -> bool {
        !self.allow.is_empty()
    }
}

/// `10.0.0.1` or `10.0.0.0/24` (likewise IPv6) as a network.
pub fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(ip.into());
    }
    s.parse::<ipnet::IpNet>()
        .map(|n| n.trunc())
        .map_err(|_| format!("`{s}` is not an IP address or network (e.g. 10.0.0.1, 10.0.0.0/24, fd00::/64)"))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DebugConfig {
    /// Enable `/debug/*` fault-injection endpoints. Never in production.
    pub endpoints: bool,
    /// Record per-request spans and write them at shutdown to
    /// `DIR/spans-<instance>-<pid>.jsonl` (see `trace`). Off when empty.
    pub spans: std::path::PathBuf,
    /// Most spans kept in memory; later requests are counted, not kept.
    pub max_spans: usize,
}

impl Default for DebugConfig {
    fn default() -> Self {
        DebugConfig { endpoints: false, spans: Default::default(), max_spans: 1_000_000 }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:3000".into(),
            instance: 0,
            pin: true,
            shutdown_timeout: Duration::from_secs(30),
            http: HttpConfig::default(),
            pool: PoolConfig::default(),
            compute: ComputeConfig::default(),
            password: PasswordConfig::default(),
            log: LogConfig::default(),
            backend: BackendConfig::default(),
            debug: DebugConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body: 1024 * 1024,
            max_header_bytes: 16 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 4096,
            h2c: false,
        }
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            threads: 1,
            queue: 64,
            job_timeout: Duration::from_secs(10),
            nice: 10,
            sched: PoolSched::Idle,
            pin: true,
        }
    }
}

impl Default for ComputeConfig {
    fn default() -> Self {
        ComputeConfig { max_n: 10_000_000_000 }
    }
}

impl Default for PasswordConfig {
    fn default() -> Self {
        PasswordConfig { memory_kib: 19456, iterations: 2, parallelism: 1, max_len: 1024 }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Auto, level: "info".into(), access: true }
    }
}

/// One `key = value` set from outside the file.
#[derive(Debug, Clone)]
pub struct Override {
    /// Dotted key, e.g. `pool.threads`.
    pub key: String,
    /// Raw value; parsed as a TOML value, or taken as a string if it is not one.
    pub value: String,
    /// What set it, for error messages: `COREPOOL_POOL_THREADS`, `--set`, `--listen`.
    pub origin: String,
}

impl Override {
    /// Parses a `--set key=value` argument.
    pub fn parse_flag(s: &str) -> Result<Override, String> {
        let (key, value) = s.split_once('=').ok_or_else(|| format!("`{s}` is not key=value"))?;
        Ok(Override { key: key.trim().into(), value: value.trim().into(), origin: "--set".into() })
    }
}

/// Where the configuration file is and whether it must exist.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    /// Named explicitly (`--config`): a missing file is an error. Otherwise a
    /// missing default file means "run on built-in defaults".
    pub required: bool,
}

impl Source {
    pub fn default_path() -> Source {
        Source { path: DEFAULT_PATH.into(), required: false }
    }
}

/// A configuration that failed to load.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{path}:{line}: {key}: {msg}")]
    File { path: PathBuf, line: usize, key: String, msg: String },
    #[error("{origin}: {key}: {msg}")]
    Override { origin: String, key: String, msg: String },
}

/// The result of loading: the configuration and whether a file was read.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub file: Option<PathBuf>,
}

/// Loads the file (if any), applies `overrides` in order, validates.
pub fn load(source: &Source, overrides: &[Override]) -> Result<Loaded, ConfigError> {
    let text = match std::fs::read_to_string(&source.path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !source.required => None,
        Err(e) => return Err(ConfigError::Read { path: source.path.clone(), error: e }),
    };
    parse(&source.path, text.as_deref(), overrides)
}

/// [`load`] without the file system: `text` is the content of `path` (None:
/// no file, built-in defaults), then `overrides`, then validation.
pub fn parse(path: &Path, text: Option<&str>, overrides: &[Override]) -> Result<Loaded, ConfigError> {
    let file_err = |text: &str, span: Option<Range<usize>>, key: Option<String>, msg: String| {
        let offset = span.map(|s| s.start).unwrap_or(0);
        ConfigError::File {
            path: path.to_path_buf(),
            line: line_of(text, offset),
            key: key.or_else(|| key_at(text, offset)).unwrap_or_else(|| "(syntax)".into()),
            msg,
        }
    };

    let mut config = match text {
        Some(t) => toml::from_str::<Config>(t)
            .map_err(|e| file_err(t, e.span(), None, e.message().trim().to_string()))?,
        None => Config::default(),
    };

    let mut origins: HashMap<String, String> = HashMap::new();
    for o in overrides {
        config = apply_override(config, o)?;
        origins.insert(o.key.clone(), o.origin.clone());
    }

    if let Err((key, msg)) = validate(&config) {
        if let Some(origin) = origins.get(&key) {
            return Err(ConfigError::Override { origin: origin.clone(), key, msg });
        }
        if let Some(t) = text {
            let span = span_of(t, &key);
            return Err(file_err(t, span, Some(key), msg));
        }
        // Defaults are valid (tested), so this only happens for impossible states.
        return Err(ConfigError::Override { origin: "default".into(), key, msg });
    }
    Ok(Loaded { config, file: text.map(|_| path.to_path_buf()) })
}

/// Reads `COREPOOL_*` variables as overrides: `COREPOOL_POOL_JOB_TIMEOUT=5s`
/// sets `pool.job_timeout`, `COREPOOL_LISTEN=...` sets `listen`.
/// `COREPOOL_CONFIG` (the file path) is not a key and is skipped.
pub fn env_overrides(vars: impl IntoIterator<Item = (String, String)>) -> Vec<Override> {
    let sections: Vec<String> = match toml::Table::try_from(Config::default()) {
        Ok(t) => t.into_iter().filter(|(_, v)| v.is_table()).map(|(k, _)| k).collect(),
        Err(_) => Vec::new(),
    };
    let mut out: Vec<Override> = vars
        .into_iter()
        .filter_map(|(name, value)| {
            let rest = name.strip_prefix("COREPOOL_")?.to_ascii_lowercase();
            if rest == "config" {
                return None;
            }
            let key = sections
                .iter()
                .find_map(|s| rest.strip_prefix(&format!("{s}_")).map(|k| format!("{s}.{k}")))
                .unwrap_or(rest);
            Some(Override { key, value, origin: name })
        })
        .collect();
    out.sort_by(|a, b| a.origin.cmp(&b.origin));
    out
}

fn apply_override(config: Config, o: &Override) -> Result<Config, ConfigError> {
    let err = |msg: String| ConfigError::Override { origin: o.origin.clone(), key: o.key.clone(), msg };
    let mut table = toml::Table::try_from(&config).map_err(|e| err(e.to_string()))?;
    let parts: Vec<&str> = o.key.split('.').collect();
    let (last, parents) = parts.split_last().ok_or_else(|| err("empty key".into()))?;
    let mut cur = &mut table;
    for p in parents {
        cur = match cur.get_mut(*p) {
            Some(toml::Value::Table(t)) => t,
            _ => return Err(err("unknown key".into())),
        };
    }
    match cur.get(*last) {
        Some(toml::Value::Table(_)) => return Err(err("is a section, not a key".into())),
        Some(_) => {}
        None => return Err(err("unknown key".into())),
    }
    cur.insert((*last).to_string(), parse_value(&o.value));
    toml::Value::Table(table)
        .try_into::<Config>()
        .map_err(|e| err(e.message().trim().to_string()))
}

/// A flag or env value as TOML (`4`, `true`, `"x"`), else the raw string.
fn parse_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// Range checks serde cannot express. Returns the offending key.
pub fn validate(c: &Config) -> Result<(), (String, String)> {
    fn check(ok: bool, key: &str, msg: impl fmt::Display) -> Result<(), (String, String)> {
        if ok { Ok(()) } else { Err((key.to_string(), msg.to_string())) }
    }
    let ms = Duration::from_millis;
    c.listen.parse::<ListenAddr>().map_err(|e| ("listen".to_string(), e))?;
    check(c.shutdown_timeout >= ms(1), "shutdown_timeout", "must be at least 1ms")?;
    check((1..=1 << 30).contains(&c.http.max_body), "http.max_body", "must be 1..=1073741824 bytes")?;
    check((8192..=1 << 20).contains(&c.http.max_header_bytes), "http.max_header_bytes", "must be 8192..=1048576")?;
    check(c.http.header_timeout >= ms(1), "http.header_timeout", "must be at least 1ms")?;
    check(c.http.body_timeout >= ms(1), "http.body_timeout", "must be at least 1ms")?;
    check((1..=1_000_000).contains(&c.http.max_connections), "http.max_connections", "must be 1..=1000000")?;
    check((1..=256).contains(&c.pool.threads), "pool.threads", "must be 1..=256")?;
    check((1..=1_000_000).contains(&c.pool.queue), "pool.queue", "must be 1..=1000000")?;
    check(
        c.pool.job_timeout >= ms(1) && c.pool.job_timeout <= Duration::from_secs(3600),
        "pool.job_timeout",
        "must be between 1ms and 1h",
    )?;
    check((0..=19).contains(&c.pool.nice), "pool.nice", "must be 0..=19 (pool threads may only lower their priority)")?;
    check(c.compute.max_n >= 1, "compute.max_n", "must be at least 1")?;
    check((1..=16).contains(&c.password.parallelism), "password.parallelism", "must be 1..=16")?;
    check(
        c.password.memory_kib >= 8 * c.password.parallelism && c.password.memory_kib <= 4 * 1024 * 1024,
        "password.memory_kib",
        "must be at least 8 × parallelism and at most 4194304 (4 GiB)",
    )?;
    check((1..=100).contains(&c.password.iterations), "password.iterations", "must be 1..=100")?;
    check((1..=65536).contains(&c.password.max_len), "password.max_len", "must be 1..=65536")?;
    for a in &c.backend.allow {
        parse_net(a).map_err(|e| ("backend.allow".to_string(), e))?;
    }
    check(c.backend.port_base >= 1, "backend.port_base", "must be 1..=65535")?;
    check(
        c.backend.bind.is_empty() || c.backend.bind.parse::<std::net::IpAddr>().is_ok(),
        "backend.bind",
        "must be an IP address, or empty for every address",
    )?;
    tracing_subscriber::EnvFilter::try_new(&c.log.level)
        .map(|_| ())
        .map_err(|e| ("log.level".to_string(), format!("not a valid filter: {e}")))
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Called with (dotted path, key span, value span); returns true to stop.
type Visit<'a> = &'a mut dyn FnMut(&str, Option<Range<usize>>, Option<Range<usize>>) -> bool;

/// Walks a parsed document's key/value pairs with their dotted paths.
fn walk(text: &str, f: Visit<'_>) {
    fn table(prefix: &str, items: Vec<(&toml_edit::Key, &toml_edit::Item)>, f: Visit<'_>) -> bool {
        for (k, item) in items {
            let path = if prefix.is_empty() { k.get().to_string() } else { format!("{prefix}.{}", k.get()) };
            let stop = match item {
                toml_edit::Item::Table(t) => {
                    f(&path, k.span(), t.span())
                        || table(&path, t.iter().filter_map(|(name, _)| t.get_key_value(name)).collect(), f)
                }
                toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => {
                    f(&path, k.span(), item.span())
                        || table(&path, t.iter().filter_map(|(name, _)| t.get_key_value(name)).collect(), f)
                }
                _ => f(&path, k.span(), item.span()),
            };
            if stop {
                return true;
            }
        }
        false
    }
    if let Ok(doc) = toml_edit::Document::parse(text) {
        let root = doc.as_table();
        table("", root.iter().filter_map(|(name, _)| root.get_key_value(name)).collect(), f);
    }
}

/// The dotted key whose key or value covers byte `offset`, innermost first.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let mut found = None;
    walk(text, &mut |path, key, value| {
        let hit = |r: &Option<Range<usize>>| r.as_ref().is_some_and(|r| r.start <= offset && offset < r.end.max(r.start + 1));
        if hit(&key) || hit(&value) {
            found = Some(path.to_string());
        }
        false
    });
    found
}

/// Span of a dotted key in the file, if the file sets it.
fn span_of(text: &str, wanted: &str) -> Option<Range<usize>> {
    let mut found = None;
    walk(text, &mut |path, key, _| {
        if path == wanted {
            found = key;
            return true;
        }
        false
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load_text(text: &str, overrides: &[Override]) -> Result<Config, String> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let src = Source { path: f.path().into(), required: true };
        load(&src, overrides).map(|l| l.config).map_err(|e| e.to_string().replace(&f.path().display().to_string(), "FILE"))
    }

    #[test]
    fn defaults_are_valid() {
        validate(&Config::default()).unwrap();
    }

    #[test]
    fn shipped_file_matches_defaults() {
        // The packaged file documents every key with its default value, uncommented.
        let text = include_str!("../packaging/corepool.toml");
        let parsed: Config = toml::from_str(text).expect("packaged corepool.toml parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn reads_values_and_durations() {
        let c = load_text("listen = \"unix:/tmp/x.sock\"\n[pool]\nthreads = 3\njob_timeout = \"250ms\"\n", &[]).unwrap();
        assert_eq!(c.pool.threads, 3);
        assert_eq!(c.pool.job_timeout, Duration::from_millis(250));
        assert_eq!(c.listen, "unix:/tmp/x.sock");
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = load_text("pin = true\n\n[pool]\nthreads = 2\nthreadz = 3\n", &[]).unwrap_err();
        assert!(e.starts_with("FILE:5: pool.threadz: unknown field `threadz`"), "{e}");
    }

    #[test]
    fn bad_type_names_key() {
        let e = load_text("[http]\nmax_body = \"big\"\n", &[]).unwrap_err();
        assert!(e.starts_with("FILE:2: http.max_body: invalid type"), "{e}");
    }

    #[test]
    fn out_of_range_names_line_and_key() {
        let e = load_text("# comment\n[pool]\n\nthreads = 0\n", &[]).unwrap_err();
        assert_eq!(e, "FILE:4: pool.threads: must be 1..=256");
    }

    #[test]
    fn backend_allow_takes_addresses_and_networks_and_names_bad_ones() {
        let c = load_text("[backend]\nallow = [\"10.0.0.1\", \"10.1.0.9/16\", \"fd00::1\"]\n", &[]).unwrap();
        let nets: Vec<String> = c.backend.networks().iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["10.0.0.1/32", "10.1.0.0/16", "fd00::1/128"]);
        assert!(c.backend.enabled() && !Config::default().backend.enabled());
        let e = load_text("[backend]\n\nallow = [\"10.0.0.1\", \"front.example\"]\n", &[]).unwrap_err();
        assert!(e.starts_with("FILE:3: backend.allow: `front.example` is not an IP address"), "{e}");
        let e = load_text("[backend]\nbind = \"everywhere\"\n", &[]).unwrap_err();
        assert!(e.starts_with("FILE:2: backend.bind:"), "{e}");
    }

    #[test]
    fn syntax_error_has_line() {
        let e = load_text("[pool\nthreads = 1\n", &[]).unwrap_err();
        assert!(e.starts_with("FILE:1: "), "{e}");
    }

    #[test]
    fn inline_table_keys_are_found() {
        let e = load_text("pool = { threads = 1, queue = 0 }\n", &[]).unwrap_err();
        assert_eq!(e, "FILE:1: pool.queue: must be 1..=1000000");
    }

    #[test]
    fn env_maps_sections_and_top_level() {
        let o = env_overrides(vec![
            ("COREPOOL_POOL_JOB_TIMEOUT".into(), "5s".into()),
            ("COREPOOL_LISTEN".into(), "unix:/run/x.sock".into()),
            ("COREPOOL_SHUTDOWN_TIMEOUT".into(), "3s".into()),
            ("COREPOOL_CONFIG".into(), "/x".into()),
            ("PATH".into(), "/bin".into()),
        ]);
        let keys: Vec<_> = o.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["listen", "pool.job_timeout", "shutdown_timeout"]);
        let c = load_text("", &o).unwrap();
        assert_eq!(c.pool.job_timeout, Duration::from_secs(5));
        assert_eq!(c.shutdown_timeout, Duration::from_secs(3));
    }

    #[test]
    fn overrides_win_and_errors_name_origin() {
        let o = Override::parse_flag("pool.threads=4").unwrap();
        assert_eq!(load_text("[pool]\nthreads = 2\n", &[o]).unwrap().pool.threads, 4);

        let bad = Override { key: "pool.threads".into(), value: "0".into(), origin: "COREPOOL_POOL_THREADS".into() };
        assert_eq!(load_text("", &[bad]).unwrap_err(), "COREPOOL_POOL_THREADS: pool.threads: must be 1..=256");

        let unknown = Override::parse_flag("pool.nope=1").unwrap();
        assert_eq!(load_text("", &[unknown]).unwrap_err(), "--set: pool.nope: unknown key");

        let wrong = Override::parse_flag("pin=maybe").unwrap();
        assert!(load_text("", &[wrong]).unwrap_err().starts_with("--set: pin: invalid type"));
    }

    #[test]
    fn missing_default_file_means_defaults_but_explicit_is_error() {
        let src = Source { path: "/nonexistent/corepool.toml".into(), required: false };
        assert_eq!(load(&src, &[]).unwrap().config, Config::default());
        let src = Source { path: "/nonexistent/corepool.toml".into(), required: true };
        assert!(load(&src, &[]).unwrap_err().to_string().starts_with("/nonexistent/corepool.toml: cannot read"));
    }
}
