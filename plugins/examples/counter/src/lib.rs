//! Counts records per key (a ValueState) and emits one row per record:
//! `{"key", "count", "n", "version"}`, where `n` is the record's own `n` field (when it has
//! one) and `version`
//! says which build of this plugin counted it. The hot-reload tests swap one build for
//! another under a running job and check that counts continue with no gap and no repeat.
//!
//! v1 and v2 keep the count as a bare number; v3 keeps it as `{"count": n}` and migrates the
//! state it takes over (`weir_sdk::Migrate`), so counts go on across a reload to it.

use serde::{Deserialize, Serialize};
use weir_sdk::{current_key_str, emit, Config, Error, Process, Record, Result, ValueState};

/// Which build this is.
const VERSION: &str = if cfg!(feature = "v3") {
    "v3"
} else if cfg!(feature = "v2") {
    "v2"
} else {
    "v1"
};

/// How v3 keeps a key's count.
#[derive(Serialize, Deserialize)]
struct Tally {
    count: u64,
}

/// The operator; the count lives in the host's keyed state.
pub struct Counter {
    /// v1 and v2: the count.
    count: ValueState<u64>,
    /// v3: the same state, another layout.
    tally: ValueState<Tally>,
}

impl Counter {
    fn load(&self) -> Result<u64> {
        match cfg!(feature = "v3") {
            true => Ok(self.tally.get()?.map_or(0, |t| t.count)),
            false => Ok(self.count.get()?.unwrap_or(0)),
        }
    }

    fn store(&self, count: u64) -> Result<()> {
        match cfg!(feature = "v3") {
            true => self.tally.set(&Tally { count }),
            false => self.count.set(&count),
        }
    }
}

#[cfg_attr(feature = "v3", weir_sdk::process(migrate))]
#[cfg_attr(not(feature = "v3"), weir_sdk::process)]
impl Process for Counter {
    fn open(_: &Config) -> Result<Self> {
        if cfg!(feature = "bad-init") {
            return Err(Error::invalid_config("this build refuses every config"));
        }
        Ok(Counter { count: ValueState::new("count"), tally: ValueState::new("count") })
    }

    fn process(&mut self, rec: Record) -> Result<()> {
        if cfg!(feature = "trap") {
            panic!("this build traps on every record");
        }
        let input: serde_json::Value = rec.json()?;
        let key = current_key_str().ok_or_else(|| Error::other("counter needs key_by"))?;
        let count = self.load()? + 1;
        self.store(count)?;
        let mut row = serde_json::json!({"key": key, "count": count, "version": VERSION});
        if !input["n"].is_null() {
            row["n"] = input["n"].clone();
        }
        emit(&Record::from_json(&row)?);
        Ok(())
    }
}

/// v3 takes over v1's and v2's counts: a bare number becomes `{"count": n}`.
#[cfg(feature = "v3")]
impl weir_sdk::Migrate for Counter {
    fn migrate(&mut self, state: &str, _map_key: Option<&[u8]>, value: &[u8]) -> Result<Option<Vec<u8>>> {
        use weir_sdk::migrate::{decode, encode};
        match state {
            "count" => Ok(Some(encode(&Tally { count: decode::<u64>(state, value)? })?)),
            _ => Ok(Some(value.to_vec())),
        }
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
