//! Reading a few fields out of JSON records without building a tree.
//!
//! Event time, key-by fields and aggregate fields name a handful of (dotted) paths in each
//! record. [`extract`] walks the record once with serde_json, validating all of it as a full
//! parse would, and hands back the raw text of just the wanted values: no `Value` tree, no
//! allocation for the fields it skips.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A dotted path, split: `a.b` is `["a", "b"]`.
pub type Path = Vec<String>;

/// Finds the values at `paths` in `json`, one slot per path (`None` when absent), after
/// checking that `json` is one valid JSON document.
pub fn extract<'a>(json: &'a [u8], paths: &[Path], out: &mut Vec<Option<&'a RawValue>>) -> Result<(), serde_json::Error> {
    out.clear();
    out.resize(paths.len(), None);
    let mut wanted: [(usize, &[String]); 4] = [(0, &[]); 4];
    let many: Vec<(usize, &[String])>;
    let wanted = if paths.len() <= wanted.len() {
        for (i, p) in paths.iter().enumerate() {
            wanted[i] = (i, p.as_slice());
        }
        &wanted[..paths.len()]
    } else {
        many = paths.iter().enumerate().map(|(i, p)| (i, p.as_slice())).collect();
        &many
    };
    // Checking UTF-8 once up front lets serde_json skip the check per string; invalid UTF-8
    // takes the byte path, which reports the error as serde_json always does.
    match std::str::from_utf8(json) {
        Ok(text) => {
            let mut de = serde_json::Deserializer::from_str(text);
            de.deserialize_any(Find { wanted, out })?;
            de.end()
        }
        Err(_) => {
            let mut de = serde_json::Deserializer::from_slice(json);
            de.deserialize_any(Find { wanted, out })?;
            de.end()
        }
    }
}

/// The value at `path` in a raw JSON value (nested paths walk into objects).
fn descend<'a>(raw: &'a RawValue, rest: &[(usize, &[String])], out: &mut [Option<&'a RawValue>]) {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    // Already validated as part of the whole document.
    let _ = de.deserialize_any(Find { wanted: rest, out });
}

struct Find<'w, 'p, 'o, 'a> {
    wanted: &'w [(usize, &'p [String])],
    out: &'o mut [Option<&'a RawValue>],
}

impl<'de: 'a, 'a> Visitor<'de> for Find<'_, '_, '_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let name = key.as_str();
            if !self.wanted.iter().any(|(_, p)| p.first().is_some_and(|f| f == name)) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let raw: &'de RawValue = map.next_value()?;
            let mut deeper = Vec::new();
            for &(i, p) in self.wanted {
                match p {
                    [f] if f == name => self.out[i] = Some(raw),
                    [f, rest @ ..] if f == name && !rest.is_empty() => deeper.push((i, rest)),
                    _ => {}
                }
            }
            if !deeper.is_empty() {
                descend(raw, &deeper, self.out);
            }
        }
        Ok(())
    }
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for Find<'_, '_, '_, 'a> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// An object key: borrowed unless it had escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(s))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(s.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}

/// A raw value that is JSON `null` counts as absent (as in key-by and aggregates).
pub fn non_null(raw: Option<&RawValue>) -> Option<&RawValue> {
    raw.filter(|r| r.get() != "null")
}

/// A raw JSON string's contents without copying when it has no escapes.
pub fn raw_str(raw: &RawValue) -> Option<std::borrow::Cow<'_, str>> {
    let s = raw.get();
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(s).ok().map(std::borrow::Cow::Owned)
    } else {
        Some(std::borrow::Cow::Borrowed(inner))
    }
}

/// A raw JSON integer (not a float, not a boolean), as serde_json's `as_i64` reads it.
pub fn raw_i64(raw: &RawValue) -> Option<i64> {
    let s = raw.get();
    // Valid JSON text that parses as an i64 is an integer literal; serde_json reads `-0` as
    // the float -0.0.
    if s == "-0" {
        None
    } else {
        s.parse().ok()
    }
}

/// Appends the value as serde_json would print it: plain strings and integers as they are,
/// anything else through a parse (so `1.50` reads `1.5` and objects lose their spaces).
pub fn write_normalized(raw: &RawValue, out: &mut Vec<u8>) {
    let s = raw.get();
    let plain_str = s.starts_with('"') && !s.contains('\\');
    if plain_str || raw_i64(raw).is_some() {
        out.extend_from_slice(s.as_bytes());
    } else {
        let _ = serde_json::to_writer(out, &value(raw));
    }
}

/// [`write_normalized`] into a new string.
pub fn normalized(raw: &RawValue) -> String {
    let mut out = Vec::with_capacity(raw.get().len());
    write_normalized(raw, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// The parsed value (for slow paths and messages).
pub fn value(raw: &RawValue) -> serde_json::Value {
    serde_json::from_str(raw.get()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(ps: &[&str]) -> Vec<Path> {
        ps.iter().map(|p| p.split('.').map(str::to_string).collect()).collect()
    }

    fn get(json: &str, ps: &[&str]) -> Result<Vec<Option<String>>, String> {
        let ps = paths(ps);
        let mut out = Vec::new();
        extract(json.as_bytes(), &ps, &mut out).map_err(|e| e.to_string())?;
        Ok(out.into_iter().map(|r| r.map(|r| r.get().to_string())).collect())
    }

    #[test]
    fn finds_top_level_and_nested_fields() {
        let j = r#"{"a": 1, "b": {"c": "x", "d": [1, 2]}, "e\u0041": true, "f": null}"#;
        assert_eq!(
            get(j, &["a", "b.c", "b.d", "b", "eA", "f", "zz", "a.q"]).unwrap(),
            vec![
                Some("1".into()),
                Some(r#""x""#.into()),
                Some("[1, 2]".into()),
                Some(r#"{"c": "x", "d": [1, 2]}"#.into()),
                Some("true".into()),
                Some("null".into()),
                None,
                None
            ]
        );
    }

    #[test]
    fn validates_the_whole_document_like_a_full_parse() {
        for bad in ["", "{", r#"{"a": 1,}"#, r#"{"a": 1} x"#, r#"{"a": [1,}"#, "nul"] {
            let full = serde_json::from_str::<serde_json::Value>(bad).unwrap_err().to_string();
            assert_eq!(get(bad, &["a"]).unwrap_err(), full, "{bad}");
        }
        assert_eq!(get("[1, {\"a\": 2}]", &["a"]).unwrap(), vec![None]);
        assert_eq!(get("7", &["a"]).unwrap(), vec![None]);
    }

    #[test]
    fn reads_strings_and_integers() {
        let j = r#"{"s": "pl\"ain", "t": "plain", "i": -0, "f": 1.5, "b": true, "big": 99999999999999999999}"#;
        let ps = paths(&["s", "t", "i", "f", "b", "big"]);
        let mut out = Vec::new();
        extract(j.as_bytes(), &ps, &mut out).unwrap();
        let v: Vec<&RawValue> = out.into_iter().map(Option::unwrap).collect();
        assert_eq!(raw_str(v[0]).unwrap(), "pl\"ain");
        assert!(matches!(raw_str(v[1]).unwrap(), std::borrow::Cow::Borrowed("plain")));
        assert_eq!(raw_str(v[2]), None);
        assert_eq!(raw_i64(v[2]), None);
        assert_eq!(raw_i64(v[3]), None);
        assert_eq!(raw_i64(v[4]), None);
        assert_eq!(raw_i64(v[5]), None);
        let norm: Vec<String> = v.iter().map(|r| normalized(r)).collect();
        assert_eq!(norm, [r#""pl\"ain""#, r#""plain""#, "-0.0", "1.5", "true", "1e+20"]);
        let mut out = Vec::new();
        extract(br#"{"o": {"a": 1.50, "b": [1, 2]}}"#, &paths(&["o"]), &mut out).unwrap();
        assert_eq!(normalized(out[0].unwrap()), r#"{"a":1.5,"b":[1,2]}"#);
    }
}
