//! Seeing a running job: the Prometheus endpoint (`[metrics] addr`, `--metrics-addr`)
//! scraped during a run and after it, against the job's real counts.

use std::io::{Read, Write};

use crate::support::*;

/// `GET path` on `addr`: (status line, content type, body); None when nothing answers.
fn get(addr: &str, path: &str) -> Option<(String, String, String)> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.lines().next()?.to_string();
    let kind = head.lines().find_map(|l| l.strip_prefix("content-type: ")).unwrap_or_default().to_string();
    Some((status, kind, body.to_string()))
}

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
                }
            }
            if sample(&body, running) == Some(0.0) {
                last = body;
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let status = child.wait().expect("wait");
    assert!(status.success(), "weir failed");
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
    // mostly waiting for input, and busy some of the time.
    for subtask in ["0", "1"] {
        let labels = format!("{{job=\"log-analyzer\",operator=\"tumble10s\",subtask=\"{subtask}\"}}");
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
    // About 7 s of input: long enough for two looks at the page.
    let mut child = start(&addr, &case, 1500, &[]);
    wait_for_listener(&addr, std::time::Duration::from_secs(30));
    let dir = tempfile::tempdir().expect("tempdir");
    let shot = dir.path().join("dashboard.png");
    let nodes = "logs,parse,detect,tumble10s,actions60s,alerts,metrics,dead-letter";
    let look = std::process::Command::new("node")
        .arg(root().join("tests/browser/dashboard.mjs"))
        .args([&format!("http://{addr}/"), nodes, &shot.display().to_string()])
        .output()
        .expect("node");
    let _ = child.kill();
    let _ = child.wait();
    let said = String::from_utf8_lossy(&look.stdout);
    assert!(look.status.success(), "the browser's look failed:\n{said}{}", String::from_utf8_lossy(&look.stderr));
    let seen: serde_json::Value = serde_json::from_str(said.trim()).expect("a JSON line");
    assert_eq!(seen["job"], "log-analyzer");
    assert_eq!(seen["state"], "running");
    assert!(seen["second"].as_u64() > seen["first"].as_u64(), "{seen}");
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
    // The status line, redrawn in place while it runs (about 2 s).
    let status = regex_lite(&shown, " records in (", "/s) · ");
    assert!(status >= 2, "the status line was drawn at least twice:\n{shown}");
    assert!(shown.contains("dead letters 0 · "), "{shown}");
    // The table at the end, a row per node.
    let table: Vec<&str> = shown.lines().map(|l| l.trim_end_matches('\r')).skip_while(|l| !l.ends_with("weir: job finished")).collect();
    assert!(table.len() >= 10, "{shown}");
    assert_eq!(table[1].split_whitespace().collect::<Vec<_>>(), ["node", "in", "out", "dead", "late", "restarts"]);
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
