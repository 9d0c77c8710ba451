//! The `corepool` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use clap::CommandFactory;
use corepool::admin::{self, Count, HttpsOptions};
use corepool::cli::{Cli, Command, ConfigCommand, FrontCommand, LogFormatArg, NginxCommand, ServeArgs};
use corepool::front;
use corepool::config::{self, ConfigError, Override, Source};

/// Exit status for configuration errors (sysexits EX_CONFIG); the unit's
/// RestartPreventExitStatus= stops systemd from restarting into the same error.
const EX_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corepool: {e:#}");
            if e.downcast_ref::<ConfigError>().is_some() {
                ExitCode::from(EX_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn source(cli_path: Option<std::path::PathBuf>) -> Source {
    match cli_path {
        Some(path) => Source { path, required: true },
        None => Source::default_path(),
    }
}

fn run(cli: Cli) -> Result<()> {
    let command = match cli.command {
        None => Command::Serve(cli.serve),
        Some(Command::Serve(args)) => Command::Serve(merge(cli.serve, args)),
        Some(_) if cli.serve != ServeArgs::default() => {
            anyhow::bail!("--listen/--instance/--set/--log-format belong to `serve`, not to this command")
        }
        Some(c) => c,
    };
    let out = &mut std::io::stdout();
    let count = |s: &str| s.parse::<Count>().map_err(anyhow::Error::msg);
    match command {
        Command::Serve(args) => serve(source(cli.config), args),
        Command::Enable { count: c, lazy } => {
            admin::require("enable")?;
            Ok(admin::enable(count(&c)?, lazy, &backend(cli.config)?, out)?)
        }
        Command::Disable => Ok(admin::disable(out)?),
        Command::Scale { count: c } => {
            admin::require("scale")?;
            Ok(admin::scale(count(&c)?, &backend(cli.config)?, out)?)
        }
        Command::Reload { instance } => Ok(admin::reload(instance, out)?),
        Command::Restart => Ok(admin::restart(out)?),
        Command::Status { json } => Ok(admin::status(json, out)?),
        Command::Top => Ok(corepool::top::run(out)?),
        Command::Logs { which, lines, follow } => {
            let which = which.parse().map_err(anyhow::Error::msg)?;
            Ok(corepool::logs::run(which, lines, follow, out)?)
        }
        Command::Nginx(NginxCommand::Enable) => Ok(admin::nginx_enable(out)?),
        Command::Nginx(NginxCommand::Sync) => {
            corepool::units::require_root("nginx sync")?;
            corepool::nginx::sync(&corepool::units::enabled()?)?;
            Ok(())
        }
        Command::Front(f) => match f {
            FrontCommand::Add { host, instances, port_base } => {
                let n = match instances.as_str() {
                    "auto" => None,
                    s => Some(s.parse::<u32>().ok().filter(|n| (1..=1024).contains(n)).ok_or_else(|| {
                        anyhow::anyhow!("--instances `{s}` is not `auto` or a number from 1 to 1024")
                    })?),
                };
                Ok(front::add(&host, n, port_base, out)?)
            }
            FrontCommand::Remove { host } => Ok(front::remove(&host, out)?),
            FrontCommand::List { json } => Ok(front::list(json, out)?),
            FrontCommand::Drain { host, timeout } => Ok(front::drain(&host, std::time::Duration::from_secs(timeout), out)?),
            FrontCommand::Undrain { host } => Ok(front::undrain(&host, out)?),
            FrontCommand::Status { json } => Ok(front::status(json, out)?),
        },
        Command::Https { domains, email, staging, server, hsts } => {
            Ok(admin::https(&HttpsOptions { domains, email, staging, server, hsts }, out)?)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "corepool", out);
            Ok(())
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).section("8").render(out)?;
            Ok(())
        }
        Command::Config(ConfigCommand::Check { path }) => {
            let loaded = config::load(&source(path.or(cli.config)), &config::env_overrides(std::env::vars()))?;
            eprintln!(
                "configuration OK ({})",
                loaded.file.map(|f| f.display().to_string()).unwrap_or_else(|| "built-in defaults".into())
            );
            print!("{}", toml::to_string(&loaded.config)?);
            Ok(())
        }
        Command::Config(ConfigCommand::Show) => {
            let loaded = config::load(&source(cli.config), &config::env_overrides(std::env::vars()))?;
            print!("{}", toml::to_string(&loaded.config)?);
            Ok(())
        }
    }
}

/// The `[backend]` settings `enable`/`scale` write into the socket units.
fn backend(cli_path: Option<std::path::PathBuf>) -> Result<corepool::config::BackendConfig> {
    Ok(config::load(&source(cli_path), &config::env_overrides(std::env::vars()))?.config.backend)
}

/// Serve options given before `serve` and after it: the later ones win.
fn merge(before: ServeArgs, after: ServeArgs) -> ServeArgs {
    ServeArgs {
        listen: after.listen.or(before.listen),
        instance: after.instance.or(before.instance),
        set: before.set.into_iter().chain(after.set).collect(),
        log_format: after.log_format.or(before.log_format),
    }
}

fn serve(source: Source, args: ServeArgs) -> Result<()> {
    let mut overrides = config::env_overrides(std::env::vars());
    let flag = |key: &str, value: String, origin: &str| Override { key: key.into(), value, origin: origin.into() };
    if let Some(l) = args.listen {
        overrides.push(flag("listen", format!("{l:?}"), "--listen"));
    }
    if let Some(i) = args.instance {
        overrides.push(flag("instance", i.to_string(), "--instance"));
    }
    if let Some(f) = args.log_format {
        let name = match f {
            LogFormatArg::Auto => "auto",
            LogFormatArg::Human => "human",
            LogFormatArg::Journal => "journal",
            LogFormatArg::Json => "json",
        };
        overrides.push(flag("log.format", format!("{name:?}"), "--log-format"));
    }
    for s in &args.set {
        overrides.push(Override::parse_flag(s).map_err(anyhow::Error::msg)?);
    }
    corepool::App::load(source, overrides)?.run()?;
    Ok(())
}
