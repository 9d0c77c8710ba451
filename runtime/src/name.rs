//! The service's name, and every name derived from it.
//!
//! A service is known by one name, its binary's: `myapp`. From it come the
//! units (`myapp@.socket`, `myapp@.service`, `myapp.target`), the sockets
//! (`/run/myapp/N.sock`), the configuration (`/etc/myapp/myapp.toml`) and its
//! environment prefix (`MYAPP_`), the system user, the nginx site and its
//! upstream, the certbot hook and the journal's identifiers. Nothing else
//! names a service, so two services never share a file, unit or user.

use std::fmt;
use std::path::{Path, PathBuf};

/// A valid service name: 2 to 32 characters, lower-case ASCII letters,
/// digits and `-`, starting with a letter and not ending with `-`. That is
/// what a Debian package, a system user, a systemd unit and an nginx
/// upstream all accept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceName(String);

/// Why a name is not a valid service name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a valid service name: {why} (a service name has 2 to 32 characters: lower-case letters, digits and '-', starting with a letter, e.g. `myapp`)")]
pub struct NameError {
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Names that belong to the system already: a service called `root` or
/// `nginx` would take over that user or package.
const RESERVED: &[&str] = &[
    "root",
    "daemon",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "www-data",
    "backup",
    "list",
    "irc",
    "gnats",
    "nobody",
    "nogroup",
    "adm",
    "sudo",
    "staff",
    "users",
    "systemd",
    "dbus",
    "messagebus",
    "nginx",
    "certbot",
    "letsencrypt",
    "prometheus",
    "grafana",
    "debian",
    "apt",
    "dpkg",
    "cargo",
    "rust",
];

impl ServiceName {
    /// Checks `name`.
    pub fn new(name: &str) -> Result<ServiceName, NameError> {
        let bad = |why| Err(NameError { name: name.to_string(), why });
        if name.is_empty() {
            return bad("it is empty");
        }
        if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return bad("it may only contain lower-case letters, digits and '-'");
        }
        if !name.as_bytes()[0].is_ascii_lowercase() {
            return bad("it must start with a letter");
        }
        if name.ends_with('-') {
            return bad("it must not end with '-'");
        }
        if !(2..=32).contains(&name.len()) {
            return bad("it must be 2 to 32 characters long");
        }
        if RESERVED.contains(&name) {
            return bad("it is a system user, group or package already");
        }
        Ok(ServiceName(name.to_string()))
    }

    /// The name itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name with `-` as `_`: for nginx variables, zones and environment variables.
    pub fn ident(&self) -> String {
        self.0.replace('-', "_")
    }

    /// The session cookie: `myapp_session` (`my_app_session` for `my-app`),
    /// the name nginx's `$cookie_...` variable reads for sticky routing.
    pub fn session_cookie(&self) -> String {
        format!("{}_session", self.ident())
    }

    /// Prefix of the environment variables that override settings: `MYAPP`
    /// (`MYAPP_POOL_THREADS=2`, `MYAPP_CONFIG=/path`).
    pub fn env_prefix(&self) -> String {
        self.ident().to_ascii_uppercase()
    }

    /// `/etc/myapp`.
    pub fn etc_dir(&self) -> PathBuf {
        Path::new("/etc").join(&self.0)
    }

    /// `/etc/myapp/myapp.toml`: the configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.etc_dir().join(format!("{}.toml", self.0))
    }

    /// `/var/lib/myapp`: state (the ACME webroot, Prometheus targets).
    pub fn state_dir(&self) -> PathBuf {
        Path::new("/var/lib").join(&self.0)
    }

    /// `/run/myapp`: where the instance sockets are.
    pub fn run_dir(&self) -> PathBuf {
        Path::new("/run").join(&self.0)
    }

    /// The unix socket of instance `i`: `/run/myapp/I.sock`.
    pub fn socket_path(&self, i: u32) -> PathBuf {
        self.run_dir().join(format!("{i}.sock"))
    }

    /// The socket as a listen address: `unix:/run/myapp/I.sock`.
    pub fn socket_addr(&self, i: u32) -> String {
        format!("unix:{}", self.socket_path(i).display())
    }

    /// `myapp@I.service`.
    pub fn service_unit(&self, i: u32) -> String {
        format!("{}@{i}.service", self.0)
    }

    /// `myapp@I.socket`.
    pub fn socket_unit(&self, i: u32) -> String {
        format!("{}@{i}.socket", self.0)
    }

    /// `myapp-metrics.service`: the host's scrape endpoint for Prometheus.
    pub fn metrics_unit(&self) -> String {
        format!("{}-metrics.service", self.0)
    }

    /// `myapp.target`: groups the enabled instances, started at boot.
    pub fn target_unit(&self) -> String {
        format!("{}.target", self.0)
    }

    /// Where `systemctl enable myapp@N.socket` links the sockets (`WantedBy=myapp.target`).
    pub fn wants_dir(&self) -> PathBuf {
        PathBuf::from(format!("/etc/systemd/system/{}.target.wants", self.0))
    }

    /// The instance number of a unit name of this service (`myapp@3.socket` → 3).
    pub fn instance_of(&self, unit: &str) -> Option<u32> {
        let rest = unit.strip_prefix(&self.0)?.strip_prefix('@')?;
        rest.split('.').next()?.parse().ok()
    }

    /// Instances whose socket is enabled (linked into the target), ascending.
    pub fn enabled_instances(&self) -> std::io::Result<Vec<u32>> {
        self.enabled_in(&self.wants_dir())
    }

    fn enabled_in(&self, dir: &Path) -> std::io::Result<Vec<u32>> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out: Vec<u32> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.ends_with(".socket").then(|| self.instance_of(&name)).flatten()
            })
            .collect();
        out.sort_unstable();
        Ok(out)
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ServiceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_and_what_derives_from_them() {
        let n = ServiceName::new("my-app2").unwrap();
        assert_eq!(n.config_path(), Path::new("/etc/my-app2/my-app2.toml"));
        assert_eq!(n.socket_path(3), Path::new("/run/my-app2/3.sock"));
        assert_eq!(n.socket_addr(0), "unix:/run/my-app2/0.sock");
        assert_eq!((n.service_unit(1), n.socket_unit(1), n.target_unit()), ("my-app2@1.service".into(), "my-app2@1.socket".into(), "my-app2.target".into()));
        assert_eq!((n.env_prefix(), n.ident()), ("MY_APP2".into(), "my_app2".into()));
        assert_eq!(n.session_cookie(), "my_app2_session");
        assert_eq!(n.instance_of("my-app2@12.socket"), Some(12));
        assert_eq!(n.instance_of("my-app@1.socket"), None);
        assert_eq!(n.instance_of("my-app2@x.socket"), None);
        ServiceName::new("corepool").unwrap();
    }

    #[test]
    fn invalid_names_say_why() {
        for (bad, why) in [
            ("", "empty"),
            ("MyApp", "lower-case"),
            ("my app", "lower-case"),
            ("../x", "lower-case"),
            ("a/b", "lower-case"),
            ("my_app", "lower-case"),
            ("1app", "start with a letter"),
            ("-app", "start with a letter"),
            ("app-", "end with"),
            ("a", "2 to 32"),
            (&"a".repeat(33), "2 to 32"),
            ("root", "system user"),
            ("nginx", "system user"),
        ] {
            let e = ServiceName::new(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad:?}: {e}");
            assert!(e.to_string().contains("e.g. `myapp`"), "{e}");
        }
    }

    #[test]
    fn enabled_instances_are_read_from_the_target_wants() {
        let d = tempfile::tempdir().unwrap();
        for f in ["app@1.socket", "app@0.socket", "app@10.socket", "other@2.socket", "app@x.socket", "app@3.service"] {
            std::fs::write(d.path().join(f), "").unwrap();
        }
        let n = ServiceName::new("app").unwrap();
        assert_eq!(n.enabled_in(d.path()).unwrap(), vec![0, 1, 10]);
        assert_eq!(n.enabled_in(&d.path().join("none")).unwrap(), Vec::<u32>::new());
    }
}
