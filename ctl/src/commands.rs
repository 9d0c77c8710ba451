//! The operator's commands (clap derive), beside the `serve` and `config`
//! every service binary has: `NAME enable|disable|scale|reload|restart|status|
//! top|logs|nginx|front|https|completions|new|package`.

use std::path::PathBuf;

use clap::Subcommand;
use corepool_runtime::cli::BaseCommand;

#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(flatten)]
    Base(BaseCommand),
    /// Enable N instances (or `max`: one per CPU) as socket-activated units,
    /// start them, wait until each is ready, and point nginx at them.
    Enable {
        /// Number of instances, or `max`
        count: String,
        /// Don't start the instances now: each starts on its first connection
        #[arg(long)]
        lazy: bool,
    },
    /// Stop and disable every instance.
    Disable,
    /// Change the number of running instances live (nginx follows).
    Scale {
        /// Number of instances, or `max`
        count: String,
    },
    /// Rolling restart: one instance at a time, each back to READY before the
    /// next; the sockets stay open so no request is refused (like `pm2 reload`).
    Reload {
        /// Only this instance
        #[arg(long, short = 'i', value_name = "N")]
        instance: Option<u32>,
    },
    /// Restart every instance at once (not rolling).
    Restart,
    /// One row per instance: unit state, pid, CPU, uptime, restarts, memory,
    /// CPU time, requests, req/s, pool, open WebSocket/SSE streams (like `pm2 ls`).
    Status {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Live full-screen view: req/s sparklines, p99, pool, streams, memory, restarts
    /// (like `pm2 monit`); `q` quits. Prints `status` when not on a terminal.
    Top,
    /// The instances' journal, each line tagged with its instance (like `pm2 logs`).
    Logs {
        /// Instance number, or `all`
        #[arg(default_value = "all", value_name = "INSTANCE|all")]
        which: String,
        /// Number of past lines to show
        #[arg(long, short = 'n', default_value_t = 50)]
        lines: usize,
        /// Keep following new lines
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// The nginx site in front of the instances.
    #[command(subcommand)]
    Nginx(NginxCommand),
    /// More than one machine: this host's nginx in front of other hosts'
    /// instances (each host sets `[backend] allow` to this host's address).
    #[command(subcommand)]
    Front(FrontCommand),
    /// The host's scrape endpoint for Prometheus (NAME-metrics.service).
    #[command(subcommand)]
    Metrics(MetricsCommand),
    /// Obtain a certificate with certbot (webroot) and switch the site to HTTPS.
    Https {
        /// Domain names; the first names the certificate
        #[arg(required = true, value_name = "DOMAIN")]
        domains: Vec<String>,
        /// Contact address for the ACME account
        #[arg(long, short = 'm')]
        email: Option<String>,
        /// Use the CA's staging environment
        #[arg(long)]
        staging: bool,
        /// ACME directory URL of another CA
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// Send Strict-Transport-Security (only once HTTPS is known to work)
        #[arg(long)]
        hsts: bool,
    },
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    #[command(hide = true)]
    Man,
    /// Create a new service crate at PATH (its directory name is the
    /// service's name): a light and a heavy route, a config section, a test.
    New {
        /// Where to create it, e.g. ../myapp
        path: PathBuf,
        /// A corepool checkout to depend on [default: the one this binary
        /// was built from, if present; else the crate registry]
        #[arg(long, value_name = "DIR")]
        corepool: Option<PathBuf>,
        /// With corepool's `redis` feature (sessions, broadcast, counters
        /// shared by every instance and host, once `[redis] url` is set) and a
        /// route that keeps its state in the session (`GET /visits`)
        #[arg(long)]
        redis: bool,
    },
    /// Build this service's Debian package from this (release) binary:
    /// units, nginx site, certbot hook, configuration, man page, completions.
    Package {
        /// Debian version, e.g. 0.1.0-2 [default: the crate's version, revision 1]
        #[arg(long, value_name = "VERSION")]
        deb_version: Option<String>,
        /// Directory for the .deb [default: the crate's target/debian]
        #[arg(long, short = 'o', value_name = "DIR")]
        output: Option<PathBuf>,
        /// Maintainer, `Name <address>` [default: the crate's first author]
        #[arg(long)]
        maintainer: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NginxCommand {
    /// Enable the site, check, reload. The first service on a host becomes
    /// nginx's default server (Debian's stock site is disabled); a further
    /// one answers only its own names. Says so when nginx.conf's worker
    /// settings hold fewer than 10,000 WebSocket/SSE streams.
    Enable {
        /// Names this site answers on port 80 before `https` gives it its
        /// domains (needed when another site is the default server)
        #[arg(long = "server-name", value_name = "NAME")]
        server_names: Vec<String>,
    },
    /// Regenerate the upstream from the enabled instances, check, reload.
    Sync,
    /// How nginx spreads requests over the instances (and the hosts behind
    /// this front): show it, or set it, check, reload. Kept in
    /// /etc/NAME/upstream.toml: enable, scale, nginx sync and front keep it.
    /// `cookie` and `client` are sticky (consistent hashing) for services
    /// that keep state per instance; see the docs for what they cost.
    Balance {
        /// The method [default: show the current one]
        #[arg(value_enum, value_name = "METHOD")]
        method: Option<crate::balance::Balance>,
    },
    /// Empty the site's response cache (/var/cache/NAME): every entry is
    /// fetched from the instances again.
    PurgeCache,
}

#[derive(Debug, Subcommand)]
pub enum MetricsCommand {
    /// Serve every running instance's metrics and the host's view of them on
    /// [metrics] listen (what NAME-metrics.service runs).
    Serve,
    /// Print the Prometheus file_sd targets of this host's enabled instances
    /// (what `enable/scale` keep in /var/lib/NAME/prometheus/targets.json).
    Targets {
        /// The endpoint's address as Prometheus reaches it [default: [metrics] listen]
        #[arg(long, value_name = "HOST:PORT")]
        address: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum FrontCommand {
    /// Put a host's instances into the nginx upstream, after checking that
    /// each answers; `nginx -t` before the reload, nothing changed on failure.
    /// Adding a host again updates it (e.g. after it scaled).
    Add {
        /// Host name or IP address of the backend host
        host: String,
        /// Number of instances, or `auto`: ask the host (/healthz on its first port)
        #[arg(long, default_value = "auto", value_name = "N|auto")]
        instances: String,
        /// The host's `[backend] port_base`: instance N listens on port_base + N
        #[arg(long, default_value_t = 7000, value_name = "PORT")]
        port_base: u16,
    },
    /// Take a host out of the nginx upstream.
    Remove { host: String },
    /// The hosts in the upstream.
    List {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Stop sending new requests to a host (its servers marked `down`), then
    /// wait until the requests it already has are finished: ready to upgrade.
    Drain {
        host: String,
        /// Give up waiting after this many seconds (the host stays drained)
        #[arg(long, default_value_t = 60, value_name = "SECONDS")]
        timeout: u64,
    },
    /// Send requests to a drained host again.
    Undrain { host: String },
    /// Each remote instance's health as nginx sees it (its error log) and as
    /// the instance reports it (/healthz, /metrics). Also part of `status`.
    Status {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
}
