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
    /// Validate or show the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
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
