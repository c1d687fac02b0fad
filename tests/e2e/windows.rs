//! Window functions from plugins (aggregate, process-window) and event-time timers of a
//! process plugin, checked against built-in aggregates and an independent oracle.

use std::collections::BTreeMap;

use crate::support::*;

fn window_job(case: &std::path::Path, windows: &str) -> String {
    format!(
        "[source.logs]\nkind = \"file\"\npath = \"{}\"\nevent-time = {{ field = \"timestamp\", unit = \"s\" }}\nwatermark = {{ max-out-of-orderness = \"10s\" }}\n\n[operator.parse]\nkind = \"map\"\ninput = \"logs\"\nplugin = \"{}\"\n\n{windows}\n[dead-letter]\nkind = \"discard\"\n",
        case.join("logs.jsonl").display(),
        plugin("log_analyzer_parse").display()
    )
}

#[test]
fn aggregate_and_process_window_plugins_agree_with_builtin_aggregates() {
    let (_, case) = cases().remove(0);
    let dir = tempfile::tempdir().expect("tempdir");
    let (b, a, t) = (dir.path().join("builtin.jsonl"), dir.path().join("agg.jsonl"), dir.path().join("top.jsonl"));
    let win = "window = { type = \"tumbling\", size = \"60s\" }";
    let windows = format!(
        "[operator.builtin]\nkind = \"window\"\ninput = \"parse\"\nkey-by = \"user_id\"\n{win}\naggregates = {{ count = \"count\", sum = \"sum(timestamp)\", avg = \"avg(timestamp)\", min = \"min(timestamp)\", max = \"max(timestamp)\" }}\n\n\
         [operator.agg]\nkind = \"window\"\ninput = \"parse\"\nkey-by = \"user_id\"\n{win}\nplugin = \"{}\"\nconfig = {{ field = \"timestamp\" }}\n\n\
         [operator.top]\nkind = \"window\"\ninput = \"parse\"\nkey-by = \"user_id\"\n{win}\nplugin = \"{}\"\n\n\
         [sink.b]\nkind = \"file\"\ninput = \"builtin\"\npath = \"{}\"\n[sink.a]\nkind = \"file\"\ninput = \"agg\"\npath = \"{}\"\n[sink.t]\nkind = \"file\"\ninput = \"top\"\npath = \"{}\"\n",
        plugin("avg_aggregate").display(),
        plugin("window_top").display(),
        b.display(),
        a.display(),
        t.display()
    );
    let (_d, job) = job_file(&window_job(&case, &windows));
    run_job(&job, &["parallelism=2".into()]);
    let key = |r: &serde_json::Value| (r["user_id"].as_str().unwrap_or("").to_string(), r["window_start"].as_i64().unwrap_or(0));
    let builtin: BTreeMap<_, _> = read_jsonl(&b).into_iter().map(|r| (key(&r), r)).collect();
    let agg: BTreeMap<_, _> = read_jsonl(&a).into_iter().map(|r| (key(&r), r)).collect();
    let top: BTreeMap<_, _> = read_jsonl(&t).into_iter().map(|r| (key(&r), r)).collect();
    assert!(builtin.len() > 100);
    assert_eq!(builtin.keys().collect::<Vec<_>>(), agg.keys().collect::<Vec<_>>());
    assert_eq!(builtin.keys().collect::<Vec<_>>(), top.keys().collect::<Vec<_>>());
    for (k, r) in &builtin {
        let (p, w) = (&agg[k], &top[k]);
        assert_eq!(r["count"], p["count"], "{k:?}");
        assert_eq!(r["count"], w["events"], "{k:?}");
        assert_eq!(r["sum"].as_f64(), p["sum"].as_f64(), "{k:?}");
        assert!((r["avg"].as_f64().unwrap_or(0.0) - p["avg"].as_f64().unwrap_or(1.0)).abs() < 1e-6, "{k:?}");
        assert!(r["min"].as_i64() <= r["max"].as_i64());
        assert_eq!(r["window_end"].as_i64().unwrap_or(0) - r["window_start"].as_i64().unwrap_or(0), 60_000);
    }
}

/// Oracle for the minute-summary plugin: per-event watermarks; an event whose minute's
/// timer (`minute_end - 1`) is at or below the watermark on arrival is late.
fn minute_summary_oracle(events: &[(String, String, i64)]) -> (Vec<serde_json::Value>, usize) {
    let (mut wm, mut max_ts, mut late) = (i64::MIN, i64::MIN, 0);
    let mut counts: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for (u, _, ts) in events {
        let t = ts * 1000;
        let start = t - t.rem_euclid(60_000);
        if start + 60_000 - 1 <= wm {
            late += 1;
        } else {
            *counts.entry((u.clone(), start)).or_default() += 1;
        }
        max_ts = max_ts.max(t);
        wm = wm.max(max_ts - 10_000 - 1);
    }
    (counts.into_iter().map(|((u, s), n)| serde_json::json!({"user_id": u, "minute_start": s, "events": n})).collect(), late)
}

#[test]
fn event_time_timers_of_a_process_plugin_fire_at_the_right_watermarks() {
    for (name, case) in cases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (out, late) = (dir.path().join("out.jsonl"), dir.path().join("late.jsonl"));
        let ops = format!(
            "[operator.summary]\nkind = \"process\"\ninput = \"parse\"\nkey-by = \"user_id\"\nplugin = \"{}\"\n\n[sink.out]\nkind = \"file\"\ninput = \"summary\"\npath = \"{}\"\n[sink.late]\nkind = \"file\"\ninput = \"summary.late\"\npath = \"{}\"\n",
            plugin("minute_summary").display(),
            out.display(),
            late.display()
        );
        let (_d, job) = job_file(&window_job(&case, &ops));
        let (want, want_late) = minute_summary_oracle(&events(&case));
        for p in ["1", "3"] {
            run_job(&job, &[format!("parallelism={p}")]);
            assert!(sorted(read_jsonl(&out)) == sorted(want.clone()), "{name} p{p}: summaries differ from the oracle");
            assert_eq!(read_jsonl(&late).len(), want_late, "{name} p{p}");
        }
    }
}

/// What the `event-trace` plugin must emit, computed here by Flink's rules: per-event
/// watermarks `max - bound - 1` after each record; each record is reported with the
/// watermark it arrived at and registers a timer at its own time; when the watermark
/// advances, due timers fire in (time, key) order, before the next record; the end of the
/// input is the watermark `i64::MAX`.
fn event_trace_oracle(input: &[(String, i64)], bound: i64, trap_at: Option<usize>) -> Vec<serde_json::Value> {
    let (mut wm, mut max_ts) = (i64::MIN, i64::MIN);
    let mut timers: std::collections::BTreeSet<(i64, String)> = Default::default();
    let mut out = Vec::new();
    let fire = |wm: i64, timers: &mut std::collections::BTreeSet<(i64, String)>, out: &mut Vec<serde_json::Value>| {
        while timers.first().is_some_and(|t| t.0 <= wm) {
            let (t, k) = timers.pop_first().expect("checked");
            out.push(serde_json::json!({"on": "timer", "key": k, "ts": t, "wm": wm}));
        }
    };
    for (i, (k, ts)) in input.iter().enumerate() {
        // The trapped record is neither reported nor sets a timer; the watermark counts it.
        if trap_at != Some(i) {
            out.push(serde_json::json!({"on": "record", "key": k, "ts": ts, "wm": wm}));
            timers.insert((*ts, k.clone()));
        }
        max_ts = max_ts.max(*ts);
        if max_ts - bound - 1 > wm {
            wm = max_ts - bound - 1;
            fire(wm, &mut timers, &mut out);
        }
    }
    fire(i64::MAX, &mut timers, &mut out);
    out
}

/// A process plugin sees each record's own watermark and timers fire between the records
/// where the watermark reaches them, though the host hands it many records (of many keys)
/// per call: exactly the oracle's sequence at parallelism 1, and each key's part of it at
/// parallelism 2, at batch sizes from 1 to 1024. A trap in the middle of a call fails that
/// record alone: the ones before it are done once, the ones after it go on.
#[test]
fn process_calls_see_each_records_watermark_and_timers_fire_between_records() {
    let input: Vec<(String, i64)> = (0..3000i64).map(|i| (format!("k{}", (i * 7) % 5), 1_000 + i * 2 + (i * 37) % 11 - 5)).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let (inp, out, dead) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"), dir.path().join("dead.jsonl"));
    let lines: Vec<String> =
        input.iter().enumerate().map(|(i, (k, ts))| serde_json::json!({"i": i, "user": k, "ts": ts}).to_string()).collect();
    std::fs::write(&inp, lines.join("\n") + "\n").expect("input");
    let job = format!(
        "[source.events]\nkind = \"file\"\npath = \"{}\"\nevent-time = {{ field = \"ts\", unit = \"ms\" }}\nwatermark = {{ max-out-of-orderness = \"3ms\", interval = \"0ms\" }}\n\n[operator.trace]\nkind = \"process\"\ninput = \"events\"\nkey-by = \"user\"\nplugin = \"{}\"\n\n[sink.out]\nkind = \"file\"\ninput = \"trace\"\npath = \"{}\"\n\n[dead-letter]\nkind = \"file\"\npath = \"{}\"\n",
        inp.display(),
        plugin("event_trace").display(),
        out.display(),
        dead.display()
    );
    let (_d, job) = job_file(&job);
    let per_key = |rows: &[serde_json::Value]| -> BTreeMap<String, Vec<serde_json::Value>> {
        let mut m: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        for r in rows {
            m.entry(r["key"].as_str().unwrap_or_default().to_string()).or_default().push(r.clone());
        }
        m
    };
    let same = |got: &[serde_json::Value], want: &[serde_json::Value], what: &str| {
        if let Some(i) = (0..want.len().max(got.len())).find(|i| got.get(*i) != want.get(*i)) {
            panic!("{what}: row {i} is {:?} where the oracle has {:?}", got.get(i), want.get(i));
        }
    };
    let want = event_trace_oracle(&input, 3, None);
    for batch in ["1", "5", "1024"] {
        run_job(&job, &[format!("batch-size={batch}"), "parallelism=1".into()]);
        same(&read_jsonl(&out), &want, &format!("batch {batch}"));
        run_job(&job, &[format!("batch-size={batch}"), "parallelism=2".into()]);
        let got = per_key(&read_jsonl(&out));
        let want_by_key = per_key(&want);
        assert!(got.keys().eq(want_by_key.keys()), "batch {batch} p2: keys {:?}", got.keys().collect::<Vec<_>>());
        for (k, w) in want_by_key {
            same(got.get(&k).map_or(&[][..], Vec::as_slice), &w, &format!("batch {batch} p2, key {k}"));
        }
    }
    let (_, _, m) = run_job(&job, &["operator.trace.config.trap_at=1500".into()]);
    same(&read_jsonl(&out), &event_trace_oracle(&input, 3, Some(1500)), "trap at record 1500");
    let dl = read_jsonl(&dead);
    assert_eq!(dl.len(), 1, "{dl:?}");
    assert!(dl[0]["value"].as_str().unwrap_or_default().contains("\"i\":1500"), "{dl:?}");
    assert!(dl[0]["reason"].as_str().unwrap_or_default().contains("trapped"), "{dl:?}");
    // The batch call, then the call from that record on (the host knows a trap only as at or
    // after the last record entered): each restarted the plugin once.
    assert_eq!(m["nodes"]["trace"]["plugin_restarts"], 2);
}

/// A process plugin that asks for members of each record (`read-fields`) gets, for each
/// record of every call, where the host found them: a member once, absent, repeated, in a
/// value the host does not read whole (an escaped key). At parallelism 1 and 2, in calls of
/// one record and of many, and from the instance that replaced one that trapped.
#[test]
fn plugins_get_the_members_the_host_found_in_each_record() {
    let shapes = [
        (r#""x": "p""#, serde_json::json!(["\"p\"", null]), true),
        (r#""x": {"n": 1}, "n": [1, 2]"#, serde_json::json!(["{\"n\": 1}", "[1, 2]"]), true),
        (r#""x": 1, "n": null, "x": 2"#, serde_json::json!([null, "null"]), false),
        (r#""\u006e": 5, "x": "q""#, serde_json::json!([null, null]), false),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let (inp, out, dead) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"), dir.path().join("dead.jsonl"));
    let mapped = dir.path().join("mapped.jsonl");
    let lines: Vec<String> =
        (0..400).map(|i| format!(r#"{{"i": {i}, "user": "k{}", "ts": {}, {}}}"#, i % 3, 1000 + i, shapes[i % 4].0)).collect();
    std::fs::write(&inp, lines.join("\n") + "\n").expect("input");
    // A process plugin and a map fed by the same walk, asking for different members: the
    // walk reads the union of them ahead, and each gets its own.
    let job = format!(
        "[source.events]\nkind = \"file\"\npath = \"{}\"\nevent-time = {{ field = \"ts\", unit = \"ms\" }}\n\n[operator.trace]\nkind = \"process\"\ninput = \"events\"\nkey-by = \"user\"\nplugin = \"{}\"\nconfig = {{ read_fields = [\"x\", \"n\"] }}\n\n[operator.fields]\nkind = \"map\"\ninput = \"events\"\nplugin = \"{}\"\nconfig = {{ read_fields = [\"n\", \"i\", \"x\", \"user\", \"ts\"] }}\n\n[sink.out]\nkind = \"file\"\ninput = \"trace\"\npath = \"{}\"\n\n[sink.mapped]\nkind = \"file\"\ninput = \"fields\"\npath = \"{}\"\n\n[dead-letter]\nkind = \"file\"\npath = \"{}\"\n",
        inp.display(),
        plugin("event_trace").display(),
        plugin("field_trace").display(),
        out.display(),
        mapped.display(),
        dead.display()
    );
    let (_d, job) = job_file(&job);
    for sets in [vec!["parallelism=1", "batch-size=1"], vec!["parallelism=2", "batch-size=1024"], vec!["operator.trace.config.trap_at=201"]]
    {
        run_job(&job, &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let rows: Vec<serde_json::Value> = read_jsonl(&out).into_iter().filter(|r| r["on"] == "record").collect();
        let trapped = usize::from(sets[0].contains("trap"));
        assert_eq!(rows.len(), 400 - trapped, "{sets:?}");
        for r in rows {
            let i = (r["ts"].as_i64().unwrap_or_default() - 1000) as usize;
            assert_eq!(r["fields"], shapes[i % 4].1, "{sets:?}: record {i}");
        }
        // Compared as sets: a record the host found nothing in says nothing of which it is.
        let mut maps: Vec<String> = read_jsonl(&mapped).iter().map(|r| r.to_string()).collect();
        let mut want: Vec<String> = (0..400)
            .map(|i| {
                let (x, n, only) = (&shapes[i % 4].1[0], &shapes[i % 4].1[1], shapes[i % 4].2);
                let (i, user, ts) = match i % 4 {
                    3 => (serde_json::Value::Null, serde_json::Value::Null, serde_json::Value::Null),
                    _ => (i.to_string().into(), format!("\"k{}\"", i % 3).into(), (1000 + i).to_string().into()),
                };
                serde_json::json!({"fields": [n, i, x, user, ts], "only": only}).to_string()
            })
            .collect();
        maps.sort();
        want.sort();
        assert_eq!(maps, want, "{sets:?}");
        assert_eq!(read_jsonl(&dead).len(), trapped, "{sets:?}");
    }
}
