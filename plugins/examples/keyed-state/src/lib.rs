//! Keyed state in all three shapes, per `user_id` key: a counter (ValueState), the items seen
//! (ListState) and a count per item (MapState). Emits one row per input record:
//! `{"user_id", "count", "items", "item_counts"}`. An input with item `"trap"` traps after
//! writing its count and item (for tests: a record that traps changes no state).
//!
//! With config `{"quiet": true}` only an input with item `"report"` reads the key and emits
//! its row; the others count and add their item and nothing else, so that the SDK does not
//! enter them in the host (their writes cross with a later record's: for tests of that).

use std::collections::BTreeMap;

use weir_sdk::{current_key_str, emit, Config, Error, ListState, MapState, Process, Record, Result, ValueState};

/// Input rows: `{"user_id": "...", "item": "..."}`.
#[derive(serde::Deserialize)]
struct Input {
    item: String,
}

/// The operator; state handles are names, the state itself lives in the host.
pub struct KeyedState {
    quiet: bool,
    count: ValueState<u64>,
    items: ListState<String>,
    item_counts: MapState<String, u64>,
}

#[weir_sdk::process]
impl Process for KeyedState {
    fn open(config: &Config) -> Result<Self> {
        Ok(KeyedState {
            quiet: config.field_or("quiet", false)?,
            count: ValueState::new("count"),
            items: ListState::new("items"),
            item_counts: MapState::new("item-counts"),
        })
    }

    fn process(&mut self, rec: Record) -> Result<()> {
        let input: Input = rec.json()?;
        let quiet = self.quiet && input.item != "report";
        let user = match quiet {
            true => None,
            false => Some(current_key_str().ok_or_else(|| Error::other("keyed-state needs key_by"))?),
        };
        let count = self.count.get()?.unwrap_or(0) + 1;
        self.count.set(&count)?;
        self.items.add(&input.item)?;
        if input.item == "trap" {
            panic!("keyed-state: item \"trap\" traps after its writes");
        }
        if quiet {
            return Ok(());
        }
        let n = self.item_counts.get(&input.item)?.unwrap_or(0) + 1;
        self.item_counts.put(&input.item, &n)?;
        let item_counts: BTreeMap<String, u64> = self.item_counts.entries()?.into_iter().collect();
        let row = serde_json::json!({"user_id": user, "count": count, "items": self.items.get()?, "item_counts": item_counts});
        emit(&Record::from_json(&row)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::ProcessHarness;

    #[test]
    fn state_is_per_key() {
        let mut h = ProcessHarness::<KeyedState>::new(serde_json::json!({})).unwrap();
        let rec = |item: &str| Record::from_json(&serde_json::json!({"item": item})).unwrap();
        h.process("a", rec("x")).unwrap();
        h.process("b", rec("y")).unwrap();
        h.process("a", rec("x")).unwrap();
        let out: Vec<serde_json::Value> = h.take_output().iter().map(|r| r.json().unwrap()).collect();
        assert_eq!(out[2], serde_json::json!({"user_id": "a", "count": 2, "items": ["x", "x"], "item_counts": {"x": 2}}));
        assert_eq!(out[1]["count"], 1);
    }
}
