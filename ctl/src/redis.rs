//! What the instances' unit needs for `[redis]` in the service's
//! configuration, as a systemd drop-in beside the packaged unit:
//! `/etc/systemd/system/NAME@.service.d/redis.conf`, written by `enable`,
//! `scale`, `reload` and `restart` (each reads `[redis]` again, and runs
//! `systemctl daemon-reload` when the drop-in changed), removed by `disable`
//! and whenever `[redis] url` is empty or absent.
//!
//! * a local unix socket (`/run/redis/redis-server.sock`, `unix://PATH`,
//!   `redis+unix://PATH`): `After=redis-server.service`, and
//!   `SupplementaryGroups=` the socket's group (Debian's `redis`, with
//!   `unixsocketperm 770`) only when that group exists: a missing group
//!   fails every start with 216/GROUP;
//! * a server over TCP (`redis://HOST:PORT`, `rediss://`): the packaged unit
//!   has no network (`PrivateNetwork=yes`, `IPAddressDeny=any`, `AF_UNIX`
//!   only), so the drop-in gives the instances the host's network and lets
//!   them reach that server's addresses (and the DNS servers, for a name) only;
//! * the password, when `/etc/NAME/credentials/CREDENTIAL` (or
//!   `CREDENTIAL.cred`, made with `systemd-creds encrypt`) exists:
//!   `LoadCredential=` (`LoadCredentialEncrypted=`), so the instance reads it
//!   from `$CREDENTIALS_DIRECTORY/CREDENTIAL` (`[redis] password_credential`,
//!   default `redis-password`) and the configuration never holds it.
//!
//! `[redis]` is read here with `toml` directly (only `url` and
//! `password_credential`); the runtime validates the section itself.

use std::net::IpAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use corepool_runtime::ServiceName;

use crate::units::{self, UnitError};

/// The unit that runs Debian's Redis (package redis-server).
pub const REDIS_UNIT: &str = "redis-server.service";
/// The group of Debian's Redis socket.
pub const REDIS_GROUP: &str = "redis";
/// `[redis] password_credential` when not set.
pub const DEFAULT_CREDENTIAL: &str = "redis-password";

/// `/etc/systemd/system/NAME@.service.d/redis.conf`.
pub fn dropin_path(n: &ServiceName) -> PathBuf {
    PathBuf::from(format!("/etc/systemd/system/{n}@.service.d/redis.conf"))
}

/// Where the credential files are looked for: `/etc/NAME/credentials`.
pub fn credentials_dir(n: &ServiceName) -> PathBuf {
    n.etc_dir().join("credentials")
}

/// What the unit needs of `[redis]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `[redis] url` (empty with sentinels).
    pub url: String,
    /// `[redis] sentinels` (`host:port`): the primary is the one they name.
    pub sentinels: Vec<String>,
    /// `[redis] password_credential`.
    pub credential: String,
}

/// `[redis]` of the configuration at `path`: None without a file, without
/// the section, or with an empty `url`; an error says what is wrong.
pub fn read(path: &Path) -> Result<Option<Settings>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// [`read`] on the file's text.
fn parse(text: &str) -> Result<Option<Settings>, String> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| e.to_string().trim().to_string())?;
    let Some(redis) = doc.get("redis") else {
        return Ok(None);
    };
    let redis = redis.as_table().ok_or("redis: not a table")?;
    let string = |key: &str, default: &str| match redis.get(key) {
        None => Ok(default.to_string()),
        Some(toml::Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("redis.{key}: not a string")),
    };
    let url = string("url", "")?.trim().to_string();
    let sentinels = match redis.get("sentinels") {
        None => Vec::new(),
        Some(toml::Value::Array(a)) => {
            a.iter().map(|v| v.as_str().map(str::to_string).ok_or("redis.sentinels: not a list of strings")).collect::<Result<_, _>>()?
        }
        Some(_) => return Err("redis.sentinels: not a list of strings".into()),
    };
    if url.is_empty() && sentinels.is_empty() {
        return Ok(None);
    }
    Ok(Some(Settings { url, sentinels, credential: string("password_credential", DEFAULT_CREDENTIAL)? }))
}

/// Where `[redis] url` points.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A unix socket on this host.
    Unix(PathBuf),
    /// A server over TCP (`redis://`, `rediss://`).
    Tcp { host: String, port: u16 },
    /// Something else (another scheme, a relative path): the drop-in gives it nothing.
    Other(String),
}

/// Parses `[redis] url` the way the Redis clients do: a bare absolute path,
/// `unix://PATH` or `redis+unix://PATH` (a query such as `?db=1` is not part
/// of the path), or `redis[s]://[USER[:PASSWORD]@]HOST[:PORT][/DB]`.
pub fn target(url: &str) -> Target {
    let url = url.trim();
    if url.starts_with('/') {
        return Target::Unix(PathBuf::from(url));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Target::Other(url.into());
    };
    match scheme.to_ascii_lowercase().as_str() {
        "unix" | "redis+unix" => {
            let path = rest.split(['?', '#']).next().unwrap_or("");
            // unix://localhost/path, as some write file URLs.
            let path = path.strip_prefix("localhost").unwrap_or(path);
            if path.starts_with('/') {
                Target::Unix(PathBuf::from(percent_decode(path)))
            } else {
                Target::Other(url.into())
            }
        }
        "redis" | "rediss" => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            let hostport = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
            let (host, port) = match hostport.strip_prefix('[') {
                // [v6]:port
                Some(v6) => match v6.split_once(']') {
                    Some((h, p)) => (h.to_string(), p.strip_prefix(':').unwrap_or("")),
                    None => return Target::Other(url.into()),
                },
                None => match hostport.rsplit_once(':') {
                    Some((h, p)) => (h.to_string(), p),
                    None => (hostport.to_string(), ""),
                },
            };
            let port = if port.is_empty() { Some(6379) } else { port.parse().ok() };
            match port {
                Some(port) if !host.is_empty() => Target::Tcp { host, port },
                _ => Target::Other(url.into()),
            }
        }
        _ => Target::Other(url.into()),
    }
}

/// `%XX` escapes decoded (a socket path with a space, say).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A unix socket as found on this host.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketFile {
    /// Its group's name (None: a gid without a name).
    pub group: Option<String>,
    pub gid: u32,
    /// Permission bits.
    pub mode: u32,
}

/// A credential file as found on this host.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialFile {
    pub path: PathBuf,
    /// Made with `systemd-creds encrypt` (`NAME.cred`).
    pub encrypted: bool,
    pub mode: u32,
}

/// What this host has that the drop-in depends on (see [`facts`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// The socket, if it exists (and is a socket).
    pub socket: Option<SocketFile>,
    /// Whether the group `redis` exists.
    pub redis_group: bool,
    pub credential: Option<CredentialFile>,
    /// A TCP server's addresses (one, for an IP address), or why its name did not resolve.
    pub addresses: Option<Result<Vec<IpAddr>, String>>,
    /// The DNS servers of /etc/resolv.conf (only for a server given by name).
    pub nameservers: Vec<IpAddr>,
}

/// The server over TCP the drop-in opens the network to: `[redis] url`'s, or
/// with sentinels, the sentinels (`host host ...`, port 0), whose hosts also
/// run the Redis servers they name in the usual three-node layout.
fn effective_target(s: &Settings) -> Target {
    if s.sentinels.is_empty() {
        return target(&s.url);
    }
    let hosts: Vec<String> = s
        .sentinels
        .iter()
        .map(|h| match target(&format!("redis://{h}")) {
            Target::Tcp { host, .. } => host,
            _ => h.clone(),
        })
        .collect();
    Target::Tcp { host: hosts.join(" "), port: 0 }
}

/// Looks up what the drop-in for `s` depends on.
pub fn facts(n: &ServiceName, s: &Settings) -> Facts {
    let mut f = Facts { redis_group: group_exists(REDIS_GROUP), ..Facts::default() };
    match effective_target(s) {
        Target::Unix(path) => {
            f.socket = std::fs::metadata(&path).ok().filter(|m| m.file_type().is_socket()).map(|m| SocketFile {
                group: nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(m.gid())).ok().flatten().map(|g| g.name),
                gid: m.gid(),
                mode: m.mode() & 0o7777,
            })
        }
        Target::Tcp { host, port } => {
            let mut ips: Vec<IpAddr> = Vec::new();
            let mut failed = None;
            for h in host.split(' ') {
                match h.parse::<IpAddr>() {
                    Ok(ip) => ips.push(ip),
                    Err(_) => {
                        use std::net::ToSocketAddrs;
                        match (h, port).to_socket_addrs() {
                            Ok(a) => ips.extend(a.map(|a| a.ip())),
                            Err(e) => failed = Some(e.to_string()),
                        }
                        f.nameservers = std::fs::read_to_string("/etc/resolv.conf").map(|t| nameservers(&t)).unwrap_or_default();
                    }
                }
            }
            ips.sort();
            ips.dedup();
            f.addresses = Some(match failed {
                Some(e) if ips.is_empty() => Err(e),
                _ if ips.is_empty() => Err("no address".into()),
                _ => Ok(ips),
            });
        }
        Target::Other(_) => {}
    }
    if valid_credential_name(&s.credential) {
        let dir = credentials_dir(n);
        let encrypted = dir.join(format!("{}.cred", s.credential));
        let plain = dir.join(&s.credential);
        f.credential = [(encrypted, true), (plain, false)].into_iter().find_map(|(path, encrypted)| {
            let m = std::fs::metadata(&path).ok().filter(|m| m.is_file())?;
            Some(CredentialFile { path, encrypted, mode: m.mode() & 0o7777 })
        });
    }
    f
}

fn group_exists(name: &str) -> bool {
    nix::unistd::Group::from_name(name).ok().flatten().is_some()
}

/// The `nameserver` addresses of a resolv.conf.
fn nameservers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf.lines().filter_map(|l| l.trim().strip_prefix("nameserver")).filter_map(|a| a.trim().split('%').next()?.parse::<IpAddr>().ok()).collect()
}

/// A credential name systemd takes, which is also a file name here.
fn valid_credential_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s != "." && s != ".." && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The drop-in's text (None: no drop-in), and what the operator should know.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub text: Option<String>,
    /// What the drop-in does, in a few words (for the command's output).
    pub summary: String,
    /// Problems to fix (shown on every command that refreshes the drop-in).
    pub warnings: Vec<String>,
}

/// The drop-in for `settings` on a host with `facts`; `config` is the file they came from.
pub fn plan(n: &ServiceName, config: &Path, settings: Option<&Settings>, facts: &Facts) -> Plan {
    let Some(s) = settings else {
        return Plan::default();
    };
    let mut unit = String::new();
    let mut service = String::new();
    let mut does: Vec<String> = Vec::new();
    let mut warnings = Vec::new();
    match effective_target(s) {
        Target::Unix(path) => {
            let socket = path.display();
            unit.push_str(&format!(
                "# [redis] url is this host's Redis socket, {socket}: an instance started while\n\
                 # redis-server starts (at boot) waits until it is up. Ordering only: stopping\n\
                 # or restarting Redis leaves the instances running (what needs Redis answers\n\
                 # 503 until it is back), and an instance never starts Redis.\n\
                 After={REDIS_UNIT}\n"
            ));
            does.push(format!("after {REDIS_UNIT}"));
            // The socket's own group where it exists (never root's); else Debian's.
            let group = match &facts.socket {
                Some(SocketFile { group: Some(g), gid, .. }) if *gid != 0 => Some(g.clone()),
                Some(_) => None,
                None if facts.redis_group => Some(REDIS_GROUP.to_string()),
                None => None,
            };
            match &facts.socket {
                Some(f) if f.mode & 0o020 == 0 && f.mode & 0o002 == 0 => warnings.push(format!(
                    "{socket} is mode {:04o}: only its owner may connect; set `unixsocketperm 770` in /etc/redis/redis.conf (and restart redis-server) so the group {} can",
                    f.mode,
                    f.group.as_deref().unwrap_or("of the socket")
                )),
                Some(SocketFile { gid: 0, mode, .. }) if mode & 0o002 == 0 => {
                    warnings.push(format!("{socket} belongs to the group root: the instances cannot join it; give the socket its own group (Debian's redis)"))
                }
                None if group.is_some() => warnings.push(format!(
                    "{socket} does not exist yet (is redis-server running with `unixsocket {socket}`?); assuming Debian's group {REDIS_GROUP}"
                )),
                _ => {}
            }
            match &group {
                Some(g) => {
                    service.push_str(&format!(
                        "# The socket is group {g}'s (Debian: `unixsocketperm 770` in\n\
                         # /etc/redis/redis.conf): the instances join that group to connect.\n\
                         # Written only while the group exists: a missing one fails every start\n\
                         # (216/GROUP). PrivateUsers= shows it as nogroup inside the instance;\n\
                         # the kernel still grants the access.\n\
                         SupplementaryGroups={g}\n"
                    ));
                    does.push(format!("group {g}"));
                }
                None if facts.socket.is_none() => warnings.push(format!(
                    "no group {REDIS_GROUP} on this host (is redis-server installed?) and no {socket}: the instances join no group; run `{n} reload` once Redis is there"
                )),
                None => {}
            }
        }
        Target::Tcp { host, port } => {
            let addresses = match &facts.addresses {
                Some(Ok(a)) => a.clone(),
                Some(Err(e)) => {
                    warnings
                        .push(format!("cannot resolve {host} now ({e}): the instances may reach no address of it until `{n} reload` runs once it resolves"));
                    Vec::new()
                }
                None => Vec::new(),
            };
            let local = !addresses.is_empty() && addresses.iter().all(|a| a.is_loopback());
            if port == 0 {
                unit.push_str(&format!("# [redis] sentinels, on {host}, name the primary: start once the network is up.\n"));
            } else {
                unit.push_str(&format!("# [redis] url is a server over TCP, {host} port {port}: start once the network is up.\n"));
            }
            if local {
                unit.push_str(&format!("# {host} is this host: also after its Redis, when it starts (ordering only).\nAfter={REDIS_UNIT}\n"));
                does.push(format!("after {REDIS_UNIT}"));
            }
            unit.push_str("After=network-online.target\nWants=network-online.target\n");
            let mut allow: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
            let by_name = host.split(' ').any(|h| h.parse::<IpAddr>().is_err());
            if by_name {
                for ns in &facts.nameservers {
                    if !allow.contains(&ns.to_string()) {
                        allow.push(ns.to_string());
                    }
                }
            }
            service.push_str(&format!(
                "# The packaged unit gives the instances no network (PrivateNetwork=yes,\n\
                 # IPAddressDeny=any, AF_UNIX only). For this server they get the host's\n\
                 # network, and may reach only {what}.\n\
                 PrivateNetwork=no\n\
                 RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n",
                what = if by_name {
                    format!("the addresses {host} had when this was written (`{n} reload`\n# after they change) and the DNS servers of /etc/resolv.conf, to resolve it")
                } else {
                    host.to_string()
                }
            ));
            if !allow.is_empty() {
                service.push_str(&format!("IPAddressAllow={}\n", allow.join(" ")));
            }
            does.push(format!("network to {} only", if allow.is_empty() { "nothing".to_string() } else { allow.join(" ") }));
        }
        Target::Other(url) => warnings.push(format!(
            "[redis] url `{url}` is neither a unix socket (a path, unix://PATH) nor redis://HOST:PORT: the unit gives the instances nothing for it"
        )),
    }
    if !valid_credential_name(&s.credential) {
        warnings.push(format!("[redis] password_credential `{}` is not a credential name (letters, digits, . _ -): no password is passed", s.credential));
    } else if let Some(c) = &facts.credential {
        let (directive, how) = if c.encrypted {
            ("LoadCredentialEncrypted", "decrypts it (systemd-creds: the host's key or TPM) at each start and gives")
        } else {
            ("LoadCredential", "reads it at each start and gives")
        };
        service.push_str(&format!(
            "# The Redis password, {path}: systemd {how}\n\
             # the instance a copy in $CREDENTIALS_DIRECTORY/{name}, readable by it alone; the\n\
             # configuration names the credential ([redis] password_credential), never the\n\
             # password. (`{n} reload` rewrites this drop-in when the file goes away.)\n\
             {directive}={name}:{path}\n",
            path = c.path.display(),
            name = s.credential,
        ));
        does.push(format!("credential {} from {}", s.credential, c.path.display()));
        if c.mode & 0o077 != 0 && !c.encrypted {
            warnings.push(format!("{} is mode {:04o}: others than root may read the password; chmod 600 it", c.path.display(), c.mode));
        }
    }
    if unit.is_empty() && service.is_empty() {
        return Plan { warnings, ..Plan::default() };
    }
    let mut text = format!(
        "# Written by `{n} enable/scale/reload/restart` from [redis] in {config}.\n\
         # Edit that file and run `{n} reload` instead of this one (`{n} disable`, or\n\
         # [redis] without a url, removes it).\n",
        config = config.display()
    );
    if !unit.is_empty() {
        text.push_str(&format!("[Unit]\n{unit}"));
    }
    if !service.is_empty() {
        text.push_str(&format!("\n[Service]\n{service}"));
    }
    Plan { text: Some(text), summary: does.join(", "), warnings }
}

/// What [`sync`] did, for the command's output.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The drop-in was written or removed (and systemd reloaded).
    pub changed: bool,
    pub lines: Vec<String>,
}

/// Makes the drop-in match `[redis]` in `config` (None: remove it).
/// Configuration that cannot be read leaves the drop-in as it was, and says so.
pub fn sync(n: &ServiceName, config: Option<&Path>) -> Result<Outcome, UnitError> {
    let mut o = Outcome::default();
    let settings = match config.map(read) {
        None => None,
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            o.lines.push(format!("redis: {e}; {} left as it was", dropin_path(n).display()));
            return Ok(o);
        }
    };
    let facts = settings.as_ref().map(|s| facts(n, s)).unwrap_or_default();
    let plan = plan(n, config.unwrap_or(&n.config_path()), settings.as_ref(), &facts);
    o.lines.extend(plan.warnings.iter().map(|w| format!("redis: warning: {w}")));
    let p = dropin_path(n);
    let old = std::fs::read_to_string(&p).ok();
    if old == plan.text {
        return Ok(o);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| UnitError::Io { path, error }
    };
    match &plan.text {
        Some(text) => {
            let dir = p.parent().unwrap_or(Path::new("/"));
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            let tmp = p.with_extension("tmp");
            std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &p)).map_err(io(&p))?;
            o.lines.push(format!("redis: {} written: {}", p.display(), plan.summary));
        }
        None => {
            units::remove_dropin(&p).map_err(io(&p))?;
            o.lines.push(format!("redis: {} removed ([redis] url names nothing the unit must allow)", p.display()));
        }
    }
    units::systemctl(&["daemon-reload"])?;
    o.changed = true;
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> ServiceName {
        ServiceName::new("myapp").unwrap()
    }

    fn settings(url: &str) -> Settings {
        Settings { url: url.into(), sentinels: Vec::new(), credential: DEFAULT_CREDENTIAL.into() }
    }

    fn config() -> PathBuf {
        name().config_path()
    }

    #[test]
    fn redis_is_read_from_the_configuration_without_its_schema() {
        assert_eq!(parse("[pool]\nthreads = 2\n").unwrap(), None, "no [redis]");
        assert_eq!(parse("[redis]\nurl = \"\"\nrequired = true\n").unwrap(), None, "an empty url is none");
        assert_eq!(parse("[redis]\nurl = \"/run/redis/redis-server.sock\"\ntimeout = \"2s\"\n").unwrap(), Some(settings("/run/redis/redis-server.sock")));
        let s = parse("[redis]\nurl = \"redis://db:6379\"\npassword_credential = \"db-pass\"\n").unwrap().unwrap();
        assert_eq!(s.credential, "db-pass");
        assert!(parse("[redis]\nurl = 5\n").unwrap_err().contains("redis.url: not a string"));
        assert!(parse("redis = 1\n").unwrap_err().contains("not a table"));
        assert!(parse("[redis\n").is_err());
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(&dir.path().join("none.toml")).unwrap(), None, "no file: built-in defaults");
        let e = read(dir.path()).unwrap_err();
        assert!(e.starts_with(&dir.path().display().to_string()), "{e}");
    }

    #[test]
    fn urls_name_a_socket_a_tcp_server_or_something_else() {
        let unix = |p: &str| Target::Unix(PathBuf::from(p));
        assert_eq!(target("/run/redis/redis-server.sock"), unix("/run/redis/redis-server.sock"));
        assert_eq!(target("unix:///run/redis/redis-server.sock"), unix("/run/redis/redis-server.sock"));
        assert_eq!(target("redis+unix:///run/redis/redis-server.sock?db=2&pass=x"), unix("/run/redis/redis-server.sock"));
        assert_eq!(target("unix://localhost/run/r%20s.sock"), unix("/run/r s.sock"));
        let tcp = |h: &str, port| Target::Tcp { host: h.into(), port };
        assert_eq!(target("redis://10.0.0.5:6380/0"), tcp("10.0.0.5", 6380));
        assert_eq!(target("redis://db.internal"), tcp("db.internal", 6379));
        assert_eq!(target("rediss://user:p%40ss@db.internal:6390"), tcp("db.internal", 6390));
        assert_eq!(target("redis://:secret@[fd00::5]:6379"), tcp("fd00::5", 6379));
        assert_eq!(target("redis://[::1]"), tcp("::1", 6379));
        for other in ["redis-server.sock", "redis://", "redis://db:port", "redis+sentinel://s1:26379/mymaster", "unix://relative.sock"] {
            assert!(matches!(target(other), Target::Other(_)), "{other}");
        }
    }

    #[test]
    fn a_local_socket_orders_after_redis_and_joins_its_group() {
        let f = Facts { socket: Some(SocketFile { group: Some("redis".into()), gid: 105, mode: 0o770 }), redis_group: true, ..Facts::default() };
        let p = plan(&name(), &config(), Some(&settings("/run/redis/redis-server.sock")), &f);
        let text = p.text.unwrap();
        assert!(text.starts_with("# Written by `myapp enable/scale/reload/restart` from [redis] in /etc/myapp/myapp.toml.\n"), "{text}");
        assert!(text.contains("[Unit]\n") && text.contains("\nAfter=redis-server.service\n"), "{text}");
        assert!(text.contains("\n[Service]\n") && text.contains("\nSupplementaryGroups=redis\n"), "{text}");
        assert!(
            !text.contains("Requires=") && !text.contains("BindsTo=") && !text.contains("Wants="),
            "a Redis restart must not restart the instances:\n{text}"
        );
        assert!(!text.contains("LoadCredential"), "{text}");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(p.summary, "after redis-server.service, group redis");
        // Every setting has its comment: no two directives in a row without one before them.
        let directive = |l: &str| !l.starts_with('#') && !l.starts_with('[') && l.contains('=');
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate().filter(|(_, l)| directive(l)) {
            let before = lines[..i].iter().rev().find(|l| !directive(l)).unwrap();
            assert!(before.starts_with('#'), "`{l}` without an explanation:\n{text}");
        }
    }

    #[test]
    fn the_group_is_the_sockets_own_and_only_one_that_exists() {
        let url = settings("unix:///run/redis-cache/redis.sock");
        let other = Facts { socket: Some(SocketFile { group: Some("cache".into()), gid: 990, mode: 0o770 }), redis_group: true, ..Facts::default() };
        assert!(plan(&name(), &config(), Some(&url), &other).text.unwrap().contains("\nSupplementaryGroups=cache\n"));
        // No socket yet, Debian's group exists: that group, with a warning.
        let early = Facts { redis_group: true, ..Facts::default() };
        let p = plan(&name(), &config(), Some(&url), &early);
        assert!(p.text.unwrap().contains("\nSupplementaryGroups=redis\n"));
        assert!(p.warnings[0].contains("does not exist yet"), "{:?}", p.warnings);
        // Neither: no SupplementaryGroups= (216/GROUP otherwise), and a warning; still ordered.
        let p = plan(&name(), &config(), Some(&url), &Facts::default());
        let text = p.text.unwrap();
        assert!(!text.contains("SupplementaryGroups") && text.contains("After=redis-server.service"), "{text}");
        assert!(p.warnings[0].starts_with("no group redis on this host"), "{:?}", p.warnings);
        // A socket only its owner may use, or root's group: said.
        let owner_only = Facts { socket: Some(SocketFile { group: Some("redis".into()), gid: 105, mode: 0o700 }), redis_group: true, ..Facts::default() };
        let p = plan(&name(), &config(), Some(&url), &owner_only);
        assert!(p.warnings[0].contains("mode 0700") && p.warnings[0].contains("unixsocketperm 770"), "{:?}", p.warnings);
        let roots = Facts { socket: Some(SocketFile { group: Some("root".into()), gid: 0, mode: 0o770 }), redis_group: true, ..Facts::default() };
        let p = plan(&name(), &config(), Some(&url), &roots);
        assert!(!p.text.unwrap().contains("SupplementaryGroups"));
        assert!(p.warnings[0].contains("group root"), "{:?}", p.warnings);
    }

    #[test]
    fn the_password_comes_as_a_credential_when_its_file_exists() {
        let mut f = Facts {
            socket: Some(SocketFile { group: Some("redis".into()), gid: 105, mode: 0o770 }),
            credential: Some(CredentialFile { path: "/etc/myapp/credentials/redis-password".into(), encrypted: false, mode: 0o600 }),
            ..Facts::default()
        };
        let p = plan(&name(), &config(), Some(&settings("/run/redis/redis-server.sock")), &f);
        assert!(p.text.unwrap().contains("\nLoadCredential=redis-password:/etc/myapp/credentials/redis-password\n"));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        f.credential = Some(CredentialFile { path: "/etc/myapp/credentials/redis-password".into(), encrypted: false, mode: 0o644 });
        let p = plan(&name(), &config(), Some(&settings("/run/redis/redis-server.sock")), &f);
        assert!(p.warnings[0].contains("mode 0644") && p.warnings[0].contains("chmod 600"), "{:?}", p.warnings);
        f.credential = Some(CredentialFile { path: "/etc/myapp/credentials/redis-password.cred".into(), encrypted: true, mode: 0o644 });
        let text = plan(&name(), &config(), Some(&settings("redis://10.0.0.5")), &f).text.unwrap();
        assert!(text.contains("\nLoadCredentialEncrypted=redis-password:/etc/myapp/credentials/redis-password.cred\n"), "{text}");
        let bad = Settings { url: "/run/redis/redis-server.sock".into(), sentinels: Vec::new(), credential: "../../etc/shadow".into() };
        let p = plan(&name(), &config(), Some(&bad), &f);
        assert!(!p.text.unwrap().contains("Credential="));
        assert!(p.warnings.iter().any(|w| w.contains("not a credential name")), "{:?}", p.warnings);
    }

    #[test]
    fn a_tcp_server_opens_the_network_to_it_only() {
        let ip = Facts { addresses: Some(Ok(vec!["10.0.0.5".parse().unwrap()])), ..Facts::default() };
        let p = plan(&name(), &config(), Some(&settings("redis://10.0.0.5:6379")), &ip);
        let text = p.text.unwrap();
        assert!(text.contains("\nPrivateNetwork=no\nRestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\nIPAddressAllow=10.0.0.5\n"), "{text}");
        assert!(text.contains("After=network-online.target\nWants=network-online.target\n") && !text.contains("redis-server.service"), "{text}");
        let named = Facts {
            addresses: Some(Ok(vec!["10.0.0.5".parse().unwrap(), "fd00::5".parse().unwrap()])),
            nameservers: vec!["10.0.0.1".parse().unwrap(), "10.0.0.5".parse().unwrap()],
            ..Facts::default()
        };
        let text = plan(&name(), &config(), Some(&settings("redis://db.internal")), &named).text.unwrap();
        assert!(text.contains("\nIPAddressAllow=10.0.0.5 fd00::5 10.0.0.1\n"), "{text}");
        let local = Facts { addresses: Some(Ok(vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()])), ..Facts::default() };
        assert!(plan(&name(), &config(), Some(&settings("redis://localhost")), &local).text.unwrap().contains("\nAfter=redis-server.service\n"));
        let unresolved = Facts { addresses: Some(Err("no address".into())), ..Facts::default() };
        let p = plan(&name(), &config(), Some(&settings("redis://db.internal")), &unresolved);
        assert!(!p.text.unwrap().contains("IPAddressAllow"));
        assert!(p.warnings[0].starts_with("cannot resolve db.internal now"), "{:?}", p.warnings);
    }

    #[test]
    fn sentinels_open_the_network_to_their_hosts() {
        let text = "[redis]\nsentinels = [\"10.0.0.5:26379\", \"10.0.0.6:26379\"]\nsentinel_master = \"m\"\n";
        let s = parse(text).unwrap().expect("sentinels are a Redis");
        assert_eq!(s.sentinels, ["10.0.0.5:26379", "10.0.0.6:26379"]);
        let f = facts(&name(), &s);
        assert_eq!(f.addresses, Some(Ok(vec!["10.0.0.5".parse().unwrap(), "10.0.0.6".parse().unwrap()])));
        let text = plan(&name(), &config(), Some(&s), &f).text.unwrap();
        assert!(text.contains("sentinels, on 10.0.0.5 10.0.0.6, name the primary"), "{text}");
        assert!(text.contains("\nIPAddressAllow=10.0.0.5 10.0.0.6\n") && text.contains("\nPrivateNetwork=no\n"), "{text}");
    }

    #[test]
    fn nothing_to_allow_means_no_drop_in() {
        assert_eq!(plan(&name(), &config(), None, &Facts::default()), Plan::default());
        let p = plan(&name(), &config(), Some(&settings("redis+sentinel://s1:26379/mymaster")), &Facts::default());
        assert_eq!(p.text, None);
        assert!(p.warnings[0].contains("neither a unix socket"), "{:?}", p.warnings);
    }

    #[test]
    fn host_lookups() {
        assert_eq!(
            nameservers("# x\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nsearch lan\nnameserver bogus\n"),
            ["10.0.0.1".parse::<IpAddr>().unwrap(), "fe80::1".parse().unwrap()]
        );
        assert!(valid_credential_name("redis-password") && valid_credential_name("db.pass_2"));
        for bad in ["", ".", "..", "a/b", "a b", "x\n"] {
            assert!(!valid_credential_name(bad), "{bad:?}");
        }
        assert!(group_exists("root") && !group_exists("no-such-group-here"));
        let f = facts(&name(), &settings("redis://10.0.0.9"));
        assert_eq!(f.addresses, Some(Ok(vec!["10.0.0.9".parse().unwrap()])));
        assert!(f.nameservers.is_empty(), "an address needs no DNS");
    }
}
