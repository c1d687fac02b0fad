//! The flagship job: alerts and metrics equal Flink's on every case, at parallelism 1, 2 and
//! 4, written to files and printed by sinks chained into the keyed task; the
//! generator-driven default run raises both kinds of alert within its first minute.

use crate::support::*;

#[test]
fn alerts_and_metrics_equal_flink_at_parallelism_1_2_and_4_on_json_and_text_lines() {
    let job = root().join("plugins/log-analyzer/job.toml");
    for (name, case) in cases() {
        let flink_alerts = sorted(read_jsonl(&case.join("flink-alerts.jsonl")));
        let flink_metrics = sorted(
            read_jsonl(&case.join("flink-windows.jsonl")).into_iter().filter(|r| r["kind"] == "tumble10s" || r["kind"] == "actions60s"),
        );
        // The third run takes the parse plugin out of the source's task (`chain = false`);
        // the last reads the lines as text, as Flink's job does, so that `parse` alone
        // refuses the malformed ones (the benchmarks' setting).
        for (p, chain, format) in [(1, true, "json"), (4, true, "json"), (4, false, "json"), (2, true, "text")] {
            let sets = [format!("parallelism={p}"), format!("operator.parse.chain={chain}"), format!("source.logs.format={format}")];
            let run = run_log_analyzer(&job, &case, &sets);
            let m = &run.counters;
            // Every alert is traced from its input event at the source to the sink.
            let lat = &m["nodes"]["alerts"]["latency"];
            assert_eq!(lat["count"].as_u64(), Some(flink_alerts.len() as u64), "{name} p{p} {format}: {lat}");
            let (p50, p99, max) =
                (lat["p50_us"].as_u64().unwrap_or(0), lat["p99_us"].as_u64().unwrap_or(0), lat["max_us"].as_u64().unwrap_or(0));
            assert!(0 < p50 && p50 <= p99 && p99 <= max, "{name} p{p} {format}: {lat}");
            assert!(sorted(run.alerts) == flink_alerts, "{name} p{p} {format}: alerts differ from Flink's");
            assert!(sorted(run.metrics) == flink_metrics, "{name} p{p} {format}: metrics differ from Flink's");
            let dl = run.dead;
            assert_eq!(dl.len() as u64, malformed(&case), "{name} p{p} {format}");
            assert_eq!(dead_letters(m), malformed(&case));
            assert!(
                dl.iter().all(|d| d["position"].as_u64().unwrap_or(0) > 0
                    && d["source"] == "logs"
                    && !d["reason"].as_str().unwrap_or("").is_empty()),
                "{dl:?}"
            );
            if format == "text" {
                assert!(dl.iter().all(|d| d["operator"] == "parse"), "{name}: {dl:?}");
            }
        }
        // As shipped, with print sinks: they run in the `detect` task, four instances writing
        // to one standard output, and print what the file sinks wrote.
        let mut sets = case_source(&case);
        sets.extend(["parallelism=4".into(), "dead-letter.kind=discard".into()]);
        let (out, _, m) = run_job(&job, &sets);
        for sink in ["alerts", "metrics"] {
            assert!(m["nodes"][sink]["task_cpu_ms"].is_null(), "{name}: `{sink}` ran in a task of its own");
        }
        assert!(sorted(printed(&out, "Security Alerts")) == flink_alerts, "{name}: printed alerts differ from Flink's");
        assert!(sorted(printed(&out, "User Metrics")) == flink_metrics, "{name}: printed metrics differ from Flink's");
    }
}

#[test]
fn generator_default_run_raises_both_alerts_within_its_first_minute() {
    // The job's rate is 5,000 events/s: its first minute is its first 300,000 events.
    let job = root().join("plugins/log-analyzer/job.toml");
    let (out, _, m) = run_job(&job, &["source.logs.count=300000".into(), "source.logs.rate=1e9".into()]);
    let alerts = printed(&out, "Security Alerts");
    assert!(alerts.iter().any(|a| a["type"] == "security_alert"), "no security alert");
    assert!(alerts.iter().any(|a| a["type"] == "anomaly_alert"), "no anomaly alert");
    let metrics = printed(&out, "User Metrics");
    assert!(metrics.iter().any(|r| r["kind"] == "tumble10s") && metrics.iter().any(|r| r["kind"] == "actions60s"));
    assert_eq!(dead_letters(&m), 0, "the generator makes well-formed events");
}

/// The parse plugin through the real host: a LogEvent line goes on byte for byte (answered
/// unchanged, nothing crosses back), one with more than the LogEvent fields goes on
/// re-encoded (a new value; its event time kept, its key read again from the new value),
/// a malformed one goes to dead-letter.
#[test]
fn parse_passes_log_events_as_they_are_and_reencodes_the_rest() {
    let event = |user: &str, rest: &str| {
        format!(
            r#"{{"user_id": "{user}", "session_id": "s1", "action": "login", "timestamp": 1735689601, "ip_address": "10.0.0.1", "user_agent": "ua"{rest}}}"#
        )
    };
    let lines = [
        event("u1", ""),
        event("u1", r#", "extra": [1, 2]"#),
        event("u1", r#", "metadata": null"#),
        event("u0", r#", "user_id": "u2""#),
        r#"{"user_id": 5}"#.to_string(),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let (inp, parsed, counts) = (dir.path().join("in.jsonl"), dir.path().join("parsed.jsonl"), dir.path().join("counts.jsonl"));
    std::fs::write(&inp, lines.join("\n") + "\n").expect("write input");
    let job = format!(
        r#"
[source.logs]
kind = "file"
path = "{}"
event-time = {{ field = "timestamp", unit = "s" }}

[operator.parse]
kind = "map"
input = "logs"
plugin = "{}"

[operator.counts]
kind = "window"
input = "parse"
key-by = "user_id"
window = {{ type = "tumbling", size = "10s" }}
aggregates = {{ count = "count" }}

[sink.parsed]
kind = "file"
input = "parse"
path = "{}"

[sink.counted]
kind = "file"
input = "counts"
path = "{}"
"#,
        inp.display(),
        plugin("log_analyzer_parse").display(),
        parsed.display(),
        counts.display()
    );
    let (_d, job) = job_file(&job);
    for batch in [1, 1024] {
        let (_, _, m) = run_job(&job, &[format!("batch-size={batch}")]);
        assert_eq!(dead_letters(&m), 1, "batch {batch}: the malformed line");
        let out = std::fs::read_to_string(&parsed).expect("parsed");
        let out: Vec<&str> = out.lines().collect();
        assert_eq!(out.len(), 4, "batch {batch}: {out:?}");
        assert_eq!(out[0], lines[0], "batch {batch}: a LogEvent goes on byte for byte");
        let fields = |l: &str| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON");
            let mut keys: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
            keys.sort();
            (v["user_id"].as_str().unwrap_or("").to_string(), keys.join(","))
        };
        let exact = "action,ip_address,session_id,timestamp,user_agent,user_id";
        for (i, user) in [(1, "u1"), (2, "u1"), (3, "u2")] {
            assert_ne!(out[i], lines[i], "batch {batch}: line {i} is re-encoded");
            assert_eq!(fields(out[i]), (user.to_string(), exact.to_string()), "batch {batch}: line {i}");
        }
        let mut rows: Vec<(String, u64)> = read_jsonl(&counts)
            .iter()
            .map(|r| (r["user_id"].as_str().unwrap_or("").to_string(), r["count"].as_u64().unwrap_or(0)))
            .collect();
        rows.sort();
        assert_eq!(rows, [("u1".to_string(), 3), ("u2".to_string(), 1)], "batch {batch}: keys read from the re-encoded values");
    }
}
