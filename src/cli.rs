//! Command-line interface (clap derive). Self-contained (clap and std only) so
//! the build script can include it to generate the man page and completions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// corepool: one socket-activated HTTP instance per CPU core, a fixed thread
/// pool for heavy work, systemd as the process manager and nginx in front.
#[derive(Debug, Parser)]
#[command(name = "corepool", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Configuration file [default: /etc/corepool/corepool.toml, built-in defaults if absent]
    #[arg(long, short = 'c', global = true, env = "COREPOOL_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Options of `serve`, accepted without the command name too.
    #[command(flatten)]
    pub serve: ServeArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP (the default when no command is given). Takes the socket from
    /// systemd when socket-activated, otherwise binds --listen.
    Serve(ServeArgs),
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
    /// CPU time, requests, req/s, pool (like `pm2 ls`).
    Status {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Live full-screen view: req/s sparklines, p99, pool, memory, restarts
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
    /// Validate or show the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    #[command(hide = true)]
    Man,
}

#[derive(Debug, Subcommand)]
pub enum NginxCommand {
    /// Enable the corepool site (disabling Debian's default site), check, reload.
    Enable,
    /// Regenerate the upstream from the enabled instances, check, reload.
    Sync,
}

#[derive(Debug, Subcommand)]
pub enum FrontCommand {
    /// Put a host's instances into the nginx upstream, after checking that
    /// each answers; `nginx -t` before the reload, nothing changed on failure.
    /// Adding a host again updates it (e.g. after it scaled).
    Add {
        /// Host name or IP address of the backend host
        host: String,
        /// Number of instances, or `auto`: ask the host (GET / on its first port)
        #[arg(long, default_value = "auto", value_name = "N|auto")]
        instances: String,
        /// The host's `[backend] port_base`: instance N listens on port_base + N
        #[arg(long, default_value_t = 7000, value_name = "PORT")]
        port_base: u16,
    },
    /// Take a host out of the nginx upstream.
    Remove {
        host: String,
    },
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
    Undrain {
        host: String,
    },
    /// Each remote instance's health as nginx sees it (its error log) and as
    /// the instance reports it (/healthz, /metrics). Also part of `corepool status`.
    Status {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args, Default, Clone, PartialEq)]
pub struct ServeArgs {
    /// Address to bind when not socket-activated: HOST:PORT or unix:/path [default: 127.0.0.1:3000]
    #[arg(long, short = 'l', value_name = "ADDR")]
    pub listen: Option<String>,
    /// Instance number (the %i of corepool@.service); selects the pinned CPU
    #[arg(long, short = 'i', value_name = "N")]
    pub instance: Option<u32>,
    /// Set any configuration key, e.g. --set pool.threads=2 (repeatable; wins over file and env)
    #[arg(long = "set", short = 's', value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Log format [default: auto: journal under systemd, human otherwise]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormatArg>,
}

#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
pub enum LogFormatArg {
    Auto,
    Human,
    Journal,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file (with COREPOOL_* overrides) and print the
    /// effective configuration; exits 78 naming file, line and key on error.
    Check {
        /// File to check [default: --config, or /etc/corepool/corepool.toml]
        path: Option<PathBuf>,
    },
    /// Print the effective configuration as TOML.
    Show,
}
