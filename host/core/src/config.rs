//! Typed configuration tables: the part of a job-file table that belongs to one kind (a
//! connector's fields, a window shape's), read into that kind's own struct, with errors that
//! name the field.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// A refused field of a configuration table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field inside the table (`""`: the table itself).
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl FieldError {
    /// An error at `field` (a key of the table, or `""`).
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }
}

/// Reads `table` into `C`. The error names the field that failed (an unknown one too), or
/// `""` for a missing one.
pub fn from_table<C: DeserializeOwned>(table: toml::Table) -> Result<C, FieldError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // toml's errors end in "in `FIELD`" on a line of their own; the field is named anyway.
        let message = message.split("\nin `").next().unwrap_or_default().trim().to_string();
        FieldError { field: if path == "." { String::new() } else { path }, message }
    })
}

/// A config's own checks, beyond what its types let through.
pub trait Check {
    /// Refuses values the types let through (the field is relative to the config's table).
    fn check(&self) -> Result<(), FieldError> {
        Ok(())
    }
}

/// Reads `table` into `C` ([`from_table`]) and runs its [`Check`].
pub fn checked<C: DeserializeOwned + Check>(table: toml::Table) -> Result<C, FieldError> {
    let c: C = from_table(table)?;
    c.check()?;
    Ok(c)
}

/// Deserializes a duration written as text (`"10s"`, `"500ms"`), checked by
/// [`crate::time::parse_duration`]. For `#[serde(deserialize_with = ...)]`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    crate::time::parse_duration(&text).map_err(serde::de::Error::custom)
}

/// [`duration`] for an optional field.
pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// [`duration`] that refuses zero.
pub fn positive_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = duration(d)?;
    if v.as_millis() == 0 {
        return Err(serde::de::Error::custom("must be longer than 0"));
    }
    Ok(v)
}

/// A TOML value as JSON (plugin configs, inline values and constant fields are JSON).
pub fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => (*i).into(),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map(serde_json::Value::Number).unwrap_or(serde_json::Value::Null),
        toml::Value::Boolean(b) => (*b).into(),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(a) => serde_json::Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => serde_json::Value::Object(t.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case")]
    #[allow(dead_code)]
    struct Conf {
        path: String,
        #[serde(default, deserialize_with = "opt_duration")]
        every: Option<Duration>,
    }

    fn table(text: &str) -> toml::Table {
        text.parse().expect("a table")
    }

    #[test]
    fn errors_name_the_field() {
        let e = from_table::<Conf>(table("pth = 'x'")).unwrap_err();
        assert_eq!(e.field, "pth");
        assert!(e.message.contains("expected `path`"), "{e:?}");
        let e = from_table::<Conf>(table("path = 'x'\nevery = 'soon'")).unwrap_err();
        assert_eq!((e.field.as_str(), e.message.contains("is not a duration")), ("every", true), "{e:?}");
        assert!(!e.message.contains('\n'), "{e:?}");
        let e = from_table::<Conf>(table("every = '1s'")).unwrap_err();
        assert_eq!((e.field.as_str(), e.message.as_str()), ("", "missing field `path`"));
        let c = from_table::<Conf>(table("path = 'x'\nevery = '2s'")).expect("valid");
        assert_eq!(c.every, Some(Duration::from_secs(2)));
    }
}
