//! The four window queries of shared/conformance/semantics.md against Flink's rows, at
//! parallelism 1 and 4, with the malformed count in dead-letter and late records exactly
//! where Flink drops them. `tumble10s` runs in two shapes: event time and watermarks after
//! the parse operator (its plugin sets key and event time), and read at the source.

use std::path::Path;

use crate::support::*;

/// `tumble10s.toml` with event time read from the parse operator's output field (the plugin
/// sets neither key nor event time) and the key read from the field.
const AFTER_PARSE_BY_FIELD: &[&str] = &[
    "operator.parse.config={}",
    "operator.parse.event-time={ field = \"timestamp\", unit = \"s\" }",
    "operator.tumble10s.key-by=\"user_id\"",
];

/// (job file in tests/conformance, `--set`s, the `kind` of its rows).
const QUERIES: [(&str, &[&str], &str); 6] = [
    ("tumble10s", &[], "tumble10s"),
    ("tumble10s", AFTER_PARSE_BY_FIELD, "tumble10s"),
    ("tumble10s_source_time", &[], "tumble10s"),
    ("hop10s_5s", &[], "hop10s_5s"),
    ("session300s", &[], "session300s"),
    ("actions60s", &[], "actions60s"),
];

/// The two shapes of `tumble10s`, each with the setting of its watermark interval.
const TUMBLE10S: [(&str, &str); 2] =
    [("tumble10s", "operator.parse.watermark.interval"), ("tumble10s_source_time", "source.logs.watermark.interval")];

fn flink_rows(case: &Path, kind: &str) -> Vec<String> {
    sorted(read_jsonl(&case.join("flink-windows.jsonl")).into_iter().filter(|r| r["kind"] == kind))
}

fn run_query(job: &str, case: &Path, p: usize, extra: &[String]) -> (Vec<String>, serde_json::Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.jsonl");
    let mut sets = vec![
        format!("source.logs.path={}", case.join("logs.jsonl").display()),
        format!("sink.out.path={}", out.display()),
        format!("parallelism={p}"),
    ];
    sets.extend_from_slice(extra);
    let (_, _, m) = run_job(&root().join(format!("tests/conformance/{job}.toml")), &sets);
    (sorted(read_jsonl(&out)), m, dir)
}

#[test]
fn window_queries_equal_flink_row_for_row_at_parallelism_1_and_4() {
    for (name, case) in cases() {
        for (job, sets, kind) in QUERIES {
            let want = flink_rows(&case, kind);
            assert!(!want.is_empty(), "{name}: no Flink rows for {kind}");
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            for p in [1, 4] {
                let (got, m, _d) = run_query(job, &case, p, &sets);
                assert_eq!(got.len(), want.len(), "{name} {job} {sets:?} p{p}: row count");
                assert!(got == want, "{name} {job} {sets:?} p{p}: rows differ from Flink's");
                assert_eq!(dead_letters(&m), malformed(&case), "{name} {job} {sets:?} p{p}: malformed lines in dead-letter");
            }
        }
    }
}

/// Independent oracle: per-event watermarks `max_ts - 10 s - 1 ms`; an event is late for
/// its tumbling window `[s, s+10 s)` when `end - 1 <= watermark` on arrival.
fn late_for_tumble10s(events: &[(String, String, i64)]) -> Vec<(String, i64)> {
    let mut wm = i64::MIN;
    let mut max_ts = i64::MIN;
    let mut late = Vec::new();
    for (u, _, ts) in events {
        let t = ts * 1000;
        let end = t - t.rem_euclid(10_000) + 10_000;
        if end - 1 <= wm {
            late.push((u.clone(), *ts));
        }
        max_ts = max_ts.max(t);
        wm = wm.max(max_ts - 10_000 - 1);
    }
    late
}

#[test]
fn late_records_are_dropped_where_flink_drops_them_or_go_to_the_late_output() {
    for (name, case) in cases() {
        let mut oracle: Vec<(String, i64)> = late_for_tumble10s(&events(&case));
        oracle.sort();
        assert!(!oracle.is_empty(), "{name}: the case has late records");
        for (job, _) in TUMBLE10S {
            let (rows, m, _d) = run_query(job, &case, 4, &[]);
            assert_eq!(rows, flink_rows(&case, "tumble10s"));
            assert_eq!(m["nodes"]["tumble10s"]["late_dropped"].as_u64(), Some(oracle.len() as u64), "{name} {job}: late drops counted");

            let dir = tempfile::tempdir().expect("tempdir");
            let late_path = dir.path().join("late.jsonl");
            let extra = [
                "sink.late.kind=file".to_string(),
                "sink.late.input=tumble10s.late".into(),
                format!("sink.late.path={}", late_path.display()),
            ];
            let (rows, m, _d2) = run_query(job, &case, 4, &extra);
            assert_eq!(rows, flink_rows(&case, "tumble10s"), "{name} {job}: a late output changes no result");
            assert_eq!(m["nodes"]["tumble10s"]["late_dropped"].as_u64(), Some(0));
            let mut late: Vec<(String, i64)> = read_jsonl(&late_path)
                .iter()
                .map(|v| (v["user_id"].as_str().expect("user").to_string(), v["timestamp"].as_i64().expect("ts")))
                .collect();
            late.sort();
            assert_eq!(late, oracle, "{name} {job}: the late output holds exactly the records Flink drops");
        }
    }
}

#[test]
fn periodic_watermarks_emit_on_the_interval_not_per_event() {
    let (_, case) = cases().remove(0);
    let kept = events(&case).len() as u64;
    for (job, interval) in TUMBLE10S {
        // An interval longer than the run: the only watermark is the final one, nothing is late.
        let (rows, m, _d) = run_query(job, &case, 2, &[format!("{interval}=1h")]);
        assert_eq!(m["nodes"]["tumble10s"]["late_dropped"].as_u64(), Some(0), "{job}");
        let total: u64 =
            rows.iter().map(|r| serde_json::from_str::<serde_json::Value>(r).expect("json")["count"].as_u64().expect("count")).sum();
        assert_eq!(total, kept, "{job}: every well-formed record counted once");
        // Per-event watermarks on the same input do drop late records.
        let (_, m, _d) = run_query(job, &case, 2, &[]);
        assert!(m["nodes"]["tumble10s"]["late_dropped"].as_u64().unwrap_or(0) > 0, "{job}");
    }
}

/// A line the parser refuses that still has an integer `timestamp` (valid JSON, not a
/// LogEvent) moves no event time when event time is assigned after the parse, as in Flink's
/// reference job; read at the source, it moves the watermark, and the next line is late.
#[test]
fn refused_lines_move_event_time_only_when_the_source_reads_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let line = |ts: i64| {
        format!(r#"{{"user_id": "u1", "session_id": "s", "action": "view", "timestamp": {ts}, "ip_address": "i", "user_agent": "a"}}"#)
    };
    let text = [line(100), r#"{"user_id": 7, "timestamp": 1000}"#.to_string(), line(110)].join("\n") + "\n";
    std::fs::write(dir.path().join("logs.jsonl"), text).expect("write");
    let windows = |rows: &[String]| -> Vec<i64> {
        rows.iter().map(|r| serde_json::from_str::<serde_json::Value>(r).expect("json")["window_start"].as_i64().expect("start")).collect()
    };
    for sets in [&[][..], AFTER_PARSE_BY_FIELD] {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let (rows, m, _d) = run_query("tumble10s", dir.path(), 1, &sets);
        assert_eq!(windows(&rows), [100_000, 110_000], "{sets:?}: both lines counted");
        assert_eq!((dead_letters(&m), m["nodes"]["tumble10s"]["late_dropped"].as_u64()), (1, Some(0)), "{sets:?}");
    }
    let (rows, m, _d) = run_query("tumble10s_source_time", dir.path(), 1, &[]);
    assert_eq!(windows(&rows), [100_000], "the refused line's time made the last line late");
    assert_eq!((dead_letters(&m), m["nodes"]["tumble10s"]["late_dropped"].as_u64()), (1, Some(1)));
}

/// Flink's late firings (`flink-lateness.jsonl`, `shared/conformance/README.md`, "Late
/// firings"): `tumble10s` with allowed lateness 5 s and `session300s` (gap 5 min) with 30 s,
/// every firing a row, and the records too late for every window on the late output, at
/// parallelism 1 and 4. A late record that merges into a fired session and extends it past
/// the watermark only arms the session's timer, as Flink's EventTimeTrigger does.
#[test]
fn late_firings_equal_flinks_at_parallelism_1_and_4() {
    // (kind, window, allowed lateness)
    let queries =
        [("tumble10s", "{ type = \"tumbling\", size = \"10s\" }", "5s"), ("session300s", "{ type = \"session\", gap = \"5m\" }", "30s")];
    for (name, case) in cases() {
        let flink = read_jsonl(&case.join("flink-lateness.jsonl"));
        for (kind, window, lateness) in queries {
            let want = sorted(flink.iter().filter(|r| r["kind"] == kind).cloned());
            let want_late = sorted(flink.iter().filter(|r| r["kind"] == format!("late-{kind}").as_str()).cloned());
            assert!(want.len() > 100, "{name}: Flink's {kind} firings");
            for p in [1, 4] {
                let dir = tempfile::tempdir().expect("tempdir");
                let late_path = dir.path().join("late.jsonl");
                let extra = [
                    format!("operator.tumble10s.window={window}"),
                    format!("operator.tumble10s.allowed-lateness=\"{lateness}\""),
                    format!("operator.tumble10s.fields={{ kind = \"{kind}\" }}"),
                    "sink.late.kind=file".to_string(),
                    "sink.late.input=tumble10s.late".into(),
                    format!("sink.late.path={}", late_path.display()),
                ];
                let (got, m, _d) = run_query("tumble10s", &case, p, &extra);
                assert_eq!(got.len(), want.len(), "{name} {kind} p{p}: firings");
                assert!(got == want, "{name} {kind} p{p}: firings differ from Flink's");
                let late = sorted(read_jsonl(&late_path).into_iter().map(|r| {
                    serde_json::json!({"action": r["action"], "kind": format!("late-{kind}"), "timestamp": r["timestamp"], "user_id": r["user_id"]})
                }));
                assert!(late == want_late, "{name} {kind} p{p}: late records differ from Flink's");
                assert_eq!(dead_letters(&m), malformed(&case), "{name} {kind} p{p}");
            }
        }
    }
}
