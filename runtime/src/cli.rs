//! The commands every service binary has, with or without the operator CLI:
//! `serve` (the default), `config check|show` and `healthcheck`.
//! `corepool-ctl` adds the operator commands beside them, sharing this
//! parser's top level, its [`stdout`] and its way of ending on an error
//! ([`failed`]).
//!
//! A command's output goes through [`stdout`]: when its reader is gone
//! (`NAME config show | head -1`), the write fails with an error that
//! [`failed`] recognizes, and the program ends quietly with status 0, as
//! ripgrep does (and as a C program killed by SIGPIPE looks to its shell),
//! instead of a panic from `println!`. SIGPIPE itself stays ignored (Rust's
//! default), so an instance never dies of a client that went away.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::load::{ConfigError, Override};
use crate::service::Service;
use crate::ServeError;

/// The top level of a service binary's command line; `C` is its set of commands.
#[derive(Debug, Parser)]
#[command(propagate_version = true)]
pub struct Cli<C: Subcommand> {
    /// Configuration file [default: /etc/NAME/NAME.toml, built-in defaults if absent]
    #[arg(long, short = 'c', global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Options of `serve`, accepted without the command name too.
    #[command(flatten)]
    pub serve: ServeArgs,

    #[command(subcommand)]
    pub command: Option<C>,
}

/// `serve` and `config`: what every service binary understands.
#[derive(Debug, Subcommand)]
pub enum BaseCommand {
    /// Serve HTTP (the default when no command is given). Takes the sockets
    /// from systemd when socket-activated, otherwise binds --listen.
    Serve(ServeArgs),
    /// Validate or show the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Exit 0 if URL answers 200 within 2 s, else 1 (a container's HEALTHCHECK).
    Healthcheck {
        /// What to ask
        #[arg(default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
}

#[derive(Debug, Args, Default, Clone, PartialEq)]
pub struct ServeArgs {
    /// Address to bind when not socket-activated: HOST:PORT or unix:/path [default: 127.0.0.1:3000]
    #[arg(long, short = 'l', value_name = "ADDR")]
    pub listen: Option<String>,
    /// Instance number (the %i of NAME@.service); selects the pinned CPU
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
    /// Check a configuration file (with the environment's overrides) and print
    /// the effective configuration; exits 78 naming file, line and key on error.
    Check {
        /// File to check [default: --config, or /etc/NAME/NAME.toml]
        path: Option<PathBuf>,
        /// Print nothing when the file is valid
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Print the effective configuration as TOML.
    Show,
}

/// Exit status for configuration errors (sysexits EX_CONFIG); the unit's
/// RestartPreventExitStatus= stops systemd from restarting into the same error.
pub const EX_CONFIG: u8 = 78;

impl ServeArgs {
    /// Serve options given before `serve` and after it: the later ones win.
    pub fn merge(self, after: ServeArgs) -> ServeArgs {
        ServeArgs {
            listen: after.listen.or(self.listen),
            instance: after.instance.or(self.instance),
            set: self.set.into_iter().chain(after.set).collect(),
            log_format: after.log_format.or(self.log_format),
        }
    }

    /// The flags as configuration overrides (they win over file and environment).
    pub fn overrides(&self) -> Result<Vec<Override>, String> {
        let flag = |key: &str, value: String, origin: &str| Override { key: key.into(), value, origin: origin.into() };
        let mut out = Vec::new();
        if let Some(l) = &self.listen {
            out.push(flag("listen", format!("{l:?}"), "--listen"));
        }
        if let Some(i) = self.instance {
            out.push(flag("instance", i.to_string(), "--instance"));
        }
        if let Some(f) = self.log_format {
            let name = f.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
            out.push(flag("log.format", format!("{name:?}"), "--log-format"));
        }
        for s in &self.set {
            out.push(Override::parse_flag(s)?);
        }
        Ok(out)
    }
}

/// The clap command of `service`'s binary with command set `C`: its name,
/// version and description, and `NAME_CONFIG` for `--config`.
pub fn command<C: Subcommand>(service: &Service) -> clap::Command {
    let name = service.name().map(|n| n.to_string()).unwrap_or_else(|_| "service".into());
    let env: &'static str = Box::leak(format!("{}_CONFIG", name.replace('-', "_").to_ascii_uppercase()).into_boxed_str());
    let name: &'static str = Box::leak(name.into_boxed_str());
    let info = service.package_info();
    let about = if info.description.is_empty() {
        format!("{name}: a corepool service (one instance per CPU core, systemd, nginx)")
    } else {
        info.description.to_string()
    };
    Cli::<C>::command().name(name).bin_name(name).version(service.version()).about(about).mut_arg("config", |a| a.env(env))
}

/// Parses this process's arguments with command set `C`.
pub fn parse<C: Subcommand>(service: &Service) -> Cli<C> {
    let matches = command::<C>(service).get_matches();
    Cli::<C>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Why a base command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Serving, the configuration, or the health check.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The command's output could not be written.
    #[error("writing output")]
    Output(#[source] std::io::Error),
}

/// Runs one of the base commands, writing what it prints to `out` (the
/// process's [`stdout`]). `top` are the serve flags given before the command
/// name (or alone, for the default `serve`).
pub fn run_base(service: Service, config: Option<PathBuf>, top: ServeArgs, command: Option<BaseCommand>, out: &mut dyn Write) -> Result<(), CommandError> {
    let text = base(service, config, top, command)?;
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(CommandError::Output)
}

/// Runs a base command; what it prints on standard output.
fn base(service: Service, config: Option<PathBuf>, top: ServeArgs, command: Option<BaseCommand>) -> Result<String, ServeError> {
    let source = service.source(config)?;
    match command {
        None => serve(service, source, top).map(|()| String::new()),
        Some(BaseCommand::Serve(args)) => serve(service, source, top.merge(args)).map(|()| String::new()),
        Some(_) if top != ServeArgs::default() => {
            Err(ServeError::Usage("--listen/--instance/--set/--log-format belong to `serve`, not to this command".into()))
        }
        Some(BaseCommand::Config(ConfigCommand::Check { path, quiet })) => {
            let source = match path {
                Some(p) => service.source(Some(p))?,
                None => source,
            };
            let loaded = service.load(&source, &[])?;
            let schema = service.schema()?;
            // The routes are part of what must be right before starting.
            let _routes = service.compose(loaded.config.debug.endpoints)?;
            // And a Redis that answers (when one is configured).
            #[cfg(feature = "redis")]
            crate::redis::check::check_now(service.name()?, &loaded.sections, loaded.file.as_deref())?;
            if quiet {
                return Ok(String::new());
            }
            let file = loaded.file.as_ref().map(|f| f.display().to_string()).unwrap_or_else(|| "built-in defaults".into());
            let _ = writeln!(std::io::stderr(), "configuration OK ({file})");
            let mut shown = loaded.clone();
            shown.file = None;
            Ok(shown.to_toml(&schema))
        }
        Some(BaseCommand::Healthcheck { url }) => healthcheck(&url).map(|()| String::new()),
        Some(BaseCommand::Config(ConfigCommand::Show)) => {
            let loaded = service.load(&source, &[])?;
            Ok(loaded.to_toml(&service.schema()?))
        }
    }
}

/// `NAME healthcheck URL`: GET of a plain `http://HOST:PORT/PATH` (no TLS,
/// no redirects), for a container engine's health check: 0 only on a 200.
fn healthcheck(url: &str) -> Result<(), ServeError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| ServeError::Usage(format!("`{url}`: only http:// URLs")))?;
    let (addr, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, "/".into()));
    match crate::client::get(addr, &path, std::time::Duration::from_secs(2)) {
        Ok((200, _)) => Ok(()),
        Ok((status, body)) => Err(ServeError::Usage(format!("{url} answered {status}: {}", body.trim()))),
        Err(e) => Err(ServeError::Usage(format!("{url}: {}", report(&e)))),
    }
}

fn serve(service: Service, source: crate::load::Source, args: ServeArgs) -> Result<(), ServeError> {
    let overrides = args.overrides().map_err(ServeError::Usage)?;
    service.serve(source, overrides)
}

/// The exit status for an error: 78 for a configuration or route error, 1 otherwise.
pub fn exit_status(e: &(dyn std::error::Error + 'static)) -> ExitCode {
    fn serve_config(e: &ServeError) -> bool {
        matches!(e, ServeError::Config(_) | ServeError::Routes(_) | ServeError::Name(_))
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let config = err.downcast_ref::<ServeError>().is_some_and(serve_config)
            || matches!(err.downcast_ref::<CommandError>(), Some(CommandError::Serve(s)) if serve_config(s));
        if config || err.is::<ConfigError>() || err.is::<crate::name::NameError>() {
            return ExitCode::from(EX_CONFIG);
        }
        cur = err.source();
    }
    ExitCode::FAILURE
}

/// The process's standard output for a command's results: writes that meet
/// a closed pipe fail with an error [`failed`] turns into a quiet exit 0.
pub fn stdout() -> Stdout {
    Stdout(std::io::stdout())
}

/// See [`stdout`].
#[derive(Debug)]
pub struct Stdout(std::io::Stdout);

/// The reader of standard output went away (`| head`, `| grep -q`): what a
/// write through [`stdout`] fails with then, inside an `io::Error` of kind
/// `BrokenPipe`. Only these end the program quietly: a broken pipe to an
/// instance or a child process is an error like any other.
#[derive(Debug, thiserror::Error)]
#[error("standard output closed by its reader")]
pub struct OutputClosed;

fn closed(e: std::io::Error) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::io::Error::new(std::io::ErrorKind::BrokenPipe, OutputClosed)
    } else {
        e
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(closed)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.write_all(buf).map_err(closed)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(closed)
    }
}

/// True when `e`, or an error in its `source()` chain, is a write through
/// [`stdout`] that found the pipe closed.
pub fn output_closed(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        let io = err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).is_some_and(|inner| inner.is::<OutputClosed>());
        if io || err.is::<OutputClosed>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// `e` and its `source()` chain on one line, `: ` between them; a cause
/// whose text the message before already contains is not repeated.
pub fn report(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(cause) = cur {
        let text = cause.to_string();
        if !text.is_empty() && !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = cause.source();
    }
    s
}

/// Ends a command that failed: nothing (status 0) when its output's reader
/// went away, else `NAME: ERROR: CAUSE...` on stderr and [`exit_status`].
pub fn failed(name: &str, e: &(dyn std::error::Error + 'static)) -> ExitCode {
    if output_closed(e) {
        return ExitCode::SUCCESS;
    }
    let _ = writeln!(std::io::stderr(), "{name}: {}", report(e));
    exit_status(e)
}

/// `main` of a service binary without the operator commands.
pub fn main(service: Service) -> ExitCode {
    let name = service.name().map(|n| n.to_string());
    let name = match name {
        Ok(n) => n,
        Err(e) => {
            eprintln!("corepool: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let cli = parse::<BaseCommand>(&service);
    match run_base(service, cli.config, cli.serve, cli.command, &mut stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(&name, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("{path}")]
        Sourced {
            path: PathBuf,
            #[source]
            error: std::io::Error,
        },
        #[error("writing: {0}")]
        Both(#[source] std::io::Error),
    }

    #[test]
    fn a_report_names_each_cause_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        assert_eq!(report(&Outer::Sourced { path: "/etc/x".into(), error: io() }), "/etc/x: denied");
        // An error that shows its cause and also returns it from source().
        assert_eq!(report(&Outer::Both(io())), "writing: denied");
    }

    #[test]
    fn only_a_closed_stdout_is_a_quiet_end() {
        let pipe = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(output_closed(&closed(pipe())));
        assert!(output_closed(&CommandError::Output(closed(pipe()))), "through the source chain");
        assert!(!output_closed(&pipe()), "a broken pipe elsewhere (an instance, a child) is an error");
        let full = closed(std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(!output_closed(&full) && full.raw_os_error() == Some(libc::ENOSPC));
        assert_eq!(failed("x", &CommandError::Output(closed(pipe()))), ExitCode::SUCCESS);
    }
}
