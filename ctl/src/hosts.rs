//! The hosts behind this host's nginx front, as `NAME front add/remove/drain`
//! keep them in `/etc/NAME/front.toml`: what [`front`](crate::front) changes
//! and [`nginx`](crate::nginx) renders into the upstream.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use corepool_runtime::ServiceName;
use serde::{Deserialize, Serialize};

/// The hosts behind this front: `/etc/NAME/front.toml`.
pub fn state_path(n: &ServiceName) -> PathBuf {
    n.etc_dir().join("front.toml")
}

/// One backend host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// As the operator gave it (`app1`, `10.0.0.2`).
    pub name: String,
    /// What it resolved to when added: nginx gets the address, so a reload
    /// never depends on name resolution.
    pub address: IpAddr,
    /// The host's `[backend] port_base`: its instance N listens on `port_base + N`.
    pub port_base: u16,
    /// How many instances it runs.
    pub instances: u32,
    /// Marked `down` in the upstream (`NAME front drain`).
    #[serde(default)]
    pub drained: bool,
}

impl Host {
    /// Instance numbers with their addresses.
    pub fn servers(&self) -> impl Iterator<Item = (u32, SocketAddr)> + '_ {
        (0..self.instances).map(|i| (i, SocketAddr::new(self.address, (u32::from(self.port_base) + i) as u16)))
    }
}

/// Everything behind this front (the contents of `front.toml`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Front {
    /// The hosts, in the order they were added.
    #[serde(default, rename = "host")]
    pub hosts: Vec<Host>,
}

/// Why `front.toml` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    /// The file exists but cannot be read.
    #[error("{path}")]
    Read {
        /// `front.toml`.
        path: PathBuf,
        /// What reading it said.
        #[source]
        error: std::io::Error,
    },
    /// The file is not what the commands write.
    #[error("{path}: {}", .error.to_string().trim())]
    Parse {
        /// `front.toml`.
        path: PathBuf,
        /// Where and why (shown in the message).
        error: toml::de::Error,
    },
}

/// Reads `front.toml`; no file means no hosts.
pub fn load(n: &ServiceName) -> Result<Front, HostsError> {
    load_from(&state_path(n))
}

/// Reads a `front.toml` at `path`; no file means no hosts.
pub fn load_from(path: &Path) -> Result<Front, HostsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|error| HostsError::Parse { path: path.into(), error }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Front::default()),
        Err(error) => Err(HostsError::Read { path: path.into(), error }),
    }
}

/// `front.toml` as written by the commands.
pub fn render(n: &ServiceName, front: &Front) -> String {
    let body = toml::to_string(front).unwrap_or_default();
    format!("# The hosts behind this nginx front, kept by `{n} front add/remove/drain`.\n# Change it with those commands (they check the hosts and nginx).\n\n{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, ip: &str, drained: bool) -> Host {
        Host { name: name.into(), address: ip.parse().unwrap(), port_base: 7000, instances: 2, drained }
    }

    #[test]
    fn state_round_trips_and_bad_state_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("front.toml");
        let front = Front { hosts: vec![host("app1", "10.0.0.2", false), host("app2", "10.0.0.3", true)] };
        std::fs::write(&p, render(&ServiceName::new("myapp").unwrap(), &front)).unwrap();
        assert_eq!(load_from(&p).unwrap(), front);
        assert_eq!(load_from(&dir.path().join("none.toml")).unwrap(), Front::default());
        std::fs::write(&p, "[[host]]\nname = \"x\"\n").unwrap();
        let e = load_from(&p).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: ", p.display())) && e.contains("address"), "{e}");
    }

    #[test]
    fn an_unreadable_state_names_the_file_and_keeps_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        // A directory cannot be read as a file.
        let e = load_from(dir.path()).unwrap_err();
        assert_eq!(e.to_string(), dir.path().display().to_string());
        assert!(std::error::Error::source(&e).is_some(), "{e:?}");
    }
}
