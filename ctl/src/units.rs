//! The per-core instance set as systemd sees it: which instance sockets are
//! enabled, the units' state, and the `systemctl` calls behind the operator
//! commands. systemd is the process manager; this module only asks and tells it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use corepool_runtime::cli::report;
use corepool_runtime::config::BackendConfig;
use corepool_runtime::ServiceName;

/// Why systemd (or another command this crate runs) did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    #[error("systemd is not running as PID 1 here (PID 1 is {0:?}); corepool's instance commands need a systemd host")]
    NoSystemd(String),
    #[error("`{name} {command}` changes system services and must run as root (try: sudo {name} {command})")]
    NotRoot { name: String, command: String },
    /// The command ran and failed; `stderr` is what it said (or its exit status).
    #[error("{cmd} {args} failed: {stderr}")]
    Failed { cmd: String, args: String, stderr: String },
    #[error("cannot run {cmd}")]
    Spawn {
        cmd: String,
        #[source]
        error: std::io::Error,
    },
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
}

/// The drop-in that gives instance `i`'s socket unit a TCP listener for a
/// remote front (`[backend]` in the configuration), written by `NAME enable/scale`.
pub fn backend_dropin_path(n: &ServiceName, i: u32) -> PathBuf {
    PathBuf::from(format!("/etc/systemd/system/{n}@{i}.socket.d/backend.conf"))
}

/// The TCP address instance `i` listens on for a remote front, as `ListenStream=` takes it.
pub fn backend_listen(i: u32, b: &BackendConfig) -> String {
    let port = u32::from(b.port_base) + i;
    match b.bind.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(a)) => format!("[{a}]:{port}"),
        Ok(a) => format!("{a}:{port}"),
        Err(_) => port.to_string(),
    }
}

/// The drop-in's text: a second socket (TCP) beside the unix one, reachable
/// only from `allow`.
pub fn backend_dropin(n: &ServiceName, i: u32, b: &BackendConfig) -> String {
    let allow: Vec<String> = b.networks().iter().map(|n| n.to_string()).collect();
    format!(
        "# Written by `{n} enable/scale` from [backend] in {config}.\n\
         # Edit that file and run `{n} enable N` again instead of this one.\n\
         [Socket]\n\
         # Instance {i} also listens on TCP for the nginx front(s) (port_base + {i}).\n\
         ListenStream={listen}\n\
         # Bind even if the address is not configured yet at boot.\n\
         FreeBind=yes\n\
         # Only the fronts may connect: the kernel drops everyone else where cgroup v2\n\
         # BPF is available; corepool also resets every TCP peer outside backend.allow.\n\
         IPAddressAllow={allow}\n\
         IPAddressDeny=any\n",
        listen = backend_listen(i, b),
        allow = allow.join(" "),
        config = n.config_path().display(),
    )
}

/// Makes the backend drop-ins match `b` for `instances` (written, or removed
/// when `[backend] allow` is empty) and removes those of every other instance.
/// Returns the instances whose socket must be re-created to pick up a change.
pub fn sync_backend_dropins(n: &ServiceName, instances: &[u32], b: &BackendConfig) -> Result<Vec<u32>, UnitError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| UnitError::Io { path, error }
    };
    let mut changed = Vec::new();
    for &i in instances {
        let p = backend_dropin_path(n, i);
        let old = std::fs::read_to_string(&p).ok();
        let new = b.enabled().then(|| backend_dropin(n, i, b));
        if old == new {
            continue;
        }
        match &new {
            Some(text) => {
                let dir = p.parent().unwrap_or(Path::new("/"));
                std::fs::create_dir_all(dir).map_err(io(dir))?;
                std::fs::write(&p, text).map_err(io(&p))?;
            }
            None => remove_dropin(&p).map_err(io(&p))?,
        }
        changed.push(i);
    }
    // Instances no longer wanted (scaled down or disabled): their drop-ins go too.
    if let Ok(entries) = std::fs::read_dir("/etc/systemd/system") {
        for e in entries.flatten() {
            let file = e.file_name().into_string().unwrap_or_default();
            let Some(i) = file.strip_suffix(".socket.d").and_then(|u| n.instance_of(u)) else {
                continue;
            };
            let p = backend_dropin_path(n, i);
            if !instances.contains(&i) && p.exists() {
                remove_dropin(&p).map_err(io(&p))?;
                changed.push(i);
            }
        }
    }
    if !changed.is_empty() {
        systemctl(&["daemon-reload"])?;
    }
    Ok(changed)
}

/// Removes a drop-in, and its directory if that is left empty.
pub fn remove_dropin(p: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    if let Some(dir) = p.parent() {
        let _ = std::fs::remove_dir(dir); // fails harmlessly when not empty
    }
    Ok(())
}

/// The fields of `/proc/PID/stat` after the command name (which may hold
/// spaces and parentheses): state, ppid, … (field 3 of proc(5) is index 0).
pub fn proc_stat(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(s.rsplit_once(')')?.1.split_whitespace().map(String::from).collect())
}

/// Fails clearly when systemd is not PID 1.
pub fn require_systemd() -> Result<(), UnitError> {
    if Path::new("/run/systemd/system").is_dir() {
        return Ok(());
    }
    let pid1 = std::fs::read_to_string("/proc/1/comm").unwrap_or_default().trim().to_string();
    Err(UnitError::NoSystemd(pid1))
}

/// Fails clearly unless this is a systemd host and we are root (checked
/// before anything else, e.g. reading the root-only configuration).
pub fn require_admin(n: &ServiceName, command: &str) -> Result<(), UnitError> {
    require_systemd()?;
    require_root(n, command)
}

/// Fails clearly when not root.
pub fn require_root(n: &ServiceName, command: &str) -> Result<(), UnitError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(UnitError::NotRoot { name: n.to_string(), command: command.to_string() })
    }
}

/// Instances whose socket is enabled, ascending.
pub fn enabled(n: &ServiceName) -> Result<Vec<u32>, UnitError> {
    n.enabled_instances().map_err(|error| UnitError::Io { path: n.wants_dir(), error })
}

/// Instances of this service systemd has loaded (enabled or not), ascending.
pub fn loaded(n: &ServiceName) -> Result<Vec<u32>, UnitError> {
    let pattern = format!("{n}@*");
    let listed = systemctl(&["list-units", "--all", "--plain", "--no-legend", &pattern])?;
    let mut out: Vec<u32> = listed.lines().filter_map(|l| n.instance_of(l.split_whitespace().next()?)).collect();
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Runs systemctl, returning stdout, or its stderr as the error.
pub fn systemctl(args: &[&str]) -> Result<String, UnitError> {
    run("systemctl", args)
}

/// Runs a command, returning stdout, or stderr as the error.
pub fn run(cmd: &str, args: &[&str]) -> Result<String, UnitError> {
    let out = Command::new(cmd).args(args).output().map_err(|error| UnitError::Spawn { cmd: cmd.to_string(), error })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.is_empty() {
            stderr = format!("exit status {}", out.status);
        }
        Err(UnitError::Failed { cmd: cmd.to_string(), args: args.join(" "), stderr })
    }
}

/// `systemctl show -p PROPS UNITS...`: one property map per unit, in order.
pub fn show(units: &[String], props: &[&str]) -> Result<Vec<HashMap<String, String>>, UnitError> {
    if units.is_empty() {
        return Ok(Vec::new());
    }
    let props = props.join(",");
    let mut args = vec!["show", "-p", &props, "--"];
    args.extend(units.iter().map(String::as_str));
    Ok(parse_show(&systemctl(&args)?))
}

/// Parses `systemctl show` output: blocks of KEY=VALUE separated by blank lines.
pub fn parse_show(text: &str) -> Vec<HashMap<String, String>> {
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| block.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect())
        .collect()
}

/// The last `n` journal lines of a unit (for error reports).
pub fn journal_tail(unit: &str, n: usize) -> String {
    let n = n.to_string();
    run("journalctl", &["--no-pager", "-q", "-o", "cat", "-n", &n, "-u", unit]).unwrap_or_else(|e| format!("(journal unavailable: {})", report(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_dropin_listens_on_port_base_plus_instance_for_the_fronts_only() {
        let mut b = BackendConfig { allow: vec!["10.0.0.1".into(), "10.9.0.0/16".into()], ..Default::default() };
        let n = ServiceName::new("myapp").unwrap();
        let d = backend_dropin(&n, 3, &b);
        assert!(d.starts_with("# Written by `myapp enable/scale` from [backend] in /etc/myapp/myapp.toml."), "{d}");
        assert_eq!(backend_dropin_path(&n, 3), Path::new("/etc/systemd/system/myapp@3.socket.d/backend.conf"));
        assert!(d.contains("\nListenStream=7003\n"), "{d}");
        assert!(d.contains("\nIPAddressAllow=10.0.0.1/32 10.9.0.0/16\nIPAddressDeny=any\n"), "{d}");
        b.bind = "10.0.0.2".into();
        assert_eq!(backend_listen(1, &b), "10.0.0.2:7001");
        b.bind = "fd00::2".into();
        assert_eq!(backend_listen(0, &b), "[fd00::2]:7000");
    }

    #[test]
    fn proc_stat_reads_fields_after_the_command_name() {
        let f = proc_stat(std::process::id()).unwrap();
        assert_eq!(f[1], nix::unistd::getppid().to_string(), "{f:?}");
        assert!(proc_stat(u32::MAX).is_none());
    }

    #[test]
    fn parses_show_blocks() {
        let v = parse_show("Id=a\nMainPID=5\n\nId=b\nStatusText=x=y\n");
        assert_eq!(v.len(), 2);
        assert_eq!(v[0]["MainPID"], "5");
        assert_eq!(v[1]["StatusText"], "x=y");
    }
}
