//! A map that returns every record as it came (value, key, event time, headers). It measures
//! what the plugin boundary costs on its own (`bench/benches/wasm_tax.rs`) and shows that a
//! record survives the round trip byte for byte (`tests/e2e/seed.rs`).
//!
//! Config `mode`: `"copy"` (the default) copies each record into an owned [`Record`] and
//! sends it back, the whole round trip; `"unchanged"` answers [`Mapped::Unchanged`], so
//! nothing crosses back.

use weir_sdk::{Config, Error, Map, Mapped, Record, RecordView, Result};

/// The operator, in one of its two modes.
pub struct Identity {
    unchanged: bool,
}

#[weir_sdk::map]
impl Map for Identity {
    fn open(config: &Config) -> Result<Self> {
        let unchanged = match config.field_or("mode", "copy".to_string())?.as_str() {
            "copy" => false,
            "unchanged" => true,
            other => return Err(Error::invalid_config(format!("mode `{other}`: use \"copy\" or \"unchanged\""))),
        };
        Ok(Identity { unchanged })
    }

    fn map(&mut self, rec: Record) -> Result<Record> {
        Ok(rec)
    }

    fn map_view(&mut self, rec: RecordView<'_>) -> Result<Mapped> {
        Ok(if self.unchanged { Mapped::Unchanged } else { Mapped::Record(rec.to_record()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::run_map;

    #[test]
    fn returns_the_record_in_both_modes() {
        let r = Record {
            key: Some(b"k".to_vec()),
            value: b"\xff not json".to_vec(),
            timestamp: Some(7),
            headers: vec![("h".into(), b"v".to_vec()), ("h".into(), b"w".to_vec())],
        };
        let parts = |r: &Record| (r.key.clone(), r.value.clone(), r.timestamp, r.headers.clone());
        for mode in ["copy", "unchanged"] {
            let out = run_map::<Identity>(serde_json::json!({ "mode": mode }), vec![r.clone()]).unwrap();
            assert_eq!(out.len(), 1);
            assert_eq!(parts(out[0].as_ref().unwrap()), parts(&r), "{mode}");
        }
        let mut op = Identity::open(&Config(serde_json::json!({}))).unwrap();
        assert!(matches!(op.map_view(r.view()), Ok(Mapped::Record(_))), "copy is the default");
        assert!(Identity::open(&Config(serde_json::json!({ "mode": "nope" }))).is_err());
    }
}
