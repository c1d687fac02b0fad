//! Processing-time timers of a real process component, driven by a manual clock (no sleeps).

use std::sync::Arc;

use weir_host::operator::{Operator, Output};
use weir_host::operators::ProcessOp;
use weir_host::plugin::{Instance, Plugin, PluginEngine};
use weir_host::record::{Batch, Key, Record};
use weir_host::status::NodeMetrics;
use weir_host::time::{Clock, ManualClock};

use crate::support::plugin;

fn rec(user: &str) -> Record {
    Record { key: Some(Key::from_slice(user.as_bytes())), value: b"{}".to_vec(), ..Record::default() }
}

#[test]
fn processing_time_timers_fire_when_the_clock_reaches_them() {
    let engine = PluginEngine::shared().expect("engine");
    let p = Arc::new(Plugin::load(&engine, &plugin("minute_summary")).expect("load"));
    let inst = Instance::new(p, "summary", 0, r#"{"time": "processing"}"#.into()).expect("init");
    let clock = ManualClock::new(600_000 + 5_000);
    let mut op = ProcessOp::new(inst, weir_host::keys::KeyGroups::whole(128), Arc::new(clock.clone()));
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

fn item(user: &str, item: &str) -> Record {
    Record { key: Some(Key::from_slice(user.as_bytes())), value: format!("{{\"item\": \"{item}\"}}").into_bytes(), ..Record::default() }
}

fn emitted(out: &mut Output) -> Vec<serde_json::Value> {
    out.main.take().records.iter().map(|r| serde_json::from_slice(&r.value).expect("json")).collect()
}

fn keyed_state_op(ttl: &[(&str, i64, bool)], clock: &ManualClock) -> ProcessOp {
    keyed_state_op_with(ttl, clock, "{}")
}

fn keyed_state_op_with(ttl: &[(&str, i64, bool)], clock: &ManualClock, config: &str) -> ProcessOp {
    let engine = PluginEngine::shared().expect("engine");
    let p = Arc::new(Plugin::load(&engine, &plugin("keyed_state")).expect("load"));
    let mut inst = Instance::new(p, "state", 0, config.into()).expect("init");
    for (name, ms, refresh_on_read) in ttl {
        inst.host().ttl.insert(name.to_string(), weir_host::plugin::Ttl { ms: *ms, refresh_on_read: *refresh_on_read });
    }
    ProcessOp::new(inst, weir_host::keys::KeyGroups::whole(128), Arc::new(clock.clone()))
}

#[test]
fn state_ttl_expires_values_list_elements_and_map_entries() {
    let clock = ManualClock::new(0);
    let ttl = [("count", 5_000, false), ("items", 5_000, false), ("item-counts", 5_000, false)];
    let mut op = keyed_state_op(&ttl, &clock);
    let mut out = Output::new(&[], Arc::new(NodeMetrics::default()));
    op.process(Batch::of(vec![item("u", "a")]), &mut out).expect("process");
    clock.set(3_000);
    op.process(Batch::of(vec![item("u", "b")]), &mut out).expect("process");
    let rows = emitted(&mut out);
    assert_eq!(rows[1], serde_json::json!({"user_id": "u", "count": 2, "items": ["a", "b"], "item_counts": {"a": 1, "b": 1}}));
    // At 6 s the count (written at 3 s) lives on; "a" (written at 0 s) expired alone.
    clock.set(6_000);
    op.process(Batch::of(vec![item("u", "c")]), &mut out).expect("process");
    assert_eq!(emitted(&mut out)[0], serde_json::json!({"user_id": "u", "count": 3, "items": ["b", "c"], "item_counts": {"b": 1, "c": 1}}));
    // Long after: everything expired, the key starts over.
    clock.set(60_000);
    op.process(Batch::of(vec![item("u", "d")]), &mut out).expect("process");
    assert_eq!(emitted(&mut out)[0], serde_json::json!({"user_id": "u", "count": 1, "items": ["d"], "item_counts": {"d": 1}}));
}

#[test]
fn state_ttl_refreshed_on_read_and_expired_state_left_out_of_snapshots() {
    let clock = ManualClock::new(0);
    let mut op = keyed_state_op(&[("count", 5_000, true)], &clock);
    let mut out = Output::new(&[], Arc::new(NodeMetrics::default()));
    for t in [0, 4_000, 8_000, 12_000] {
        clock.set(t);
        op.process(Batch::of(vec![item("u", "x")]), &mut out).expect("process");
    }
    let counts: Vec<i64> = emitted(&mut out).iter().map(|r| r["count"].as_i64().expect("count")).collect();
    assert_eq!(counts, [1, 2, 3, 4], "each read extends the count's life");
    op.process(Batch::of(vec![item("v", "x")]), &mut out).expect("process");
    clock.set(100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let write = op.snapshot(1, dir.path()).expect("snapshot").expect("keyed state writes files");
    write().expect("write");
    let state = std::fs::read(dir.path().join("state/state.kv")).expect("state file");
    // State keys hold the state name after its length byte.
    let has = |name: &str| {
        let mut needle = vec![name.len() as u8];
        needle.extend_from_slice(name.as_bytes());
        state.windows(needle.len()).any(|w| w == needle.as_slice())
    };
    assert!(!has("count"), "expired counts are not in the snapshot");
    assert!(has("items") && has("item-counts"), "state without a TTL is");
}

/// A record whose call traps after it wrote state changes none of it; the records before it
/// in the same call keep all of theirs, and the ones after it run on a fresh instance.
#[test]
fn a_record_that_traps_after_its_writes_changes_no_state() {
    let clock = ManualClock::new(0);
    let mut op = keyed_state_op(&[], &clock);
    let metrics = Arc::new(NodeMetrics::default());
    let mut out = Output::new(&[], metrics);
    let batch = vec![item("u", "a"), item("v", "z"), item("u", "trap"), item("u", "b"), item("v", "y")];
    op.process(Batch::of(batch), &mut out).expect("process");
    let dead: Vec<(String, String)> = out.dead.drain(..).map(|(r, why)| (String::from_utf8_lossy(&r.value).into_owned(), why)).collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, r#"{"item": "trap"}"#);
    assert!(dead[0].1.contains("traps after its writes"), "{}", dead[0].1);
    let rows = emitted(&mut out);
    assert_eq!(
        rows,
        vec![
            serde_json::json!({"user_id": "u", "count": 1, "items": ["a"], "item_counts": {"a": 1}}),
            serde_json::json!({"user_id": "v", "count": 1, "items": ["z"], "item_counts": {"z": 1}}),
            // Neither the trapped record's count nor its item.
            serde_json::json!({"user_id": "u", "count": 2, "items": ["a", "b"], "item_counts": {"a": 1, "b": 1}}),
            serde_json::json!({"user_id": "v", "count": 2, "items": ["z", "y"], "item_counts": {"y": 1, "z": 1}}),
        ]
    );
}

/// Records that only write state are not entered in the host: their writes cross with a
/// later record's, each under its own record. A trap among them changes no state of the
/// record that trapped and loses none of the others': the host goes on from the last record
/// entered, on a fresh instance that enters each record, and fails only the one that traps.
#[test]
fn writes_of_records_never_entered_count_once_around_a_trap() {
    let clock = ManualClock::new(0);
    let mut op = keyed_state_op_with(&[], &clock, r#"{"quiet": true}"#);
    let mut out = Output::new(&[], Arc::new(NodeMetrics::default()));
    // An instance enters every record of its first call: this one is the warm-up.
    op.process(Batch::of(vec![item("w", "x")]), &mut out).expect("process");
    let batch = ["a", "b", "z", "c", "trap", "y", "d", "report", "report"];
    let users = ["u", "u", "v", "u", "u", "v", "u", "u", "v"];
    let batch: Vec<Record> = users.iter().zip(batch).map(|(u, i)| item(u, i)).collect();
    op.process(Batch::of(batch), &mut out).expect("process");
    let dead: Vec<String> = out.dead.drain(..).map(|(r, _)| String::from_utf8_lossy(&r.value).into_owned()).collect();
    assert_eq!(dead, [r#"{"item": "trap"}"#]);
    assert_eq!(
        emitted(&mut out),
        vec![
            serde_json::json!({"user_id": "u", "count": 5, "items": ["a", "b", "c", "d", "report"], "item_counts": {"report": 1}}),
            serde_json::json!({"user_id": "v", "count": 3, "items": ["z", "y", "report"], "item_counts": {"report": 1}}),
        ]
    );
}
