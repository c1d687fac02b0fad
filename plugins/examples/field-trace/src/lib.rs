//! A map that reports what the host found of each record: with config
//! `{"read_fields": [names]}` it asks the host for those members (`weir_sdk::read_fields`)
//! and maps each record to `{"fields": [...]}`, each member's text as the host found it or
//! null where it found none, and `"only"`: whether the host found those members and no
//! other (`RecordView::has_only_fields`). The map-side twin of `event-trace`'s `"fields"`.

use weir_sdk::{Config, Map, Mapped, Record, RecordView, Result};

/// The operator.
pub struct FieldTrace {
    names: Vec<String>,
}

#[weir_sdk::map]
impl Map for FieldTrace {
    fn open(config: &Config) -> Result<Self> {
        let names: Vec<String> = config.field_or("read_fields", Vec::new())?;
        weir_sdk::read_fields(&names.iter().map(String::as_str).collect::<Vec<_>>());
        Ok(FieldTrace { names })
    }

    fn map(&mut self, rec: Record) -> Result<Record> {
        self.map_view(rec.view()).map(|m| m.apply(rec))
    }

    fn map_view(&mut self, rec: RecordView<'_>) -> Result<Mapped> {
        let text = |i| rec.field(i).map(|f| String::from_utf8_lossy(f).into_owned());
        let fields: Vec<Option<String>> = (0..self.names.len()).map(text).collect();
        let row = serde_json::json!({"fields": fields, "only": rec.has_only_fields()});
        Ok(Mapped::Value(serde_json::to_vec(&row).map_err(|e| weir_sdk::Error::other(e.to_string()))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::run_map;

    #[test]
    fn reports_the_members_found() {
        let records = [r#"{"a": 1, "b": "x"}"#, r#"{"b": [2], "c": 3}"#, r#"{"a": 1, "a": 2}"#, "[1]"].map(Record::from_bytes).to_vec();
        let out = run_map::<FieldTrace>(serde_json::json!({"read_fields": ["a", "b"]}), records).unwrap();
        let rows: Vec<serde_json::Value> = out.into_iter().map(|r| r.unwrap().json().unwrap()).collect();
        assert_eq!(
            rows,
            [
                serde_json::json!({"fields": ["1", "\"x\""], "only": true}),
                serde_json::json!({"fields": [null, "[2]"], "only": false}),
                serde_json::json!({"fields": [null, null], "only": false}),
                serde_json::json!({"fields": [null, null], "only": false}),
            ]
        );
    }
}
