//! The configuration file and a `--set` flag: any input either loads into a
//! valid configuration or gives an error that names the file (or the flag)
//! and never panics. The schema is the demo service's: corepool's settings
//! plus two sections of the service's own.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use corepool_demo::{ComputeConfig, PasswordConfig};
use corepool_runtime::config;
use corepool_runtime::load::{self, Override, Schema};
use corepool_runtime::section::SectionSpec;
use corepool_runtime::ServiceName;
use libfuzzer_sys::fuzz_target;

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let name = ServiceName::new("corepool").expect("a valid name");
        Schema::new(&name, vec![SectionSpec::of::<ComputeConfig>(), SectionSpec::of::<PasswordConfig>()])
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Before the first NUL: the file; after it: one `--set KEY=VALUE`.
    let (file, flag) = text.split_once('\0').unwrap_or((text, ""));
    let overrides: Vec<Override> = Override::parse_flag(flag).into_iter().collect();
    match load::parse(Path::new("fuzz.toml"), Some(file), &overrides, schema()) {
        Ok(loaded) => assert!(config::validate(&loaded.config).is_ok(), "accepted an invalid configuration"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("fuzz.toml") || msg.contains("--set"), "error names neither file nor flag: {msg}");
        }
    }
});
