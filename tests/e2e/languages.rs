//! Operators in Python, JavaScript, C and Go through the real host: each language's failed-login
//! detector gives exactly Flink's alerts; the log-analyzer with its plugins in Python gives
//! exactly Flink's alerts and window rows at parallelism 1 and 4; components of any language
//! get the same clear errors and dead letters as Rust ones.

use crate::support::*;

/// The detectors built from plugins/examples/{python,js,c,go}/detect, and the Rust one.
const DETECTORS: [&str; 5] = ["python_detect", "js_detect", "c_detect", "go_detect", "log_analyzer_detect"];

#[test]
fn every_languages_detector_gives_flinks_security_alerts() {
    let job = root().join("plugins/log-analyzer/job.toml");
    for (name, case) in cases() {
        let flink = read_jsonl(&case.join("flink-alerts.jsonl"));
        let security = |rows: &[serde_json::Value]| sorted(rows.iter().filter(|r| r["type"] == "security_alert").cloned());
        assert!(!security(&flink).is_empty(), "{name}: the case has security alerts");
        for detector in DETECTORS {
            let CaseRun { alerts, counters: m, .. } =
                run_log_analyzer(&job, &case, &[format!("operator.detect.plugin={}", plugin(detector).display()), "parallelism=2".into()]);
            assert!(security(&alerts) == security(&flink), "{name}: {detector}'s security alerts differ from Flink's");
            // And the anomaly alerts too: the whole rule set, in every language.
            assert!(sorted(alerts) == sorted(flink.clone()), "{name}: {detector}'s alerts differ from Flink's");
            assert_eq!(m["nodes"]["detect"]["dead_letters"].as_u64().unwrap_or(0), 0, "{name}: {detector}: {}", m["nodes"]["detect"]);
        }
    }
}

#[test]
fn the_python_log_analyzer_equals_flink_at_parallelism_1_and_4() {
    let job = root().join("plugins/log-analyzer-py/job.toml");
    let text = std::fs::read_to_string(&job).expect("job");
    assert!(text.contains("python_parse.wasm") && text.contains("python_detect.wasm"), "both plugins are the Python ones");
    for (name, case) in cases() {
        let flink_alerts = sorted(read_jsonl(&case.join("flink-alerts.jsonl")));
        let flink_windows = sorted(
            read_jsonl(&case.join("flink-windows.jsonl")).into_iter().filter(|r| r["kind"] == "tumble10s" || r["kind"] == "actions60s"),
        );
        for p in [1, 4] {
            let CaseRun { alerts, metrics, dead, counters: m } = run_log_analyzer(&job, &case, &[format!("parallelism={p}")]);
            assert!(sorted(alerts) == flink_alerts, "{name} p{p}: alerts differ from Flink's");
            assert!(sorted(metrics) == flink_windows, "{name} p{p}: window rows differ from Flink's");
            assert_eq!(dead.len() as u64, malformed(&case), "{name} p{p}: {dead:?}");
            assert_eq!(dead_letters(&m), malformed(&case), "{name} p{p}");
            // The lines the source reads as JSON but the Python parser refuses carry its reason.
            for d in dead.iter().filter(|d| d["operator"] == "parse") {
                let reason = d["reason"].as_str().unwrap_or_default();
                assert!(reason.starts_with("invalid input: ") || reason.contains("field `") || reason.contains("not"), "{d}");
            }
        }
    }
}

/// A job in `dir`: file `in.jsonl` → `operator` (a process plugin keyed by field `user_id`,
/// with `config`) → file `out.jsonl`, dead letters to `dead.jsonl`.
fn process_job(dir: &std::path::Path, plugin_name: &str, config: &str) -> std::path::PathBuf {
    let text = format!(
        "[source.in]\nkind = \"file\"\npath = \"{dir}/in.jsonl\"\n\n[operator.detect]\nkind = \"process\"\ninput = \"in\"\nkey-by = \"user_id\"\nplugin = \"{}\"\nconfig = {config}\n\n[sink.out]\nkind = \"file\"\ninput = \"detect\"\npath = \"{dir}/out.jsonl\"\n\n[dead-letter]\nkind = \"file\"\npath = \"{dir}/dead.jsonl\"\n",
        plugin(plugin_name).display(),
        dir = dir.display()
    );
    let job = dir.join("job.toml");
    std::fs::write(&job, text).expect("job");
    job
}

#[test]
fn records_a_plugin_refuses_go_to_dead_letter_with_its_reason_in_every_language() {
    // JSON the source accepts, but not an event the detector can read.
    let lines = [
        r#"{"user_id": "u1", "action": "login_failed", "timestamp": 1}"#,
        r#"{"user_id": "u1", "action": "login_failed"}"#,
        r#"{"user_id": "u1", "action": 7, "timestamp": 2}"#,
        r#"{"user_id": "u1", "action": "login_failed", "timestamp": 3}"#,
    ];
    for name in ["python_detect", "js_detect", "c_detect", "go_detect"] {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("in.jsonl"), lines.join("\n") + "\n").expect("input");
        let job = process_job(dir.path(), name, "{ threshold = 3 }");
        let (_, _, m) = run_job(&job, &[]);
        let dead = read_jsonl(&dir.path().join("dead.jsonl"));
        let out = read_jsonl(&dir.path().join("out.jsonl"));
        assert_eq!(dead_letters(&m), 2, "{name}: {dead:?}");
        let reasons: Vec<&str> = dead.iter().map(|d| d["reason"].as_str().unwrap_or_default()).collect();
        assert_eq!(
            reasons,
            [
                "plugin error: invalid input: field `timestamp`: an integer is required",
                "plugin error: invalid input: field `action`: a string is required"
            ],
            "{name}: the same reasons in every language"
        );
        assert!(dead.iter().all(|d| d["operator"] == "detect" && d["position"].as_u64().is_some()), "{name}: {dead:?}");
        assert!(out.is_empty(), "{name}: two good failures are below the threshold of 3: {out:?}");
    }
}

#[test]
fn wrong_worlds_and_refused_configs_stop_the_job_with_a_clear_error_in_every_language() {
    plugins();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.jsonl"), "{}\n").expect("input");
    // The Python parser is a `map`: a process operator cannot run it.
    let job = process_job(dir.path(), "python_parse", "{}");
    fails_with(&["validate", &job.display().to_string()], &["operator `detect` needs a plugin of world `process`", "exports world `map`"]);
    // A config each detector refuses in `init`: the reason comes through, naming the operator.
    for (name, config, reason) in
        [("python_detect", "{ threshold = \"many\" }", "ValueError"), ("c_detect", "{ threshold = 0 }", "`threshold` must be at least 1")]
    {
        let job = process_job(dir.path(), name, config);
        fails_with(&["run", &job.display().to_string()], &["operator `detect`", "init failed", reason]);
    }
}

#[test]
fn a_scaffolded_plugin_builds_passes_its_test_and_runs_in_every_language() {
    plugins(); // the toolchains: scripts/setup.sh --languages
    let tmp = tempfile::tempdir().expect("tempdir");
    for lang in ["rust", "python", "js", "c"] {
        let name = format!("hello-{lang}");
        let dir = tmp.path().join(&name);
        let out = weir(&["new", &name, "--lang", lang, "--dir", &dir.display().to_string()]);
        assert!(out.status.success(), "weir new --lang {lang}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("build.sh"), "it says what to run next");
        // The Rust plugin's dependencies are compiled once for every run of this test.
        let cache = std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_default().join(".cache/weir/scaffold-target");
        for script in ["test.sh", "build.sh"] {
            let run = std::process::Command::new("bash").arg(dir.join(script)).env("CARGO_TARGET_DIR", &cache).output().expect("bash");
            assert!(
                run.status.success(),
                "{lang}: {script} failed:\n{}{}",
                String::from_utf8_lossy(&run.stdout),
                String::from_utf8_lossy(&run.stderr)
            );
        }
        let wasm = dir.join(format!("{name}.wasm"));
        assert!(wasm.exists(), "{lang}: build.sh made {}", wasm.display());
        let (stdout, _, m) = run_job(&dir.join("job.toml"), &[]);
        let rows = printed(&stdout, &name);
        assert_eq!(rows.len(), 1000, "{lang}: one row per generated event");
        // Per key the counts run 1, 2, 3, ... in order, whatever the language.
        let mut last = std::collections::BTreeMap::new();
        for r in &rows {
            let key = r["key"].as_str().expect("key").to_string();
            let n = r["count"].as_u64().expect("count");
            assert_eq!(n, last.get(&key).copied().unwrap_or(0) + 1, "{lang}: {r}");
            last.insert(key, n);
        }
        assert_eq!(last.values().sum::<u64>(), 1000, "{lang}");
        assert_eq!(dead_letters(&m), 0, "{lang}");
    }
    // A bad name or a folder in the way is refused before anything is written.
    fails_with(&["new", "Bad Name", "--lang", "python"], &["plugin name `Bad Name`", "lowercase"]);
    fails_with(&["new", "x", "--dir", &tmp.path().display().to_string()], &["exists and is not empty"]);
}

#[test]
fn window_aggregates_in_python_and_javascript_give_flinks_rows_also_where_sessions_merge() {
    for (lang, query, kind) in [
        ("python_window_count", "tumble10s", "tumble10s"),
        ("python_window_count", "session300s", "session300s"),
        ("js_window_count", "session300s", "session300s"),
    ] {
        let plugin_path = plugin(lang);
        // The conformance query with the Python aggregate in place of the built-in count.
        let text = std::fs::read_to_string(root().join(format!("tests/conformance/{query}.toml"))).expect("query");
        assert!(text.contains("aggregates = { count = \"count\" }"), "{query}");
        let text = text
            .replace("aggregates = { count = \"count\" }", &format!("plugin = \"{}\"", plugin_path.display()))
            .replace("../../plugins/dist", &plugins().display().to_string());
        let (_d, job) = job_file(&text);
        for (name, case) in cases() {
            let want = sorted(read_jsonl(&case.join("flink-windows.jsonl")).into_iter().filter(|r| r["kind"] == kind));
            for p in [1, 4] {
                let dir = tempfile::tempdir().expect("tempdir");
                let out = dir.path().join("out.jsonl");
                let sets = [
                    format!("source.logs.path={}", case.join("logs.jsonl").display()),
                    format!("sink.out.path={}", out.display()),
                    format!("parallelism={p}"),
                ];
                run_job(&job, &sets);
                let got = sorted(read_jsonl(&out));
                assert_eq!(got.len(), want.len(), "{lang}: {name} {query} p{p}: row count");
                assert!(got == want, "{lang}: {name} {query} p{p}: rows differ from Flink's");
            }
        }
    }
}
