//! Enriches each JSON record with what the host lets the plugin see, so that an operator's
//! `grants` can be shown at work:
//! - `"file": PATH` adds `"content"`, the file's text (a path inside a granted directory);
//! - `"env": NAME` adds `"value"`, the environment variable's value;
//! - `"clock": true` adds `"now"`, the wall clock in ms since the epoch.
//!
//! A file or variable the operator was not granted is an error for that record (it goes to
//! the dead letters with the reason); without the clock grant the wall clock reads 0.

use std::time::{SystemTime, UNIX_EPOCH};

use weir_sdk::{Config, Error, Map, Record, Result};

/// Stateless; reads on every record, so a changed file is seen at once.
pub struct Lookup;

#[weir_sdk::map]
impl Map for Lookup {
    fn open(_: &Config) -> Result<Self> {
        Ok(Lookup)
    }

    fn map(&mut self, rec: Record) -> Result<Record> {
        let mut row: serde_json::Value = rec.json()?;
        let obj = row.as_object_mut().ok_or_else(|| Error::invalid_input("expected a JSON object"))?;
        if let Some(path) = obj.get("file").and_then(|p| p.as_str()).map(str::to_string) {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::other(format!("cannot read `{path}`: {e}")))?;
            obj.insert("content".into(), text.trim_end().into());
        }
        if let Some(name) = obj.get("env").and_then(|p| p.as_str()).map(str::to_string) {
            let value = std::env::var(&name).map_err(|e| Error::other(format!("environment variable `{name}`: {e}")))?;
            obj.insert("value".into(), value.into());
        }
        if obj.get("clock").and_then(|c| c.as_bool()) == Some(true) {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
            obj.insert("now".into(), now.into());
        }
        Record::from_json(&row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::run_map;

    #[test]
    fn reads_what_it_is_asked_for() {
        std::env::set_var("LOOKUP_TEST_VAR", "eu");
        let dir = std::env::temp_dir().join(format!("lookup-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.txt");
        std::fs::write(&file, "hello\n").unwrap();
        let recs = vec![
            Record::from_json(&serde_json::json!({"file": file.to_str().unwrap()})).unwrap(),
            Record::from_json(&serde_json::json!({"env": "LOOKUP_TEST_VAR"})).unwrap(),
            Record::from_json(&serde_json::json!({"env": "LOOKUP_TEST_UNSET"})).unwrap(),
            Record::from_json(&serde_json::json!({"file": dir.join("missing").to_str().unwrap()})).unwrap(),
        ];
        let out = run_map::<Lookup>(serde_json::json!({}), recs).unwrap();
        let row = |i: usize| out[i].as_ref().unwrap().json::<serde_json::Value>().unwrap();
        assert_eq!(row(0)["content"], "hello");
        assert_eq!(row(1)["value"], "eu");
        assert!(out[2].as_ref().unwrap_err().to_string().contains("LOOKUP_TEST_UNSET"), "{:?}", out[2]);
        assert!(out[3].as_ref().unwrap_err().to_string().contains("cannot read"), "{:?}", out[3]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
