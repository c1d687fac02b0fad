//! Seeing a running job: the Prometheus endpoint (`[metrics] addr`, `--metrics-addr`)
//! scraped during a run and after it, against the job's real counts.

use crate::support::*;

/// Starts the log-analyzer on `case` at `rate` lines/s with its endpoint on `addr`, sinks
/// discarding, and `extra` arguments.
fn start(addr: &str, case: &std::path::Path, rate: u32, extra: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "plugins/log-analyzer/job.toml", "--metrics-addr", addr])
        .args(["--set", "source.logs.kind=file", "--set", &format!("source.logs.path={}", case.join("logs.jsonl").display())])
        .args(["--set", &format!("source.logs.rate={rate}")])
        .args(["--set", "sink.alerts.kind=discard", "--set", "sink.metrics.kind=discard", "--set", "dead-letter.kind=discard"])
        .args(extra)
        .current_dir(root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn weir")
}

/// The value of the sample `name{labels}` in a scrape.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_scraped_during_and_after_a_run_equal_the_jobs_counts() {
    plugins();
    let (name, case) = cases().into_iter().next().expect("a case");
    let flink_alerts = read_jsonl(&case.join("flink-alerts.jsonl")).len() as f64;
    let lines = std::fs::read_to_string(case.join("logs.jsonl")).expect("logs").lines().count() as f64;
    let addr = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("metrics.json");
    // About 3 s of input, and the endpoint kept 3 s after the end for the last look.
    let mut child = start(&addr, &case, 3000, &["--metrics", &json.display().to_string(), "--set", "metrics.linger=3s"]);
    let started = std::time::Instant::now();
    let records_in = "weir_records_in_total{job=\"log-analyzer\",operator=\"logs\"}";
    let running = "weir_job_running{job=\"log-analyzer\"}";
    // Two looks while it runs: the count is under way and moves.
    let mut seen = Vec::new();
    let mut watermarks = std::collections::BTreeSet::new();
    let (mut shares, mut detect_state) = (Vec::new(), 0.0f64);
    let mut last = String::new();
    while started.elapsed() < std::time::Duration::from_secs(60) {
        if let Some((status, kind, body)) = get(&addr, "/metrics") {
            assert_eq!(status, "HTTP/1.1 200 OK");
            assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
            let n = sample(&body, records_in).expect("records in of the source");
            if sample(&body, running) == Some(1.0) && n > 0.0 && n < lines && seen.last() != Some(&n) {
                seen.push(n);
                // Event time per subtask of the keyed operators (p=2): the conformance data's
                // 2025 timestamps, and the wall clock ahead of them.
                for subtask in ["0", "1"] {
                    let labels = format!("{{job=\"log-analyzer\",operator=\"tumble10s\",subtask=\"{subtask}\"}}");
                    if let Some(w) = sample(&body, &format!("weir_watermark_seconds{labels}")) {
                        assert!((1.7e9..1.8e9).contains(&w), "{labels}: {w}");
                        assert!(sample(&body, &format!("weir_watermark_lag_seconds{labels}")).is_some_and(|l| l > 0.0), "{body}");
                        watermarks.insert(subtask);
                    }
                    let labels = format!("{{job=\"log-analyzer\",operator=\"detect\",subtask=\"{subtask}\"}}");
                    detect_state = detect_state.max(sample(&body, &format!("weir_state_entries{labels}")).unwrap_or(0.0));
                }
                // The file source's share read, by its bytes.
                shares.extend(sample(&body, "weir_source_progress_ratio{job=\"log-analyzer\",operator=\"logs\"}"));
            }
            if sample(&body, running) == Some(0.0) {
                last = body;
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // The last look at the JSON, during `linger`: the latest dead letters with their reasons.
    let api: serde_json::Value = serde_json::from_str(&get(&addr, "/api/job").expect("/api/job").2).expect("JSON");
    let status = child.wait().expect("wait");
    assert!(status.success(), "weir failed");
    assert!(shares.windows(2).all(|w| w[0] <= w[1]) && shares.iter().any(|s| *s > 0.0 && *s < 1.0), "{shares:?}");
    assert_eq!(sample(&last, "weir_source_progress_ratio{job=\"log-analyzer\",operator=\"logs\"}"), Some(1.0), "all read");
    assert!(detect_state > 0.0, "detect keeps keyed state (a last login per user) during the run");
    for op in ["parse", "detect", "tumble10s"] {
        let t = sample(&last, &format!("weir_operator_time_seconds_total{{job=\"log-analyzer\",operator=\"{op}\"}}"));
        assert!(t.is_some_and(|t| t > 0.0), "{op}: time in its calls {t:?}");
        let traps = sample(&last, &format!("weir_plugin_traps_total{{job=\"log-analyzer\",operator=\"{op}\"}}"));
        assert_eq!(traps, Some(0.0), "{op}");
    }
    let latest = api["latest_dead_letters"].as_array().expect("latest dead letters");
    assert_eq!(latest.len() as u64, malformed(&case).min(20), "{api:#}");
    assert!(
        latest.iter().all(|d| (d["operator"] == "parse" || d["operator"] == "logs")
            && d["source"] == "logs"
            && !d["reason"].as_str().unwrap_or("").is_empty()),
        "{latest:#?}"
    );
    assert!(latest.windows(2).all(|w| w[0]["at_ms"].as_i64() >= w[1]["at_ms"].as_i64()), "newest first");
    assert_eq!(api["can_reload"], false, "no checkpoints, no reloads");
    assert!(seen.len() >= 2, "{name}: the count moved between two looks during the run: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert_eq!(watermarks.len(), 2, "both subtasks of tumble10s reported their watermark during the run");
    // The last look, after the end, gives the job's real counts, the same the summary gives.
    assert!(!last.is_empty(), "no look after the job ended (linger)");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).expect("metrics file")).expect("JSON");
    for (node, key, metric) in [
        ("logs", "records_in", "weir_records_in_total"),
        ("parse", "records_out", "weir_records_out_total"),
        ("detect", "records_out", "weir_records_out_total"),
        ("alerts", "records_in", "weir_records_in_total"),
        ("parse", "dead_letters", "weir_dead_letters_total"),
        ("tumble10s", "late_dropped", "weir_late_records_total"),
    ] {
        let labels = match metric {
            "weir_late_records_total" => format!("{{job=\"log-analyzer\",operator=\"{node}\",outcome=\"dropped\"}}"),
            _ => format!("{{job=\"log-analyzer\",operator=\"{node}\"}}"),
        };
        let scraped = sample(&last, &format!("{metric}{labels}")).unwrap_or_else(|| panic!("no {metric}{labels} in:\n{last}"));
        assert_eq!(scraped, m["nodes"][node][key].as_f64().expect("count"), "{node} {key}");
    }
    assert_eq!(sample(&last, records_in), Some(lines), "every line read");
    // Each subtask of a keyed task says where its time went: a run at 3,000 lines/s keeps it
    // mostly waiting for input, and busy some of the time. `tumble10s` shares the task of
    // `detect`, which heads it and reports its time; `tumble10s` has no task time of its own.
    for subtask in ["0", "1"] {
        let shared = format!("{{job=\"log-analyzer\",operator=\"tumble10s\",subtask=\"{subtask}\"}}");
        assert_eq!(sample(&last, &format!("weir_task_busy_seconds_total{shared}")), None, "{shared}");
        let labels = format!("{{job=\"log-analyzer\",operator=\"detect\",subtask=\"{subtask}\"}}");
        let (busy, idle) = (
            sample(&last, &format!("weir_task_busy_seconds_total{labels}")),
            sample(&last, &format!("weir_task_idle_seconds_total{labels}")),
        );
        let bp = sample(&last, &format!("weir_task_backpressured_seconds_total{labels}"));
        assert!(
            busy.is_some_and(|b| b > 0.0) && idle.is_some_and(|i| i > busy.unwrap_or(0.0)) && bp.is_some_and(|p| p >= 0.0),
            "{labels}: busy {busy:?} idle {idle:?} backpressured {bp:?}"
        );
    }
    assert_eq!(sample(&last, "weir_records_in_total{job=\"log-analyzer\",operator=\"alerts\"}"), Some(flink_alerts), "every alert");
    let dead: f64 =
        last.lines().filter(|l| l.starts_with("weir_dead_letters_total{")).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum();
    assert_eq!(dead, malformed(&case) as f64, "dead letters over all operators");
    // Only /metrics is served; the endpoint is gone once the job's process ends.
    assert!(get(&addr, "/metrics").is_none(), "nothing listens after the process ended");
}

#[test]
fn a_bad_metrics_address_is_refused_with_the_field() {
    plugins();
    let job = root().join("plugins/log-analyzer/job.toml").display().to_string();
    fails_with(&["validate", &job, "--set", "metrics.addr=nowhere"], &["metrics.addr", "`nowhere` is not an address", "127.0.0.1:9249"]);
    fails_with(&["validate", &job, "--set", "metrics.linger=5s"], &["metrics.linger", "set `metrics.addr` too"]);
    fails_with(&["validate", &job, "--set", "metrics.port=1"], &["metrics.port", "unknown field"]);
}

#[test]
fn the_dashboard_shows_every_operator_and_its_counts_advance_in_a_real_browser() {
    plugins();
    let (_, case) = cases().into_iter().next().expect("a case");
    let addr = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().expect("tempdir");
    let shot = dir.path().join("dashboard.png");
    let nodes = "logs,parse,detect,tumble10s,actions60s,alerts,metrics,dead-letter";
    // The browser first: a cold Chromium can take longer to start than the job runs.
    let mut browser = std::process::Command::new("node")
        .arg(root().join("tests/browser/dashboard.mjs"))
        .args([&format!("http://{addr}/"), nodes, &shot.display().to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node");
    let mut said = std::io::BufReader::new(browser.stdout.take().expect("stdout"));
    let mut launched = String::new();
    std::io::BufRead::read_line(&mut said, &mut launched).expect("the browser's first line");
    // About 7 s of input once the browser is up: long enough for two looks at the page.
    let mut child = start(&addr, &case, 1500, &[]);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut said, &mut rest).expect("the browser's answer");
    let look = browser.wait_with_output().expect("node");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(launched.trim(), "launched", "the browser did not start:\n{}", String::from_utf8_lossy(&look.stderr));
    let said = rest;
    assert!(look.status.success(), "the browser's look failed:\n{said}{}", String::from_utf8_lossy(&look.stderr));
    let seen: serde_json::Value = serde_json::from_str(said.trim()).expect("a JSON line");
    assert_eq!(seen["job"], "log-analyzer");
    assert_eq!(seen["state"], "running");
    assert!(seen["second"].as_u64() > seen["first"].as_u64(), "{seen}");
    let reasons = seen["deadRows"].as_array().expect("dead letter rows");
    assert!(!reasons.is_empty() && reasons.iter().all(|r| !r.as_str().unwrap_or("").is_empty()), "{seen}");
    assert!(seen["read"].as_str().is_some_and(|r| r.contains(" % of ") && (r.ends_with(" MB") || r.ends_with(" KB"))), "{seen}");
    assert!(seen["plugins"].as_str().is_some_and(|p| p.contains("no plugin operator can be reloaded")), "{seen}");
    assert!(std::fs::metadata(&shot).map(|m| m.len() > 10_000).unwrap_or(false), "a screenshot was taken");
}

/// Runs `weir ARGS` under a pseudo-terminal (util-linux's `script`), stdout to `stdout_to`
/// when given; returns what the terminal showed.
fn on_a_terminal(args: &str, stdout_to: Option<&std::path::Path>) -> String {
    let redirect = stdout_to.map(|p| format!(" > {}", p.display())).unwrap_or_default();
    let cmd = format!("{} {args}{redirect}", env!("CARGO_BIN_EXE_weir"));
    let out = std::process::Command::new("script").args(["-qec", &cmd, "/dev/null"]).current_dir(root()).output().expect("script");
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_terminal_gets_a_status_line_and_a_table_and_scripts_get_the_one_line() {
    plugins();
    let job = "plugins/log-analyzer/job.toml --set source.logs.count=20000 --set source.logs.rate=10000";
    let dir = tempfile::tempdir().expect("tempdir");
    let stdout = dir.path().join("stdout.txt");
    let shown = on_a_terminal(&format!("run {job}"), Some(&stdout));
    // A bounded source that knows its total (20,000 records) gets a bar with the ETA,
    // redrawn in place while it runs (about 2 s).
    let bar = shown.matches("/20,000 (").count();
    assert!(bar >= 2 && shown.contains(" %) · ETA "), "the bar was drawn at least twice:\n{shown}");
    assert!(shown.contains(" out (") && shown.contains("dead letters 0"), "{shown}");
    // Input of unknown length (a named pipe): the status line, with rates.
    let (_, case) = cases().into_iter().next().expect("a case");
    let fifo = dir.path().join("logs.fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    let (from, to) = (case.join("logs.jsonl"), fifo.clone());
    let writer = std::thread::spawn(move || std::fs::write(&to, std::fs::read(&from).expect("logs")));
    let piped = on_a_terminal(
        &format!(
            "run plugins/log-analyzer/job.toml --set source.logs.kind=file --set source.logs.path={} \
             --set source.logs.rate=4000 --set sink.alerts.kind=discard --set sink.metrics.kind=discard",
            fifo.display()
        ),
        Some(&dir.path().join("piped-stdout.txt")),
    );
    writer.join().expect("writer").expect("written to the pipe");
    let status = regex_lite(&piped, " records in (", "/s) · ");
    assert!(status >= 2 && !piped.contains("ETA"), "the status line was drawn at least twice:\n{piped}");
    // The case's malformed lines are printed as dead letters on stderr, each on a line of
    // its own: the status line is cleared before and drawn again after.
    let segments: Vec<&str> = piped.split(['\r', '\n']).collect();
    assert!(segments.iter().filter(|l| l.contains("dead-letter> ")).count() as u64 == malformed(&case), "{piped}");
    assert!(!segments.iter().any(|l| l.contains("dead-letter> ") && l.contains("records in (")), "mixed:\n{piped}");
    // The table at the end, a row per node.
    let table: Vec<&str> = shown.lines().map(|l| l.trim_end_matches('\r')).skip_while(|l| !l.ends_with("weir: job finished")).collect();
    assert!(table.len() >= 10, "{shown}");
    assert_eq!(table[1].split_whitespace().collect::<Vec<_>>(), ["node", "in", "out", "dead", "late", "restarts", "time", "cpu"]);
    assert_eq!(table[2].split_whitespace().take(3).collect::<Vec<_>>(), ["logs", "20,000", "20,000"]);
    assert!(
        table.iter().any(|l| l.starts_with("checkpoints: 0 completed, 0 failed · wall time ") && l.contains(" · peak memory ")),
        "{shown}"
    );
    // The print sinks' stdout has only their rows.
    let rows = std::fs::read_to_string(&stdout).expect("stdout");
    assert!(
        !rows.is_empty() && rows.lines().all(|l| l.starts_with("Security Alerts> ") || l.starts_with("User Metrics> ")),
        "stdout mixed"
    );
    // `-q`, or no terminal: the one summary line, as always.
    let quiet = on_a_terminal(&format!("run -q {job}"), Some(&stdout));
    assert!(quiet.contains("weir: job finished in ") && !quiet.contains("records in ("), "{quiet}");
    let out = weir(&["run", "plugins/log-analyzer/job.toml", "--set", "source.logs.count=2000", "--set", "source.logs.rate=1e9"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.lines().last().unwrap_or_default().starts_with("weir: job finished in "), "{err}");
    assert!(!err.contains("records in (") && !err.contains("restarts"), "{err}");
}

/// How many times `a`, then digits and commas, then `b` occur in `text`.
fn regex_lite(text: &str, a: &str, b: &str) -> usize {
    text.match_indices(a)
        .filter(|(i, _)| text[i + a.len()..].trim_start_matches(|c: char| c.is_ascii_digit() || c == ',').starts_with(b))
        .count()
}
