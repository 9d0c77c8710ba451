//! Operator commands on top of systemd, with PM2's comfort: enable or scale the
//! per-core set, rolling reload, restart, status, the nginx site and HTTPS.
//! No daemon of our own: systemd manages the processes, this only drives it.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client;
use crate::config::BackendConfig;
use crate::nginx::{self, NginxError};
use crate::units::{self, UnitError};

/// How many instances: a number, or `max` (one per CPU this machine lets us use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Max,
    N(u32),
}

impl std::str::FromStr for Count {
    type Err = String;
    fn from_str(s: &str) -> Result<Count, String> {
        match s {
            "max" => Ok(Count::Max),
            _ => s
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1024).contains(n))
                .map(Count::N)
                .ok_or_else(|| format!("`{s}` is not `max` or a number of instances from 1 to 1024")),
        }
    }
}

impl Count {
    pub fn resolve(self) -> u32 {
        match self {
            Count::N(n) => n,
            Count::Max => crate::affinity::allowed_cpus().len().max(1) as u32,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Unit(#[from] UnitError),
    #[error(transparent)]
    Nginx(#[from] NginxError),
    #[error("corepool@{instance} did not become ready: {detail}\nlast journal lines of corepool@{instance}.service:\n{journal}")]
    NotReady { instance: u32, detail: String, journal: String },
    #[error("no corepool instances are enabled (run: corepool enable max)")]
    NoneEnabled,
    #[error("{0}")]
    Refused(String),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// Fails clearly unless this is a systemd host and we are root (checked
/// before anything else, e.g. reading the root-only configuration).
pub fn require(command: &str) -> Result<(), AdminError> {
    units::require_systemd()?;
    units::require_root(command)?;
    Ok(())
}

/// Asks an instance for `GET /` over its socket; None if it does not answer.
fn identity(i: u32, timeout: Duration) -> Option<serde_json::Value> {
    match client::get(&units::socket_addr(i), "/", timeout) {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// Waits until instance `i` answers `/readyz` (starting it through its socket if needed).
fn wait_ready(i: u32, out: &mut dyn Write) -> Result<(), AdminError> {
    let started = Instant::now();
    write!(out, "  corepool@{i}: waiting for ready ")?;
    out.flush()?;
    let mut last = String::new();
    let mut dots = Instant::now();
    while started.elapsed() < READY_TIMEOUT {
        match client::get(&units::socket_addr(i), "/readyz", Duration::from_secs(2)) {
            Ok((200, _)) => {
                let id = identity(i, QUERY_TIMEOUT).unwrap_or_default();
                writeln!(out, "ready in {} ms (pid {}, cpu {})", started.elapsed().as_millis(), id["pid"], id["cpu"])?;
                return Ok(());
            }
            Ok((status, body)) => last = format!("/readyz answered {status}: {body}"),
            Err(e) => last = e.to_string(),
        }
        let state = units::show(&[units::service(i)], &["ActiveState"])?;
        if state.first().and_then(|m| m.get("ActiveState")).is_some_and(|s| s == "failed") {
            break;
        }
        if dots.elapsed() > Duration::from_millis(250) {
            write!(out, ".")?;
            out.flush()?;
            dots = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    writeln!(out, "FAILED")?;
    Err(AdminError::NotReady { instance: i, detail: last, journal: units::journal_tail(&units::service(i), 10) })
}

/// `enable`/`scale`/`disable`: make instances 0..n the enabled, running set.
///
/// Scaling down takes instances out of nginx first, then stops them; scaling
/// up starts them, waits for readiness (unless `lazy`), then adds them to nginx.
pub fn set_count(n: u32, lazy: bool, backend: &BackendConfig, out: &mut dyn Write) -> Result<(), AdminError> {
    if backend.enabled() && u32::from(backend.port_base) + n > 65536 {
        return Err(AdminError::Refused(format!("[backend] port_base {} + {n} instances does not fit below port 65536", backend.port_base)));
    }
    let current: BTreeSet<u32> = units::enabled()?.into_iter().collect();
    let desired: BTreeSet<u32> = (0..n).collect();
    let removed: Vec<u32> = current.difference(&desired).copied().collect();
    let added: Vec<u32> = desired.difference(&current).copied().collect();
    let desired_list: Vec<u32> = desired.iter().copied().collect();
    let nginx = nginx::installed();

    if !removed.is_empty() {
        if nginx && n > 0 {
            nginx::sync(&desired_list)?;
            writeln!(out, "nginx: upstream now {} instance(s), reloaded", desired.len())?;
        }
        for &i in &removed {
            units::systemctl(&["disable", "--now", "--quiet", &units::socket(i)])?;
            units::systemctl(&["stop", &units::service(i)])?;
            writeln!(out, "corepool@{i}: stopped and disabled")?;
        }
    }
    // TCP sockets for a remote front ([backend]): a running instance whose
    // socket changes is stopped, and its socket re-created (a brief pause for it).
    for i in units::sync_backend_dropins(&desired_list, backend)? {
        if current.contains(&i) && desired.contains(&i) {
            units::systemctl(&["stop", &units::service(i), &units::socket(i)])?;
            units::systemctl(&["start", &units::socket(i)])?;
            writeln!(out, "corepool@{i}: socket re-created for the changed [backend] settings")?;
        }
    }
    if n == 0 {
        units::systemctl(&["disable", "--now", "--quiet", "corepool.target"])?;
        writeln!(out, "corepool.target: disabled; no instances remain")?;
        return Ok(());
    }
    for &i in &added {
        units::systemctl(&["enable", "--now", "--quiet", &units::socket(i)])?;
        let tcp = if backend.enabled() {
            format!(" and TCP {} (for {})", units::backend_listen(i, backend), backend.allow.join(", "))
        } else {
            String::new()
        };
        writeln!(out, "corepool@{i}: socket enabled and listening on {}{tcp}", units::socket_path(i).display())?;
    }
    units::systemctl(&["enable", "--now", "--quiet", "corepool.target"])?;
    if !lazy {
        for &i in &desired_list {
            wait_ready(i, out)?;
        }
    }
    if nginx {
        nginx::sync(&desired_list)?;
        writeln!(out, "nginx: upstream covers instances 0..{}", n - 1)?;
    }
    writeln!(out, "{n} instance(s) enabled; they start at boot with corepool.target")?;
    Ok(())
}

pub fn enable(count: Count, lazy: bool, backend: &BackendConfig, out: &mut dyn Write) -> Result<(), AdminError> {
    require("enable")?;
    set_count(count.resolve(), lazy, backend, out)
}

pub fn scale(count: Count, backend: &BackendConfig, out: &mut dyn Write) -> Result<(), AdminError> {
    require("scale")?;
    set_count(count.resolve(), false, backend, out)
}

pub fn disable(out: &mut dyn Write) -> Result<(), AdminError> {
    require("disable")?;
    set_count(0, true, &BackendConfig::default(), out)
}

fn main_pid(i: u32) -> Result<(String, u32), AdminError> {
    let m = units::show(&[units::service(i)], &["ActiveState", "MainPID"])?;
    let m = m.into_iter().next().unwrap_or_default();
    let pid = m.get("MainPID").and_then(|p| p.parse().ok()).unwrap_or(0);
    Ok((m.get("ActiveState").cloned().unwrap_or_default(), pid))
}

/// Rolling reload: restarts running instances one at a time; systemd returns
/// from the restart once the new process sent READY=1. The socket stays open
/// throughout, so requests arriving meanwhile wait instead of failing.
pub fn reload(instance: Option<u32>, out: &mut dyn Write) -> Result<(), AdminError> {
    require("reload")?;
    let list = match instance {
        Some(i) => vec![i],
        None => units::enabled()?,
    };
    if list.is_empty() {
        return Err(AdminError::NoneEnabled);
    }
    let total = list.len();
    for (k, &i) in list.iter().enumerate() {
        let (state, old) = main_pid(i)?;
        if state != "active" {
            writeln!(out, "[{}/{total}] corepool@{i}: not running; it starts fresh on its next connection", k + 1)?;
            continue;
        }
        let started = Instant::now();
        if let Err(e) = units::systemctl(&["restart", &units::service(i)]) {
            return Err(AdminError::NotReady { instance: i, detail: e.to_string(), journal: units::journal_tail(&units::service(i), 10) });
        }
        let (_, new) = main_pid(i)?;
        writeln!(out, "[{}/{total}] corepool@{i}: pid {old} -> {new}, ready in {} ms", k + 1, started.elapsed().as_millis())?;
    }
    Ok(())
}

/// Restarts every enabled instance at once (not rolling), then waits for each.
pub fn restart(out: &mut dyn Write) -> Result<(), AdminError> {
    require("restart")?;
    let list = units::enabled()?;
    if list.is_empty() {
        return Err(AdminError::NoneEnabled);
    }
    let services: Vec<String> = list.iter().map(|&i| units::service(i)).collect();
    let mut args = vec!["restart"];
    args.extend(services.iter().map(String::as_str));
    units::systemctl(&args)?;
    writeln!(out, "restarted {}", services.join(" "))?;
    for &i in &list {
        wait_ready(i, out)?;
    }
    Ok(())
}

/// One row of `corepool status`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Row {
    pub instance: u32,
    pub enabled: bool,
    /// Socket unit state, e.g. `listening`.
    pub socket: String,
    /// Service `ActiveState/SubState`, e.g. `active/running`, `inactive/dead`, `failed/failed`.
    pub service: String,
    pub pid: Option<u32>,
    pub cpu: Option<u64>,
    pub uptime_s: Option<u64>,
    pub restarts: u64,
    pub memory_bytes: Option<u64>,
    pub cpu_time_ms: Option<u64>,
    pub requests: Option<u64>,
    pub req_per_s: Option<f64>,
    pub pool_busy: Option<u64>,
    pub pool_threads: Option<u64>,
    pub pool_queued: Option<u64>,
    /// True when the service runs but did not answer within the timeout.
    pub unresponsive: bool,
    /// The instance's last `STATUS=` line.
    pub status: String,
}

fn num(m: &std::collections::HashMap<String, String>, k: &str) -> Option<u64> {
    m.get(k).and_then(|v| v.parse().ok()).filter(|&v| v != u64::MAX)
}

/// RSS and CPU time of a process from /proc, for hosts without cgroup accounting.
fn proc_usage(pid: u32) -> (Option<u64>, Option<u64>) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status")).ok().and_then(|s| {
        s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok()).map(|kb| kb * 1024)
    });
    let cpu = units::proc_stat(pid).and_then(|f| {
        // utime and stime: the 12th and 13th fields after the command name.
        let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as u64;
        Some(ticks * 1000 / hz.max(1))
    });
    (rss, cpu)
}

fn monotonic_usec() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
        .unwrap_or(0)
}

/// Gathers one row per enabled or loaded instance.
pub fn collect() -> Result<Vec<Row>, AdminError> {
    units::require_systemd()?;
    let enabled = units::enabled()?;
    let mut instances: BTreeSet<u32> = enabled.iter().copied().collect();
    let listed = units::systemctl(&["list-units", "--all", "--plain", "--no-legend", "corepool@*"])?;
    for line in listed.lines() {
        if let Some(i) = line.split_whitespace().next().and_then(|u| u.strip_prefix("corepool@")).and_then(|u| u.split('.').next()) {
            if let Ok(i) = i.parse() {
                instances.insert(i);
            }
        }
    }
    let list: Vec<u32> = instances.into_iter().collect();
    let services = units::show(
        &list.iter().map(|&i| units::service(i)).collect::<Vec<_>>(),
        &["ActiveState", "SubState", "MainPID", "NRestarts", "MemoryCurrent", "CPUUsageNSec", "ActiveEnterTimestampMonotonic", "StatusText"],
    )?;
    let sockets = units::show(&list.iter().map(|&i| units::socket(i)).collect::<Vec<_>>(), &["ActiveState", "SubState"])?;
    let now = monotonic_usec();
    let mut rows: Vec<Row> = list
        .iter()
        .zip(services.iter().zip(sockets.iter()))
        .map(|(&i, (svc, sock))| {
            let active = svc.get("ActiveState").map(String::as_str) == Some("active");
            let status = svc.get("StatusText").cloned().unwrap_or_default();
            Row {
                instance: i,
                enabled: enabled.contains(&i),
                socket: sock.get("SubState").cloned().unwrap_or_default(),
                service: format!("{}/{}", svc.get("ActiveState").map(String::as_str).unwrap_or("?"), svc.get("SubState").map(String::as_str).unwrap_or("?")),
                pid: num(svc, "MainPID").filter(|&p| p > 0).map(|p| p as u32),
                uptime_s: num(svc, "ActiveEnterTimestampMonotonic").filter(|&t| active && t > 0 && now > t).map(|t| (now - t) / 1_000_000),
                restarts: num(svc, "NRestarts").unwrap_or(0),
                memory_bytes: num(svc, "MemoryCurrent").filter(|_| active),
                cpu_time_ms: num(svc, "CPUUsageNSec").filter(|_| active).map(|n| n / 1_000_000),
                req_per_s: status.split(" req/s").next().and_then(|r| r.trim().parse().ok()).filter(|_| active),
                status,
                ..Row::default()
            }
        })
        .collect();
    // Without cgroup accounting (some containers), fall back to the main process's RSS and CPU time.
    for r in rows.iter_mut().filter(|r| r.service.starts_with("active/") && (r.memory_bytes.is_none() || r.cpu_time_ms.is_none())) {
        if let Some(pid) = r.pid {
            let (rss, cpu) = proc_usage(pid);
            r.memory_bytes = r.memory_bytes.or(rss);
            r.cpu_time_ms = r.cpu_time_ms.or(cpu);
        }
    }
    // Ask running instances for their own view, in parallel, with a hard timeout;
    // never connect to a stopped one (that would start it).
    std::thread::scope(|s| {
        let handles: Vec<_> = rows
            .iter()
            .map(|r| {
                let (i, active) = (r.instance, r.service.starts_with("active/"));
                s.spawn(move || if active { Some(identity(i, QUERY_TIMEOUT)) } else { None })
            })
            .collect();
        for (row, h) in rows.iter_mut().zip(handles) {
            match h.join().ok().flatten() {
                Some(Some(id)) => {
                    row.cpu = id["cpu"].as_u64();
                    row.requests = id["requests"].as_u64();
                    row.pool_busy = id["pool"]["busy"].as_u64();
                    row.pool_threads = id["pool"]["threads"].as_u64();
                    row.pool_queued = id["pool"]["queued"].as_u64();
                }
                Some(None) => row.unresponsive = true,
                None => {}
            }
        }
    });
    Ok(rows)
}

fn human_bytes(b: u64) -> String {
    const U: [&str; 4] = ["B", "K", "M", "G"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < U.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{b}B") } else { format!("{v:.1}{}", U[u]) }
}

fn human_secs(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

/// Left-aligned columns, two spaces apart, the first row a header.
pub fn columns(table: &[Vec<String>]) -> String {
    let n = table.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..n).map(|c| table.iter().map(|row| row[c].len()).max().unwrap_or(0)).collect();
    let mut s = String::new();
    for row in table {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        s.push_str(line.join("  ").trim_end());
        s.push('\n');
    }
    s
}

/// The `corepool status` table.
pub fn render_table(rows: &[Row]) -> String {
    let dash = || "-".to_string();
    let header = ["INST", "SOCKET", "SERVICE", "PID", "CPU", "UPTIME", "RESTARTS", "MEM", "CPU-TIME", "REQUESTS", "REQ/S", "POOL", "QUEUE"];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in rows {
        let service = if r.unresponsive { format!("{} UNRESPONSIVE", r.service) } else { r.service.clone() };
        table.push(vec![
            format!("{}{}", r.instance, if r.enabled { "" } else { "*" }),
            if r.socket.is_empty() { dash() } else { r.socket.clone() },
            service,
            r.pid.map(|p| p.to_string()).unwrap_or_else(dash),
            r.cpu.map(|c| c.to_string()).unwrap_or_else(dash),
            r.uptime_s.map(human_secs).unwrap_or_else(dash),
            r.restarts.to_string(),
            r.memory_bytes.map(human_bytes).unwrap_or_else(dash),
            r.cpu_time_ms.map(|ms| format!("{:.1}s", ms as f64 / 1000.0)).unwrap_or_else(dash),
            r.requests.map(|n| n.to_string()).unwrap_or_else(dash),
            r.req_per_s.map(|n| format!("{n:.0}")).unwrap_or_else(dash),
            match (r.pool_busy, r.pool_threads) {
                (Some(b), Some(t)) => format!("{b}/{t}"),
                _ => dash(),
            },
            r.pool_queued.map(|q| q.to_string()).unwrap_or_else(dash),
        ]);
    }
    let mut s = columns(&table);
    if rows.iter().any(|r| !r.enabled) {
        s.push_str("* loaded but not enabled\n");
    }
    s
}

/// `corepool status`: this host's instances, then (on a front) the remote
/// hosts' (`--json` gives this host's rows; `front status --json` the others).
pub fn status(json: bool, out: &mut dyn Write) -> Result<(), AdminError> {
    let rows = collect()?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows).map_err(std::io::Error::other)?)?;
        return Ok(());
    }
    let front = crate::front::load().map_err(|e| AdminError::Refused(e.to_string()))?;
    if !rows.is_empty() {
        write!(out, "{}", render_table(&rows))?;
    } else if front.hosts.is_empty() {
        writeln!(out, "no corepool instances (run: corepool enable max)")?;
    }
    if !front.hosts.is_empty() {
        if !rows.is_empty() {
            writeln!(out)?;
        }
        writeln!(out, "Hosts behind this front (nginx: its error log of the last {} s; health: /healthz):", crate::front::FAILING_WINDOW.as_secs())?;
        write!(out, "{}", crate::front::render_status(&crate::front::collect(&front)))?;
    }
    Ok(())
}

/// `corepool nginx enable`.
pub fn nginx_enable(out: &mut dyn Write) -> Result<(), AdminError> {
    require("nginx enable")?;
    if !nginx::installed() {
        return Err(AdminError::Refused("nginx is not installed (apt install nginx)".into()));
    }
    for line in nginx::enable_site()? {
        writeln!(out, "{line}")?;
    }
    writeln!(out, "nginx: corepool site enabled, checked and reloaded")?;
    Ok(())
}

/// A DNS name: dot-separated labels of letters, digits and `-` (not first),
/// 1..=63 bytes each, at most 253 in all. Checked before a name reaches
/// certbot or the resolver.
pub fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// Options of `corepool https`.
#[derive(Debug, Clone, Default)]
pub struct HttpsOptions {
    pub domains: Vec<String>,
    pub email: Option<String>,
    pub staging: bool,
    pub server: Option<String>,
    pub hsts: bool,
}

/// Obtains a certificate with `certbot certonly --webroot` (certbot never edits
/// nginx files), then switches the site to TLS with a redirect from HTTP.
pub fn https(o: &HttpsOptions, out: &mut dyn Write) -> Result<(), AdminError> {
    require("https")?;
    for d in &o.domains {
        if !is_dns_name(d) {
            return Err(AdminError::Refused(format!("`{d}` is not a valid domain name")));
        }
    }
    if !Path::new("/usr/bin/certbot").exists() {
        return Err(AdminError::Refused("certbot is not installed (apt install certbot)".into()));
    }
    if std::fs::symlink_metadata(nginx::SITE_ENABLED).is_err() {
        return Err(AdminError::Refused("the corepool nginx site is not enabled (run: corepool nginx enable)".into()));
    }
    std::fs::create_dir_all(nginx::ACME_WEBROOT).map_err(|error| UnitError::Io { path: nginx::ACME_WEBROOT.into(), error })?;
    let mut args: Vec<String> = ["certonly", "--webroot", "-w", nginx::ACME_WEBROOT, "--non-interactive", "--agree-tos", "--keep-until-expiring"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--cert-name".into(), o.domains[0].clone()]);
    for d in &o.domains {
        args.extend(["-d".into(), d.clone()]);
    }
    match &o.email {
        Some(e) => args.extend(["-m".into(), e.clone()]),
        None => args.push("--register-unsafely-without-email".into()),
    }
    if o.staging {
        args.push("--staging".into());
    }
    if let Some(s) = &o.server {
        args.extend(["--server".into(), s.clone()]);
    }
    writeln!(out, "certbot {}", args.join(" "))?;
    let status = std::process::Command::new("certbot")
        .args(&args)
        .status()
        .map_err(|error| UnitError::Spawn { cmd: "certbot".into(), error })?;
    if !status.success() {
        return Err(AdminError::Refused(format!("certbot failed ({status}); nginx configuration unchanged")));
    }
    nginx::apply(&[
        (nginx::path("https.conf"), nginx::render_https(&o.domains, o.hsts)),
        (nginx::path("http.conf"), nginx::HTTP_REDIRECT.to_string()),
    ])?;
    writeln!(out, "HTTPS enabled: https://{}/ (HTTP redirects there; renewals reload nginx via the certbot deploy hook)", o.domains[0])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse() {
        assert_eq!("max".parse::<Count>(), Ok(Count::Max));
        assert_eq!("3".parse::<Count>(), Ok(Count::N(3)));
        assert!("0".parse::<Count>().is_err());
        assert!("many".parse::<Count>().is_err());
        assert!(Count::Max.resolve() >= 1);
    }

    #[test]
    fn table_shows_running_stopped_and_wedged_instances() {
        let rows = vec![
            Row {
                instance: 0,
                enabled: true,
                socket: "running".into(),
                service: "active/running".into(),
                pid: Some(4242),
                cpu: Some(0),
                uptime_s: Some(125),
                restarts: 2,
                memory_bytes: Some(3 * 1024 * 1024 + 300_000),
                cpu_time_ms: Some(1500),
                requests: Some(10234),
                req_per_s: Some(120.4),
                pool_busy: Some(1),
                pool_threads: Some(1),
                pool_queued: Some(3),
                unresponsive: false,
                status: "120 req/s".into(),
            },
            Row { instance: 1, enabled: true, socket: "listening".into(), service: "inactive/dead".into(), ..Row::default() },
            Row { instance: 2, enabled: false, socket: "running".into(), service: "active/running".into(), pid: Some(7), unresponsive: true, ..Row::default() },
        ];
        let t = render_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("INST  SOCKET"), "{t}");
        assert!(lines[1].contains("4242") && lines[1].contains("2m5s") && lines[1].contains("3.3M") && lines[1].contains("10234"), "{t}");
        assert!(lines[1].contains("1/1") && lines[1].contains("120"), "{t}");
        assert!(lines[2].starts_with("1 ") && lines[2].contains("inactive/dead") && lines[2].contains("listening"), "{t}");
        assert!(lines[3].starts_with("2*") && lines[3].contains("UNRESPONSIVE"), "{t}");
        assert!(t.ends_with("* loaded but not enabled\n"));
    }

    #[test]
    fn dns_names() {
        for ok in ["app.test", "a-1.example.com", "app1", "x".repeat(63).as_str()] {
            assert!(is_dns_name(ok), "{ok}");
        }
        for bad in ["", "-x", "a..b", "a b", "a_b.test", "ä.test", "x".repeat(64).as_str(), "a;b"] {
            assert!(!is_dns_name(bad), "{bad}");
        }
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1536), "1.5K");
        assert_eq!(human_secs(3), "3s");
        assert_eq!(human_secs(7200 + 60), "2h1m");
        assert_eq!(human_secs(86400 * 2 + 3600), "2d1h");
    }
}
