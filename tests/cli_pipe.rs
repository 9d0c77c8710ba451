//! Output into a pipe whose reader went away (`corepool completions bash |
//! head -1`): the command ends quietly with status 0, as ripgrep does,
//! instead of panicking in `println!` (status 101 and a backtrace) or
//! printing "Broken pipe". Every command writes through the same
//! `corepool_runtime::cli::stdout()` and ends through `cli::failed`, so the
//! commands that need systemd (`status`, `logs`, `top` off a terminal) take
//! this path too; these are the ones that run anywhere.

use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::process::{Command, Output, Stdio};

use nix::fcntl::{fcntl, FcntlArg, OFlag};

const BIN: &str = env!("CARGO_BIN_EXE_corepool");

/// The commands: each prints more than nothing, with no systemd, root or
/// network. `--config` names an empty file, so a host's own
/// /etc/corepool/corepool.toml (root-only when the package is installed)
/// plays no part.
fn commands(config: &str) -> Vec<Vec<String>> {
    let c = |args: &[&str]| args.iter().map(|a| a.to_string()).chain(["--config".to_string(), config.to_string()]).collect();
    vec![c(&["completions", "bash"]), c(&["completions", "zsh"]), c(&["config", "show"]), c(&["config", "check"]), c(&["man"]), c(&["front", "list"])]
}

/// A pipe whose ends are closed on exec: the child gets only the write end
/// (as its stdout), so closing the read end here leaves no reader at all.
fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe")
}

fn spawn(args: &[String], stdout: OwnedFd) -> std::process::Child {
    Command::new(BIN)
        .args(args)
        .env_remove("COREPOOL_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn corepool")
}

fn assert_quiet(args: &[String], out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    // `config check` says on stderr that the file is fine; nothing else may.
    let expected = if args[0] == "config" && args[1] == "check" { "configuration OK" } else { "" };
    assert_eq!(out.status.code(), Some(0), "corepool {}: {:?}\n{stderr}", args.join(" "), out.status);
    assert!(stderr.trim().starts_with(expected) && stderr.lines().count() <= usize::from(!expected.is_empty()), "corepool {}: {stderr}", args.join(" "));
}

fn empty_config() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corepool.toml");
    std::fs::write(&path, "").unwrap();
    let p = path.display().to_string();
    (dir, p)
}

#[test]
fn a_pipe_closed_before_the_first_write_ends_the_command_quietly() {
    let (_dir, config) = empty_config();
    for args in commands(&config) {
        let (read, write) = pipe();
        drop(read);
        let child = spawn(&args, write);
        assert_quiet(&args, &child.wait_with_output().unwrap());
    }
}

#[test]
fn a_reader_that_stops_after_one_line_ends_the_command_quietly() {
    // `| head -1`. The pipe holds one page, so the writer meets the closed
    // pipe whatever its output's length.
    let (_dir, config) = empty_config();
    for args in commands(&config) {
        let (read, write) = pipe();
        fcntl(&write, FcntlArg::F_SETPIPE_SZ(4096)).expect("F_SETPIPE_SZ");
        let child = spawn(&args, write);
        let mut first = String::new();
        BufReader::new(std::fs::File::from(read)).read_line(&mut first).unwrap();
        assert!(!first.is_empty(), "corepool {} printed nothing", args.join(" "));
        // The reader (and with it the pipe's read end) is gone here.
        assert_quiet(&args, &child.wait_with_output().unwrap());
    }
}

#[test]
fn another_write_error_is_still_an_error() {
    let (_dir, config) = empty_config();
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    let args = ["config", "show", "--config", &config];
    let out = Command::new(BIN).args(args).stdout(full).stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("corepool: writing output: ") && stderr.lines().count() == 1, "{stderr}");
}
