//! Seed map of Flink's tutorial: `x * factor` on JSON numbers (`factor` from config, default 2).

use weir_sdk::{Config, Map, Mapped, Record, RecordView, Result};

/// Multiplies by a configured factor.
pub struct Double {
    factor: i64,
}

#[weir_sdk::map]
impl Map for Double {
    fn open(config: &Config) -> Result<Self> {
        Ok(Double { factor: config.field_or("factor", 2)? })
    }

    fn map(&mut self, rec: Record) -> Result<Record> {
        self.map_view(rec.view()).map(|m| m.apply(rec))
    }

    /// Reads the number where it lies and answers with the new value only.
    fn map_view(&mut self, rec: RecordView<'_>) -> Result<Mapped> {
        let x: i64 = rec.json()?;
        let y = x.checked_mul(self.factor).ok_or_else(|| weir_sdk::Error::invalid_input(format!("{x} * {} overflows", self.factor)))?;
        Mapped::json(&y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::run_map;

    #[test]
    fn doubles_and_rejects_non_numbers() {
        let recs = vec![Record::from_json(&3).unwrap(), Record::from_bytes("\"x\"")];
        let out = run_map::<Double>(serde_json::json!({}), recs).unwrap();
        assert_eq!(out[0].as_ref().unwrap().value, b"6");
        assert!(matches!(out[1], Err(weir_sdk::Error::InvalidInput(_))));
        let out = run_map::<Double>(serde_json::json!({"factor": 10}), vec![Record::from_json(&3).unwrap()]).unwrap();
        assert_eq!(out[0].as_ref().unwrap().value, b"30");
    }
}
