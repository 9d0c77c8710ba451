//! A service's own configuration: typed sections of its TOML file, beside
//! corepool's, with the same file:line:key errors, environment overrides,
//! `config check` and SIGHUP reload.
//!
//! ```
//! use corepool_runtime::section::{InvalidSetting, Section};
//! use serde::{Deserialize, Serialize};
//!
//! /// `[greeting]` in /etc/myapp/myapp.toml.
//! #[derive(Debug, Clone, Default, Serialize, Deserialize)]
//! #[serde(deny_unknown_fields, default)]
//! struct Greeting {
//!     text: String,
//! }
//!
//! impl Section for Greeting {
//!     const NAME: &'static str = "greeting";
//!     fn validate(&self) -> Result<(), InvalidSetting> {
//!         if self.text.len() > 100 {
//!             return Err(InvalidSetting::new("text", "must be at most 100 bytes"));
//!         }
//!         Ok(())
//!     }
//! }
//! ```
//!
//! Register it with `Service::section::<Greeting>()`; handlers read the
//! current value with the [`crate::Settings`] extractor (or
//! [`crate::State::section`] through [`crate::Ctx`]), which follows SIGHUP reloads.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Serialize;

/// One section of a service's configuration file.
///
/// `Default` gives the built-in values (what the packaged file lists);
/// `#[serde(deny_unknown_fields, default)]` on the struct makes unknown keys
/// errors and missing keys defaults, as in corepool's own sections.
pub trait Section: Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static {
    /// The table's name: `[NAME]` in the file, `PREFIX_NAME_KEY` in the environment.
    const NAME: &'static str;

    /// What the section and its keys are for: written as comments above the
    /// section in the packaged configuration file.
    const DOC: &'static str = "";

    /// Checks serde cannot express. The error names the key inside this
    /// section (`"text"`, or `"limits.max"` for a nested table); the loader
    /// reports it with the file, line and whole key (`greeting.text`).
    fn validate(&self) -> Result<(), InvalidSetting> {
        Ok(())
    }
}

/// A setting that fails a check serde cannot express: which key, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidSetting {
    /// The key, relative to its section (`text`, `limits.max`).
    pub key: String,
    /// What is wrong with its value (`must be at most 100 bytes`).
    pub message: String,
}

impl InvalidSetting {
    /// `key` is invalid because `message`.
    pub fn new(key: impl Into<String>, message: impl std::fmt::Display) -> InvalidSetting {
        InvalidSetting { key: key.into(), message: message.to_string() }
    }
}

type Value = Arc<dyn Any + Send + Sync>;

/// A section with its type erased, so the loader can hold several.
#[derive(Clone)]
pub struct SectionSpec {
    pub(crate) name: &'static str,
    doc: &'static str,
    pub(crate) type_id: TypeId,
    type_name: &'static str,
    default: fn() -> Value,
    parse: fn(&str, &'static str) -> Result<Value, toml::de::Error>,
    to_table: fn(&Value) -> Result<toml::Table, String>,
    from_table: fn(toml::Table) -> Result<Value, String>,
    validate: fn(&Value) -> Result<(), InvalidSetting>,
}

impl std::fmt::Debug for SectionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] ({})", self.name, self.type_name)
    }
}

fn downcast<T: Section>(v: &Value) -> &T {
    v.downcast_ref::<T>().expect("a section's value has the section's type")
}

impl SectionSpec {
    /// The spec of section type `T`.
    pub fn of<T: Section>() -> SectionSpec {
        SectionSpec {
            name: T::NAME,
            doc: T::DOC,
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
            default: || Arc::new(T::default()),
            parse: |text, name| parse_section::<T>(text, name).map(|v| Arc::new(v) as Value),
            to_table: |v| toml::Table::try_from(downcast::<T>(v)).map_err(|e| e.to_string()),
            from_table: |t| toml::Value::Table(t).try_into::<T>().map(|v| Arc::new(v) as Value).map_err(|e| e.message().trim().to_string()),
            validate: |v| downcast::<T>(v).validate(),
        }
    }

    /// `[NAME]`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn default_value(&self) -> Value {
        (self.default)()
    }

    /// Deserializes this section out of a whole document (spans intact, so
    /// errors point at the line); a missing table means the defaults.
    pub(crate) fn parse(&self, text: &str) -> Result<Value, toml::de::Error> {
        (self.parse)(text, self.name)
    }

    pub(crate) fn to_table(&self, v: &Value) -> Result<toml::Table, String> {
        (self.to_table)(v)
    }

    pub(crate) fn value_of(&self, t: toml::Table) -> Result<Value, String> {
        (self.from_table)(t)
    }

    pub(crate) fn validate(&self, v: &Value) -> Result<(), InvalidSetting> {
        (self.validate)(v)
    }

    /// What the section is for (comment text, one or more lines).
    pub fn doc(&self) -> &'static str {
        self.doc
    }

    /// The section's defaults as TOML, under its `[NAME]` header.
    pub fn default_toml(&self) -> String {
        let table = self.to_table(&self.default_value()).unwrap_or_default();
        let mut doc = toml::Table::new();
        doc.insert(self.name.to_string(), toml::Value::Table(table));
        toml::to_string(&doc).unwrap_or_default()
    }
}

/// Picks one top-level table out of a document and deserializes it as `T`,
/// skipping every other key; the deserializer is the document's, so an error
/// inside the table carries its position.
fn parse_section<T: Section>(text: &str, name: &'static str) -> Result<T, toml::de::Error> {
    struct Pick<T>(&'static str, PhantomData<T>);
    impl<'de, T: Section> Visitor<'de> for Pick<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a TOML document")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<String>()? {
                if key == self.0 {
                    found = Some(map.next_value::<T>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found.unwrap_or_default())
        }
    }
    impl<'de, T: Section> DeserializeSeed<'de> for Pick<T> {
        type Value = T;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
            d.deserialize_map(self)
        }
    }
    Pick::<T>(name, PhantomData).deserialize(toml::Deserializer::parse(text)?)
}

/// The current values of a service's sections, by type.
#[derive(Clone, Default)]
pub struct Sections(HashMap<TypeId, Value>);

impl std::fmt::Debug for Sections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sections({})", self.0.len())
    }
}

impl Sections {
    pub(crate) fn insert(&mut self, spec: &SectionSpec, v: Value) {
        self.0.insert(spec.type_id, v);
    }

    pub(crate) fn get_erased(&self, spec: &SectionSpec) -> Option<&Value> {
        self.0.get(&spec.type_id)
    }

    /// The value of section `T`, if the service registered it.
    pub fn get<T: Section>(&self) -> Option<Arc<T>> {
        self.0.get(&TypeId::of::<T>()).cloned().and_then(|v| v.downcast::<T>().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Greeting {
        text: String,
        times: u32,
    }
    impl Default for Greeting {
        fn default() -> Self {
            Greeting { text: "hello".into(), times: 1 }
        }
    }
    impl Section for Greeting {
        const NAME: &'static str = "greeting";
    }

    #[test]
    fn picks_its_table_and_ignores_the_rest() {
        let spec = SectionSpec::of::<Greeting>();
        let v = spec.parse("listen = \"x\"\n[pool]\nthreads = 2\n[greeting]\ntimes = 3\n").unwrap();
        assert_eq!(downcast::<Greeting>(&v), &Greeting { text: "hello".into(), times: 3 });
        let v = spec.parse("[pool]\nthreads = 2\n").unwrap();
        assert_eq!(downcast::<Greeting>(&v), &Greeting::default());
        assert_eq!(spec.default_toml(), "[greeting]\ntext = \"hello\"\ntimes = 1\n");
    }

    #[test]
    fn errors_inside_the_table_keep_their_position() {
        let spec = SectionSpec::of::<Greeting>();
        let text = "[pool]\nthreads = 2\n\n[greeting]\ntimes = \"many\"\n";
        let e = spec.parse(text).unwrap_err();
        let span = e.span().expect("a span");
        assert_eq!(&text[span], "\"many\"");
    }

    #[test]
    fn sections_are_found_by_type() {
        let spec = SectionSpec::of::<Greeting>();
        let mut s = Sections::default();
        assert!(s.get::<Greeting>().is_none());
        s.insert(&spec, spec.default_value());
        assert_eq!(s.get::<Greeting>().unwrap().times, 1);
    }
}
