//! Loading a service's configuration: the TOML file, `PREFIX_*` environment
//! variables and `--set key=value` flags, merged in that order and validated,
//! for corepool's settings ([`crate::config`]) and the service's own sections
//! ([`crate::section`]) alike.
//!
//! Every error names where the bad value came from: `file:line: key: what`
//! for the file, `MYAPP_X: key: what` or `--set: key: what` for overrides.
//! Unknown keys, wrong types and out-of-range values are all errors.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::config::{self, Config};
use crate::name::ServiceName;
use crate::section::{SectionSpec, Sections};

/// What a configuration file of this service may hold: corepool's settings
/// plus the service's sections; and the prefix of its environment variables.
#[derive(Debug, Clone)]
pub struct Schema {
    /// `MYAPP`: `MYAPP_POOL_THREADS`, `MYAPP_CONFIG`.
    pub env_prefix: String,
    /// The service's own sections.
    pub sections: Vec<SectionSpec>,
}

impl Schema {
    /// The schema of service `name` with `sections`.
    pub fn new(name: &ServiceName, sections: Vec<SectionSpec>) -> Schema {
        Schema { env_prefix: name.env_prefix(), sections }
    }

    /// The variable naming the configuration file: `MYAPP_CONFIG`.
    pub fn config_env(&self) -> String {
        format!("{}_CONFIG", self.env_prefix)
    }

    /// The built-in values of everything: corepool's and the sections'.
    pub fn defaults(&self) -> Loaded {
        let mut sections = Sections::default();
        for s in &self.sections {
            sections.insert(s, s.default_value());
        }
        Loaded { config: Config::default(), sections, file: None }
    }

    /// Every settable key, dotted (`pool.threads`, `greeting.text`).
    pub fn keys(&self) -> Vec<String> {
        fn leaves(prefix: &str, t: &toml::Table, out: &mut Vec<String>) {
            for (k, v) in t {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                match v {
                    toml::Value::Table(t) => leaves(&path, t, out),
                    _ => out.push(path),
                }
            }
        }
        let mut out = Vec::new();
        if let Ok(t) = toml::Table::try_from(Config::default()) {
            leaves("", &t, &mut out);
        }
        for s in &self.sections {
            if let Ok(t) = s.to_table(&s.default_value()) {
                leaves(s.name, &t, &mut out);
            }
        }
        out
    }

    /// corepool's top-level keys and tables, then the service's sections.
    fn top_level(&self) -> (Vec<String>, Vec<&'static str>) {
        let core = toml::Table::try_from(Config::default()).map(|t| t.keys().cloned().collect()).unwrap_or_default();
        (core, self.sections.iter().map(|s| s.name).collect())
    }

    /// Reads `PREFIX_*` variables as overrides: `MYAPP_POOL_JOB_TIMEOUT=5s`
    /// sets `pool.job_timeout`, `MYAPP_GREETING_TEXT=hi` sets `greeting.text`.
    /// `PREFIX_CONFIG` (the file's path) is not a key and is skipped. A
    /// variable that matches no key becomes an override of the key it most
    /// likely meant, which then fails as unknown, naming the variable.
    pub fn env_overrides(&self, vars: impl IntoIterator<Item = (String, String)>) -> Vec<Override> {
        let keys = self.keys();
        let sections: Vec<String> = keys.iter().filter_map(|k| k.split_once('.').map(|(s, _)| s.to_string())).collect();
        let prefix = format!("{}_", self.env_prefix);
        let mut out: Vec<Override> = vars
            .into_iter()
            .filter_map(|(name, value)| {
                let rest = name.strip_prefix(&prefix)?.to_ascii_lowercase();
                if rest == "config" {
                    return None;
                }
                let key = keys
                    .iter()
                    .find(|k| k.replace(['.', '-'], "_") == rest)
                    .cloned()
                    .or_else(|| sections.iter().find_map(|s| rest.strip_prefix(&format!("{s}_")).map(|k| format!("{s}.{k}"))))
                    .unwrap_or(rest);
                Some(Override { key, value, origin: name })
            })
            .collect();
        out.sort_by(|a, b| a.origin.cmp(&b.origin));
        out
    }
}

/// One `key = value` set from outside the file.
#[derive(Debug, Clone)]
pub struct Override {
    /// Dotted key, e.g. `pool.threads`.
    pub key: String,
    /// Raw value; parsed as a TOML value, or taken as a string if it is not one.
    pub value: String,
    /// What set it, for error messages: `MYAPP_POOL_THREADS`, `--set`, `--listen`.
    pub origin: String,
}

impl Override {
    /// Parses a `--set key=value` argument.
    pub fn parse_flag(s: &str) -> Result<Override, String> {
        let (key, value) = s.split_once('=').ok_or_else(|| format!("`{s}` is not key=value"))?;
        Ok(Override { key: key.trim().into(), value: value.trim().into(), origin: "--set".into() })
    }
}

/// Where the configuration file is and whether it must exist.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    /// Named explicitly (`--config`): a missing file is an error. Otherwise a
    /// missing default file means "run on built-in defaults".
    pub required: bool,
}

impl Source {
    /// The service's packaged file, `/etc/NAME/NAME.toml`; built-in defaults when absent.
    pub fn default_for(name: &ServiceName) -> Source {
        Source { path: name.config_path(), required: false }
    }
}

/// A configuration that failed to load.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{path}:{line}: {key}: {msg}")]
    File { path: PathBuf, line: usize, key: String, msg: String },
    #[error("{origin}: {key}: {msg}")]
    Override { origin: String, key: String, msg: String },
}

/// The result of loading: corepool's settings, the service's sections, and
/// the file read (None: built-in defaults).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub sections: Sections,
    pub file: Option<PathBuf>,
}

impl Loaded {
    /// The effective configuration as one TOML document (what `config show` prints).
    pub fn to_toml(&self, schema: &Schema) -> String {
        let mut out = toml::to_string(&self.config).unwrap_or_default();
        for s in &schema.sections {
            if let Some(t) = self.sections.get_erased(s).and_then(|v| s.to_table(v).ok()) {
                let mut doc = toml::Table::new();
                doc.insert(s.name.to_string(), toml::Value::Table(t));
                out.push('\n');
                out.push_str(&toml::to_string(&doc).unwrap_or_default());
            }
        }
        out
    }
}

/// Loads the file (if any), applies `overrides` in order, validates.
pub fn load(source: &Source, overrides: &[Override], schema: &Schema) -> Result<Loaded, ConfigError> {
    let text = match std::fs::read_to_string(&source.path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !source.required => None,
        Err(e) => return Err(ConfigError::Read { path: source.path.clone(), error: e }),
    };
    parse(&source.path, text.as_deref(), overrides, schema)
}

/// [`load`] without the file system: `text` is the content of `path` (None:
/// no file, built-in defaults), then `overrides`, then validation.
pub fn parse(path: &Path, text: Option<&str>, overrides: &[Override], schema: &Schema) -> Result<Loaded, ConfigError> {
    let file_err = |text: &str, span: Option<Range<usize>>, key: Option<String>, msg: String| {
        let offset = span.map(|s| s.start).unwrap_or(0);
        ConfigError::File {
            path: path.to_path_buf(),
            line: line_of(text, offset),
            key: key.or_else(|| key_at(text, offset)).unwrap_or_else(|| "(syntax)".into()),
            msg,
        }
    };

    let mut config = match text {
        Some(t) => toml::from_str::<Config>(t).map_err(|e| file_err(t, e.span(), None, e.message().trim().to_string()))?,
        None => Config::default(),
    };
    if let Some(t) = text {
        check_top_level(t, schema).map_err(|(span, key, msg)| file_err(t, Some(span), Some(key), msg))?;
    }
    let mut values = Vec::with_capacity(schema.sections.len());
    for s in &schema.sections {
        values.push(match text {
            Some(t) => s.parse(t).map_err(|e| file_err(t, e.span(), None, e.message().trim().to_string()))?,
            None => s.default_value(),
        });
    }

    let mut origins: HashMap<String, String> = HashMap::new();
    for o in overrides {
        let section = o.key.split_once('.').map(|(s, _)| s);
        match schema.sections.iter().position(|s| Some(s.name) == section) {
            Some(i) => values[i] = apply_section_override(&schema.sections[i], &values[i], o)?,
            None => config = apply_override(config, o)?,
        }
        origins.insert(o.key.clone(), o.origin.clone());
    }

    let located = |key: String, msg: String| {
        if let Some(origin) = origins.get(&key) {
            return ConfigError::Override { origin: origin.clone(), key, msg };
        }
        if let Some(t) = text {
            let span = span_of(t, &key);
            return file_err(t, span, Some(key), msg);
        }
        // Defaults are valid (tested), so this only happens for impossible states.
        ConfigError::Override { origin: "default".into(), key, msg }
    };
    config::validate(&config).map_err(|e| located(e.key, e.message))?;
    let mut sections = Sections::default();
    for (s, v) in schema.sections.iter().zip(values) {
        s.validate(&v).map_err(|e| located(format!("{}.{}", s.name, e.key), e.message))?;
        sections.insert(s, v);
    }
    Ok(Loaded { config, sections, file: text.map(|_| path.to_path_buf()) })
}

/// An error about `key` found after loading (a Redis that refuses the
/// configured URL or password): at its line in `file` when the file sets it
/// (or its section's line), else named as coming from the environment or the
/// defaults.
pub fn error_at(file: Option<&Path>, key: &str, msg: String) -> ConfigError {
    let text = file.and_then(|f| std::fs::read_to_string(f).ok().map(|t| (f, t)));
    // The key's line, else its section's (a default under a `[redis]` the file has).
    let span = |t: &str| {
        let mut k = key;
        loop {
            if let Some(s) = span_of(t, k) {
                return Some(s);
            }
            k = k.rsplit_once('.')?.0;
        }
    };
    match text.as_ref().and_then(|(f, t)| span(t).map(|s| (f, t, s))) {
        Some((f, t, span)) => ConfigError::File { path: f.to_path_buf(), line: line_of(t, span.start), key: key.to_string(), msg },
        None => ConfigError::Override { origin: "the environment or the defaults".into(), key: key.to_string(), msg },
    }
}

/// Every top-level key must be corepool's or one of the service's sections.
fn check_top_level(text: &str, schema: &Schema) -> Result<(), (Range<usize>, String, String)> {
    let (core, sections) = schema.top_level();
    let mut unknown = None;
    walk(text, &mut |path, key, _| {
        if !path.contains('.') && !core.iter().any(|k| k == path) && !sections.contains(&path) {
            unknown = Some((key.unwrap_or(0..0), path.to_string()));
            return true;
        }
        false
    });
    match unknown {
        None => Ok(()),
        Some((span, key)) => {
            let mut msg = format!("unknown key: corepool's are {}", core.join(", "));
            if !sections.is_empty() {
                msg.push_str(&format!("; this service's sections are {}", sections.join(", ")));
            }
            Err((span, key, msg))
        }
    }
}

fn apply_override(config: Config, o: &Override) -> Result<Config, ConfigError> {
    let err = |msg: String| ConfigError::Override { origin: o.origin.clone(), key: o.key.clone(), msg };
    let table = toml::Table::try_from(&config).map_err(|e| err(e.to_string()))?;
    let table = set_key(table, &o.key, &o.value).map_err(err)?;
    toml::Value::Table(table).try_into::<Config>().map_err(|e| err(e.message().trim().to_string()))
}

fn apply_section_override(
    spec: &SectionSpec,
    value: &std::sync::Arc<dyn std::any::Any + Send + Sync>,
    o: &Override,
) -> Result<std::sync::Arc<dyn std::any::Any + Send + Sync>, ConfigError> {
    let err = |msg: String| ConfigError::Override { origin: o.origin.clone(), key: o.key.clone(), msg };
    let table = spec.to_table(value).map_err(err)?;
    let rest = o.key.split_once('.').map(|(_, r)| r).unwrap_or_default();
    let table = set_key(table, rest, &o.value).map_err(err)?;
    spec.value_of(table).map_err(err)
}

/// Sets dotted `key` (which must exist already) in `table` to `raw`.
fn set_key(mut table: toml::Table, key: &str, raw: &str) -> Result<toml::Table, String> {
    let parts: Vec<&str> = key.split('.').collect();
    let (last, parents) = parts.split_last().ok_or("empty key")?;
    let mut cur = &mut table;
    for p in parents {
        cur = match cur.get_mut(*p) {
            Some(toml::Value::Table(t)) => t,
            _ => return Err("unknown key".into()),
        };
    }
    match cur.get(*last) {
        Some(toml::Value::Table(_)) => return Err("is a section, not a key".into()),
        Some(_) => {}
        None => return Err("unknown key".into()),
    }
    cur.insert((*last).to_string(), parse_value(raw));
    Ok(table)
}

/// A flag or env value as TOML (`4`, `true`, `"x"`), else the raw string.
fn parse_value(raw: &str) -> toml::Value {
    format!("v = {raw}").parse::<toml::Table>().ok().and_then(|mut t| t.remove("v")).unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Called with (dotted path, key span, value span); returns true to stop.
type Visit<'a> = &'a mut dyn FnMut(&str, Option<Range<usize>>, Option<Range<usize>>) -> bool;

/// Walks a parsed document's key/value pairs (tables and inline tables
/// alike) with their dotted paths and spans.
fn walk(text: &str, f: Visit<'_>) {
    fn table(prefix: &str, t: &toml::de::DeTable<'_>, f: Visit<'_>) -> bool {
        for (k, v) in t.iter() {
            let path = if prefix.is_empty() { k.get_ref().to_string() } else { format!("{prefix}.{}", k.get_ref()) };
            if f(&path, Some(k.span()), Some(v.span())) {
                return true;
            }
            if let toml::de::DeValue::Table(inner) = v.get_ref() {
                if table(&path, inner, f) {
                    return true;
                }
            }
        }
        false
    }
    if let Ok(doc) = toml::de::DeTable::parse(text) {
        table("", doc.get_ref(), f);
    }
}

/// The dotted key whose key or value covers byte `offset`, innermost first.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let mut found = None;
    walk(text, &mut |path, key, value| {
        let hit = |r: &Option<Range<usize>>| r.as_ref().is_some_and(|r| r.start <= offset && offset < r.end.max(r.start + 1));
        if hit(&key) || hit(&value) {
            found = Some(path.to_string());
        }
        false
    });
    found
}

/// Span of a dotted key in the file, if the file sets it.
fn span_of(text: &str, wanted: &str) -> Option<Range<usize>> {
    let mut found = None;
    walk(text, &mut |path, key, _| {
        if path == wanted {
            found = key;
            return true;
        }
        false
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::section::Section;
    use serde::{Deserialize, Serialize};
    use std::io::Write;
    use std::time::Duration;

    /// A service section for the tests: `[greeting]`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Greeting {
        text: String,
        limits: Limits,
    }
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Limits {
        max_name: u32,
    }
    impl Default for Greeting {
        fn default() -> Self {
            Greeting { text: "hello".into(), limits: Limits::default() }
        }
    }
    impl Default for Limits {
        fn default() -> Self {
            Limits { max_name: 64 }
        }
    }
    impl Section for Greeting {
        const NAME: &'static str = "greeting";
        fn validate(&self) -> Result<(), crate::section::InvalidSetting> {
            if self.limits.max_name == 0 {
                return Err(crate::section::InvalidSetting::new("limits.max_name", "must be at least 1"));
            }
            Ok(())
        }
    }

    fn schema() -> Schema {
        Schema::new(&ServiceName::new("corepool").unwrap(), vec![SectionSpec::of::<Greeting>()])
    }

    fn load_text(text: &str, overrides: &[Override]) -> Result<Loaded, String> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let src = Source { path: f.path().into(), required: true };
        load(&src, overrides, &schema()).map_err(|e| e.to_string().replace(&f.path().display().to_string(), "FILE"))
    }

    fn core(text: &str, overrides: &[Override]) -> Result<Config, String> {
        load_text(text, overrides).map(|l| l.config)
    }

    #[test]
    fn defaults_are_valid() {
        config::validate(&Config::default()).unwrap();
        assert_eq!(parse(Path::new("x"), None, &[], &schema()).unwrap().sections.get::<Greeting>().unwrap().text, "hello");
    }

    #[test]
    fn reads_values_and_durations() {
        let c = core("listen = \"unix:/tmp/x.sock\"\n[pool]\nthreads = 3\njob_timeout = \"250ms\"\n", &[]).unwrap();
        assert_eq!(c.pool.threads, 3);
        assert_eq!(c.pool.job_timeout, Duration::from_millis(250));
        assert_eq!(c.listen, "unix:/tmp/x.sock");
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = core("pin = true\n\n[pool]\nthreads = 2\nthreadz = 3\n", &[]).unwrap_err();
        assert!(e.starts_with("FILE:5: pool.threadz: unknown field `threadz`"), "{e}");
        let e = core("pin = true\n\n[pol]\nthreads = 2\n", &[]).unwrap_err();
        assert!(e.starts_with("FILE:3: pol: unknown key: corepool's are "), "{e}");
        assert!(e.ends_with("this service's sections are greeting"), "{e}");
        let e = core("pinn = true\n", &[]).unwrap_err();
        assert!(e.starts_with("FILE:1: pinn: unknown key"), "{e}");
    }

    #[test]
    fn bad_type_names_key() {
        let e = core("[http]\nmax_body = \"big\"\n", &[]).unwrap_err();
        assert!(e.starts_with("FILE:2: http.max_body: invalid type"), "{e}");
    }

    #[test]
    fn out_of_range_names_line_and_key() {
        let e = core("# comment\n[pool]\n\nthreads = 0\n", &[]).unwrap_err();
        assert_eq!(e, "FILE:4: pool.threads: must be 1..=256");
    }

    #[test]
    fn backend_allow_takes_addresses_and_networks_and_names_bad_ones() {
        let c = core("[backend]\nallow = [\"10.0.0.1\", \"10.1.0.9/16\", \"fd00::1\"]\n", &[]).unwrap();
        let nets: Vec<String> = c.backend.networks().iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["10.0.0.1/32", "10.1.0.0/16", "fd00::1/128"]);
        assert!(c.backend.enabled() && !Config::default().backend.enabled());
        let e = core("[backend]\n\nallow = [\"10.0.0.1\", \"front.example\"]\n", &[]).unwrap_err();
        assert!(e.starts_with("FILE:3: backend.allow: `front.example` is not an IP address"), "{e}");
        let e = core("[backend]\nbind = \"everywhere\"\n", &[]).unwrap_err();
        assert!(e.starts_with("FILE:2: backend.bind:"), "{e}");
    }

    #[test]
    fn syntax_error_has_line() {
        let e = core("[pool\nthreads = 1\n", &[]).unwrap_err();
        assert!(e.starts_with("FILE:1: "), "{e}");
    }

    #[test]
    fn inline_table_keys_are_found() {
        let e = core("pool = { threads = 1, queue = 0 }\n", &[]).unwrap_err();
        assert_eq!(e, "FILE:1: pool.queue: must be 1..=1000000");
    }

    #[test]
    fn service_sections_get_the_same_errors() {
        let l = load_text("[pool]\nthreads = 2\n\n[greeting]\ntext = \"hi\"\n[greeting.limits]\nmax_name = 5\n", &[]).unwrap();
        let g = l.sections.get::<Greeting>().unwrap();
        assert_eq!((g.text.as_str(), g.limits.max_name), ("hi", 5));
        let e = load_text("[greeting]\ntext = \"hi\"\ntexts = 1\n", &[]).unwrap_err();
        assert!(e.starts_with("FILE:3: greeting.texts: unknown field `texts`"), "{e}");
        let e = load_text("[greeting]\n\ntext = 7\n", &[]).unwrap_err();
        assert!(e.starts_with("FILE:3: greeting.text: invalid type"), "{e}");
        let e = load_text("[greeting.limits]\nmax_name = 0\n", &[]).unwrap_err();
        assert_eq!(e, "FILE:2: greeting.limits.max_name: must be at least 1");
        let set = Override::parse_flag("greeting.limits.max_name=0").unwrap();
        assert_eq!(load_text("", &[set]).unwrap_err(), "--set: greeting.limits.max_name: must be at least 1");
        let set = Override::parse_flag("greeting.text=yo").unwrap();
        assert_eq!(load_text("", &[set]).unwrap().sections.get::<Greeting>().unwrap().text, "yo");
    }

    #[test]
    fn env_maps_sections_nested_keys_and_top_level() {
        let o = schema().env_overrides(vec![
            ("COREPOOL_POOL_JOB_TIMEOUT".into(), "5s".into()),
            ("COREPOOL_LISTEN".into(), "unix:/run/x.sock".into()),
            ("COREPOOL_SHUTDOWN_TIMEOUT".into(), "3s".into()),
            ("COREPOOL_GREETING_LIMITS_MAX_NAME".into(), "9".into()),
            ("COREPOOL_CONFIG".into(), "/x".into()),
            ("PATH".into(), "/bin".into()),
        ]);
        let keys: Vec<_> = o.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["greeting.limits.max_name", "listen", "pool.job_timeout", "shutdown_timeout"]);
        let l = load_text("", &o).unwrap();
        assert_eq!(l.config.pool.job_timeout, Duration::from_secs(5));
        assert_eq!(l.config.shutdown_timeout, Duration::from_secs(3));
        assert_eq!(l.sections.get::<Greeting>().unwrap().limits.max_name, 9);
        let typo = schema().env_overrides(vec![("COREPOOL_POOL_THREADZ".into(), "2".into())]);
        assert_eq!(load_text("", &typo).unwrap_err(), "COREPOOL_POOL_THREADZ: pool.threadz: unknown key");
    }

    #[test]
    fn overrides_win_and_errors_name_origin() {
        let o = Override::parse_flag("pool.threads=4").unwrap();
        assert_eq!(core("[pool]\nthreads = 2\n", &[o]).unwrap().pool.threads, 4);

        let bad = Override { key: "pool.threads".into(), value: "0".into(), origin: "COREPOOL_POOL_THREADS".into() };
        assert_eq!(core("", &[bad]).unwrap_err(), "COREPOOL_POOL_THREADS: pool.threads: must be 1..=256");

        let unknown = Override::parse_flag("pool.nope=1").unwrap();
        assert_eq!(core("", &[unknown]).unwrap_err(), "--set: pool.nope: unknown key");

        let wrong = Override::parse_flag("pin=maybe").unwrap();
        assert!(core("", &[wrong]).unwrap_err().starts_with("--set: pin: invalid type"));
    }

    #[test]
    fn missing_default_file_means_defaults_but_explicit_is_error() {
        let src = Source { path: "/nonexistent/corepool.toml".into(), required: false };
        assert_eq!(load(&src, &[], &schema()).unwrap().config, Config::default());
        let src = Source { path: "/nonexistent/corepool.toml".into(), required: true };
        assert!(load(&src, &[], &schema()).unwrap_err().to_string().starts_with("/nonexistent/corepool.toml: cannot read"));
    }

    #[test]
    fn shown_configuration_loads_back_to_itself() {
        let l = load_text("[pool]\nthreads = 3\n[greeting]\ntext = \"hi\"\n", &[]).unwrap();
        let shown = l.to_toml(&schema());
        let again = parse(Path::new("shown"), Some(&shown), &[], &schema()).unwrap();
        assert_eq!(again.config, l.config);
        assert_eq!(again.sections.get::<Greeting>(), l.sections.get::<Greeting>());
    }
}
