//! Hot reload: a counter plugin swapped under a streaming input keeps every count; bad
//! versions are refused; a failing version is rolled back by itself; `--watch` follows the
//! plugin file.
//!
//! The input is `{"key": "k{n % 7}", "n": n}` for n in 0..records, read at a fixed rate, so
//! the job runs long enough to be reloaded in the middle. Every output row is
//! `{"key", "count", "n", "version"}` and must be exactly `count = n / 7 + 1` for its key:
//! nothing lost, nothing doubled, no count repeated or skipped across a swap.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const KEYS: u64 = 7;

/// A running counting job with a control endpoint, its files in a folder of its own.
struct Counting {
    dir: tempfile::TempDir,
    addr: String,
    child: Child,
}

impl Counting {
    /// Starts the job over `records` inputs at `rate` per second with `counter` (default the
    /// v1 build) as the counter, at `parallelism`; `args` go to `weir run` as they are.
    fn start(parallelism: usize, records: u64, rate: u64, counter: Option<&Path>, args: &[&str]) -> Counting {
        plugins();
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("events.jsonl");
        let lines: String = (0..records).map(|n| format!("{{\"key\": \"k{}\", \"n\": {n}}}\n", n % KEYS)).collect();
        std::fs::write(&input, lines).expect("input");
        let addr = format!("127.0.0.1:{}", free_port());
        let plugin = counter.map(Path::to_path_buf).unwrap_or_else(|| plugin("counter"));
        let job = format!(
            r#"name = "counting"
parallelism = {parallelism}
control = "{addr}"

[checkpoint]
dir = "file://{chk}"
interval = "300ms"

[reload]
probation = "1s"

[source.events]
kind = "file"
path = "{input}"
rate = {rate}

[operator.counter]
kind = "process"
input = "events"
key-by = ["key"]
plugin = "{plugin}"

[sink.out]
kind = "file"
input = "counter"
path = "{out}"
"#,
            chk = dir.path().join("chk").display(),
            input = input.display(),
            plugin = plugin.display(),
            out = dir.path().join("out.jsonl").display(),
        );
        std::fs::write(dir.path().join("job.toml"), job).expect("job");
        let child = Self::spawn(dir.path(), &addr, args);
        Counting { dir, addr, child }
    }

    /// `weir run` of the job in `dir` with `args`, its standard error appended to
    /// `stderr.log`; returns once the control endpoint listens.
    fn spawn(dir: &Path, addr: &str, args: &[&str]) -> Child {
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("stderr.log")).expect("stderr file");
        let child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("run")
            .arg(dir.join("job.toml"))
            .args(args)
            .env("WEIR_CONTROL_DIR", dir.join("control"))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn weir");
        wait_for_listener(addr, Duration::from_secs(120));
        child
    }

    /// Kills the job (SIGKILL) and starts it again with `args`.
    fn kill_and_run(&mut self, args: &[&str]) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(self.dir.path(), &self.addr, args);
    }

    /// `weir ARGS --control ADDR` with this job's token.
    fn weir(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .args(["--control", &self.addr])
            .env("WEIR_CONTROL_DIR", self.dir.path().join("control"))
            .output()
            .expect("run weir")
    }

    fn reload(&self, plugin: &Path) -> Output {
        self.weir(&["reload", "counter", &plugin.display().to_string()])
    }

    /// `weir status --json`, asked until the job answers (it may be restarting).
    fn status(&self) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let out = self.weir(&["status", "--json"]);
            if out.status.success() {
                return serde_json::from_slice(&out.stdout).expect("status JSON");
            }
            assert!(started.elapsed() < Duration::from_secs(60), "status: {}", String::from_utf8_lossy(&out.stderr));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `what` holds of the status.
    fn until(&self, what: &str, test: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let s = self.status();
            if test(&s) {
                return s;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "never: {what}; last status {s:#}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the counter took in at least `n` records.
    fn counted(&self, n: u64) {
        self.until(&format!("{n} records counted"), |s| s["metrics"]["nodes"]["counter"]["records_in"].as_u64().unwrap_or(0) >= n);
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Waits until the job's standard error holds `needle` `times` times.
    fn logged(&self, needle: &str, times: usize) {
        let started = Instant::now();
        while self.stderr().matches(needle).count() < times {
            assert!(started.elapsed() < Duration::from_secs(120), "never logged {needle:?} ({times}×):\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the job to end; asserts it succeeded; returns its output rows.
    fn finish(&mut self) -> (Vec<serde_json::Value>, String) {
        let started = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(started.elapsed() < Duration::from_secs(180), "the job did not end:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "the job failed:\n{}", self.stderr());
        (read_jsonl(&self.dir.path().join("out.jsonl")), self.stderr())
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The rows are exactly the counts of every input, once each; per key, the versions that
/// counted come in the order `versions` lists them (each possibly absent). Returns how many
/// rows each version counted.
fn check_counts(rows: &[serde_json::Value], records: u64, versions: &[&str]) -> std::collections::BTreeMap<String, usize> {
    let mut seen = vec![false; records as usize];
    let mut by_key: std::collections::BTreeMap<String, Vec<(u64, String)>> = Default::default();
    for r in rows {
        let n = r["n"].as_u64().expect("n");
        let key = r["key"].as_str().expect("key");
        assert_eq!(key, format!("k{}", n % KEYS), "{r}");
        assert_eq!(r["count"].as_u64(), Some(n / KEYS + 1), "a count skipped or repeated: {r}");
        assert!(!std::mem::replace(&mut seen[n as usize], true), "input {n} counted twice");
        by_key.entry(key.into()).or_default().push((n, r["version"].as_str().expect("version").into()));
    }
    let missing: Vec<usize> = seen.iter().enumerate().filter(|(_, s)| !**s).map(|(i, _)| i).take(5).collect();
    assert!(missing.is_empty(), "inputs never counted, e.g. {missing:?}");
    let mut per_version = std::collections::BTreeMap::new();
    for (key, mut v) in by_key {
        v.sort();
        let order: Vec<usize> =
            v.iter().map(|(_, ver)| versions.iter().position(|w| w == ver).unwrap_or_else(|| panic!("unknown version {ver}"))).collect();
        assert!(order.windows(2).all(|w| w[0] <= w[1]), "key {key}: versions out of order: {v:?}");
        for (_, ver) in v {
            *per_version.entry(ver).or_insert(0) += 1;
        }
    }
    per_version
}

/// Swaps v1 for v2 in the middle of the stream at `parallelism`; `refusals` first tries
/// versions that must be refused.
fn swap_under_load(parallelism: usize, refusals: bool) {
    let records = 24_000;
    let mut job = Counting::start(parallelism, records, 2_000, None, &[]);
    job.counted(2_000);
    let v1 = job.status()["operators"]["counter"]["version"].as_str().expect("version").to_string();
    if refusals {
        let refused = |out: Output, needle: &str| {
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(!out.status.success() && err.contains(needle), "expected a refusal with {needle:?}:\n{err}");
        };
        refused(job.reload(&plugin("double")), "exports world `map`, but `counter` runs a plugin of world `process`");
        refused(job.reload(&plugin("counter_bad_init")), "init failed: plugin error: invalid config: this build refuses every config");
        refused(
            job.weir(&["reload", "nosuch", &plugin("counter_v2").display().to_string()]),
            "no operator `nosuch` runs a plugin that can be reloaded; these can: counter",
        );
        let wrong = job.dir.path().join("wrong.token");
        std::fs::write(&wrong, "0".repeat(64)).expect("token");
        let path = plugin("counter_v2").display().to_string();
        refused(job.weir(&["reload", "counter", &path, "--token-file", &wrong.display().to_string()]), "wrong token");
        refused(job.weir(&["reload", "counter", &path, "--token-file", "/no/such/token"]), "cannot read the job's control token");
        let s = job.status();
        assert_eq!(s["operators"]["counter"]["version"], v1.as_str(), "v1 keeps running: {s:#}");
        assert_eq!(s["operators"]["counter"]["last_reload"]["outcome"], "refused", "{s:#}");
    }
    let out = job.reload(&plugin("counter_v2"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("reloaded `counter`"));
    let s = job.until("v2 passes its probation", |s| s["operators"]["counter"]["last_reload"]["outcome"] == "ok");
    let v2 = s["operators"]["counter"]["version"].as_str().expect("version").to_string();
    assert_ne!(v1, v2);
    let (rows, _) = job.finish();
    let chk = job.dir.path().join("chk");
    let counted = check_counts(&rows, records, &["v1", "v2"]);
    assert!(counted.get("v1").is_some_and(|&n| n >= 2_000) && counted.get("v2").is_some_and(|&n| n > 0), "{counted:?}");
    // Checkpoints after the probation record the version that runs.
    let latest = weir_host::checkpoint::completed(&chk).first().expect("a checkpoint").1.clone();
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(latest.join("_metadata")).expect("metadata")).expect("JSON");
    assert_eq!(meta["versions"]["counter"]["hash"], v2.as_str(), "{meta:#}");
    assert!(chk.join("plugins").join(format!("{v1}.wasm")).exists() && chk.join("plugins").join(format!("{v2}.wasm")).exists());
}

#[test]
fn a_swap_under_load_keeps_every_count_and_bad_versions_are_refused() {
    swap_under_load(1, true);
}

#[test]
fn a_swap_at_parallelism_4_keeps_every_count() {
    swap_under_load(4, false);
}

/// v3 keeps its count in another layout and migrates the state v1 left at the swap: counts
/// go on with no gap and no repeat at parallelism 2. (Without the migration v3 could not
/// read v1's counts: every record would fail and the reload would be rolled back.)
#[test]
fn a_version_that_migrates_its_state_takes_over_every_count() {
    let records = 16_000;
    let mut job = Counting::start(2, records, 2_000, None, &[]);
    job.counted(2_000);
    let out = job.reload(&plugin("counter_v3"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    job.until("v3 passes its probation", |s| s["operators"]["counter"]["last_reload"]["outcome"] == "ok");
    let (rows, _) = job.finish();
    let counted = check_counts(&rows, records, &["v1", "v3"]);
    assert!(counted.get("v1").is_some_and(|&n| n >= 2_000) && counted.get("v3").is_some_and(|&n| n > 0), "{counted:?}");
}

/// A checkpoint names the versions it was taken with, and `--restore` runs them: v3 swapped
/// in from a file that is gone by the restart runs again from the version store
/// (`CHECKPOINT_DIR/plugins/`), not the job file's v1 (which could not read v3's counts), and
/// every count goes on across the kill.
#[test]
fn restore_runs_the_versions_of_the_checkpoint() {
    let records = 16_000;
    let mut job = Counting::start(2, records, 2_000, None, &[]);
    let v3 = job.dir.path().join("counter_v3.wasm");
    std::fs::copy(plugin("counter_v3"), &v3).expect("copy v3");
    job.counted(2_000);
    let out = job.reload(&v3);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = job.until("v3 passes its probation", |s| s["operators"]["counter"]["last_reload"]["outcome"] == "ok");
    let hash = s["operators"]["counter"]["version"].as_str().expect("version").to_string();
    // Checkpoints complete again after the probation: wait for one taken with v3.
    let counted = s["metrics"]["nodes"]["counter"]["records_in"].as_u64().expect("records_in");
    job.counted(counted + 2_000);
    std::fs::remove_file(&v3).expect("remove v3");
    job.kill_and_run(&["--restore", "latest"]);
    job.logged(&format!("runs plugin version {hash}"), 1);
    let (rows, stderr) = job.finish();
    assert!(stderr.contains("as checkpoint") && stderr.contains("counter_v3.wasm"), "{stderr}");
    let counted = check_counts(&rows, records, &["v1", "v3"]);
    assert!(counted.get("v3").is_some_and(|&n| n > 2_000), "{counted:?}");
}

/// A version that traps on every record is rolled back by itself: the output is that of a
/// run that never reloaded (all of it counted by v1, each input once).
#[test]
fn a_failing_version_is_rolled_back_and_the_output_is_as_without_the_reload() {
    let records = 16_000;
    let mut job = Counting::start(2, records, 2_000, None, &[]);
    job.counted(2_000);
    // The answer is the swap, or already the rollback when the failures came first.
    let out = job.reload(&plugin("counter_trap"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() || err.contains("is being rolled back"), "{err}");
    let s = job.until("the rollback shows", |s| s["operators"]["counter"]["last_reload"]["outcome"] == "rolled back");
    assert!(
        s["operators"]["counter"]["last_reload"]["reason"].as_str().unwrap_or("").contains("more than `reload.max-failures` = 10"),
        "{s:#}"
    );
    let (rows, stderr) = job.finish();
    assert!(stderr.contains("rolled back `counter`") && stderr.contains("restarting from"), "{stderr}");
    let counted = check_counts(&rows, records, &["v1"]);
    assert_eq!(counted.get("v1"), Some(&(records as usize)));
}

/// `--watch` reloads a plugin file that changed once it is steady: a half-written file is
/// refused (v1 goes on), a version that traps is rolled back (and not loaded again from the
/// file after the restart), and the next good build is swapped in.
#[test]
fn watch_follows_the_plugin() {
    let records = 40_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("counter.wasm");
    std::fs::copy(plugin("counter"), &file).expect("copy");
    let mut job = Counting::start(2, records, 2_000, Some(&file), &["--watch"]);
    job.counted(1_000);
    let v2 = std::fs::read(plugin("counter_v2")).expect("v2");
    std::fs::write(&file, &v2[..v2.len() / 2]).expect("half a file");
    job.logged("--watch: kept `counter` as it runs", 1);
    std::fs::copy(plugin("counter_trap"), &file).expect("copy");
    job.logged("rolled back `counter`", 1);
    job.until("the job runs again after the rollback", |s| s["operators"]["counter"]["last_reload"]["outcome"] == "rolled back");
    job.counted(1_000);
    std::fs::copy(plugin("counter_v2"), &file).expect("copy");
    job.logged("passed its probation", 1);
    let (rows, stderr) = job.finish();
    assert_eq!(stderr.matches("rolled back `counter`").count(), 1, "the trapping version was not loaded again:\n{stderr}");
    let counted = check_counts(&rows, records, &["v1", "v2"]);
    assert!(counted.contains_key("v2"), "{counted:?}");
}

/// Compiled plugins are cached on disk: a second start finds them; an entry that was
/// tampered with is compiled again and replaced, never loaded.
#[test]
fn compiled_plugins_are_cached_and_a_corrupt_entry_is_compiled_again() {
    plugins();
    let cache = tempfile::tempdir().expect("tempdir");
    let validate = || {
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["validate", "plugins/log-analyzer/job.toml"])
            .current_dir(root())
            .env("WEIR_CACHE_DIR", cache.path())
            .output()
            .expect("validate");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let entries = || {
        let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(cache.path())
            .expect("cache folder")
            .map(|e| e.expect("entry").path())
            .map(|p| (p.clone(), std::fs::read(&p).expect("read")))
            .collect();
        v.sort();
        v
    };
    validate();
    let first = entries();
    assert_eq!(first.len(), 2, "one entry per plugin of the log-analyzer (parse, detect)");
    let written = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).expect("mtime");
    let times: Vec<_> = first.iter().map(|(p, _)| written(p)).collect();
    std::thread::sleep(Duration::from_millis(20));
    validate();
    assert_eq!(entries(), first);
    assert_eq!(first.iter().map(|(p, _)| written(p)).collect::<Vec<_>>(), times, "a second start reads the entries and writes none");
    // A flipped byte in the code: refused, compiled again, the entry written anew.
    let (path, mut bytes) = first[0].clone();
    *bytes.last_mut().expect("bytes") ^= 0xff;
    std::fs::write(&path, &bytes).expect("tamper");
    validate();
    assert_eq!(entries(), first, "the entry was replaced by a whole one");
}

/// The dashboard's reload action: `POST /api/reload` on the HTTP endpoint swaps the plugin
/// with the endpoint's token (and is refused without it), every count kept; `/api/job`
/// and `/metrics` show the versions and the reload, and `weir status` prints the job's
/// table and its plugins.
#[test]
fn the_dashboards_reload_action_swaps_the_plugin_with_the_endpoints_token() {
    let records = 16_000;
    let web = format!("127.0.0.1:{}", free_port());
    let mut job = Counting::start(2, records, 2_000, None, &["--metrics-addr", &web]);
    job.counted(2_000);
    let api = || -> serde_json::Value { serde_json::from_str(&get(&web, "/api/job").expect("/api/job").2).expect("JSON") };
    let before = api();
    assert_eq!(before["can_reload"], true);
    let v1 = before["plugins"]["counter"]["version"].as_str().expect("version").to_string();
    let v2_path = plugin("counter_v2").display().to_string();
    let body = serde_json::json!({"operator": "counter", "path": v2_path}).to_string();
    let json = "content-type: application/json";
    let (status, _, answer) = http(&web, "POST", "/api/reload", &[json], &body).expect("answer");
    assert!(status.contains(" 401 ") && answer.contains("wrong or missing token"), "{status} {answer}");
    let bad = format!("authorization: Bearer {}", "0".repeat(64));
    assert!(http(&web, "POST", "/api/reload", &[json, &bad], &body).expect("answer").0.contains(" 401 "));
    // The token is in the file weir named at start, beside the control endpoint's.
    let file = job.dir.path().join("control").join(format!("control-127.0.0.1-{}.token", web.rsplit(':').next().expect("port")));
    let token = std::fs::read_to_string(&file).expect("the endpoint's token file");
    let auth = format!("authorization: Bearer {}", token.trim());
    let unknown = serde_json::json!({"operator": "nosuch"}).to_string();
    let (status, _, answer) = http(&web, "POST", "/api/reload", &[json, &auth], &unknown).expect("answer");
    assert!(status.contains(" 404 ") && answer.contains("no operator `nosuch`"), "{status} {answer}");
    let (status, _, answer) = http(&web, "POST", "/api/reload", &[json, &auth], &body).expect("answer");
    assert!(status.contains(" 200 "), "{status} {answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!((answer["ok"].clone(), answer["previous"].as_str()), (serde_json::json!(true), Some(v1.as_str())), "{answer}");
    job.until("v2 passes its probation", |s| s["operators"]["counter"]["last_reload"]["outcome"] == "ok");
    let after = api();
    assert_ne!(after["plugins"]["counter"]["version"], v1.as_str(), "{after:#}");
    let scraped = get(&web, "/metrics").expect("/metrics").2;
    assert!(scraped.lines().any(|l| l == "weir_plugin_reloads_total{job=\"counting\",operator=\"counter\",outcome=\"ok\"} 1"), "{scraped}");
    // `weir status`: the counters as `weir run` ends with, then the plugin's version.
    let out = job.weir(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.starts_with("job: counting · running for "), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1].split_whitespace().collect::<Vec<_>>(), ["node", "in", "out", "dead", "late", "restarts", "time", "cpu"], "{text}");
    assert!(lines.iter().any(|l| l.starts_with("counter ") && l.split_whitespace().nth(1).is_some_and(|n| n != "0")), "{text}");
    assert!(lines.iter().any(|l| l.starts_with("checkpoints: ") && l.contains(" completed")), "{text}");
    let version = after["plugins"]["counter"]["version"].as_str().expect("version");
    assert!(lines.iter().any(|l| l.starts_with("counter ") && l.contains(version) && l.ends_with(" ok")), "{text}");
    let (rows, _) = job.finish();
    let counted = check_counts(&rows, records, &["v1", "v2"]);
    assert!(counted.get("v1").is_some_and(|&n| n >= 2_000) && counted.get("v2").is_some_and(|&n| n > 0), "{counted:?}");
    assert!(!file.exists(), "the token file is removed at the end");
}
