//! How many long-lived streams (WebSockets, server-sent events) this host's
//! nginx can hold, from its worker settings in `/etc/nginx/nginx.conf`:
//! settings outside the package, which `nginx enable` and `status` name
//! when they are too low.
//!
//! A proxied stream takes two of a worker's `worker_connections` (the
//! client's and the one to the instance) and two file descriptors, for as
//! long as it is open; nginx stops accepting when a worker's connections
//! are used up (`worker_connections are not enough`), and from 1/16 short of
//! that it closes the worker's idle keep-alive connections, and new ones
//! whose first bytes have not arrived yet, to reuse them (`... reusing
//! connections`, a warning: the system tests lost new HTTPS connections
//! so). So a host holds about
//! `worker_processes × min(worker_connections, open files per worker) / 2`
//! streams. Debian's nginx.conf sets `worker_connections 768`, and without
//! `worker_rlimit_nofile` a worker may open 1024 files (systemd's default
//! soft limit): a few hundred streams per worker.
//!
//! The files are read as nginx reads them (the main context and the
//! `events` block, with their `include`s), not with `nginx -T`, which needs
//! root and a configuration that loads in full.

use std::path::{Path, PathBuf};

/// nginx's main configuration file.
pub const NGINX_CONF: &str = "/etc/nginx/nginx.conf";

/// How many streams a host should hold through the packaged site.
pub const STREAMS_WANTED: u64 = 10_000;

/// nginx's defaults: one worker, 512 connections each.
const DEFAULT_PROCESSES: u64 = 1;
const DEFAULT_CONNECTIONS: u64 = 512;
/// A worker's open files without `worker_rlimit_nofile` when nginx's own
/// limit is unknown: systemd's default soft `LimitNOFILE`.
const DEFAULT_NOFILE: u64 = 1024;

/// The running nginx's open-file limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Running {
    /// Its master's soft limit: what a worker has without `worker_rlimit_nofile`.
    pub soft: u64,
    /// Its master's hard limit (None: unlimited), above which
    /// `worker_rlimit_nofile` needs CAP_SYS_RESOURCE, which a container's
    /// root often lacks (systemd-nspawn and Docker drop it): nginx then logs
    /// `setrlimit(RLIMIT_NOFILE, N) failed` and its workers keep `soft`.
    pub hard: Option<u64>,
    /// What a worker really has (None: no worker seen).
    pub worker: Option<u64>,
}

/// One setting as found: its value and the file that sets it (None: not
/// set, nginx's default applies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The value as written (`auto`, `768`).
    pub value: String,
    /// Where.
    pub file: PathBuf,
}

/// nginx's worker settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Workers {
    /// `worker_processes` (main context).
    pub processes: Option<Setting>,
    /// `worker_connections` (`events` block).
    pub connections: Option<Setting>,
    /// `worker_rlimit_nofile` (main context).
    pub rlimit_nofile: Option<Setting>,
    /// `worker_shutdown_timeout` (main context).
    pub shutdown_timeout: Option<Setting>,
}

/// A directive's words, with the file it is in; `{` and `}` as words of their own.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Open,
    Close,
    End,
}

/// nginx's configuration syntax: words, quoted strings, `#` comments, `{ } ;`.
fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Token>| {
        if !word.is_empty() {
            out.push(Token::Word(std::mem::take(word)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' if word.is_empty() => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' | '\'' if word.is_empty() => {
                let quote = c;
                let mut s = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => s.extend(chars.next()),
                        c if c == quote => break,
                        c => s.push(c),
                    }
                }
                out.push(Token::Word(s));
            }
            '{' | '}' | ';' => {
                flush(&mut word, &mut out);
                out.push(match c {
                    '{' => Token::Open,
                    '}' => Token::Close,
                    _ => Token::End,
                });
            }
            c if c.is_whitespace() => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    out
}

/// The files an `include` names: a path, or a `*`/`?` pattern in its last
/// component, relative to nginx.conf's directory; sorted, as nginx does.
fn include_files(pattern: &str, conf_dir: &Path) -> Vec<PathBuf> {
    let path = if Path::new(pattern).is_absolute() { PathBuf::from(pattern) } else { conf_dir.join(pattern) };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if !name.contains(['*', '?']) {
        return vec![path];
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().filter(|e| glob_match(&name, &e.file_name().to_string_lossy()) && e.path().is_file()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// `*` and `?` of a shell glob (no brackets: nginx.conf's includes use none).
fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    !name.starts_with('.') && go(&p, &n)
}

impl Workers {
    /// The settings of the nginx.conf at `path` and what it includes where
    /// they can be (unreadable files are left out).
    pub fn read(path: &Path) -> Workers {
        let mut w = Workers::default();
        let conf_dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        if let Ok(text) = std::fs::read_to_string(path) {
            w.scan(&text, path, &conf_dir, &mut Vec::new(), 0);
        }
        w
    }

    /// Reads one file's directives in the context `blocks` (the names of
    /// the blocks around it: empty for the main context).
    fn scan(&mut self, text: &str, file: &Path, conf_dir: &Path, blocks: &mut Vec<String>, depth: usize) {
        let mut words: Vec<String> = Vec::new();
        for t in tokens(text) {
            match t {
                Token::Word(s) => words.push(s),
                Token::Open => {
                    blocks.push(words.first().cloned().unwrap_or_default());
                    words.clear();
                }
                Token::Close => {
                    blocks.pop();
                    words.clear();
                }
                Token::End => {
                    self.directive(&words, file, conf_dir, blocks, depth);
                    words.clear();
                }
            }
        }
    }

    fn directive(&mut self, words: &[String], file: &Path, conf_dir: &Path, blocks: &mut Vec<String>, depth: usize) {
        let (Some(name), Some(value)) = (words.first(), words.get(1)) else {
            return;
        };
        let here = || Some(Setting { value: value.clone(), file: file.to_path_buf() });
        let context: Vec<&str> = blocks.iter().map(String::as_str).collect();
        match (context.as_slice(), name.as_str()) {
            ([], "worker_processes") => self.processes = here(),
            ([], "worker_rlimit_nofile") => self.rlimit_nofile = here(),
            ([], "worker_shutdown_timeout") => self.shutdown_timeout = here(),
            (["events"], "worker_connections") => self.connections = here(),
            // Only the main context and `events` hold worker settings.
            ([] | ["events"], "include") if depth < 8 => {
                for f in include_files(value, conf_dir) {
                    if let Ok(text) = std::fs::read_to_string(&f) {
                        self.scan(&text, &f, conf_dir, blocks, depth + 1);
                    }
                }
            }
            _ => {}
        }
    }

    /// The number of worker processes (`auto`: one per CPU, `cpus`).
    pub fn processes(&self, cpus: u64) -> u64 {
        match self.processes.as_ref().map(|s| s.value.as_str()) {
            None => DEFAULT_PROCESSES,
            Some("auto") => cpus.max(1),
            Some(v) => v.parse().unwrap_or(DEFAULT_PROCESSES).max(1),
        }
    }

    /// Each worker's `worker_connections`.
    pub fn connections(&self) -> u64 {
        self.connections.as_ref().and_then(|s| s.value.parse().ok()).unwrap_or(DEFAULT_CONNECTIONS)
    }

    /// The files each worker may open: `worker_rlimit_nofile`, else what
    /// nginx itself was given (`inherited`, when known).
    pub fn nofile(&self, inherited: Option<u64>) -> u64 {
        self.rlimit_nofile.as_ref().and_then(|s| s.value.parse().ok()).or(inherited).unwrap_or(DEFAULT_NOFILE)
    }
}

/// What nginx holds, and what it would take to hold [`STREAMS_WANTED`].
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    /// nginx.conf.
    pub file: PathBuf,
    /// Effective worker processes.
    pub processes: u64,
    /// Effective worker connections.
    pub connections: u64,
    /// Effective open files per worker: what a running worker has, else
    /// what nginx.conf and nginx's own limit give it.
    pub nofile: u64,
    /// `worker_rlimit_nofile` as set, when the running workers have fewer
    /// (nginx could not raise them past its hard limit, or was not reloaded
    /// since it was set).
    pub nofile_refused: Option<u64>,
    /// nginx's hard limit on open files, where known.
    pub hard: Option<u64>,
    /// The hard limit nginx.service needs (`LimitNOFILE=`), when the one it
    /// has keeps its workers below the connections wanted.
    pub need_hard: Option<u64>,
    /// About how many proxied streams the workers hold.
    pub streams: u64,
    /// `worker_connections` for [`STREAMS_WANTED`]: set when too low, with the file that sets it.
    pub need_connections: Option<(u64, Option<PathBuf>)>,
    /// `worker_rlimit_nofile` for [`STREAMS_WANTED`]: set when too low, with the file that sets it.
    pub need_nofile: Option<(u64, Option<PathBuf>)>,
    /// Whether `worker_rlimit_nofile` is set at all.
    pub nofile_set: bool,
    /// Whether `worker_shutdown_timeout` is set: without it an nginx reload
    /// (every `NAME enable`, `scale`, `https`, certificate renewal) leaves its
    /// old workers running for as long as their WebSockets stay open, and
    /// corepool pings them, so they stay.
    pub shutdown_timeout_set: bool,
}

impl Capacity {
    /// `w` on a host with `cpus` CPUs whose nginx runs with the limits
    /// `running` (None: not running).
    pub fn of(file: &Path, w: &Workers, cpus: u64, running: Option<Running>) -> Capacity {
        let processes = w.processes(cpus);
        let connections = w.connections();
        let configured = w.nofile(running.map(|r| r.soft));
        let nofile = running.and_then(|r| r.worker).unwrap_or(configured);
        let nofile_refused = (w.rlimit_nofile.is_some() && nofile < configured).then_some(configured);
        let streams = processes * connections.min(nofile) / 2;
        // Two connections a stream, spread over the workers; a power of two.
        let want = (2 * STREAMS_WANTED).div_ceil(processes).next_power_of_two().max(1024);
        // Room for the connections and the files a worker has besides (logs,
        // cache, listeners); no more than nginx's hard limit, which it may
        // not be allowed to exceed.
        let room = (4 * want).max(65536);
        let hard = running.and_then(|r| r.hard);
        let capped = hard.map_or(room, |h| room.min(h));
        let enough = streams >= STREAMS_WANTED;
        // A hard limit too low for the connections themselves is raised
        // first (LimitNOFILE=, advised below); the workers then get `room`.
        let need_hard = (!enough && capped < want + 1024).then_some(room);
        let want_nofile = if need_hard.is_some() { room } else { capped };
        let file_of = |s: &Option<Setting>| s.as_ref().map(|s| s.file.clone());
        Capacity {
            file: file.to_path_buf(),
            processes,
            connections,
            nofile,
            nofile_refused,
            hard,
            need_hard,
            streams,
            need_connections: (!enough && connections < want).then(|| (want, file_of(&w.connections))),
            need_nofile: (!enough && nofile < want).then(|| (want_nofile, file_of(&w.rlimit_nofile))),
            nofile_set: w.rlimit_nofile.is_some(),
            shutdown_timeout_set: w.shutdown_timeout.is_some(),
        }
    }

    /// The warning, when nginx holds fewer than [`STREAMS_WANTED`] streams
    /// or keeps old workers after a reload for as long as their streams.
    pub fn warning(&self) -> Option<String> {
        let conf = self.file.display();
        const SHUTDOWN: &str = "  worker_shutdown_timeout 10s;  (main context; now unset: after a reload, old workers run as long as their WebSockets)\n";
        if self.streams >= STREAMS_WANTED {
            if self.shutdown_timeout_set {
                return None;
            }
            return Some(format!("nginx: for WebSockets and SSE streams, set in {conf}:\n{SHUTDOWN}  then: systemctl reload nginx"));
        }
        let thousands = |n: u64| if n >= 1000 { format!("{},{:03}", n / 1000, n % 1000) } else { n.to_string() };
        let mut s = format!(
            "nginx: this host's nginx holds about {} WebSocket/SSE streams ({} worker process(es) x {} connections / 2: each proxied stream takes two); for {}, set in {conf}:\n",
            self.streams,
            self.processes,
            self.connections.min(self.nofile),
            thousands(STREAMS_WANTED)
        );
        let from = |f: &Option<PathBuf>| match f {
            Some(f) if f != &self.file => format!(" (set in {})", f.display()),
            _ => String::new(),
        };
        if let Some((want, f)) = &self.need_connections {
            s.push_str(&format!("  events {{ worker_connections {want}; }}  (now {}{})\n", self.connections, from(f)));
        }
        if let Some((want, f)) = &self.need_nofile {
            let now = match (self.nofile_refused, self.hard) {
                (Some(set), Some(hard)) if set > hard => {
                    format!("{set}, but its workers run with {}: nginx may not raise them past its hard limit, {hard}, here", self.nofile)
                }
                (Some(set), _) => format!("{set}, but its workers run with {}: not reloaded since?", self.nofile),
                _ if self.nofile_set => self.nofile.to_string(),
                _ => format!("unset: {} open files per worker", self.nofile),
            };
            s.push_str(&format!("  worker_rlimit_nofile {want};  (main context; now {now}{})\n", from(f)));
        }
        if let (Some(want), Some(hard)) = (self.need_hard, self.hard) {
            s.push_str(&format!(
                "  LimitNOFILE={want}  (nginx.service: `systemctl edit nginx`; its hard limit, {hard}, leaves too few files for the connections)\n"
            ));
        }
        if !self.shutdown_timeout_set {
            s.push_str(SHUTDOWN);
        }
        s.push_str("  then: systemctl reload nginx");
        Some(s)
    }
}

/// The running nginx's open-file limits, if it runs.
pub fn running() -> Option<Running> {
    let pid = std::fs::read_to_string("/run/nginx.pid").ok()?.trim().parse::<u32>().ok()?;
    let (soft, hard) = open_files(pid)?;
    // A worker of the current generation: after a reload, the old ones
    // ("is shutting down") keep the old limit for as long as their streams.
    let current = |pid: &u32| {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
            // nginx writes its title over its arguments, padded with NULs.
            let title = c.split(|&b| b == 0).next().unwrap_or_default();
            title.starts_with(b"nginx: worker process") && !title.ends_with(b"is shutting down")
        })
    };
    let worker = crate::nginx::worker_pids().into_iter().filter(current).find_map(|w| open_files(w).map(|(soft, _)| soft));
    Some(Running { soft, hard, worker })
}

/// A process's soft and hard limits on open files (hard None: unlimited).
fn open_files(pid: u32) -> Option<(u64, Option<u64>)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    limits.lines().find_map(|l| {
        let mut f = l.strip_prefix("Max open files")?.split_whitespace();
        Some((f.next()?.parse().ok()?, f.next().and_then(|h| h.parse().ok())))
    })
}

/// The warning for this host's nginx (`/etc/nginx/nginx.conf`), if it holds
/// too few streams.
pub fn check() -> Option<String> {
    let cpus = corepool_runtime::affinity::allowed_cpus().len().max(1) as u64;
    let file = Path::new(NGINX_CONF);
    Capacity::of(file, &Workers::read(file), cpus, running()).warning()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The top of Debian bookworm's /etc/nginx/nginx.conf.
    const DEBIAN: &str = "user www-data;\nworker_processes auto;\npid /run/nginx.pid;\nerror_log /var/log/nginx/error.log;\n\
        include /etc/nginx/modules-enabled/*.conf;\n\nevents {\n\tworker_connections 768;\n\t# multi_accept on;\n}\n\n\
        http {\n\tsendfile on;\n\tinclude /etc/nginx/conf.d/*.conf;\n\tinclude /etc/nginx/sites-enabled/*;\n}\n";

    /// An nginx under systemd on a host: `soft` open files, systemd's hard 524288.
    fn host(soft: u64) -> Option<Running> {
        Some(Running { soft, hard: Some(524288), worker: None })
    }

    fn conf(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("nginx.conf");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_debians_settings() {
        let d = tempfile::tempdir().unwrap();
        let p = conf(d.path(), DEBIAN);
        let w = Workers::read(&p);
        assert_eq!(w.processes, Some(Setting { value: "auto".into(), file: p.clone() }));
        assert_eq!(w.connections, Some(Setting { value: "768".into(), file: p.clone() }));
        assert_eq!(w.rlimit_nofile, None);
        assert_eq!((w.processes(2), w.connections(), w.nofile(None)), (2, 768, 1024));
        assert_eq!(Workers::read(&d.path().join("missing.conf")), Workers::default());
    }

    #[test]
    fn debians_defaults_on_two_cores_warn_with_the_values_needed() {
        let d = tempfile::tempdir().unwrap();
        let p = conf(d.path(), DEBIAN);
        let c = Capacity::of(&p, &Workers::read(&p), 2, host(1024));
        assert_eq!(c.streams, 768);
        let w = c.warning().expect("a warning");
        assert!(w.contains("holds about 768 WebSocket/SSE streams") && w.contains(&format!("; for 10,000, set in {}:\n", p.display())), "{w}");
        assert!(w.contains("events { worker_connections 16384; }  (now 768)"), "{w}");
        assert!(w.contains("worker_rlimit_nofile 65536;  (main context; now unset: 1024 open files per worker)"), "{w}");
        assert!(w.contains("worker_shutdown_timeout 10s;  (main context; now unset"), "{w}");
        assert!(w.ends_with("then: systemctl reload nginx"), "{w}");
    }

    #[test]
    fn enough_connections_files_and_a_shutdown_timeout_say_nothing() {
        let d = tempfile::tempdir().unwrap();
        let enough = DEBIAN.replace("768", "16384").replace("pid /run", "worker_rlimit_nofile 65536;\npid /run");
        let p = conf(d.path(), &enough);
        let c = Capacity::of(&p, &Workers::read(&p), 2, None);
        assert_eq!((c.connections, c.nofile, c.streams), (16384, 65536, 16384));
        let w = c.warning().expect("old workers would outlive reloads");
        assert!(w.contains("worker_shutdown_timeout 10s;") && !w.contains("worker_connections"), "{w}");
        let p = conf(d.path(), &enough.replace("pid /run", "worker_shutdown_timeout 10s;\npid /run"));
        let c = Capacity::of(&p, &Workers::read(&p), 2, None);
        assert_eq!(c.warning(), None);
        // One worker needs twice the connections.
        let one = Capacity::of(&p, &Workers::read(&p), 1, None);
        assert_eq!(one.need_connections.as_ref().map(|n| n.0), Some(32768), "{one:?}");
    }

    #[test]
    fn the_open_files_limit_alone_can_be_what_is_too_low() {
        let d = tempfile::tempdir().unwrap();
        let p = conf(d.path(), &DEBIAN.replace("768", "16384"));
        let c = Capacity::of(&p, &Workers::read(&p), 2, host(1024));
        assert_eq!(c.streams, 1024);
        let w = c.warning().unwrap();
        assert!(!w.contains("worker_connections 16384; }") && w.contains("worker_rlimit_nofile 65536;"), "{w}");
        // A running nginx given more files by its unit holds more.
        assert_eq!(Capacity::of(&p, &Workers::read(&p), 2, host(524288)).streams, 16384);
    }

    #[test]
    fn a_limit_nginx_could_not_raise_is_seen_and_the_advice_stays_under_its_hard_limit() {
        // A container whose root lacks CAP_SYS_RESOURCE: hard limit 20000,
        // worker_rlimit_nofile 65536 refused, the workers kept 1024.
        let d = tempfile::tempdir().unwrap();
        let p = conf(d.path(), &DEBIAN.replace("768", "16384").replace("pid /run", "worker_rlimit_nofile 65536;\nworker_shutdown_timeout 10s;\npid /run"));
        let refused = Some(Running { soft: 1024, hard: Some(20000), worker: Some(1024) });
        let c = Capacity::of(&p, &Workers::read(&p), 2, refused);
        assert_eq!((c.nofile, c.streams, c.nofile_refused), (1024, 1024, Some(65536)));
        let w = c.warning().expect("a warning");
        assert!(w.contains("worker_rlimit_nofile 20000;  (main context; now 65536, but its workers run with 1024: nginx may not raise them past its hard limit, 20000, here"), "{w}");
        assert!(!w.contains("LimitNOFILE") && !w.contains("worker_connections"), "{w}");
        // Before anything was set, the advice already stays under the hard limit.
        let p = conf(d.path(), DEBIAN);
        let w = Capacity::of(&p, &Workers::read(&p), 2, Some(Running { soft: 1024, hard: Some(20000), worker: Some(1024) })).warning().unwrap();
        assert!(w.contains("worker_connections 16384; }") && w.contains("worker_rlimit_nofile 20000;  (main context; now unset"), "{w}");
        // Set so, the workers have it: nothing to say.
        let p = conf(d.path(), &DEBIAN.replace("768", "16384").replace("pid /run", "worker_rlimit_nofile 20000;\nworker_shutdown_timeout 10s;\npid /run"));
        let c = Capacity::of(&p, &Workers::read(&p), 2, Some(Running { soft: 1024, hard: Some(20000), worker: Some(20000) }));
        assert_eq!((c.streams, c.warning()), (16384, None));
        // A hard limit below the connections themselves: nginx.service's own limit is the advice.
        let w = Capacity::of(&p, &Workers::read(&p), 2, Some(Running { soft: 1024, hard: Some(4096), worker: Some(4096) })).warning().unwrap();
        assert!(w.contains("worker_rlimit_nofile 65536;") && w.contains("LimitNOFILE=65536  (nginx.service"), "{w}");
        // Set, below the hard limit, but the workers do not have it yet: not blamed on the hard limit.
        let w = Capacity::of(&p, &Workers::read(&p), 2, Some(Running { soft: 1024, hard: Some(524288), worker: Some(1024) })).warning().unwrap();
        assert!(w.contains("now 20000, but its workers run with 1024: not reloaded since?") && !w.contains("hard limit"), "{w}");
    }

    #[test]
    fn includes_comments_quotes_and_other_blocks() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("main.d")).unwrap();
        std::fs::write(d.path().join("main.d/10-workers.conf"), "worker_processes 4; # four\nworker_rlimit_nofile '200000';\n").unwrap();
        std::fs::write(d.path().join("main.d/20-modules.conf"), "load_module modules/x.so;\n").unwrap();
        std::fs::write(d.path().join("main.d/.hidden.conf"), "worker_processes 99;\n").unwrap();
        std::fs::write(d.path().join("events.conf"), "worker_connections 4096;").unwrap();
        let text = "# worker_processes 7;\ninclude main.d/*.conf;\nevents { include events.conf; }\n\
                    http { worker_connections 1; server { listen 80; } include nowhere/*.conf; }\nstream { }\n";
        let p = conf(d.path(), text);
        let w = Workers::read(&p);
        assert_eq!(w.processes, Some(Setting { value: "4".into(), file: d.path().join("main.d/10-workers.conf") }), "not the comment's, nor the hidden file's");
        assert_eq!(w.rlimit_nofile.as_ref().map(|s| s.value.as_str()), Some("200000"));
        assert_eq!(w.connections, Some(Setting { value: "4096".into(), file: d.path().join("events.conf") }));
        let c = Capacity::of(&p, &w, 2, None);
        assert_eq!(c.streams, 4 * 4096 / 2);
        let warning = c.warning().unwrap();
        assert!(warning.contains(&format!("worker_connections 8192; }}  (now 4096 (set in {}))", d.path().join("events.conf").display())), "{warning}");
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.conf", "mod-http-geoip.conf"));
        assert!(!glob_match("*.conf", "x.conf.bak"));
        assert!(glob_match("a?c", "abc") && !glob_match("a?c", "ac"));
        assert!(glob_match("*", "default") && !glob_match("*", ".default"));
    }
}
