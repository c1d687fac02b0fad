//! Reports what a keyed process function sees, to check the host against Flink's rules:
//! for each record `{"on": "record", "key", "ts", "wm"}` (its key, event time and the
//! watermark when it arrived), then an event-time timer at the record's own time; for each
//! timer that fires `{"on": "timer", "key", "ts", "wm"}`. With config `{"trap_at": N}` it
//! traps (panics) on the record whose field `i` is N, before reporting it. With config
//! `{"read_fields": [names]}` it asks the host for those members of each record
//! (`weir_sdk::read_fields`) and its record reports add `"fields"`: each member's text as
//! the host found it, or null where it found none.

use weir_sdk::{current_key_str, current_watermark, emit, timers, Config, Error, Process, Record, RecordView, Result, Timer};

/// The operator.
pub struct EventTrace {
    trap_at: Option<i64>,
    /// How many members it asked the host for.
    fields: usize,
}

fn report(on: &str, ts: i64, fields: Option<serde_json::Value>) -> Result<()> {
    let key = current_key_str().ok_or_else(|| Error::other("event-trace needs key-by"))?;
    let mut row = serde_json::json!({"on": on, "key": key, "ts": ts, "wm": current_watermark()});
    if let Some(f) = fields {
        row["fields"] = f;
    }
    emit(&Record::from_json(&row)?);
    Ok(())
}

#[weir_sdk::process]
impl Process for EventTrace {
    fn open(config: &Config) -> Result<Self> {
        let names: Vec<String> = config.field_or("read_fields", Vec::new())?;
        if !names.is_empty() {
            weir_sdk::read_fields(&names.iter().map(String::as_str).collect::<Vec<_>>());
        }
        Ok(EventTrace { trap_at: config.field_or("trap_at", None)?, fields: names.len() })
    }

    fn process(&mut self, rec: Record) -> Result<()> {
        self.process_view(rec.view())
    }

    fn process_view(&mut self, rec: RecordView<'_>) -> Result<()> {
        let ts = rec.timestamp.ok_or_else(|| Error::invalid_input("record has no event time"))?;
        if let Some(at) = self.trap_at {
            let v: serde_json::Value = rec.json()?;
            if v.get("i").and_then(|i| i.as_i64()) == Some(at) {
                panic!("trap at record {at}, as configured");
            }
        }
        let text = |i| rec.field(i).map(|f| String::from_utf8_lossy(f).into_owned());
        let fields = (self.fields > 0).then(|| (0..self.fields).map(text).collect());
        report("record", ts, fields)?;
        timers::register_event_time(ts);
        Ok(())
    }

    fn on_timer(&mut self, timer: Timer) -> Result<()> {
        report("timer", timer.timestamp, None)
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

    #[test]
    fn reports_the_members_the_host_found() {
        let mut h = ProcessHarness::<EventTrace>::new(serde_json::json!({"read_fields": ["a", "b"]})).unwrap();
        for line in [r#"{"b": [1, {"a": 2}], "a": "x"}"#, r#"{"a": 1, "a": 2, "b": null}"#] {
            h.process("k", Record::from_bytes(line).with_timestamp(5)).unwrap();
        }
        let fields: Vec<serde_json::Value> =
            h.take_output().iter().map(|r| r.json::<serde_json::Value>().unwrap()["fields"].clone()).collect();
        assert_eq!(fields, [serde_json::json!(["\"x\"", "[1, {\"a\": 2}]"]), serde_json::json!([null, "null"])]);
    }
}
