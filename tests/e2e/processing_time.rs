//! Processing-time timers of a real process component, driven by a manual clock (no sleeps).

use std::sync::Arc;

use weir_host::operators::ProcessOp;
use weir_host::plugin::{Instance, Plugin, PluginEngine};
use weir_host::record::{Batch, Record};
use weir_host::runtime::{NodeMetrics, Operator, Output};
use weir_host::time::{Clock, ManualClock};

use crate::support::plugin;

fn rec(user: &str) -> Record {
    Record { key: Some(user.as_bytes().to_vec()), value: b"{}".to_vec(), ..Record::default() }
}

#[test]
fn processing_time_timers_fire_when_the_clock_reaches_them() {
    let engine = PluginEngine::shared().expect("engine");
    let p = Arc::new(Plugin::load(&engine, &plugin("minute_summary")).expect("load"));
    let inst = Instance::new(p, "summary", 0, r#"{"time": "processing"}"#.into()).expect("init");
    let clock = ManualClock::new(600_000 + 5_000);
    let mut op = ProcessOp::new(inst, 128, Arc::new(clock.clone()));
    let mut out = Output::new(&[], Arc::new(NodeMetrics::default()));
    op.process(Batch::of(vec![rec("u1"), rec("u2"), rec("u1")]), &mut out).expect("process");
    assert_eq!(op.next_processing_timer(), Some(659_999));
    clock.set(659_998);
    op.on_processing_time(clock.now_ms(), &mut out).expect("timers");
    assert!(out.main.take().records.is_empty(), "nothing before the timer's time");
    clock.set(659_999);
    op.on_processing_time(clock.now_ms(), &mut out).expect("timers");
    let mut rows: Vec<serde_json::Value> =
        out.main.take().records.iter().map(|r| serde_json::from_slice(&r.value).expect("json")).collect();
    rows.sort_by_key(|r| r["user_id"].as_str().unwrap_or("").to_string());
    assert_eq!(
        rows,
        vec![
            serde_json::json!({"user_id": "u1", "minute_start": 600_000, "events": 2}),
            serde_json::json!({"user_id": "u2", "minute_start": 600_000, "events": 1}),
        ]
    );
    assert_eq!(op.next_processing_timer(), None);
}
