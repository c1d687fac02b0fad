//! Helpers: build the plugins once, run the real `weir` binary, read JSON lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ has a parent").to_path_buf()
}

/// `shared/` beside the repository (or `$WEIR_SHARED`).
pub fn shared() -> PathBuf {
    std::env::var_os("WEIR_SHARED").map(PathBuf::from).unwrap_or_else(|| root().join("../shared"))
}

/// Builds every component in plugins/ (Rust, and the other languages' examples) into
/// plugins/dist (once per test run).
pub fn plugins() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // With the plugins in Python, JavaScript and C (tests/e2e/languages.rs).
            let status = Command::new("bash")
                .arg(root().join("scripts/build-plugins.sh"))
                .arg("--languages")
                .status()
                .expect("run scripts/build-plugins.sh");
            assert!(status.success(), "building plugins failed");
            root().join("plugins/dist")
        })
        .clone()
}

/// Path of a built component.
pub fn plugin(name: &str) -> PathBuf {
    let p = plugins().join(format!("{name}.wasm"));
    assert!(p.exists(), "{} was not built", p.display());
    p
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Waits until something listens on `addr` (a job's control endpoint).
pub fn wait_for_listener(addr: &str, limit: std::time::Duration) {
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(started.elapsed() < limit, "nothing listens on {addr} after {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Runs `weir` with arguments.
pub fn weir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir")).args(args).current_dir(root()).output().expect("run weir")
}

/// Runs `weir` in `dir` with at most `limit` of time; `None` when it had to be killed
/// (a hang). The process is always reaped.
pub fn weir_within(args: &[String], dir: &Path, limit: std::time::Duration) -> Option<Output> {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn weir");
    // Drain both pipes on threads, so a chatty run never blocks on a full pipe.
    let (mut so, mut se) = (child.stdout.take().expect("stdout"), child.stderr.take().expect("stderr"));
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break Some(s);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let (stdout, stderr) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    status.map(|status| Output { status, stdout, stderr })
}

/// Asserts that `weir ARGS` fails and that its stderr holds every needle.
pub fn fails_with(args: &[&str], needles: &[&str]) -> String {
    let out = weir(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "weir {args:?} should fail");
    assert_eq!(out.status.code(), Some(1), "weir {args:?}: a clean failure exits 1:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr of weir {args:?} lacks {n:?}:\n{err}");
    }
    err
}

/// Runs `weir run JOB --set ...`, asserts success, returns (stdout, stderr, metrics JSON).
pub fn run_job(job: &Path, sets: &[String]) -> (String, String, serde_json::Value) {
    plugins();
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = dir.path().join("metrics.json");
    let mut args: Vec<String> = vec!["run".into(), job.display().to_string(), "--metrics".into(), metrics.display().to_string()];
    for s in sets {
        args.push("--set".into());
        args.push(s.clone());
    }
    let out = Command::new(env!("CARGO_BIN_EXE_weir")).args(&args).current_dir(root()).output().expect("run weir");
    let (so, se) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "weir {args:?} failed:\n{se}");
    let m = serde_json::from_slice(&std::fs::read(&metrics).expect("metrics written")).expect("metrics JSON");
    (so, se, m)
}

/// What a run of the log-analyzer (`job`, or a job with its source and sink names) on a
/// conformance case wrote: alerts, window rows and dead letters from file sinks, and the
/// counters.
pub struct CaseRun {
    pub alerts: Vec<serde_json::Value>,
    pub metrics: Vec<serde_json::Value>,
    pub dead: Vec<serde_json::Value>,
    pub counters: serde_json::Value,
}

/// Runs `job` (the log-analyzer's sources and sinks) over `case` at full speed with file
/// sinks, plus `extra` overrides.
pub fn run_log_analyzer(job: &Path, case: &Path, extra: &[String]) -> CaseRun {
    let dir = tempfile::tempdir().expect("tempdir");
    let (alerts, metrics, dead) = (dir.path().join("alerts.jsonl"), dir.path().join("metrics.jsonl"), dir.path().join("dead.jsonl"));
    let mut sets = case_source(case);
    sets.extend([
        "sink.alerts.kind=file".into(),
        format!("sink.alerts.path={}", alerts.display()),
        "sink.metrics.kind=file".into(),
        format!("sink.metrics.path={}", metrics.display()),
        "dead-letter.kind=file".into(),
        format!("dead-letter.path={}", dead.display()),
    ]);
    sets.extend(extra.iter().cloned());
    let (_, _, counters) = run_job(job, &sets);
    CaseRun { alerts: read_jsonl(&alerts), metrics: read_jsonl(&metrics), dead: read_jsonl(&dead), counters }
}

/// `--set`s that read the log-analyzer's source `logs` from a conformance case's lines, at
/// full speed.
pub fn case_source(case: &Path) -> Vec<String> {
    vec!["source.logs.kind=file".into(), format!("source.logs.path={}", case.join("logs.jsonl").display()), "source.logs.rate=1e9".into()]
}

/// A job file in a temp dir (kept alive by the returned guard).
pub fn job_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("job.toml");
    std::fs::write(&p, text).expect("write job");
    (dir, p)
}

/// JSON lines of a file.
pub fn read_jsonl(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// Rows as a sorted multiset of canonical JSON text (order-insensitive comparison).
pub fn sorted(rows: impl IntoIterator<Item = serde_json::Value>) -> Vec<String> {
    let mut v: Vec<String> = rows.into_iter().map(|r| canonical(&r)).collect();
    v.sort();
    v
}

fn canonical(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let sorted: BTreeMap<&String, String> = m.iter().map(|(k, v)| (k, canonical(v))).collect();
            format!(
                "{{{}}}",
                sorted.iter().map(|(k, v)| format!("{}:{v}", serde_json::Value::String((*k).clone()))).collect::<Vec<_>>().join(",")
            )
        }
        serde_json::Value::Array(a) => format!("[{}]", a.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// Lines of stdout with a print prefix, as JSON.
pub fn printed(stdout: &str, prefix: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{prefix}> ")))
        .map(|l| serde_json::from_str(l).expect("JSON after prefix"))
        .collect()
}

/// Dead letters counted in a run's metrics.
pub fn dead_letters(m: &serde_json::Value) -> u64 {
    m["dead_letters"].as_u64().expect("dead_letters")
}

/// The conformance cases: `(name, folder)`.
pub fn cases() -> Vec<(String, PathBuf)> {
    let dir = shared().join("conformance/cases");
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (set WEIR_SHARED to the shared/ folder)", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("logs.jsonl").exists())
        .map(|p| (p.file_name().expect("name").to_string_lossy().into_owned(), p))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no conformance cases in {}", dir.display());
    v
}

/// The `malformed N` count of a case.
pub fn malformed(case: &Path) -> u64 {
    let t = std::fs::read_to_string(case.join("malformed.txt")).expect("malformed.txt");
    let mut it = t.split_whitespace();
    while let Some(w) = it.next() {
        if w == "malformed" {
            return it.next().and_then(|n| n.parse().ok()).expect("count after `malformed`");
        }
    }
    panic!("no malformed count in {}", case.display())
}

/// Well-formed LogEvents of a case in arrival order: `(user, action, ts_seconds)`.
pub fn events(case: &Path) -> Vec<(String, String, i64)> {
    let text = std::fs::read_to_string(case.join("logs.jsonl")).expect("logs");
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let ok =
                ["user_id", "session_id", "action", "ip_address", "user_agent"].iter().all(|f| v[f].is_string()) && v["timestamp"].is_i64();
            if !ok {
                return None;
            }
            Some((v["user_id"].as_str()?.to_string(), v["action"].as_str()?.to_string(), v["timestamp"].as_i64()?))
        })
        .collect()
}

/// A Kafka-compatible broker (tansu, in memory) on a free loopback port, stopped when
/// dropped. `scripts/setup.sh` installs it under `~/.cache/weir/tansu` (or set `$WEIR_TANSU`).
pub struct Broker {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    tansu: PathBuf,
}

impl Broker {
    /// Starts a broker and waits until it accepts connections.
    pub fn start() -> Broker {
        let tansu = std::env::var_os("WEIR_TANSU")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/weir/tansu/bin/tansu"));
        assert!(tansu.exists(), "{} is missing: run scripts/setup.sh (it installs the test broker)", tansu.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let addr = format!("127.0.0.1:{port}");
        let url = format!("tcp://{addr}");
        let child = Command::new(&tansu)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", "memory://tansu/"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start tansu");
        let broker = Broker { child, addr, tansu };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(&broker.addr).is_err() {
            assert!(std::time::Instant::now() < deadline, "tansu did not listen on {} within 20 s", broker.addr);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        broker
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let broker = format!("tcp://{}", self.addr);
        let out = Command::new(&self.tansu)
            .args(["topic", "create", "--broker", &broker, topic, "--partitions", &partitions.to_string()])
            .output()
            .expect("tansu topic create");
        assert!(out.status.success(), "creating {topic}: {}", String::from_utf8_lossy(&out.stderr));
        let list = Command::new(&self.tansu).args(["topic", "list", "--broker", &broker]).output().expect("tansu topic list");
        let topics: serde_json::Value = serde_json::from_slice(&list.stdout).expect("topics as JSON");
        let made = topics.as_array().into_iter().flatten().find(|t| t["name"] == topic);
        let count = made.and_then(|t| t["partitions"].as_array()).map_or(0, Vec::len);
        assert_eq!(count, partitions as usize, "{topic}: {topics}");
    }

    /// Stops the broker (the port closes; a new broker may start on it).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `METHOD path` on `addr` with `headers` (`"name: value"`) and `body`: (status line,
/// content type, body); None when nothing answers.
pub fn http(addr: &str, method: &str, path: &str, headers: &[&str], body: &str) -> Option<(String, String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(60))).ok()?;
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}content-length: {}\r\n\r\n{body}", body.len())
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.lines().next()?.to_string();
    let kind = head.lines().find_map(|l| l.strip_prefix("content-type: ")).unwrap_or_default().to_string();
    Some((status, kind, body.to_string()))
}

/// `GET path` on `addr` (see [`http`]).
pub fn get(addr: &str, path: &str) -> Option<(String, String, String)> {
    http(addr, "GET", path, &[], "")
}
