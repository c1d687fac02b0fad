//! {{name}}: counts the records of each key and emits the running count.

use weir_sdk::{current_key_str, emit, Config, Process, Record, Result, ValueState};

pub struct {{class}} {
    count: ValueState<u64>,
}

#[weir_sdk::process]
impl Process for {{class}} {
    fn open(_config: &Config) -> Result<Self> {
        Ok({{class}} { count: ValueState::new("count") })
    }

    fn process(&mut self, _rec: Record) -> Result<()> {
        let n = self.count.get()?.unwrap_or(0) + 1;
        self.count.set(&n)?;
        emit(&Record::from_json(&serde_json::json!({"key": current_key_str(), "count": n}))?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::ProcessHarness;

    #[test]
    fn counts_per_key() {
        let mut h = ProcessHarness::<{{class}}>::new(serde_json::json!({})).unwrap();
        for key in ["a", "b", "a"] {
            h.process(key, Record::from_bytes("{}")).unwrap();
        }
        let rows: Vec<serde_json::Value> = h.take_output().iter().map(|r| r.json().unwrap()).collect();
        assert_eq!(
            rows,
            [serde_json::json!({"key": "a", "count": 1}), serde_json::json!({"key": "b", "count": 1}), serde_json::json!({"key": "a", "count": 2})]
        );
    }
}
