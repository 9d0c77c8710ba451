//! The per-core instance set as systemd sees it: which instance sockets are
//! enabled, the units' state, and the `systemctl` calls behind the operator
//! commands. systemd is the process manager; this module only asks and tells it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where `systemctl enable corepool@N.socket` links the sockets (WantedBy=corepool.target).
pub const WANTS_DIR: &str = "/etc/systemd/system/corepool.target.wants";

#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    #[error("systemd is not running as PID 1 here (PID 1 is {0:?}); corepool's instance commands need a systemd host")]
    NoSystemd(String),
    #[error("`corepool {0}` changes system services and must run as root (try: sudo corepool {0})")]
    NotRoot(String),
    #[error("systemctl {args} failed: {stderr}")]
    Systemctl { args: String, stderr: String },
    #[error("cannot run {cmd}: {error}")]
    Spawn { cmd: String, error: std::io::Error },
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
}

/// The unix socket of instance `i`.
pub fn socket_path(i: u32) -> PathBuf {
    PathBuf::from(format!("/run/corepool/{i}.sock"))
}

pub fn socket_addr(i: u32) -> String {
    format!("unix:{}", socket_path(i).display())
}

pub fn service(i: u32) -> String {
    format!("corepool@{i}.service")
}

pub fn socket(i: u32) -> String {
    format!("corepool@{i}.socket")
}

/// The drop-in that gives instance `i`'s socket unit a TCP listener for a
/// remote front (`[backend]` in corepool.toml), written by `corepool enable/scale`.
pub fn backend_dropin_path(i: u32) -> PathBuf {
    PathBuf::from(format!("/etc/systemd/system/corepool@{i}.socket.d/backend.conf"))
}

/// The TCP address instance `i` listens on for a remote front, as `ListenStream=` takes it.
pub fn backend_listen(i: u32, b: &crate::config::BackendConfig) -> String {
    let port = u32::from(b.port_base) + i;
    match b.bind.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(a)) => format!("[{a}]:{port}"),
        Ok(a) => format!("{a}:{port}"),
        Err(_) => port.to_string(),
    }
}

/// The drop-in's text: a second socket (TCP) beside the unix one, reachable
/// only from `allow`.
pub fn backend_dropin(i: u32, b: &crate::config::BackendConfig) -> String {
    let allow: Vec<String> = b.networks().iter().map(|n| n.to_string()).collect();
    format!(
        "# Written by `corepool enable/scale` from [backend] in /etc/corepool/corepool.toml.\n\
         # Edit that file and run `corepool enable N` again instead of this one.\n\
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
    )
}

/// Makes the backend drop-ins match `b` for `instances` (written, or removed
/// when `[backend] allow` is empty) and removes those of every other instance.
/// Returns the instances whose socket must be re-created to pick up a change.
pub fn sync_backend_dropins(instances: &[u32], b: &crate::config::BackendConfig) -> Result<Vec<u32>, UnitError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| UnitError::Io { path, error }
    };
    let mut changed = Vec::new();
    for &i in instances {
        let p = backend_dropin_path(i);
        let old = std::fs::read_to_string(&p).ok();
        let new = b.enabled().then(|| backend_dropin(i, b));
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
            let name = e.file_name().into_string().unwrap_or_default();
            let Some(i) = name.strip_prefix("corepool@").and_then(|n| n.strip_suffix(".socket.d")).and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let p = backend_dropin_path(i);
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
fn remove_dropin(p: &Path) -> std::io::Result<()> {
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

/// Fails clearly when not root.
pub fn require_root(command: &str) -> Result<(), UnitError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(UnitError::NotRoot(command.to_string()))
    }
}

/// Instances whose socket is enabled, ascending.
pub fn enabled() -> Result<Vec<u32>, UnitError> {
    enabled_in(Path::new(WANTS_DIR))
}

fn enabled_in(dir: &Path) -> Result<Vec<u32>, UnitError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(UnitError::Io { path: dir.into(), error }),
    };
    let mut out: Vec<u32> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix("corepool@")?.strip_suffix(".socket")?.parse().ok()
        })
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// Runs systemctl, returning stdout, or its stderr as the error.
pub fn systemctl(args: &[&str]) -> Result<String, UnitError> {
    run("systemctl", args)
}

/// Runs a command, returning stdout, or stderr as the error.
pub fn run(cmd: &str, args: &[&str]) -> Result<String, UnitError> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|error| UnitError::Spawn { cmd: cmd.to_string(), error })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.is_empty() {
            stderr = format!("exit status {}", out.status);
        }
        Err(UnitError::Systemctl { args: args.join(" "), stderr })
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
        .map(|block| {
            block
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// The last `n` journal lines of a unit (for error reports).
pub fn journal_tail(unit: &str, n: usize) -> String {
    let n = n.to_string();
    run("journalctl", &["--no-pager", "-q", "-o", "cat", "-n", &n, "-u", unit]).unwrap_or_else(|e| format!("(journal unavailable: {e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_reads_wants_links() {
        let d = tempfile::tempdir().unwrap();
        for n in ["corepool@1.socket", "corepool@0.socket", "corepool@10.socket", "other.socket", "corepool@x.socket"] {
            std::fs::write(d.path().join(n), "").unwrap();
        }
        assert_eq!(enabled_in(d.path()).unwrap(), vec![0, 1, 10]);
        assert_eq!(enabled_in(&d.path().join("none")).unwrap(), Vec::<u32>::new());
    }

    #[test]
    fn backend_dropin_listens_on_port_base_plus_instance_for_the_fronts_only() {
        let mut b = crate::config::BackendConfig { allow: vec!["10.0.0.1".into(), "10.9.0.0/16".into()], ..Default::default() };
        let d = backend_dropin(3, &b);
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
