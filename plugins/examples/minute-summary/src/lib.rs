//! Timer-based keyed process: counts each user's events per event-time minute and emits
//! `{"user_id", "minute_start", "events"}` when the watermark passes the end of the minute
//! (an event-time timer at `minute_end - 1`). Events for a minute that already fired go to
//! the side output `late`. With config `{"time": "processing"}` it counts per
//! processing-time minute and fires on processing-time timers instead.

use weir_sdk::{
    current_key_str, current_processing_time, current_watermark, emit, emit_to, timers, Config, Error, MapState, Process, Record, Result,
    Timer,
};

const MINUTE: i64 = 60_000;

/// The operator.
pub struct MinuteSummary {
    counts: MapState<i64, u64>,
    processing_time: bool,
}

#[weir_sdk::process]
impl Process for MinuteSummary {
    fn open(config: &Config) -> Result<Self> {
        let time: String = config.field_or("time", "event".to_string())?;
        let processing_time = match time.as_str() {
            "event" => false,
            "processing" => true,
            other => return Err(Error::invalid_config(format!("time = `{other}`: use `event` or `processing`"))),
        };
        Ok(MinuteSummary { counts: MapState::new("per-minute"), processing_time })
    }

    fn process(&mut self, rec: Record) -> Result<()> {
        if self.processing_time {
            let now = current_processing_time();
            let start = now - now.rem_euclid(MINUTE);
            let n = self.counts.get(&start)?.unwrap_or(0) + 1;
            self.counts.put(&start, &n)?;
            timers::register_processing_time(start + MINUTE - 1);
            return Ok(());
        }
        let ts = rec.timestamp.ok_or_else(|| Error::invalid_input("record has no event time"))?;
        let start = ts - ts.rem_euclid(MINUTE);
        let fire_at = start + MINUTE - 1;
        if fire_at <= current_watermark() {
            emit_to("late", &rec);
            return Ok(());
        }
        let n = self.counts.get(&start)?.unwrap_or(0) + 1;
        self.counts.put(&start, &n)?;
        timers::register_event_time(fire_at);
        Ok(())
    }

    fn on_timer(&mut self, timer: Timer) -> Result<()> {
        let start = timer.timestamp + 1 - MINUTE;
        if let Some(n) = self.counts.get(&start)? {
            self.counts.remove(&start)?;
            let user = current_key_str().unwrap_or_default();
            emit(&Record::from_json(&serde_json::json!({"user_id": user, "minute_start": start, "events": n}))?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::ProcessHarness;

    #[test]
    fn fires_when_watermark_passes_minute_end() {
        let mut h = ProcessHarness::<MinuteSummary>::new(serde_json::json!({})).unwrap();
        let ev = |ts: i64| Record::from_bytes("{}").with_timestamp(ts);
        h.process("u1", ev(1_000)).unwrap();
        h.process("u1", ev(59_000)).unwrap();
        h.process("u2", ev(61_000)).unwrap();
        h.advance_watermark(59_998).unwrap();
        assert!(h.take_output().is_empty(), "not before minute_end - 1");
        h.advance_watermark(59_999).unwrap();
        let out: Vec<serde_json::Value> = h.take_output().iter().map(|r| r.json().unwrap()).collect();
        assert_eq!(out, vec![serde_json::json!({"user_id": "u1", "minute_start": 0, "events": 2})]);
        h.process("u1", ev(30_000)).unwrap();
        assert_eq!(h.take_side_output("late").len(), 1);
        h.advance_watermark(i64::MAX).unwrap();
        assert_eq!(h.take_output().len(), 1);
    }

    #[test]
    fn processing_time_mode_fires_on_the_simulated_clock() {
        let mut h = ProcessHarness::<MinuteSummary>::new(serde_json::json!({"time": "processing"})).unwrap();
        h.advance_processing_time(120_500).unwrap();
        h.process("u1", Record::from_bytes("{}")).unwrap();
        h.process("u1", Record::from_bytes("{}")).unwrap();
        h.advance_processing_time(179_998).unwrap();
        assert!(h.take_output().is_empty());
        h.advance_processing_time(179_999).unwrap();
        let out: Vec<serde_json::Value> = h.take_output().iter().map(|r| r.json().unwrap()).collect();
        assert_eq!(out, vec![serde_json::json!({"user_id": "u1", "minute_start": 120_000, "events": 2})]);
    }
}
