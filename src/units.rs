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
    fn parses_show_blocks() {
        let v = parse_show("Id=a\nMainPID=5\n\nId=b\nStatusText=x=y\n");
        assert_eq!(v.len(), 2);
        assert_eq!(v[0]["MainPID"], "5");
        assert_eq!(v[1]["StatusText"], "x=y");
    }
}
