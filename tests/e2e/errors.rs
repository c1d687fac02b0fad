//! Bad input never crashes the host: job-file mistakes and bad plugins get clear errors
//! before any record flows; malformed records and plugin failures go to dead-letter.

use std::path::{Path, PathBuf};

use crate::support::*;

fn one_map_job(plugin_path: &str, config: &str) -> String {
    format!("[source.n]\nkind = \"collection\"\nvalues = [1]\n\n[operator.m]\nkind = \"map\"\ninput = \"n\"\nplugin = \"{plugin_path}\"\nconfig = {config}\n\n[sink.out]\nkind = \"print\"\ninput = \"m\"\n")
}

#[test]
fn job_file_errors_name_file_line_field_and_fix() {
    let (_d, job) = job_file("[source.logs]\nkind = \"file\"\npth = \"x.jsonl\"\n");
    let j = job.display().to_string();
    fails_with(&["run", &j], &[&format!("{j}:3"), "unknown field `pth`", "path"]);
    let (_d2, job2) = job_file("[source.logs]\nkind = \"file\"\npath = \"x\"\n\n[operator.w]\nkind = \"window\"\ninput = \"logs\"\nkey-by = \"u\"\nwindow = { type = \"tumbling\", size = \"ten\" }\n");
    let j2 = job2.display().to_string();
    fails_with(&["validate", &j2], &[&format!("{j2}:9"), "operator.w.window.size", "`ten` is not a duration", "10s"]);
    fails_with(&["run", &j, "--set", "nonsense"], &["expected KEY=VALUE"]);
}

/// An operator's own event time and watermarks, and keys by the record's key: misplaced or
/// empty settings are job-file errors naming the field and the fix; a record without a key
/// at `record-key` goes to the dead letters with the reason.
#[test]
fn operator_event_time_and_record_keys_are_checked() {
    plugins();
    let window = |extra: &str| {
        format!("[source.n]\nkind = \"collection\"\nvalues = [{{ ts = 1 }}, {{ ts = 2 }}]\nevent-time = {{ field = \"ts\" }}\n\n[operator.w]\nkind = \"window\"\ninput = \"n\"\nwindow = {{ type = \"tumbling\", size = \"10s\" }}\n{extra}\n")
    };
    let (_d, job) = job_file(&window("key-by = \"ts\"\nwatermark = { max-out-of-orderness = \"1s\" }"));
    fails_with(
        &["validate", &job.display().to_string()],
        &["operator.w.watermark", "only a map, filter or flat-map operator", "on the source"],
    );
    let (_d, job) = job_file(&window("key-by = { record-key = \"\" }"));
    fails_with(&["validate", &job.display().to_string()], &["operator.w.key-by.record-key", "an empty name"]);
    let (_d, job) = job_file(&window("key-by = { record_key = \"k\" }"));
    let j = job.display().to_string();
    fails_with(&["validate", &j], &[&format!("{j}:"), "`key-by` must be", "{ record-key = \"name\" }"]);
    let map = |extra: &str| {
        one_map_job(&plugin("identity").display().to_string(), "{}").replace("config = {}\n", &format!("config = {{}}\n{extra}\n"))
    };
    let (_d, job) = job_file(&map("event-time = { ingestion = true }"));
    fails_with(&["validate", &job.display().to_string()], &["operator.m.event-time.ingestion", "at the source"]);
    let (_d, job) = job_file(&map("watermark = { idle-timeout = \"1s\" }"));
    fails_with(&["validate", &job.display().to_string()], &["operator.m.watermark.idle-timeout", "on the source"]);
    let (_d, job) = job_file(&map("watermark = { interval = \"often\" }"));
    fails_with(&["validate", &job.display().to_string()], &["operator.m.watermark.interval", "`often` is not a duration"]);

    // A watermark on an operator whose records carry no event time: each to the dead letters.
    let (_d, job) = job_file(&map("watermark = { max-out-of-orderness = \"1s\" }"));
    let (_, err, m) = run_job(&job, &[]);
    assert_eq!(dead_letters(&m), 1, "{err}");
    assert!(err.contains("the record has none"), "{err}");

    // Records of a collection carry no key: each goes to the dead letters, the job goes on.
    let dir = tempfile::tempdir().expect("tempdir");
    let dead = dir.path().join("dead.jsonl");
    let text = window(&format!(
        "key-by = {{ record-key = \"k\" }}\n\n[sink.out]\nkind = \"print\"\ninput = \"w\"\n\n[dead-letter]\nkind = \"file\"\npath = \"{}\"",
        dead.display()
    ));
    let (_d, job) = job_file(&text);
    let (out, _, m) = run_job(&job, &[]);
    assert_eq!(dead_letters(&m), 2, "{out}");
    assert!(read_jsonl(&dead).iter().all(|d| d["reason"].as_str().unwrap_or_default().contains("the record has no key")));
}

#[test]
fn missing_wrong_and_failing_plugins_stop_the_job_before_records_flow() {
    plugins();
    let (_d, job) = job_file(&one_map_job("no/such.wasm", "{}"));
    fails_with(&["run", &job.display().to_string()], &["no/such.wasm", "cannot read the file", "make plugins"]);

    let (_d, job) = job_file(&one_map_job(&plugin("even").display().to_string(), "{}"));
    fails_with(&["validate", &job.display().to_string()], &["operator `m` needs a plugin of world `map`", "exports world `filter`"]);

    let (_d, job) = job_file(&one_map_job(&plugin("faulty").display().to_string(), "{ fail_init = true }"));
    fails_with(&["run", &job.display().to_string()], &["operator `m`", "init failed", "fail_init is set"]);

    let (_d, job) = job_file(&one_map_job(&plugin("faulty").display().to_string(), "{ trap_init = true }"));
    fails_with(&["run", &job.display().to_string()], &["init failed", "trapped"]);

    let (d, job) = job_file(&one_map_job("junk.wasm", "{}"));
    std::fs::write(d.path().join("junk.wasm"), "this is not wasm").expect("write");
    fails_with(&["run", &job.display().to_string()], &["junk.wasm", "not a WebAssembly component"]);
}

/// A job in `dir`: file `in.jsonl` → the `faulty` map → file `out.jsonl`, dead letters to
/// `dead.jsonl`, with `top` before the tables. Returns (input, output, dead letters, text).
fn faulty_file_job(dir: &Path, top: &str) -> (PathBuf, PathBuf, PathBuf, String) {
    let (input, out, dead) = (dir.join("in.jsonl"), dir.join("out.jsonl"), dir.join("dead.jsonl"));
    let text = format!(
        "{top}[source.in]\nkind = \"file\"\npath = \"{}\"\n\n[operator.faulty]\nkind = \"map\"\ninput = \"in\"\nplugin = \"{}\"\n\n[sink.out]\nkind = \"file\"\ninput = \"faulty\"\npath = \"{}\"\n\n[dead-letter]\nkind = \"file\"\npath = \"{}\"\n",
        input.display(),
        plugin("faulty").display(),
        out.display(),
        dead.display()
    );
    (input, out, dead, text)
}

/// A plugin call that never returns is stopped at the job's `plugin-deadline` and its record
/// dead-lettered; the job goes on. `off` compiles plugins without the checks; a bad value
/// is a job-file error naming the field and the fix.
#[test]
fn a_plugin_call_that_never_returns_is_stopped_at_the_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (input, out, dead, text) = faulty_file_job(dir.path(), "plugin-deadline = \"1s\"\n");
    std::fs::write(&input, "{\"n\": 1}\n{\"n\": 99}\n{\"n\": 2}\n").expect("write");
    let (_d, job) = job_file(&text);
    // Watched: without a working deadline the job would never end.
    let metrics = dir.path().join("m.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", &job.display().to_string(), "--metrics", &metrics.display().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn weir");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the call that never returns was not stopped within 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success());
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&metrics).expect("metrics")).expect("metrics JSON");
    let ns: Vec<i64> = read_jsonl(&out).iter().map(|v| v["n"].as_i64().expect("n")).collect();
    assert_eq!(ns, [1, 2]);
    let dl = read_jsonl(&dead);
    assert_eq!(dl.len(), 1, "{dl:?}");
    assert_eq!(dl[0]["position"], 2);
    assert!(dl[0]["reason"].as_str().unwrap_or_default().contains("deadline of 100ms exceeded (a tenth of `plugin-deadline`"), "{dl:?}");
    assert_eq!(dead_letters(&m), 1);
    // The batch call, then the record's call alone: each stopped once.
    assert_eq!(m["nodes"]["faulty"]["plugin_restarts"].as_u64(), Some(2));
    std::fs::write(&input, "{\"n\": 1}\n{\"n\": 2}\n").expect("write");
    run_job(&job, &["plugin-deadline=off".into()]);
    assert_eq!(read_jsonl(&out).len(), 2);
    fails_with(
        &["validate", &job.display().to_string(), "--set", "plugin-deadline=soon"],
        &["plugin-deadline", "`soon` is not a duration", "or `off`"],
    );
}

#[test]
fn malformed_lines_and_plugin_failures_go_to_dead_letter_and_the_job_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (input, out, dead, text) = faulty_file_job(dir.path(), "");
    std::fs::write(&input, "{\"n\": 1}\nnot json\n{\"n\": -1}\n{\"n\": 13}\n{\"n\": 2}\n{\"n\": 13}\n{\"n\": 3}\n").expect("write");
    let (_d, job) = job_file(&text);
    let (_, _, m) = run_job(&job, &[]);
    let ns: Vec<i64> = read_jsonl(&out).iter().map(|v| v["n"].as_i64().expect("n")).collect();
    assert_eq!(ns, [1, 2, 3], "good records pass, even after traps");
    let dl = read_jsonl(&dead);
    let pos: Vec<u64> = dl.iter().map(|d| d["position"].as_u64().expect("position")).collect();
    assert_eq!(pos.len(), 4, "{dl:?}");
    let by_pos =
        |p: u64| dl.iter().find(|d| d["position"] == p).map(|d| d["reason"].as_str().unwrap_or("").to_string()).unwrap_or_default();
    assert!(by_pos(2).starts_with("not JSON"), "{}", by_pos(2));
    assert!(by_pos(3).contains("invalid input: n = -1 is negative"), "{}", by_pos(3));
    assert!(by_pos(4).contains("plugin trapped"), "{}", by_pos(4));
    assert!(by_pos(6).contains("plugin trapped"), "{}", by_pos(6));
    assert_eq!(dl.iter().find(|d| d["position"] == 3).map(|d| d["operator"].clone()), Some("faulty".into()));
    assert_eq!(dead_letters(&m), 4);
    // One restart for the trapped batch call, one for each record that trapped again alone.
    assert_eq!(m["nodes"]["faulty"]["plugin_restarts"].as_u64(), Some(3));
}

#[test]
fn validate_and_inspect_describe_jobs_and_plugins() {
    plugins();
    for job in ["plugins/log-analyzer/job.toml", "tests/conformance/tumble10s.toml"] {
        let out = weir(&["validate", job]);
        assert!(out.status.success(), "{job}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // The task layout: a stateless operator chains into its input's task unless told not
    // to; keyed operators take the job's parallelism.
    let tasks = |sets: &[&str]| {
        let mut args = vec!["validate", "tests/conformance/tumble10s.toml"];
        for s in sets {
            args.extend(["--set", s]);
        }
        let out = weir(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().skip(2).map(str::trim).map(String::from).collect::<Vec<_>>()
    };
    let keyed = "tumble10s ×3 (input partitioned by key)";
    assert_eq!(tasks(&["parallelism=3"]), ["logs ×1 → parse", keyed, "out ×1", "dead-letter ×1"]);
    assert_eq!(tasks(&["parallelism=3", "operator.parse.chain=false"]), ["logs ×1", "parse ×1", keyed, "out ×1", "dead-letter ×1"]);
    let out = weir(&["inspect", &plugin("log_analyzer_detect").display().to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("world:  weir:plugin/process@0.6.0"), "{text}");
    assert!(text.contains("on-timer (func)") && text.contains("weir:plugin/state@0.6.0"), "{text}");
}

#[test]
fn every_built_plugin_has_a_test() {
    // Every test file, so that a plugin's test counts wherever it lives.
    let sources: String = std::fs::read_dir(root().join("tests/e2e"))
        .expect("tests/e2e")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| std::fs::read_to_string(p).expect("test source"))
        .collect();
    let jobs: String = ["plugins/log-analyzer/job.toml", "tests/conformance/tumble10s.toml"]
        .iter()
        .map(|f| std::fs::read_to_string(root().join(f)).expect("job"))
        .collect();
    for e in std::fs::read_dir(plugins()).expect("dist") {
        let name = e.expect("entry").path().file_stem().expect("stem").to_string_lossy().into_owned();
        assert!(sources.contains(&format!("\"{name}\"")) || jobs.contains(&format!("{name}.wasm")), "plugin {name} has no end-to-end test");
    }
}
