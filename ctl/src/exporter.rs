//! `NAME metrics serve`: the host's scrape endpoint for Prometheus
//! (`NAME-metrics.service`).
//!
//! Prometheus cannot scrape unix sockets, and must not be the reason an
//! instance starts (the sockets are socket-activated) or a scrape hangs (an
//! instance can be wedged). So one small process per host answers on a TCP
//! address (`[metrics] listen`, loopback by default):
//!
//! * `GET /instances/N/metrics`: instance N's own `/metrics`, fetched over its
//!   socket only while systemd says it runs, with a 2 s timeout. A stopped
//!   instance gets 503 and a hung one 504, so Prometheus's `up` for that
//!   target is 0: the explicit "down" series, per instance.
//! * `GET /metrics`: the host's view of the instances, from systemd and its
//!   journal: `corepool_instance_up`, `corepool_instance_restarts_total`
//!   (NRestarts), `corepool_instance_watchdog_timeouts_total`,
//!   `corepool_instance_memory_bytes` and `corepool_instance_memory_max_bytes`.
//!
//! Each instance is its own scrape target (file_sd: [`targets`], kept current
//! by `NAME enable/scale/disable`), so Prometheus's `instance` label and `up`
//! mean what they always mean.
//!
//! Why not nginx: a proxy in front of the sockets would start a stopped
//! instance on the first scrape. Why not the instances: they have no network
//! of their own (`PrivateNetwork=yes`) and a dead one cannot report itself.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use corepool_runtime::cli::report;
use corepool_runtime::config::MetricsConfig;
use corepool_runtime::notify::Notifier;
use corepool_runtime::ServiceName;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::units;
use corepool_runtime::client;

/// How long an instance may take to answer a scrape before it is reported down.
pub const INSTANCE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the endpoint could not run.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error("[metrics] listen: cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        error: std::io::Error,
    },
    #[error("[metrics] listen: `{0}` is not HOST:PORT")]
    Address(String),
    /// Writing the file_sd targets.
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("cannot start the event loop")]
    Runtime(#[source] std::io::Error),
    #[error("cannot watch for SIGTERM")]
    Signal(#[source] std::io::Error),
}

/// The port of a service's endpoint when `[metrics] listen` is empty: derived
/// from its name (FNV-1a), in 9500..=9899, so that services on one host
/// differ (unless two names collide: then set one).
pub fn default_port(n: &ServiceName) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for b in n.as_str().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    9500 + (h % 400) as u16
}

/// Where the endpoint listens.
pub fn listen_addr(n: &ServiceName, cfg: &MetricsConfig) -> Result<SocketAddr, ExporterError> {
    if cfg.listen.is_empty() {
        return Ok(SocketAddr::new(IpAddr::from([127, 0, 0, 1]), default_port(n)));
    }
    cfg.listen.parse().map_err(|_| ExporterError::Address(cfg.listen.clone()))
}

/// `/var/lib/NAME/prometheus/targets.json`: the file_sd list Prometheus reads.
pub fn targets_path(n: &ServiceName) -> PathBuf {
    n.state_dir().join("prometheus/targets.json")
}

/// The file_sd target groups for `instances` at `addr`: one per instance
/// (`/instances/N/metrics`), and one for the host's view (`/metrics`).
/// `instance` is `HOST:N` (and `HOST` for the host's view).
pub fn targets(n: &ServiceName, addr: SocketAddr, host: &str, instances: &[u32]) -> String {
    let group = |path: String, instance: String| {
        serde_json::json!({
            "targets": [addr.to_string()],
            "labels": { "__metrics_path__": path, "instance": instance, "service": n.as_str() }
        })
    };
    let mut groups: Vec<serde_json::Value> = instances.iter().map(|i| group(format!("/instances/{i}/metrics"), format!("{host}:{i}"))).collect();
    if !instances.is_empty() {
        groups.push(group("/metrics".into(), host.to_string()));
    }
    serde_json::to_string_pretty(&groups).unwrap_or_else(|_| "[]".into()) + "\n"
}

/// This machine's name, as the `instance` labels use it.
pub fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into())
}

/// Rewrites the file_sd list for `instances` (atomically: Prometheus watches it).
pub fn write_targets(n: &ServiceName, cfg: &MetricsConfig, instances: &[u32]) -> Result<(), ExporterError> {
    let addr = listen_addr(n, cfg)?;
    let path = targets_path(n);
    let io = |p: &std::path::Path| {
        let p = p.to_path_buf();
        move |error| ExporterError::Io { path: p, error }
    };
    let dir = path.parent().unwrap_or(std::path::Path::new("/"));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, targets(n, addr, &hostname(), instances)).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    instance: String,
}

/// What the endpoint keeps between scrapes: watchdog timeouts counted from
/// the journal, read incrementally from a cursor.
#[derive(Default)]
struct Watchdogs {
    /// This boot's id as the journal records it (`_BOOT_ID` of its newest
    /// entry). Not `journalctl -b`: that compares with the boot id in /proc,
    /// which a sandboxed unit in a container may see from outside it.
    boot: Option<String>,
    cursor: Option<String>,
    counts: HashMap<u32, u64>,
}

struct Exporter {
    name: ServiceName,
    allow: Vec<ipnet::IpNet>,
    watchdogs: Mutex<Watchdogs>,
}

/// A line of `journalctl -o json --show-cursor` output.
enum Entry {
    Json(serde_json::Value),
    Cursor(String),
}

/// Runs `journalctl -q --no-pager -o json ARGS`; its entries. Nothing
/// matching is not an error (journalctl exits 1 then); a failure to run is
/// reported on stderr (the journal), and gives no entries.
fn journal(args: &[&str]) -> Vec<Entry> {
    let out = match std::process::Command::new("journalctl").args(["-q", "--no-pager", "-o", "json"]).args(args).output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("journalctl: {e}");
            return Vec::new();
        }
    };
    if !out.status.success() && !out.stderr.is_empty() {
        eprintln!("journalctl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| match line.strip_prefix("-- cursor: ") {
            Some(c) => Some(Entry::Cursor(c.trim().to_string())),
            None => serde_json::from_str(line).ok().map(Entry::Json),
        })
        .collect()
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    r.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    r
}

fn metrics_response(body: String) -> Response<Full<Bytes>> {
    let mut r = text(StatusCode::OK, body);
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    r
}

impl Exporter {
    /// One instance's metrics, if it runs and answers in time.
    fn instance(&self, i: u32) -> Response<Full<Bytes>> {
        let n = &self.name;
        match units::enabled(n) {
            Ok(list) if list.contains(&i) => {}
            Ok(_) => return text(StatusCode::NOT_FOUND, format!("{n}@{i} is not enabled\n")),
            Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{}\n", report(&e))),
        }
        let state = units::show(&[n.service_unit(i)], &["ActiveState", "SubState"]).ok().and_then(|v| v.into_iter().next()).unwrap_or_default();
        let active = state.get("ActiveState").map(String::as_str).unwrap_or("unknown");
        if active != "active" {
            let sub = state.get("SubState").map(String::as_str).unwrap_or("?");
            return text(StatusCode::SERVICE_UNAVAILABLE, format!("{n}@{i} is {active}/{sub}: down (a scrape never starts an instance)\n"));
        }
        match client::get(&n.socket_addr(i), "/metrics", INSTANCE_TIMEOUT) {
            Ok((200, body)) => metrics_response(body),
            Ok((status, _)) => text(StatusCode::BAD_GATEWAY, format!("{n}@{i} answered {status}\n")),
            Err(e) => text(StatusCode::GATEWAY_TIMEOUT, format!("{n}@{i} did not answer within {INSTANCE_TIMEOUT:?}: {}\n", report(&e))),
        }
    }

    /// Watchdog timeouts per instance since boot, from the journal (systemd
    /// logs "Watchdog timeout" for the unit it restarts).
    fn watchdog_counts(&self) -> HashMap<u32, u64> {
        let mut w = self.watchdogs.lock().unwrap_or_else(|p| p.into_inner());
        if w.boot.is_none() {
            w.boot = journal(&["-n", "1", "--output-fields=_BOOT_ID"]).into_iter().find_map(|e| {
                if let Entry::Json(e) = e {
                    e["_BOOT_ID"].as_str().map(str::to_string)
                } else {
                    None
                }
            });
        }
        let Some(boot) = w.boot.clone() else {
            return w.counts.clone();
        };
        let boot = format!("_BOOT_ID={boot}");
        let after = w.cursor.as_ref().map(|c| format!("--after-cursor={c}"));
        let mut args = vec!["--output-fields=UNIT", "_PID=1", &boot, "--grep", "Watchdog timeout", "--show-cursor"];
        args.extend(after.as_deref());
        for e in journal(&args) {
            match e {
                Entry::Cursor(c) => w.cursor = Some(c),
                Entry::Json(e) => {
                    if let Some(i) = e["UNIT"].as_str().and_then(|u| self.name.instance_of(u)) {
                        *w.counts.entry(i).or_default() += 1;
                    }
                }
            }
        }
        w.counts.clone()
    }

    /// The host's view of the instances, from systemd.
    fn host(&self) -> Response<Full<Bytes>> {
        let n = &self.name;
        let list = units::enabled(n).unwrap_or_default();
        let props = ["ActiveState", "NRestarts", "MemoryCurrent", "MemoryMax", "MainPID"];
        let shown = units::show(&list.iter().map(|&i| n.service_unit(i)).collect::<Vec<_>>(), &props).unwrap_or_default();
        let watchdogs = self.watchdog_counts();
        // The same `instance` as the instance's own target (honor_labels in the scrape config).
        let host = hostname();
        let mut reg = Registry::with_prefix("corepool_instance");
        let up = Family::<InstanceLabels, Gauge>::default();
        let restarts = Family::<InstanceLabels, prometheus_client::metrics::counter::Counter>::default();
        let timeouts = Family::<InstanceLabels, prometheus_client::metrics::counter::Counter>::default();
        let memory = Family::<InstanceLabels, Gauge>::default();
        let memory_max = Family::<InstanceLabels, Gauge>::default();
        reg.register("up", "1 while systemd says the instance runs", up.clone());
        reg.register("restarts", "Automatic restarts of the instance (systemd NRestarts: crash, kill, watchdog)", restarts.clone());
        reg.register("watchdog_timeouts", "Watchdog timeouts of the instance since boot (systemd killed it as hung)", timeouts.clone());
        reg.register("memory_bytes", "Memory the instance uses (its cgroup; else its RSS)", memory.clone());
        reg.register("memory_max_bytes", "The instance's memory limit (MemoryMax=)", memory_max.clone());
        let num = |m: &HashMap<String, String>, k: &str| m.get(k).and_then(|v| v.parse::<u64>().ok()).filter(|&v| v != u64::MAX);
        for (&i, m) in list.iter().zip(shown.iter()) {
            let l = InstanceLabels { instance: format!("{host}:{i}") };
            let running = m.get("ActiveState").is_some_and(|s| s == "active");
            up.get_or_create(&l).set(i64::from(running));
            restarts.get_or_create(&l).inc_by(num(m, "NRestarts").unwrap_or(0));
            timeouts.get_or_create(&l).inc_by(watchdogs.get(&i).copied().unwrap_or(0));
            let rss = || {
                let pid = num(m, "MainPID").filter(|&p| p > 0)?;
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
                let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches(" kB").trim().parse::<u64>().ok()?;
                Some(kb * 1024)
            };
            if running {
                if let Some(b) = num(m, "MemoryCurrent").or_else(rss) {
                    memory.get_or_create(&l).set(b as i64);
                }
            }
            if let Some(b) = num(m, "MemoryMax") {
                memory_max.get_or_create(&l).set(b as i64);
            }
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &reg) {
            return text(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding: {e}\n"));
        }
        metrics_response(out)
    }

    fn index(&self) -> Response<Full<Bytes>> {
        let list = units::enabled(&self.name).unwrap_or_default();
        let mut s = format!("{} metrics for Prometheus\n/metrics: the host's view of the instances\n", self.name);
        for i in list {
            s.push_str(&format!("/instances/{i}/metrics: {}@{i}\n", self.name));
        }
        text(StatusCode::OK, s)
    }

    fn route(&self, path: &str) -> Response<Full<Bytes>> {
        if path == "/" {
            return self.index();
        }
        if path == "/metrics" {
            return self.host();
        }
        let instance = path.strip_prefix("/instances/").and_then(|r| r.strip_suffix("/metrics")).and_then(|i| i.parse::<u32>().ok());
        match instance {
            Some(i) => self.instance(i),
            None => text(StatusCode::NOT_FOUND, "not found: /metrics, /instances/N/metrics\n"),
        }
    }

    fn allowed(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        peer.is_loopback() || self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&peer))
    }
}

/// Serves until SIGTERM. Each request's systemd and socket calls run on a
/// blocking thread (bounded by their own timeouts).
pub fn serve(n: &ServiceName, cfg: &MetricsConfig) -> Result<(), ExporterError> {
    let addr = listen_addr(n, cfg)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().max_blocking_threads(8).build().map_err(ExporterError::Runtime)?;
    let ex = Arc::new(Exporter { name: n.clone(), allow: cfg.networks(), watchdogs: Mutex::new(Watchdogs::default()) });
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|error| ExporterError::Bind { addr, error })?;
        let notifier = Notifier::from_env();
        notifier.ready(&format!("serving metrics on http://{addr}/"));
        eprintln!("{n} metrics: serving on http://{addr}/ (instances at /instances/N/metrics)");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(ExporterError::Signal)?;
        loop {
            let (stream, peer) = tokio::select! {
                _ = term.recv() => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(_) => { tokio::time::sleep(Duration::from_millis(20)).await; continue; }
                },
            };
            if !ex.allowed(peer.ip()) {
                continue; // dropped: not one of [metrics] allow
            }
            let ex = ex.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let ex = ex.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let resp = if req.method() == http::Method::GET || req.method() == http::Method::HEAD {
                            tokio::task::spawn_blocking(move || ex.route(&path)).await.unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "failed\n"))
                        } else {
                            text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n")
                        };
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
        notifier.stopping("stopping");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_differ_by_name_and_stay_in_range() {
        let a = default_port(&ServiceName::new("corepool").unwrap());
        let b = default_port(&ServiceName::new("myapp").unwrap());
        assert_ne!(a, b);
        for p in [a, b] {
            assert!((9500..=9899).contains(&p), "{p}");
        }
        assert_eq!(a, default_port(&ServiceName::new("corepool").unwrap()), "stable");
    }

    #[test]
    fn a_target_per_instance_and_one_for_the_host() {
        let n = ServiceName::new("myapp").unwrap();
        let t = targets(&n, "127.0.0.1:9501".parse().unwrap(), "web1", &[0, 1]);
        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 3);
        assert_eq!(v[1]["labels"]["__metrics_path__"], "/instances/1/metrics");
        assert_eq!(v[1]["labels"]["instance"], "web1:1");
        assert_eq!(v[2]["labels"]["__metrics_path__"], "/metrics");
        assert_eq!(v[0]["targets"][0], "127.0.0.1:9501");
        assert_eq!(targets(&n, "127.0.0.1:9501".parse().unwrap(), "web1", &[]), "[]\n");
    }

    #[test]
    fn listen_defaults_to_loopback_and_the_derived_port() {
        let n = ServiceName::new("myapp").unwrap();
        let a = listen_addr(&n, &MetricsConfig::default()).unwrap();
        assert_eq!(a, SocketAddr::new(IpAddr::from([127, 0, 0, 1]), default_port(&n)));
        let cfg = MetricsConfig { listen: "10.0.0.2:9600".into(), ..Default::default() };
        assert_eq!(listen_addr(&n, &cfg).unwrap().to_string(), "10.0.0.2:9600");
    }
}
