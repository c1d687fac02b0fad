//! Counts records per key (a ValueState) and emits one row per record:
//! `{"key", "count", "n", "version"}`, where `n` is the record's own `n` field and `version`
//! says which build of this plugin counted it. The hot-reload tests swap one build for
//! another under a running job and check that counts continue with no gap and no repeat.

use weir_sdk::{current_key_str, emit, Config, Error, Process, Record, Result, ValueState};

/// Which build this is.
const VERSION: &str = if cfg!(feature = "v2") { "v2" } else { "v1" };

/// The operator; the count lives in the host's keyed state.
pub struct Counter {
    count: ValueState<u64>,
}

#[weir_sdk::process]
impl Process for Counter {
    fn open(_: &Config) -> Result<Self> {
        if cfg!(feature = "bad-init") {
            return Err(Error::invalid_config("this build refuses every config"));
        }
        Ok(Counter { count: ValueState::new("count") })
    }

    fn process(&mut self, rec: Record) -> Result<()> {
        if cfg!(feature = "trap") {
            panic!("this build traps on every record");
        }
        let input: serde_json::Value = rec.json()?;
        let key = current_key_str().ok_or_else(|| Error::other("counter needs key_by"))?;
        let count = self.count.get()?.unwrap_or(0) + 1;
        self.count.set(&count)?;
        let row = serde_json::json!({"key": key, "count": count, "n": input["n"], "version": VERSION});
        emit(&Record::from_json(&row)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::ProcessHarness;

    #[test]
    fn counts_per_key() {
        let mut h = ProcessHarness::<Counter>::new(serde_json::json!({})).unwrap();
        let rec = |n: u64| Record::from_json(&serde_json::json!({"n": n})).unwrap();
        h.process("a", rec(1)).unwrap();
        h.process("b", rec(2)).unwrap();
        h.process("a", rec(3)).unwrap();
        let out: Vec<serde_json::Value> = h.take_output().iter().map(|r| r.json().unwrap()).collect();
        assert_eq!(out[2], serde_json::json!({"key": "a", "count": 2, "n": 3, "version": VERSION}));
    }
}
