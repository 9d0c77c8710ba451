//! corepool-ctl: what an operator runs. A service's binary built with the
//! `cli` feature of `corepool` is a complete corepool binary under the
//! service's own name: `myapp serve|config` (from the runtime) and
//! `myapp enable|disable|scale|reload|restart|status|top|logs|nginx|front|
//! https|completions|new|package`.
//!
//! Nothing here runs inside an instance: systemd manages the processes, and
//! these commands only drive systemd, nginx and certbot, and ask instances
//! over their sockets.
//!
//! The crate's public API is [`main`], which `corepool::main` calls when
//! the service is built with the `cli` feature; everything else is private
//! to it (the commands' text and exit status are the interface, not these
//! functions). Its modules, each importing only modules below it in this
//! table (`tests/lint/import-cycles` checks that no two import each other,
//! even through others):
//!
//! | module | owns |
//! |---|---|
//! | `commands` | the operator's command line (clap derive), dispatched by `run` |
//! | `admin` | enable, scale, disable, reload, restart, `nginx enable` |
//! | `https` | certbot (webroot) and the TLS server |
//! | `top` | the live view (like `pm2 monit`) |
//! | `status` | one row per instance (like `pm2 ls`), and the remote hosts' |
//! | `front` | one nginx front over several hosts: add, remove, drain, their health |
//! | `nginx` | the generated nginx includes, checked before every reload |
//! | `balance` | how the upstream balances: least_conn, or sticky by cookie or client address (`upstream.toml`) |
//! | `logs` | the instances' journal, tagged (like `pm2 logs`) |
//! | `exporter` | `metrics serve`: the host's scrape endpoint for Prometheus, file_sd targets |
//! | `redis` | the instances' unit drop-in for `[redis]`: after Redis, its socket's group, the network to its server, the password credential |
//! | `units` | systemctl, the enabled set, backend socket drop-ins |
//! | `hosts` | the hosts behind a front (`front.toml`) |
//! | `capacity` | how many WebSocket/SSE streams nginx's worker settings hold (`nginx.conf`) |
//! | `dns` | the DNS-name check every name on the command line passes |
//! | `table` | the plain-text tables |
//! | `new` | `corepool new PATH`: a new service crate |
//! | `package` | `NAME package`: the service's .deb |

#![deny(missing_docs)]

mod admin;
mod balance;
mod capacity;
mod commands;
mod dns;
mod exporter;
mod front;
mod hosts;
mod https;
mod logs;
mod new;
mod nginx;
mod package;
mod redis;
mod status;
mod table;
mod top;
mod units;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use corepool_runtime::cli::{self, run_base, Cli, ServeArgs};
use corepool_runtime::{Service, ServiceName};

use crate::admin::Count;
use crate::commands::{Command, FrontCommand, MetricsCommand, NginxCommand};

/// `main` of a service binary with the operator commands: parses the
/// command line, runs the command, and exits with 0, 1, or 78 for a
/// configuration error (printing `NAME: ERROR` on stderr). Output written
/// to a pipe whose reader went away (`NAME status | head -1`) ends the
/// program quietly with status 0.
pub fn main(service: Service) -> ExitCode {
    let name = match service.name() {
        Ok(n) => n.clone(),
        Err(e) => {
            eprintln!("corepool: {e}");
            return ExitCode::from(cli::EX_CONFIG);
        }
    };
    let parsed = cli::parse::<Command>(&service);
    match run(&name, service, parsed, &mut cli::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cli::failed(name.as_str(), e.as_ref()),
    }
}

/// What a failed write of a command's output says (as the modules' `Output` errors do).
const OUTPUT: &str = "writing output";

/// Runs one command of `service`'s binary, writing what it prints to `out`.
fn run(n: &ServiceName, service: Service, cli: Cli<Command>, out: &mut dyn Write) -> Result<()> {
    let command = match cli.command {
        None => return Ok(run_base(service, cli.config, cli.serve, None, out)?),
        Some(Command::Base(b)) => return Ok(run_base(service, cli.config, cli.serve, Some(b), out)?),
        Some(_) if cli.serve != ServeArgs::default() => {
            bail!("--listen/--instance/--set/--log-format belong to `serve`, not to this command")
        }
        Some(c) => c,
    };
    dispatch(n, &service, command, cli.config, out)?;
    out.flush().context(OUTPUT)
}

/// Runs an operator command.
fn dispatch(n: &ServiceName, service: &Service, command: Command, config: Option<std::path::PathBuf>, out: &mut dyn Write) -> Result<()> {
    let count = |s: &str| s.parse::<Count>().map_err(anyhow::Error::msg);
    // The settings `enable`/`scale` act on ([backend] sockets, [metrics] targets).
    let settings =
        |config: &Option<std::path::PathBuf>| -> Result<corepool_runtime::config::Config> { Ok(service.load(&service.source(config.clone())?, &[])?.config) };
    // The file the instances read ([redis] for their unit's drop-in).
    let config_file = |config: &Option<std::path::PathBuf>| -> Result<std::path::PathBuf> { Ok(service.source(config.clone())?.path) };
    match command {
        Command::Base(_) => unreachable!("handled above"),
        Command::Enable { count: c, lazy } => {
            // Before reading the (root-only) configuration: say sudo, not "unreadable".
            units::require_admin(n, "enable")?;
            Ok(admin::enable(n, count(&c)?, lazy, &settings(&config)?, &config_file(&config)?, out)?)
        }
        Command::Disable => Ok(admin::disable(n, out)?),
        Command::Scale { count: c } => {
            units::require_admin(n, "scale")?;
            Ok(admin::scale(n, count(&c)?, &settings(&config)?, &config_file(&config)?, out)?)
        }
        Command::Reload { instance } => Ok(admin::reload(n, instance, &config_file(&config)?, out)?),
        Command::Restart => Ok(admin::restart(n, &config_file(&config)?, out)?),
        Command::Status { json } => Ok(status::status(n, json, out)?),
        Command::Top => Ok(top::run(n, out)?),
        Command::Logs { which, lines, follow } => {
            let which = which.parse().map_err(anyhow::Error::msg)?;
            Ok(logs::run(n, which, lines, follow, out)?)
        }
        Command::Nginx(NginxCommand::Enable { server_names }) => Ok(admin::nginx_enable(n, &server_names, out)?),
        Command::Nginx(NginxCommand::Sync) => {
            units::require_root(n, "nginx sync")?;
            nginx::sync(n, &units::enabled(n)?)?;
            Ok(())
        }
        Command::Nginx(NginxCommand::Balance { method }) => Ok(admin::nginx_balance(n, method, out)?),
        Command::Nginx(NginxCommand::PurgeCache) => {
            units::require_root(n, "nginx purge-cache")?;
            let removed = nginx::purge_cache(n)?;
            writeln!(out, "nginx: {removed} cached response(s) removed from {}", nginx::cache_dir(n).display()).context(OUTPUT)
        }
        Command::Front(f) => match f {
            FrontCommand::Add { host, instances, port_base } => {
                let k = match instances.as_str() {
                    "auto" => None,
                    s => Some(
                        s.parse::<u32>()
                            .ok()
                            .filter(|k| (1..=1024).contains(k))
                            .ok_or_else(|| anyhow::anyhow!("--instances `{s}` is not `auto` or a number from 1 to 1024"))?,
                    ),
                };
                Ok(front::add(n, &host, k, port_base, out)?)
            }
            FrontCommand::Remove { host } => Ok(front::remove(n, &host, out)?),
            FrontCommand::List { json } => Ok(front::list(n, json, out)?),
            FrontCommand::Drain { host, timeout } => Ok(front::drain(n, &host, Duration::from_secs(timeout), out)?),
            FrontCommand::Undrain { host } => Ok(front::undrain(n, &host, out)?),
            FrontCommand::Status { json } => Ok(front::status(n, json, out)?),
        },
        Command::Metrics(MetricsCommand::Serve) => Ok(exporter::serve(n, &settings(&config)?.metrics)?),
        Command::Metrics(MetricsCommand::Targets { address }) => {
            let cfg = settings(&config)?.metrics;
            let addr = match address {
                Some(a) => a.parse().map_err(|_| anyhow::anyhow!("--address `{a}` is not HOST:PORT"))?,
                None => exporter::listen_addr(n, &cfg)?,
            };
            write!(out, "{}", exporter::targets(n, addr, &exporter::hostname(), &units::enabled(n)?)).context(OUTPUT)
        }
        Command::Https { domains, email, staging, server, hsts } => Ok(https::https(n, &https::HttpsOptions { domains, email, staging, server, hsts }, out)?),
        Command::Completions { shell } => {
            // clap_complete panics when a write fails: generate, then write.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cli::command::<Command>(service), n.as_str(), &mut script);
            out.write_all(&script).context(OUTPUT)
        }
        Command::Man => clap_mangen::Man::new(cli::command::<Command>(service)).section("8").render(out).context(OUTPUT),
        Command::New { path, corepool, redis } => {
            let source = match corepool {
                Some(dir) => new::Source::checkout(&dir)?,
                None => new::Source::detect(),
            };
            new::create(&path, &source, redis, out)?;
            Ok(())
        }
        Command::Package { deb_version, output, maintainer } => {
            let o = package::Options { deb_version, output, maintainer };
            let deb = package::build(service, &mut cli::command::<Command>(service), &o)?;
            writeln!(out, "{}", deb.display()).context(OUTPUT)
        }
    }
}
