//! Window aggregate plugin: count, sum and average of the numeric field named by `field` in
//! config (default `value`). Records without the field count but add nothing to the sum.

use weir_sdk::{Aggregate, Config, Record, Result};

/// Accumulator kept by the host between calls.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Acc {
    count: u64,
    sum: f64,
}

/// The operator.
pub struct Avg {
    field: String,
}

#[weir_sdk::aggregate]
impl Aggregate for Avg {
    type Acc = Acc;

    fn open(config: &Config) -> Result<Self> {
        Ok(Avg { field: config.field_or("field", "value".to_string())? })
    }

    fn add(&mut self, acc: &mut Acc, rec: &Record) -> Result<()> {
        let v: serde_json::Value = rec.json()?;
        acc.count += 1;
        acc.sum += v.get(&self.field).and_then(|x| x.as_f64()).unwrap_or(0.0);
        Ok(())
    }

    fn merge(&mut self, a: Acc, b: Acc) -> Result<Acc> {
        Ok(Acc { count: a.count + b.count, sum: a.sum + b.sum })
    }

    fn result(&mut self, acc: &Acc) -> Result<serde_json::Value> {
        let avg = if acc.count == 0 { 0.0 } else { acc.sum / acc.count as f64 };
        Ok(serde_json::json!({"count": acc.count, "sum": acc.sum, "avg": avg}))
    }
}
