//! More than one machine: this host's nginx in front of other hosts' per-core
//! instances. Each backend host lists this front in `[backend] allow` and so
//! gives instance N a TCP socket on `port_base + N`; here `NAME front add
//! HOST` checks that every instance answers, records the host in
//! `/etc/NAME/front.toml` and puts its instances into the nginx upstream
//! (see `nginx::render_upstream`). nginx balances (`least_conn`, or as
//! `NAME nginx balance` says: the hosts' servers join the same ring), keeps
//! connections alive, marks failing servers down for a while (passive health
//! checks) and retries idempotent requests on another server.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use corepool_runtime::client::{self, ClientError};
use corepool_runtime::ServiceName;
use serde::Serialize;

use crate::balance::{self, BalanceError};
use crate::dns::is_dns_name;
use crate::hosts::{self, Front, Host, HostsError};
use crate::nginx::{self, NginxError};
use crate::table::columns;
use crate::units::{self, UnitError};

/// nginx's error log, where it reports the upstream servers it failed to reach.
pub const NGINX_ERROR_LOG: &str = "/var/log/nginx/error.log";
/// A server with an error logged this recently is shown as failing (twice
/// the upstream's `fail_timeout`, during which nginx keeps it out).
pub const FAILING_WINDOW: Duration = Duration::from_secs(2 * nginx::REMOTE_FAIL_TIMEOUT_S);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a `front` command did nothing (or, where it says so, only part).
#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    #[error(transparent)]
    Hosts(#[from] HostsError),
    #[error(transparent)]
    Balance(#[from] BalanceError),
    #[error("`{0}` is not a host name or IP address")]
    BadName(String),
    #[error("cannot resolve `{host}`: {error}; nginx configuration unchanged")]
    Resolve { host: String, error: std::io::Error },
    #[error("cannot resolve `{host}`: no address; nginx configuration unchanged")]
    NoAddress { host: String },
    #[error("{host} ({addr}): {detail}; nginx configuration unchanged")]
    Unreachable { host: String, addr: SocketAddr, detail: String },
    #[error("nginx is not installed on this host (apt install nginx), and the front is nginx")]
    NoNginx,
    #[error("ports {port_base}..{last} do not fit below 65536")]
    Ports { port_base: u16, last: u32 },
    #[error("{host}: {}; nginx configuration unchanged", .failures.join("; "))]
    InstancesFailed { host: String, failures: Vec<String> },
    #[error("{host} ({address}) overlaps {other} already in the front; remove that first")]
    Overlaps { host: String, address: IpAddr, other: String },
    #[error("{host} is not behind this front (hosts: {})", if .known.is_empty() { "none".to_string() } else { .known.join(", ") })]
    UnknownHost { host: String, known: Vec<String> },
    #[error("draining {host} would leave nginx no server to send requests to; nothing changed")]
    LastServer { host: String },
    #[error(
        "{host} is drained, but nginx workers of the previous configuration still run after {}s: long requests, or WebSockets and SSE streams they carry (set worker_shutdown_timeout in nginx.conf, as `nginx enable` advises)",
        .timeout.as_secs()
    )]
    OldWorkers { host: String, timeout: Duration },
    #[error("{host} is drained, but requests are still in flight after {}s", .timeout.as_secs())]
    InFlight { host: String, timeout: Duration },
    #[error(transparent)]
    Nginx(#[from] NginxError),
    #[error(transparent)]
    Unit(#[from] UnitError),
    #[error("writing output")]
    Output(#[from] std::io::Error),
}

/// Writes the state and the upstream together, balanced as before (`nginx
/// balance`); nothing changes unless `nginx -t` accepts the result (see
/// `nginx::apply`).
fn commit(n: &ServiceName, front: &Front) -> Result<(), FrontError> {
    let mut files = nginx::sync_files(n, &units::enabled(n)?, front, balance::load(n)?);
    files.push((hosts::state_path(n), hosts::render(n, front)));
    nginx::apply(&files)?;
    Ok(())
}

fn require(n: &ServiceName, command: &str) -> Result<(), FrontError> {
    units::require_root(n, command)?;
    if !nginx::installed() {
        return Err(FrontError::NoNginx);
    }
    Ok(())
}

/// The host's address (IPv4 preferred, as most LANs are).
fn resolve(host: &str, port: u16) -> Result<IpAddr, FrontError> {
    if host.parse::<IpAddr>().is_err() && !is_dns_name(host) {
        return Err(FrontError::BadName(host.into()));
    }
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs().map_err(|error| FrontError::Resolve { host: host.into(), error })?.collect();
    addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).map(|a| a.ip()).ok_or_else(|| FrontError::NoAddress { host: host.into() })
}

/// Why a probe failed, in terms of what the operator should check.
fn explain(n: &ServiceName, e: &ClientError, host: &str) -> String {
    match e {
        ClientError::Io { error, .. } => match error.kind() {
            std::io::ErrorKind::ConnectionRefused => format!(
                "connection refused: nothing listens there (on {host}: list this front in [backend] allow of {config}, then `{n} enable max`)",
                config = n.config_path().display()
            ),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::BrokenPipe => {
                format!("connection reset: {host} refuses this front (add this front's address to [backend] allow on {host})")
            }
            std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
                format!("unreachable: {error} (host down, or no route to it)")
            }
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                format!("no answer within {}s (host down, or a firewall drops the packets)", PROBE_TIMEOUT.as_secs())
            }
            _ => error.to_string(),
        },
        ClientError::Malformed { .. } => format!("the answer is not HTTP: is this a {n} instance?"),
    }
}

/// Asks one instance for `path`; the body of a 200, or what went wrong.
fn probe(n: &ServiceName, addr: SocketAddr, path: &str, host: &str, timeout: Duration) -> Result<String, String> {
    match client::get(&addr.to_string(), path, timeout) {
        Ok((200, body)) => Ok(body),
        Ok((status, _)) => Err(format!("{path} answered HTTP {status}")),
        Err(e) => Err(explain(n, &e, host)),
    }
}

/// `NAME front add HOST`: asks the host who it is and how many instances it
/// runs (`/healthz` on its first port), checks every instance, then puts
/// them into the upstream.
pub fn add(n: &ServiceName, name: &str, instances: Option<u32>, port_base: u16, out: &mut dyn Write) -> Result<(), FrontError> {
    require(n, "front add")?;
    let address = resolve(name, port_base)?;
    let first = SocketAddr::new(address, port_base);
    let unreachable = |addr, detail| FrontError::Unreachable { host: name.into(), addr, detail };
    let body = probe(n, first, "/healthz", name, PROBE_TIMEOUT).map_err(|d| unreachable(first, d))?;
    let id: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    if id["service"] != n.as_str() {
        let what = id["service"].as_str().map(|s| format!("an instance of {s}")).unwrap_or_else(|| "not a corepool instance".into());
        return Err(unreachable(first, format!("answers HTTP, but is {what}, not of {n}")));
    }
    let count = match instances {
        Some(n) => n,
        None => match id["instances"].as_u64() {
            Some(n) if n >= 1 => n as u32,
            _ => return Err(unreachable(first, format!("reports no enabled instances (run `{n} enable max` there, or give --instances N)"))),
        },
    };
    if u32::from(port_base) + count > 65536 {
        return Err(FrontError::Ports { port_base, last: u32::from(port_base) + count - 1 });
    }
    let host = Host { name: name.into(), address, port_base, instances: count, drained: false };
    // Every instance must answer before nginx is told about it.
    let failures: Vec<String> = std::thread::scope(|s| {
        let checks: Vec<_> = host.servers().map(|(i, a)| (i, a, s.spawn(move || probe(n, a, "/healthz", name, PROBE_TIMEOUT)))).collect();
        checks.into_iter().filter_map(|(i, a, h)| h.join().ok()?.err().map(|d| format!("instance {i} ({a}): {d}"))).collect()
    });
    if !failures.is_empty() {
        return Err(FrontError::InstancesFailed { host: name.into(), failures });
    }
    let mut front = hosts::load(n)?;
    if let Some(other) = front.hosts.iter().find(|h| h.name != name && h.address == address && ranges_overlap(h, &host)) {
        return Err(FrontError::Overlaps { host: name.into(), address, other: other.name.clone() });
    }
    let verb = match front.hosts.iter_mut().find(|h| h.name == name) {
        Some(old) => {
            *old = Host { drained: old.drained, ..host.clone() };
            "updated"
        }
        None => {
            front.hosts.push(host.clone());
            "added"
        }
    };
    commit(n, &front)?;
    let last = u32::from(port_base) + count - 1;
    writeln!(out, "front: {name} ({address}) {verb}: {count} instance(s) on ports {port_base}..{last}; nginx checked and reloaded")?;
    Ok(())
}

fn ranges_overlap(a: &Host, b: &Host) -> bool {
    let (a0, a1) = (u32::from(a.port_base), u32::from(a.port_base) + a.instances);
    let (b0, b1) = (u32::from(b.port_base), u32::from(b.port_base) + b.instances);
    a0 < b1 && b0 < a1
}

fn find<'a>(front: &'a mut Front, name: &str) -> Result<&'a mut Host, FrontError> {
    let known: Vec<String> = front.hosts.iter().map(|h| h.name.clone()).collect();
    front.hosts.iter_mut().find(|h| h.name == name).ok_or_else(|| FrontError::UnknownHost { host: name.into(), known })
}

/// `NAME front remove HOST`.
pub fn remove(n: &ServiceName, name: &str, out: &mut dyn Write) -> Result<(), FrontError> {
    require(n, "front remove")?;
    let mut front = hosts::load(n)?;
    find(&mut front, name)?;
    front.hosts.retain(|h| h.name != name);
    commit(n, &front)?;
    writeln!(out, "front: {name} removed; nginx checked and reloaded")?;
    Ok(())
}

/// `NAME front list`.
pub fn list(n: &ServiceName, json: bool, out: &mut dyn Write) -> Result<(), FrontError> {
    let front = hosts::load(n)?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&front.hosts).map_err(std::io::Error::other)?)?;
        return Ok(());
    }
    if front.hosts.is_empty() {
        writeln!(out, "no hosts behind this front ({n} front add HOST)")?;
        return Ok(());
    }
    let mut table = vec![["HOST", "ADDRESS", "INSTANCES", "PORTS", "STATE"].map(String::from).to_vec()];
    for h in &front.hosts {
        table.push(vec![
            h.name.clone(),
            h.address.to_string(),
            h.instances.to_string(),
            format!("{}..{}", h.port_base, u32::from(h.port_base) + h.instances - 1),
            if h.drained { "drained" } else { "active" }.into(),
        ]);
    }
    write!(out, "{}", columns(&table))?;
    Ok(())
}

/// `NAME front drain HOST`: marks its servers `down`, reloads nginx, then
/// waits until the nginx workers of the previous configuration are gone (they
/// finish the requests they had, some of them on this host) and no request is
/// in flight on the host's instances.
pub fn drain(n: &ServiceName, name: &str, timeout: Duration, out: &mut dyn Write) -> Result<(), FrontError> {
    require(n, "front drain")?;
    let mut front = hosts::load(n)?;
    let host = find(&mut front, name)?;
    host.drained = true;
    let host = host.clone();
    let others = front.hosts.iter().any(|h| !h.drained) || !units::enabled(n)?.is_empty();
    if !others {
        return Err(FrontError::LastServer { host: name.into() });
    }
    let started = Instant::now();
    let deadline = started + timeout;
    let switched = commit_and_wait(n, &front, deadline)?;
    writeln!(out, "front: {name} marked down; nginx checked and reloaded")?;
    if !switched {
        return Err(FrontError::OldWorkers { host: name.into(), timeout });
    }
    // Our own /metrics request is in flight while it is answered: 1 means idle.
    let idle = wait_until(deadline, || {
        host.servers().all(|(_, a)| match probe(n, a, "/metrics", name, Duration::from_secs(1)) {
            Ok(text) => client::metric_sum(&client::parse_metrics(&text), "corepool_http_requests_in_flight", "") <= 1.0,
            Err(_) => true, // not running: nothing in flight
        })
    });
    if !idle {
        return Err(FrontError::InFlight { host: name.into(), timeout });
    }
    writeln!(out, "front: {name} drained in {} ms: no request in flight; upgrade it, then `{n} front undrain {name}`", started.elapsed().as_millis())?;
    Ok(())
}

fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `NAME front undrain HOST`: returns once nginx sends requests to it again.
pub fn undrain(n: &ServiceName, name: &str, out: &mut dyn Write) -> Result<(), FrontError> {
    require(n, "front undrain")?;
    let mut front = hosts::load(n)?;
    find(&mut front, name)?.drained = false;
    if !commit_and_wait(n, &front, Instant::now() + Duration::from_secs(60))? {
        writeln!(out, "front: {name} is back in the upstream, but nginx workers of the previous configuration still run")?;
        return Ok(());
    }
    writeln!(out, "front: {name} back in the upstream; nginx checked and reloaded")?;
    Ok(())
}

/// `commit`, then waits (until `deadline`) for the nginx workers of the
/// previous configuration to exit: a reload returns before nginx has switched,
/// and those workers finish their requests (and may start new ones) first.
fn commit_and_wait(n: &ServiceName, front: &Front, deadline: Instant) -> Result<bool, FrontError> {
    let old_workers = nginx::worker_pids();
    commit(n, front)?;
    Ok(wait_until(deadline, || nginx::worker_pids().iter().all(|p| !old_workers.contains(p))))
}

/// One remote instance in `NAME status` / `front status`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RemoteRow {
    pub host: String,
    pub instance: u32,
    pub address: SocketAddr,
    /// `up`, `drained`, or `failing` (nginx logged an error for it lately).
    pub nginx: String,
    /// Seconds since nginx last logged an error for this server, if it did lately.
    pub nginx_error_age_s: Option<u64>,
    /// `ok` when /healthz answered 200, else what went wrong.
    pub health: String,
    pub requests: Option<u64>,
    pub in_flight: Option<u64>,
}

/// Asks every remote instance (in parallel, bounded) and reads nginx's error log.
pub fn collect(n: &ServiceName, front: &Front) -> Vec<RemoteRow> {
    let errors = recent_upstream_errors(Path::new(NGINX_ERROR_LOG), SystemTime::now());
    std::thread::scope(|s| {
        let probes: Vec<_> = front
            .hosts
            .iter()
            .flat_map(|h| h.servers().map(move |(i, a)| (h, i, a)))
            .map(|(h, i, a)| {
                let handle = s.spawn(move || {
                    let health = probe(n, a, "/healthz", &h.name, Duration::from_secs(1));
                    let metrics = health.as_ref().ok().and_then(|_| probe(n, a, "/metrics", &h.name, Duration::from_secs(1)).ok());
                    (health, metrics)
                });
                (h, i, a, handle)
            })
            .collect();
        probes
            .into_iter()
            .map(|(h, i, a, handle)| {
                let (health, metrics) = handle.join().unwrap_or_else(|_| (Err("probe failed".into()), None));
                let parsed = metrics.as_deref().map(client::parse_metrics).unwrap_or_default();
                let sum = |name| metrics.as_ref().map(|_| client::metric_sum(&parsed, name, "") as u64);
                let age = errors.iter().find(|(addr, _)| *addr == a).map(|(_, age)| *age);
                RemoteRow {
                    host: h.name.clone(),
                    instance: i,
                    address: a,
                    nginx: match (h.drained, age) {
                        (true, _) => "drained".into(),
                        (false, Some(_)) => "failing".into(),
                        (false, None) => "up".into(),
                    },
                    nginx_error_age_s: age,
                    health: health.map(|_| "ok".to_string()).unwrap_or_else(|e| e),
                    requests: sum("corepool_http_requests_total"),
                    // Less our own /metrics request.
                    in_flight: sum("corepool_http_requests_in_flight").map(|v| v.saturating_sub(1)),
                }
            })
            .collect()
    })
}

/// The remote table and one line per host: `up`, `DOWN` or `degraded`.
pub fn render_status(rows: &[RemoteRow]) -> String {
    let dash = || "-".to_string();
    let mut table = vec![["HOST", "INST", "ADDRESS", "NGINX", "HEALTH", "REQUESTS", "IN-FLIGHT"].map(String::from).to_vec()];
    for r in rows {
        table.push(vec![
            r.host.clone(),
            r.instance.to_string(),
            r.address.to_string(),
            match r.nginx_error_age_s {
                Some(age) if r.nginx == "failing" => format!("failing ({age}s ago)"),
                _ => r.nginx.clone(),
            },
            r.health.clone(),
            r.requests.map(|n| n.to_string()).unwrap_or_else(dash),
            r.in_flight.map(|n| n.to_string()).unwrap_or_else(dash),
        ]);
    }
    let mut s = columns(&table);
    let mut hosts: Vec<&str> = rows.iter().map(|r| r.host.as_str()).collect();
    hosts.dedup();
    for h in hosts {
        let mine: Vec<&RemoteRow> = rows.iter().filter(|r| r.host == h).collect();
        let ok = mine.iter().filter(|r| r.health == "ok").count();
        let state = match ok {
            0 => "DOWN",
            n if n == mine.len() => "up",
            _ => "degraded",
        };
        let drained = if mine.iter().any(|r| r.nginx == "drained") { ", drained" } else { "" };
        s.push_str(&format!("{h}: {state} ({ok} of {} instances healthy{drained})\n", mine.len()));
    }
    s
}

/// `NAME front status`.
pub fn status(n: &ServiceName, json: bool, out: &mut dyn Write) -> Result<(), FrontError> {
    let front = hosts::load(n)?;
    let rows = collect(n, &front);
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows).map_err(std::io::Error::other)?)?;
    } else if rows.is_empty() {
        writeln!(out, "no hosts behind this front ({n} front add HOST)")?;
    } else {
        write!(out, "{}", render_status(&rows))?;
    }
    Ok(())
}

/// Upstream servers nginx logged an error for within `FAILING_WINDOW` before
/// `now`, with the age in seconds of the latest one. nginx writes
/// `YYYY/MM/DD HH:MM:SS [error] ... upstream: "http://ADDR/..."` in local time.
fn recent_upstream_errors(path: &Path, now: SystemTime) -> Vec<(SocketAddr, u64)> {
    let Ok(text) = read_tail(path, 512 * 1024) else {
        return Vec::new();
    };
    let now_s = now.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let mut latest: Vec<(SocketAddr, u64)> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.split_once("upstream: \"http://").map(|(_, r)| r) else {
            continue;
        };
        let Some(addr) = rest.split('/').next().and_then(|a| a.parse::<SocketAddr>().ok()) else {
            continue;
        };
        let Some(at) = line.get(..19).and_then(local_time_to_epoch) else {
            continue;
        };
        let age = now_s - at;
        if !(0..=FAILING_WINDOW.as_secs() as i64).contains(&age) {
            continue;
        }
        match latest.iter_mut().find(|(a, _)| *a == addr) {
            Some(entry) => entry.1 = entry.1.min(age as u64),
            None => latest.push((addr, age as u64)),
        }
    }
    latest
}

/// The last `max` bytes of a file, from a line start.
fn read_tail(path: &Path, max: u64) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    Ok(if len > max { text.split_once('\n').map(|(_, r)| r.to_string()).unwrap_or_default() } else { text })
}

/// `YYYY/MM/DD HH:MM:SS` in local time as seconds since the epoch.
fn local_time_to_epoch(s: &str) -> Option<i64> {
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i32>().ok();
    // SAFETY: mktime reads and normalizes the struct we own; no pointers escape.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = n(0..4)? - 1900;
    tm.tm_mon = n(5..7)? - 1;
    tm.tm_mday = n(8..10)?;
    tm.tm_hour = n(11..13)?;
    tm.tm_min = n(14..16)?;
    tm.tm_sec = n(17..19)?;
    tm.tm_isdst = -1;
    let t = unsafe { libc::mktime(&mut tm) };
    (t != -1).then_some(t as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, ip: &str, drained: bool) -> Host {
        Host { name: name.into(), address: ip.parse().unwrap(), port_base: 7000, instances: 2, drained }
    }

    #[test]
    fn servers_are_port_base_plus_instance() {
        let s: Vec<String> = host("a", "10.0.0.2", false).servers().map(|(i, a)| format!("{i}={a}")).collect();
        assert_eq!(s, ["0=10.0.0.2:7000", "1=10.0.0.2:7001"]);
        assert!(ranges_overlap(&host("a", "10.0.0.2", false), &Host { port_base: 7001, ..host("b", "10.0.0.2", false) }));
        assert!(!ranges_overlap(&host("a", "10.0.0.2", false), &Host { port_base: 7002, ..host("b", "10.0.0.2", false) }));
    }

    #[test]
    fn bad_names_are_refused_before_any_lookup() {
        for bad in ["", "-x", "a b", "x..y", "app1;rm", "ä.test"] {
            assert!(matches!(resolve(bad, 7000), Err(FrontError::BadName(_))), "{bad}");
        }
        assert_eq!(resolve("10.0.0.9", 7000).unwrap().to_string(), "10.0.0.9");
        assert!(matches!(resolve("no-such-host.invalid", 7000), Err(FrontError::Resolve { .. })));
    }

    #[test]
    fn unreachable_hosts_get_a_clear_error() {
        // A port nothing listens on: refused, with what to check on the host.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let e = probe(&ServiceName::new("myapp").unwrap(), addr, "/healthz", "app9", Duration::from_secs(1)).unwrap_err();
        assert!(e.starts_with("connection refused") && e.contains("[backend] allow"), "{e}");
    }

    #[test]
    fn nginx_errors_of_the_last_seconds_mark_servers_failing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("error.log");
        let now = SystemTime::now();
        let stamp = |ago: u64| {
            let t = (now - Duration::from_secs(ago)).duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as libc::time_t;
            let mut tm: libc::tm = unsafe { std::mem::zeroed() };
            unsafe { libc::localtime_r(&t, &mut tm) };
            format!("{:04}/{:02}/{:02} {:02}:{:02}:{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)
        };
        let line = |ago, addr: &str| {
            format!("{} [error] 7#7: *1 connect() failed (113: No route to host) while connecting to upstream, client: 10.0.0.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://{addr}/\", host: \"x\"\n", stamp(ago))
        };
        let text = [line(3, "10.0.0.3:7000"), line(1, "10.0.0.3:7000"), line(300, "10.0.0.2:7000"), "garbage\n".into()].concat();
        std::fs::write(&p, text).unwrap();
        let found = recent_upstream_errors(&p, now);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0.to_string(), "10.0.0.3:7000");
        assert!(found[0].1 <= 2, "{found:?}");
    }

    #[test]
    fn errors_say_what_failed_in_the_words_of_before() {
        let known = |k: &[&str]| FrontError::UnknownHost { host: "app3".into(), known: k.iter().map(|s| s.to_string()).collect() };
        assert_eq!(known(&["app1", "app2"]).to_string(), "app3 is not behind this front (hosts: app1, app2)");
        assert_eq!(known(&[]).to_string(), "app3 is not behind this front (hosts: none)");
        let failed = FrontError::InstancesFailed { host: "app1".into(), failures: vec!["instance 0 (a): x".into(), "instance 1 (b): y".into()] };
        assert_eq!(failed.to_string(), "app1: instance 0 (a): x; instance 1 (b): y; nginx configuration unchanged");
        assert_eq!(FrontError::Ports { port_base: 65535, last: 65536 }.to_string(), "ports 65535..65536 do not fit below 65536");
        let late = FrontError::OldWorkers { host: "app1".into(), timeout: Duration::from_secs(60) };
        assert_eq!(late.to_string(), "app1 is drained, but nginx workers of the previous configuration still run after 60s: long requests, or WebSockets and SSE streams they carry (set worker_shutdown_timeout in nginx.conf, as `nginx enable` advises)");
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = FrontError::Output(io);
        assert_eq!(corepool_runtime::cli::report(&e), "writing output: denied", "the cause once, from source()");
    }

    #[test]
    fn status_summarizes_each_host() {
        let row = |host: &str, i, health: &str, nginx: &str| RemoteRow {
            host: host.into(),
            instance: i,
            address: format!("10.0.0.9:{}", 7000 + i).parse().unwrap(),
            nginx: nginx.into(),
            nginx_error_age_s: (nginx == "failing").then_some(2),
            health: health.into(),
            requests: (health == "ok").then_some(5),
            in_flight: (health == "ok").then_some(0),
        };
        let t = render_status(&[
            row("app1", 0, "ok", "up"),
            row("app1", 1, "ok", "up"),
            row("app2", 0, "no answer", "failing"),
            row("app2", 1, "no answer", "failing"),
        ]);
        assert!(t.lines().next().unwrap().starts_with("HOST"), "{t}");
        assert!(t.contains("failing (2s ago)"), "{t}");
        assert!(t.contains("app1: up (2 of 2 instances healthy)\n"), "{t}");
        assert!(t.contains("app2: DOWN (0 of 2 instances healthy)\n"), "{t}");
    }
}
