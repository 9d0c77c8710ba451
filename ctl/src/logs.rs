//! `NAME logs`: the instances' journal, interleaved and tagged with the
//! instance (like `pm2 logs`). Reads `journalctl -o json`, so the journal's
//! own access rules apply (root, or the adm / systemd-journal groups).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitStatus, Stdio};

use corepool_runtime::ServiceName;
use serde_json::Value;

use crate::units::{self, UnitError};

/// Why `logs` stopped.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error(transparent)]
    Unit(#[from] UnitError),
    #[error("journalctl failed ({0}); reading system logs needs root or the adm group")]
    Journal(ExitStatus),
    #[error("reading journalctl's output")]
    Read(#[source] std::io::Error),
    #[error("writing output")]
    Output(#[source] std::io::Error),
}

/// Which instances: one, or all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    All,
    One(u32),
}

impl std::str::FromStr for Which {
    type Err = String;
    fn from_str(s: &str) -> Result<Which, String> {
        if s == "all" {
            return Ok(Which::All);
        }
        s.parse().map(Which::One).map_err(|_| format!("`{s}` is not an instance number or `all`"))
    }
}

/// The journal's MESSAGE field: a string, or an array of bytes for non-UTF-8 text.
fn message(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(bytes) => String::from_utf8_lossy(&bytes.iter().filter_map(|b| b.as_u64().map(|b| b as u8)).collect::<Vec<_>>()).into_owned(),
        _ => String::new(),
    }
}

/// Local wall-clock time of a journal timestamp (µs since the epoch), `HH:MM:SS.mmm`.
fn clock(usec: u64) -> String {
    let secs = (usec / 1_000_000) as libc::time_t;
    // SAFETY: localtime_r writes into the struct we own.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::localtime_r(&secs, &mut tm) };
    format!("{:02}:{:02}:{:02}.{:03}", tm.tm_hour, tm.tm_min, tm.tm_sec, (usec / 1000) % 1000)
}

/// One journal entry (a JSON line) as `HH:MM:SS.mmm NAME@I | message`.
pub fn format_entry(n: &ServiceName, line: &str) -> Option<String> {
    let e: Value = serde_json::from_str(line).ok()?;
    let ours = |u: &&str| n.instance_of(u).is_some();
    let unit = e["_SYSTEMD_UNIT"].as_str().filter(ours).or_else(|| e["UNIT"].as_str().filter(ours))?;
    let name = unit.strip_suffix(".service").unwrap_or(unit);
    let ts = e["__REALTIME_TIMESTAMP"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
    Some(format!("{} {name:<12} | {}", clock(ts), message(&e["MESSAGE"])))
}

/// Prints the last `lines` entries, then follows if asked.
pub fn run(n: &ServiceName, which: Which, lines: usize, follow: bool, out: &mut dyn Write) -> Result<(), LogsError> {
    units::require_systemd()?;
    let unit = match which {
        Which::All => format!("{n}@*.service"),
        Which::One(i) => n.service_unit(i),
    };
    let count = lines.to_string();
    let mut args = vec!["-o", "json", "--no-pager", "-n", &count, "-u", &unit];
    if follow {
        args.push("-f");
    }
    let mut child =
        Command::new("journalctl").args(&args).stdout(Stdio::piped()).spawn().map_err(|error| UnitError::Spawn { cmd: "journalctl".into(), error })?;
    let stdout = child.stdout.take().expect("piped");
    let copied = BufReader::new(stdout).lines().try_for_each(|line| {
        let line = line.map_err(LogsError::Read)?;
        match format_entry(n, &line) {
            Some(text) => writeln!(out, "{text}").and_then(|()| out.flush()).map_err(LogsError::Output),
            None => Ok(()),
        }
    });
    if let Err(e) = copied {
        // Our reader went away (`| head`, `| grep -q`: the top level ends
        // quietly), or another failure: journalctl goes too.
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    let status = child.wait().map_err(LogsError::Read)?;
    if !status.success() {
        return Err(LogsError::Journal(status));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_entries_with_instance() {
        std::env::set_var("TZ", "UTC");
        let n = ServiceName::new("corepool").unwrap();
        let line = r#"{"_SYSTEMD_UNIT":"corepool@1.service","MESSAGE":"<6>serving","__REALTIME_TIMESTAMP":"1700000000123456"}"#;
        assert_eq!(format_entry(&n, line).unwrap(), "22:13:20.123 corepool@1   | <6>serving");
        let bytes = r#"{"UNIT":"corepool@0.service","MESSAGE":[104,105],"__REALTIME_TIMESTAMP":"0"}"#;
        assert!(format_entry(&n, bytes).unwrap().ends_with("corepool@0   | hi"));
        assert!(format_entry(&n, r#"{"_SYSTEMD_UNIT":"nginx.service","MESSAGE":"x"}"#).is_none());
        assert!(format_entry(&n, r#"{"_SYSTEMD_UNIT":"myapp@0.service","MESSAGE":"x"}"#).is_none(), "another service's line");
        assert_eq!("all".parse::<Which>(), Ok(Which::All));
        assert_eq!("3".parse::<Which>(), Ok(Which::One(3)));
        assert!("x".parse::<Which>().is_err());
    }
}
