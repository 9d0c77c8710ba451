//! The configuration file and a `--set` flag: any input either loads into a
//! valid configuration or gives an error that names the file (or the flag)
//! and never panics.
#![no_main]

use std::path::Path;

use corepool::config::{self, Override};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Before the first NUL: the file; after it: one `--set KEY=VALUE`.
    let (file, flag) = text.split_once('\0').unwrap_or((text, ""));
    let overrides: Vec<Override> = Override::parse_flag(flag).into_iter().collect();
    match config::parse(Path::new("fuzz.toml"), Some(file), &overrides) {
        Ok(loaded) => assert!(config::validate(&loaded.config).is_ok(), "accepted an invalid configuration"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("fuzz.toml") || msg.contains("--set"), "error names neither file nor flag: {msg}");
        }
    }
});
