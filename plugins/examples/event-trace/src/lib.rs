//! Reports what a keyed process function sees, to check the host against Flink's rules:
//! for each record `{"on": "record", "key", "ts", "wm"}` (its key, event time and the
//! watermark when it arrived), then an event-time timer at the record's own time; for each
//! timer that fires `{"on": "timer", "key", "ts", "wm"}`. With config `{"trap_at": N}` it
//! traps (panics) on the record whose field `i` is N, before reporting it.

use weir_sdk::{current_key_str, current_watermark, emit, timers, Config, Error, Process, Record, Result, Timer};

/// The operator.
pub struct EventTrace {
    trap_at: Option<i64>,
}

fn report(on: &str, ts: i64) -> Result<()> {
    let key = current_key_str().ok_or_else(|| Error::other("event-trace needs key-by"))?;
    emit(&Record::from_json(&serde_json::json!({"on": on, "key": key, "ts": ts, "wm": current_watermark()}))?);
    Ok(())
}

#[weir_sdk::process]
impl Process for EventTrace {
    fn open(config: &Config) -> Result<Self> {
        Ok(EventTrace { trap_at: config.field_or("trap_at", None)? })
    }

    fn process(&mut self, rec: Record) -> Result<()> {
        let ts = rec.timestamp.ok_or_else(|| Error::invalid_input("record has no event time"))?;
        if let Some(at) = self.trap_at {
            let v: serde_json::Value = rec.json()?;
            if v.get("i").and_then(|i| i.as_i64()) == Some(at) {
                panic!("trap at record {at}, as configured");
            }
        }
        report("record", ts)?;
        timers::register_event_time(ts);
        Ok(())
    }

    fn on_timer(&mut self, timer: Timer) -> Result<()> {
        report("timer", timer.timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::ProcessHarness;

    #[test]
    fn reports_records_and_timers() {
        let mut h = ProcessHarness::<EventTrace>::new(serde_json::json!({})).unwrap();
        h.process("k", Record::from_bytes("{}").with_timestamp(5)).unwrap();
        h.advance_watermark(5).unwrap();
        let rows: Vec<serde_json::Value> = h.take_output().iter().map(|r| r.json().unwrap()).collect();
        assert_eq!(
            rows,
            [
                serde_json::json!({"on": "record", "key": "k", "ts": 5, "wm": i64::MIN}),
                serde_json::json!({"on": "timer", "key": "k", "ts": 5, "wm": 5})
            ]
        );
    }
}
