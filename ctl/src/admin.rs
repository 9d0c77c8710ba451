//! Operator commands on top of systemd, with PM2's comfort: enable, scale or
//! disable the per-core set, rolling reload, restart, the nginx site. No
//! daemon of our own: systemd manages the processes, this only drives it.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use corepool_runtime::cli::report;
use corepool_runtime::config::Config;
use corepool_runtime::{client, listen, ServiceName};

use crate::balance::{self, Balance};
use crate::capacity;
use crate::dns::is_dns_name;
use crate::exporter::{self, ExporterError};
use crate::nginx::{self, NginxError};
use crate::redis;
use crate::status::identity;
use crate::units::{self, require_admin, UnitError};

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
            Count::Max => corepool_runtime::affinity::allowed_cpus().len().max(1) as u32,
        }
    }
}

/// Why `enable/scale/disable/reload/restart/nginx enable` stopped.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Unit(#[from] UnitError),
    #[error(transparent)]
    Nginx(#[from] NginxError),
    /// The Prometheus targets or the metrics endpoint's address.
    #[error(transparent)]
    Metrics(#[from] ExporterError),
    #[error("{unit} did not become ready: {detail}\nlast journal lines of {unit}:\n{journal}")]
    NotReady { unit: String, detail: String, journal: String },
    #[error("no {0} instances are enabled (run: {0} enable max)")]
    NoneEnabled(String),
    #[error("[backend] port_base {port_base} + {count} instances does not fit below port 65536")]
    Ports { port_base: u16, count: u32 },
    #[error("nginx is not installed (apt install nginx)")]
    NoNginx,
    #[error("`{0}` is not a valid server name")]
    ServerName(String),
    #[error("writing output")]
    Output(#[from] std::io::Error),
}

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// Waits until instance `i` answers `/readyz` (starting it through its socket if needed).
fn wait_ready(n: &ServiceName, i: u32, out: &mut dyn Write) -> Result<(), AdminError> {
    let started = Instant::now();
    write!(out, "  {n}@{i}: waiting for ready ")?;
    out.flush()?;
    let mut last = String::new();
    let mut dots = Instant::now();
    while started.elapsed() < READY_TIMEOUT {
        match client::get(&n.socket_addr(i), "/readyz", Duration::from_secs(2)) {
            Ok((200, _)) => {
                let id = identity(n, i, QUERY_TIMEOUT).unwrap_or_default();
                let cpu = id["cpu"].as_u64().map(|c| format!(", cpu {c}")).unwrap_or_default();
                writeln!(out, "ready in {} ms (pid {}{cpu})", started.elapsed().as_millis(), id["pid"])?;
                return Ok(());
            }
            Ok((status, body)) => last = format!("/readyz answered {status}: {body}"),
            Err(e) => last = report(&e),
        }
        let state = units::show(&[n.service_unit(i)], &["ActiveState"])?;
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
    Err(not_ready(n, i, last))
}

/// An instance that did not come up, with its journal's last lines.
fn not_ready(n: &ServiceName, i: u32, detail: String) -> AdminError {
    AdminError::NotReady { unit: n.service_unit(i), detail, journal: units::journal_tail(&n.service_unit(i), 10) }
}

/// Refreshes the instances' `[redis]` drop-in from `config` (None: removes
/// it) and prints what it did or what to fix; true when it changed.
fn sync_redis(n: &ServiceName, config: Option<&Path>, out: &mut dyn Write) -> Result<bool, AdminError> {
    let outcome = redis::sync(n, config)?;
    for line in &outcome.lines {
        writeln!(out, "{line}")?;
    }
    Ok(outcome.changed)
}

/// `enable`/`scale`/`disable`: make instances 0..count the enabled, running
/// set; `config` is the configuration file the instances read (for the
/// `[redis]` drop-in; `disable` passes None).
///
/// Scaling down takes instances out of nginx first, then stops them; scaling
/// up starts them, waits for readiness (unless `lazy`), then adds them to nginx.
pub fn set_count(n: &ServiceName, count: u32, lazy: bool, cfg: &Config, config: Option<&Path>, out: &mut dyn Write) -> Result<(), AdminError> {
    let backend = &cfg.backend;
    if backend.enabled() && u32::from(backend.port_base) + count > 65536 {
        return Err(AdminError::Ports { port_base: backend.port_base, count });
    }
    // Before any instance starts, so that new ones start with it.
    let redis_changed = sync_redis(n, config.filter(|_| count > 0), out)?;
    let current: BTreeSet<u32> = units::enabled(n)?.into_iter().collect();
    let desired: BTreeSet<u32> = (0..count).collect();
    let removed: Vec<u32> = current.difference(&desired).copied().collect();
    let added: Vec<u32> = desired.difference(&current).copied().collect();
    let desired_list: Vec<u32> = desired.iter().copied().collect();
    let nginx = nginx::installed();

    if !removed.is_empty() {
        if nginx && count > 0 {
            nginx::sync(n, &desired_list)?;
            writeln!(out, "nginx: upstream now {} instance(s), reloaded", desired.len())?;
        }
        for &i in &removed {
            closing(
                n,
                i,
                || {
                    units::systemctl(&["disable", "--now", "--quiet", &n.socket_unit(i)])?;
                    units::systemctl(&["stop", &n.service_unit(i)])
                },
                out,
            )?;
            writeln!(out, "{n}@{i}: stopped and disabled")?;
        }
    }
    // TCP sockets for a remote front ([backend]): a running instance whose
    // socket changes is stopped, and its socket re-created (a brief pause for it).
    for i in units::sync_backend_dropins(n, &desired_list, backend)? {
        if current.contains(&i) && desired.contains(&i) {
            closing(n, i, || units::systemctl(&["stop", &n.service_unit(i), &n.socket_unit(i)]), out)?;
            units::systemctl(&["start", &n.socket_unit(i)])?;
            writeln!(out, "{n}@{i}: socket re-created for the changed [backend] settings")?;
        }
    }
    let target = n.target_unit();
    if count == 0 {
        units::systemctl(&["disable", "--now", "--quiet", &n.metrics_unit()])?;
        exporter::write_targets(n, &cfg.metrics, &[])?;
        units::systemctl(&["disable", "--now", "--quiet", &target])?;
        writeln!(out, "{target}: disabled; no instances remain")?;
        return Ok(());
    }
    for &i in &added {
        units::systemctl(&["enable", "--now", "--quiet", &n.socket_unit(i)])?;
        let tcp = if backend.enabled() { format!(" and TCP {} (for {})", units::backend_listen(i, backend), backend.allow.join(", ")) } else { String::new() };
        writeln!(out, "{n}@{i}: socket enabled and listening on {}{tcp}", n.socket_path(i).display())?;
    }
    units::systemctl(&["enable", "--now", "--quiet", &target])?;
    if !lazy {
        for &i in &desired_list {
            wait_ready(n, i, out)?;
        }
    }
    if nginx {
        nginx::sync(n, &desired_list)?;
        writeln!(out, "nginx: upstream covers instances 0..{}", count - 1)?;
    }
    // Prometheus: the targets first (file_sd), then the endpoint they point at.
    exporter::write_targets(n, &cfg.metrics, &desired_list)?;
    units::systemctl(&["enable", "--now", "--quiet", &n.metrics_unit()])?;
    let addr = exporter::listen_addr(n, &cfg.metrics)?;
    writeln!(out, "metrics: http://{addr}/instances/N/metrics, targets in {}", exporter::targets_path(n).display())?;
    writeln!(out, "{count} instance(s) enabled; they start at boot with {target}")?;
    let kept: Vec<u32> = current.intersection(&desired).copied().collect();
    if redis_changed && !kept.is_empty() {
        writeln!(out, "redis: instances already running keep their unit's previous settings until `{n} reload` restarts them")?;
    }
    Ok(())
}

/// Runs `stop`, which stops instance `i` together with its socket, after
/// holding new TCP connections off the socket (a backend host's, for a
/// remote front): otherwise connections the kernel completes after the
/// instance's last accept wait in a backlog that is reset when the socket
/// closes, failing the POSTs the front had written into them. Held off, the
/// front's connects are refused or time out, and it retries them elsewhere.
/// Unix sockets need none of it: the local nginx stops using an instance
/// before `scale` stops it.
fn closing<T>(n: &ServiceName, i: u32, stop: impl FnOnce() -> Result<T, units::UnitError>, out: &mut dyn Write) -> Result<(), AdminError> {
    let held = match main_pid(n, i)? {
        (state, pid) if state == "active" && pid > 0 => match hold_off_tcp(pid) {
            Ok(held) => held,
            Err(e) => {
                writeln!(out, "{n}@{i}: could not hold new TCP connections off before stopping ({e}); a remote front may see resets")?;
                Vec::new()
            }
        },
        _ => Vec::new(),
    };
    if !held.is_empty() {
        // Handshakes under way complete within a round trip and are accepted.
        std::thread::sleep(HANDSHAKE_GRACE);
    }
    let result = stop();
    if result.is_err() {
        // The socket did not close after all: let it take connections again.
        for fd in &held {
            let _ = listen::accept_new(fd);
        }
    }
    // Our copies of the sockets go now: the last reference closes them.
    drop(held);
    result.map(drop).map_err(AdminError::from)
}

/// How long `closing` lets handshakes that were under way complete.
const HANDSHAKE_GRACE: Duration = Duration::from_millis(200);

/// Holds new connections off every listening TCP socket of process `pid`
/// (see `listen::hold_off`); returns our copies of them.
fn hold_off_tcp(pid: u32) -> std::io::Result<Vec<OwnedFd>> {
    use rustix::process::{pidfd_getfd, pidfd_open, Pid, PidfdFlags, PidfdGetfdFlags};
    let raw = i32::try_from(pid).ok().and_then(Pid::from_raw).ok_or_else(|| std::io::Error::other(format!("bad pid {pid}")))?;
    let pidfd = pidfd_open(raw, PidfdFlags::empty())?;
    let mut held = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let entry = entry?;
        let is_socket = std::fs::read_link(entry.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
        let Ok(target) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if !is_socket {
            continue;
        }
        let fd = pidfd_getfd(&pidfd, target, PidfdGetfdFlags::empty())?;
        if listen::is_tcp_listener(&fd) {
            listen::hold_off(&fd)?;
            held.push(fd);
        }
    }
    Ok(held)
}

/// `NAME enable N|max [--lazy]`.
pub fn enable(n: &ServiceName, count: Count, lazy: bool, cfg: &Config, config: &Path, out: &mut dyn Write) -> Result<(), AdminError> {
    require_admin(n, "enable")?;
    set_count(n, count.resolve(), lazy, cfg, Some(config), out)
}

/// `NAME scale N|max`.
pub fn scale(n: &ServiceName, count: Count, cfg: &Config, config: &Path, out: &mut dyn Write) -> Result<(), AdminError> {
    require_admin(n, "scale")?;
    set_count(n, count.resolve(), false, cfg, Some(config), out)
}

/// `NAME disable` (the `[redis]` drop-in goes too: no instance is left to need it).
pub fn disable(n: &ServiceName, out: &mut dyn Write) -> Result<(), AdminError> {
    require_admin(n, "disable")?;
    set_count(n, 0, true, &Config::default(), None, out)
}

fn main_pid(n: &ServiceName, i: u32) -> Result<(String, u32), AdminError> {
    let m = units::show(&[n.service_unit(i)], &["ActiveState", "MainPID"])?;
    let m = m.into_iter().next().unwrap_or_default();
    let pid = m.get("MainPID").and_then(|p| p.parse().ok()).unwrap_or(0);
    Ok((m.get("ActiveState").cloned().unwrap_or_default(), pid))
}

/// Rolling reload: restarts running instances one at a time; systemd returns
/// from the restart once the new process sent READY=1. The socket stays open
/// throughout, so requests arriving meanwhile wait instead of failing. The
/// `[redis]` drop-in is refreshed from `config` first, so the restarted
/// instances start with it.
pub fn reload(n: &ServiceName, instance: Option<u32>, config: &Path, out: &mut dyn Write) -> Result<(), AdminError> {
    require_admin(n, "reload")?;
    let list = match instance {
        Some(i) => vec![i],
        None => units::enabled(n)?,
    };
    if list.is_empty() {
        return Err(AdminError::NoneEnabled(n.to_string()));
    }
    sync_redis(n, Some(config), out)?;
    let total = list.len();
    for (k, &i) in list.iter().enumerate() {
        let (state, old) = main_pid(n, i)?;
        if state != "active" {
            writeln!(out, "[{}/{total}] {n}@{i}: not running; it starts fresh on its next connection", k + 1)?;
            continue;
        }
        let started = Instant::now();
        // An operator's restart is not a crash: flush the unit's start-rate
        // counter (StartLimitBurst=) first, so that back-to-back reloads or
        // upgrades never leave an instance failed with 'start-limit-hit'.
        units::systemctl(&["reset-failed", &n.service_unit(i)])?;
        if let Err(e) = units::systemctl(&["restart", &n.service_unit(i)]) {
            return Err(not_ready(n, i, report(&e)));
        }
        let (_, new) = main_pid(n, i)?;
        writeln!(out, "[{}/{total}] {n}@{i}: pid {old} -> {new}, ready in {} ms", k + 1, started.elapsed().as_millis())?;
    }
    Ok(())
}

/// Restarts every enabled instance at once (not rolling), then waits for
/// each; the `[redis]` drop-in is refreshed from `config` first.
pub fn restart(n: &ServiceName, config: &Path, out: &mut dyn Write) -> Result<(), AdminError> {
    require_admin(n, "restart")?;
    let list = units::enabled(n)?;
    if list.is_empty() {
        return Err(AdminError::NoneEnabled(n.to_string()));
    }
    sync_redis(n, Some(config), out)?;
    let services: Vec<String> = list.iter().map(|&i| n.service_unit(i)).collect();
    // As in `reload`: the operator's restarts do not count towards the crash limit.
    let mut args = vec!["reset-failed"];
    args.extend(services.iter().map(String::as_str));
    units::systemctl(&args)?;
    args[0] = "restart";
    units::systemctl(&args)?;
    writeln!(out, "restarted {}", services.join(" "))?;
    for &i in &list {
        wait_ready(n, i, out)?;
    }
    Ok(())
}

/// `NAME nginx enable [--server-name NAME...]`.
pub fn nginx_enable(n: &ServiceName, server_names: &[String], out: &mut dyn Write) -> Result<(), AdminError> {
    require_admin(n, "nginx enable")?;
    if !nginx::installed() {
        return Err(AdminError::NoNginx);
    }
    if let Some(bad) = server_names.iter().find(|name| !is_dns_name(name)) {
        return Err(AdminError::ServerName(bad.clone()));
    }
    for line in nginx::enable_site(n, server_names)? {
        writeln!(out, "{line}")?;
    }
    writeln!(out, "nginx: {n} site enabled, checked and reloaded")?;
    // WebSockets and SSE streams hold nginx connections: say when nginx.conf allows too few.
    if let Some(warning) = capacity::check() {
        writeln!(out, "{warning}")?;
    }
    Ok(())
}

/// `NAME nginx balance [METHOD]`: shows the upstream's balancing method, or
/// sets it (root): the upstream is rewritten, checked and nginx reloaded,
/// and the choice kept for every later rewrite.
pub fn nginx_balance(n: &ServiceName, method: Option<Balance>, out: &mut dyn Write) -> Result<(), AdminError> {
    let Some(method) = method else {
        let current = balance::load(n).map_err(NginxError::from)?;
        writeln!(out, "nginx balance: {}", current.describe(n))?;
        if current == Balance::Client {
            writeln!(out, "{}", client_address_note(nginx::realip_files()))?;
        }
        writeln!(out, "(kept in {}; change it with `{n} nginx balance least-conn|cookie|client`)", balance::state_path(n).display())?;
        return Ok(());
    };
    units::require_root(n, "nginx balance")?;
    if !nginx::installed() {
        return Err(AdminError::NoNginx);
    }
    let before = balance::load(n).map_err(NginxError::from)?;
    nginx::set_balance(n, method)?;
    let verb = if before == method { "still" } else { "now" };
    writeln!(out, "nginx balance: {verb} {}", method.describe(n))?;
    if method == Balance::Client {
        writeln!(out, "{}", client_address_note(nginx::realip_files()))?;
    }
    writeln!(out, "nginx: upstream checked and reloaded; kept in {}", balance::state_path(n).display())?;
    Ok(())
}

/// What `$remote_addr` is on this host, for `balance client`: the realip
/// module's client address where nginx is configured for a proxy in front,
/// else the address nginx's connection comes from.
fn client_address_note(realip: Option<Vec<String>>) -> String {
    match realip {
        Some(files) if !files.is_empty() => {
            format!("the client address is the one nginx's realip module takes from the proxy in front (set_real_ip_from in {})", files.join(", "))
        }
        Some(_) => "the client address is the one nginx's connections come from (no set_real_ip_from in nginx's configuration):                     behind another proxy or load balancer, configure nginx's realip module for it, or every client hashes as that proxy"
            .into(),
        None => "the client address is $remote_addr (nginx -T could not be read to say whether the realip module rewrites it)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_address_note_says_whether_realip_rewrites_it() {
        assert!(client_address_note(Some(vec!["/etc/nginx/conf.d/lb.conf".into()])).ends_with("(set_real_ip_from in /etc/nginx/conf.d/lb.conf)"));
        assert!(client_address_note(Some(vec![])).contains("or every client hashes as that proxy"));
        assert!(client_address_note(None).contains("could not be read"));
    }

    #[test]
    fn counts_parse() {
        assert_eq!("max".parse::<Count>(), Ok(Count::Max));
        assert_eq!("3".parse::<Count>(), Ok(Count::N(3)));
        assert!("0".parse::<Count>().is_err());
        assert!("many".parse::<Count>().is_err());
        assert!(Count::Max.resolve() >= 1);
    }
}
