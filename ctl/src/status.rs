//! `NAME status`: one row per instance (like `pm2 ls`), from systemd (unit
//! states, pid, restarts, memory, CPU time, the last `STATUS=` line) and from
//! each running instance itself (`/healthz`), with a hard timeout so a wedged
//! instance shows as UNRESPONSIVE instead of hanging the command. A stopped
//! instance is never connected to (that would start it).

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use corepool_runtime::cli::report;
use corepool_runtime::{client, ServiceName};
use serde::Serialize;

use crate::balance::{self, Balance};
use crate::capacity;
use crate::hosts::{self, HostsError};
use crate::nginx;
use crate::table::columns;
use crate::units::{self, UnitError};

const QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// Why `status` (or `top`) could not show the instances.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Unit(#[from] UnitError),
    #[error(transparent)]
    Hosts(#[from] HostsError),
    #[error("writing output")]
    Output(#[from] std::io::Error),
}

/// Asks an instance who it is (`/healthz` over its socket); None if it does not answer.
pub fn identity(n: &ServiceName, i: u32, timeout: Duration) -> Option<serde_json::Value> {
    match client::get(&n.socket_addr(i), "/healthz", timeout) {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// One row of `NAME status`.
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
    /// Open upgraded WebSocket connections (`/healthz` `websockets`; 0 from an instance that does not report them).
    pub websockets: Option<u64>,
    /// Open server-sent-event streams (`/healthz` `sse`; 0 likewise).
    pub sse: Option<u64>,
    /// The instance's connection to Redis (`/healthz` `redis`), when it has `[redis]`.
    pub redis: Option<RedisState>,
    /// True when the service runs but did not answer within the timeout.
    pub unresponsive: bool,
    /// The instance's last `STATUS=` line.
    pub status: String,
}

/// An instance's connection to Redis as its `/healthz` reports it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RedisState {
    /// `up`, `down`, `connecting` or `refused`.
    pub state: String,
    pub url: Option<String>,
    /// Seconds in this state.
    pub since_s: Option<u64>,
    pub reconnects: Option<u64>,
    /// The last error, when not up.
    pub error: Option<String>,
}

impl RedisState {
    /// From `/healthz`'s `redis` object; None when there is none (no `[redis]`).
    fn from_healthz(v: &serde_json::Value) -> Option<RedisState> {
        let r = v.as_object()?;
        let text = |k: &str| r.get(k).and_then(|v| v.as_str()).map(String::from);
        Some(RedisState {
            state: text("state").unwrap_or_else(|| "?".into()),
            url: text("url"),
            // Whole seconds (the runtime sends a fraction).
            since_s: r.get("since_s").and_then(|v| v.as_u64().or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))),
            reconnects: r.get("reconnects").and_then(|v| v.as_u64()),
            error: text("error").filter(|e| !e.is_empty()),
        })
    }

    /// The table's cell: the state and for how long (`up 2h1m`).
    fn cell(&self) -> String {
        match self.since_s {
            Some(s) => format!("{} {}", self.state, human_secs(s)),
            None => self.state.clone(),
        }
    }
}

impl Row {
    /// What the instance said about itself (its `/healthz` document).
    fn answered(&mut self, id: &serde_json::Value) {
        self.cpu = id["cpu"].as_u64();
        self.requests = id["requests"].as_u64();
        self.pool_busy = id["pool"]["busy"].as_u64();
        self.pool_threads = id["pool"]["threads"].as_u64();
        self.pool_queued = id["pool"]["queued"].as_u64();
        // Instances from before WebSockets and SSE do not count them: none open.
        self.websockets = Some(id["websockets"].as_u64().unwrap_or(0));
        self.sse = Some(id["sse"].as_u64().unwrap_or(0));
        self.redis = RedisState::from_healthz(&id["redis"]);
    }
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
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000).unwrap_or(0)
}

/// Gathers one row per enabled or loaded instance.
pub fn collect(n: &ServiceName) -> Result<Vec<Row>, UnitError> {
    units::require_systemd()?;
    let enabled = units::enabled(n)?;
    let instances: BTreeSet<u32> = enabled.iter().copied().chain(units::loaded(n)?).collect();
    let list: Vec<u32> = instances.into_iter().collect();
    let services = units::show(
        &list.iter().map(|&i| n.service_unit(i)).collect::<Vec<_>>(),
        &["ActiveState", "SubState", "MainPID", "NRestarts", "MemoryCurrent", "CPUUsageNSec", "ActiveEnterTimestampMonotonic", "StatusText"],
    )?;
    let sockets = units::show(&list.iter().map(|&i| n.socket_unit(i)).collect::<Vec<_>>(), &["ActiveState", "SubState"])?;
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
                s.spawn(move || if active { Some(identity(n, i, QUERY_TIMEOUT)) } else { None })
            })
            .collect();
        for (row, h) in rows.iter_mut().zip(handles) {
            match h.join().ok().flatten() {
                Some(Some(id)) => row.answered(&id),
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
    if u == 0 {
        format!("{b}B")
    } else {
        format!("{v:.1}{}", U[u])
    }
}

fn human_secs(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

/// Open WebSockets and SSE streams, `WS/SSE`, of an instance that answered.
pub fn streams(r: &Row) -> Option<String> {
    Some(format!("{}/{}", r.websockets?, r.sse?))
}

/// The `NAME status` table.
pub fn render_table(rows: &[Row]) -> String {
    let dash = || "-".to_string();
    let mut header = vec!["INST", "SOCKET", "SERVICE", "PID", "CPU", "UPTIME", "RESTARTS", "MEM", "CPU-TIME", "REQUESTS", "REQ/S", "POOL", "QUEUE", "WS/SSE"];
    // Only for a service with [redis] (an instance that reports its connection).
    let redis = rows.iter().any(|r| r.redis.is_some());
    if redis {
        header.push("REDIS");
    }
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
            streams(r).unwrap_or_else(dash),
        ]);
        if redis {
            table.last_mut().expect("just pushed").push(r.redis.as_ref().map(RedisState::cell).unwrap_or_else(dash));
        }
    }
    let mut s = columns(&table);
    if rows.iter().any(|r| !r.enabled) {
        s.push_str("* loaded but not enabled\n");
    }
    // Why an instance is not connected, with what it tried.
    for r in rows {
        let Some(redis) = r.redis.as_ref().filter(|x| x.state != "up") else {
            continue;
        };
        let mut line = format!("instance {}: redis {}", r.instance, redis.state);
        if let Some(since) = redis.since_s {
            line.push_str(&format!(" for {}", human_secs(since)));
        }
        if let Some(n) = redis.reconnects.filter(|&n| n > 0) {
            line.push_str(&format!(", {n} reconnect(s)"));
        }
        if let Some(e) = &redis.error {
            line.push_str(&format!(": {e}"));
        }
        if let Some(u) = &redis.url {
            line.push_str(&format!(" ({u})"));
        }
        s.push_str(&line);
        s.push('\n');
    }
    s
}

/// `NAME status`: this host's instances, then (on a front) the remote
/// hosts' (`--json` gives this host's rows; `front status --json` the others).
pub fn status(n: &ServiceName, json: bool, out: &mut dyn Write) -> Result<(), StatusError> {
    let rows = collect(n)?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows).map_err(std::io::Error::other)?)?;
        return Ok(());
    }
    let front = hosts::load(n)?;
    if !rows.is_empty() {
        write!(out, "{}", render_table(&rows))?;
    } else if front.hosts.is_empty() {
        writeln!(out, "no {n} instances (run: {n} enable max)")?;
    }
    if !front.hosts.is_empty() {
        if !rows.is_empty() {
            writeln!(out)?;
        }
        writeln!(out, "Hosts behind this front (nginx: its error log of the last {} s; health: /healthz):", crate::front::FAILING_WINDOW.as_secs())?;
        write!(out, "{}", crate::front::render_status(&crate::front::collect(n, &front)))?;
    }
    let site = nginx::installed() && std::fs::symlink_metadata(nginx::site_enabled(n)).is_ok();
    // How nginx balances (`nginx balance`): where the site serves, or when it is sticky.
    match balance::load(n) {
        Ok(b) if site || b != Balance::default() => writeln!(out, "\nnginx balance: {}", b.describe(n))?,
        Ok(_) => {}
        Err(e) => writeln!(out, "\nnginx balance: unknown: {}", report(&e))?,
    }
    // Streams through the site hold nginx connections: say when nginx.conf allows too few.
    if let Some(warning) = capacity::check().filter(|_| site) {
        writeln!(out, "\n{warning}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
                websockets: Some(12),
                sse: Some(4),
                redis: None,
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
        let last = |l: &str| l.split_whitespace().last().map(String::from);
        assert!(last(lines[0]).as_deref() == Some("WS/SSE") && last(lines[1]).as_deref() == Some("12/4"), "open streams: {t}");
        assert_eq!(last(lines[2]).as_deref(), Some("-"), "none shown for a stopped instance: {t}");
        assert!(lines[2].starts_with("1 ") && lines[2].contains("inactive/dead") && lines[2].contains("listening"), "{t}");
        assert!(lines[3].starts_with("2*") && lines[3].contains("UNRESPONSIVE"), "{t}");
        assert!(t.ends_with("* loaded but not enabled\n"));
        assert!(!t.contains("REDIS"), "no Redis column without [redis]: {t}");
    }

    #[test]
    fn the_redis_connection_is_a_column_when_instances_report_it() {
        let healthz = |redis: serde_json::Value| {
            let mut r = Row { service: "active/running".into(), ..Row::default() };
            r.answered(&serde_json::json!({"cpu": 0, "requests": 1, "redis": redis}));
            r
        };
        let mut up = healthz(serde_json::json!({"state": "up", "url": "unix:///run/redis/redis-server.sock", "since_s": 125, "reconnects": 0, "error": null}));
        up.instance = 0;
        let mut down = healthz(
            serde_json::json!({"state": "down", "url": "unix:///run/redis/redis-server.sock", "since_s": 12, "reconnects": 3, "error": "Connection refused (os error 111)"}),
        );
        down.instance = 1;
        assert_eq!(
            up.redis,
            Some(RedisState {
                state: "up".into(),
                url: Some("unix:///run/redis/redis-server.sock".into()),
                since_s: Some(125),
                reconnects: Some(0),
                error: None
            })
        );
        let stopped = Row { instance: 2, service: "inactive/dead".into(), ..Row::default() };
        let t = render_table(&[up, down, stopped]);
        let lines: Vec<&str> = t.lines().collect();
        let last = |l: &str| l.split_whitespace().rev().take(2).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" ");
        assert!(lines[0].ends_with(" REDIS"), "{t}");
        assert_eq!(last(lines[1]), "up 2m5s", "{t}");
        assert_eq!(last(lines[2]), "down 12s", "{t}");
        assert!(lines[3].ends_with(" -"), "{t}");
        assert!(
            t.contains("\ninstance 1: redis down for 12s, 3 reconnect(s): Connection refused (os error 111) (unix:///run/redis/redis-server.sock)\n"),
            "{t}"
        );
        assert!(!t.contains("instance 0: redis"), "{t}");
        // Absent, or not an object: no Redis (an instance of a service without [redis], or from before it).
        assert_eq!(healthz(serde_json::Value::Null).redis, None);
        assert_eq!(healthz(serde_json::json!("up")).redis, None);
        let odd = healthz(serde_json::json!({"state": "connecting", "error": ""}));
        assert_eq!(odd.redis.as_ref().map(RedisState::cell).as_deref(), Some("connecting"));
        assert_eq!(odd.redis.unwrap().error, None);
    }

    #[test]
    fn open_streams_come_from_healthz_and_default_to_none_open() {
        let mut r = Row::default();
        r.answered(&serde_json::json!({"cpu": 1, "requests": 5, "pool": {"busy": 0, "threads": 1, "queued": 0}, "websockets": 7, "sse": 2}));
        assert_eq!((r.websockets, r.sse, r.requests), (Some(7), Some(2), Some(5)));
        assert_eq!(streams(&r).as_deref(), Some("7/2"));
        let mut old = Row::default();
        old.answered(&serde_json::json!({"cpu": 0, "requests": 1}));
        assert_eq!(streams(&old).as_deref(), Some("0/0"), "an instance without the fields");
        assert_eq!(streams(&Row::default()), None, "one that did not answer");
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
