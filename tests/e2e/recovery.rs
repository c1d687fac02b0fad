//! Checkpoints and recovery: SIGKILL at many points and `--restore latest` give exactly the
//! uninterrupted (and Flink's) output on both backends; restores at another parallelism;
//! a corrupt checkpoint is skipped; RocksDB holds more state than its caches.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

struct Flagship {
    dir: tempfile::TempDir,
    case: PathBuf,
    /// `--set`s of every run (a Kafka source instead of the file).
    extra: Vec<String>,
}

impl Flagship {
    fn new(case: &Path) -> Flagship {
        plugins();
        Flagship { dir: tempfile::tempdir().expect("tempdir"), case: case.to_path_buf(), extra: Vec::new() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn args(&self, backend: &str, p: usize, rate: u32, restore: bool) -> Vec<String> {
        self.args_with(backend, p, rate, restore.then_some("latest"), &[])
    }

    fn args_with(&self, backend: &str, p: usize, rate: u32, restore: Option<&str>, extra: &[String]) -> Vec<String> {
        let mut a = vec!["run".to_string(), root().join("plugins/log-analyzer/job.toml").display().to_string()];
        let sets = [
            "source.logs.kind=file".to_string(),
            format!("source.logs.path={}", self.case.join("logs.jsonl").display()),
            format!("source.logs.rate={rate}"),
            "sink.alerts.kind=file".into(),
            format!("sink.alerts.path={}", self.path("alerts.jsonl").display()),
            "sink.metrics.kind=file".into(),
            format!("sink.metrics.path={}", self.path("metrics.jsonl").display()),
            "dead-letter.kind=file".into(),
            format!("dead-letter.path={}", self.path("dead.jsonl").display()),
            format!("parallelism={p}"),
            format!("state.backend={backend}"),
            format!("state.dir={}", self.path("state").display()),
            "checkpoint.interval=100ms".into(),
            format!("checkpoint.dir=file://{}", self.path("ck").display()),
        ];
        for s in sets.iter().chain(&self.extra).chain(extra) {
            a.push("--set".into());
            a.push(s.clone());
        }
        if let Some(r) = restore {
            a.push("--restore".into());
            a.push(r.into());
        }
        a
    }

    fn has_checkpoint(&self) -> bool {
        self.newest_checkpoint() > 0
    }

    /// The id of the newest complete checkpoint (0: none).
    fn newest_checkpoint(&self) -> u64 {
        std::fs::read_dir(self.path("ck"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("_metadata").exists())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_prefix("chk-")).and_then(|n| n.parse().ok()))
            .max()
            .unwrap_or(0)
    }

    fn spawn(&self, backend: &str, p: usize, rate: u32) -> Child {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(self.args(backend, p, rate, self.has_checkpoint()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weir")
    }

    /// Runs at parallelism `p` until three checkpoints completed (events, not time), then
    /// kills the job in the middle of its input.
    fn kill_after_three_checkpoints(&self, backend: &str, p: usize) {
        let mut child = self.spawn(backend, p, 4_000);
        let started = Instant::now();
        while self.newest_checkpoint() < 3 {
            assert!(started.elapsed() < Duration::from_secs(120), "no checkpoints completed");
            assert!(child.try_wait().expect("try_wait").is_none(), "the job ended before it could be killed");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
    }

    /// Runs to the end; returns stderr.
    fn finish(&self, backend: &str, p: usize) -> String {
        let out = self.spawn(backend, p, 1_000_000).wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "final run failed:\n{err}");
        err
    }

    fn assert_equals_flink(&self, what: &str) {
        let alerts = sorted(read_jsonl(&self.path("alerts.jsonl")));
        let metrics = sorted(read_jsonl(&self.path("metrics.jsonl")));
        let want_alerts = sorted(read_jsonl(&self.case.join("flink-alerts.jsonl")));
        let want_metrics = sorted(
            read_jsonl(&self.case.join("flink-windows.jsonl"))
                .into_iter()
                .filter(|r| r["kind"] == "tumble10s" || r["kind"] == "actions60s"),
        );
        assert_eq!(alerts.len(), want_alerts.len(), "{what}: alert count");
        assert!(alerts == want_alerts, "{what}: alerts differ from Flink's");
        assert_eq!(metrics.len(), want_metrics.len(), "{what}: metric rows");
        assert!(metrics == want_metrics, "{what}: metrics differ from Flink's");
        assert_eq!(read_jsonl(&self.path("dead.jsonl")).len() as u64, malformed(&self.case), "{what}: dead letters");
    }
}

fn kill_many_times_then_finish(backend: &str) {
    let (_, case) = cases().remove(0);
    kill_many_times_then_finish_with(Flagship::new(&case), backend);
}

fn kill_many_times_then_finish_with(f: Flagship, backend: &str) {
    let mut kills = 0;
    let mut attempt = 0u64;
    let started = Instant::now();
    // 10 kills at different points, driven by events, not by the clock: each run is killed
    // a varying while (0-150 ms) after it completed a checkpoint of its own, so a slow
    // machine delays the kills but cannot make them come before any progress.
    while kills < 10 {
        attempt += 1;
        assert!(attempt < 40 && started.elapsed() < Duration::from_secs(600), "could not kill the job 10 times");
        let before = f.newest_checkpoint();
        let mut child = f.spawn(backend, 2, 2_500);
        let waited = Instant::now();
        while f.newest_checkpoint() == before && child.try_wait().expect("try_wait").is_none() {
            assert!(waited.elapsed() < Duration::from_secs(120), "no checkpoint completed in 120 s");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(attempt * 37 % 151));
        if child.try_wait().expect("try_wait").is_none() {
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        let out = child.wait_with_output().expect("wait");
        if out.status.success() {
            // It finished before the kill; run it again from scratch.
            let _ = std::fs::remove_dir_all(f.path("ck"));
        }
    }
    assert!(f.has_checkpoint(), "the killed runs completed checkpoints");
    if backend == "rocksdb" {
        // Keyed state of the process plugin and of the windows lives in RocksDB: their
        // snapshots are RocksDB checkpoints, not memory dumps.
        let chk = std::fs::read_dir(f.path("ck"))
            .expect("ck")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("_metadata").exists())
            .expect("a checkpoint");
        for node in ["detect", "tumble10s", "actions60s"] {
            assert!(chk.join(format!("{node}-0/state/CURRENT")).exists(), "{node} does not snapshot RocksDB state");
        }
    }
    f.finish(backend, 2);
    f.assert_equals_flink(&format!("{backend} after {kills} kills"));
}

#[test]
fn sigkill_at_ten_points_and_restore_gives_flinks_output_on_memory() {
    kill_many_times_then_finish("memory");
}

#[test]
fn sigkill_at_ten_points_and_restore_gives_flinks_output_on_rocksdb() {
    kill_many_times_then_finish("rocksdb");
}

/// A supervisor that always restarts with `--restore latest`: a job killed before its first
/// checkpoint completed (and one that never ran) starts from the beginning, says so, and
/// still writes every result exactly once (what the killed run left uncommitted is void).
#[test]
fn restore_latest_without_a_complete_checkpoint_starts_from_the_beginning() {
    let (_, case) = cases().remove(0);
    let f = Flagship::new(&case);
    // Checkpoints far apart: the run is killed once its sinks hold uncommitted parts.
    let slow = ["checkpoint.interval=1h".to_string()];
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(f.args_with("memory", 2, 2_000, Some("latest"), &slow))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weir");
    let parts = f.path(".metrics.jsonl.parts");
    let started = Instant::now();
    while !std::fs::read_dir(&parts).into_iter().flatten().flatten().any(|e| e.metadata().is_ok_and(|m| m.len() > 0)) {
        assert!(started.elapsed() < Duration::from_secs(120), "no output was written");
        assert!(child.try_wait().expect("try_wait").is_none(), "the job ended before it could be killed");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    let out = child.wait_with_output().expect("wait");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no complete checkpoint"), "the first run had nothing to restore");
    assert!(!f.has_checkpoint(), "killed before any checkpoint completed");
    let out =
        Command::new(env!("CARGO_BIN_EXE_weir")).args(f.args_with("memory", 2, 1_000_000, Some("latest"), &[])).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("--restore latest: no complete checkpoint in") && err.contains("starting from the beginning"), "{err}");
    f.assert_equals_flink("restarted from nothing");
    assert!(!parts.exists(), "no part files are left behind");
    // An explicit folder that is not there stays an error.
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(f.args_with("memory", 2, 1_000_000, Some(&f.path("no-such-chk").display().to_string()), &[]))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-chk"), "{}", String::from_utf8_lossy(&out.stderr));
}

fn rescale(backend: &str, from: usize, to: usize) {
    let (_, case) = cases().remove(0);
    rescale_with(Flagship::new(&case), backend, from, to);
}

fn rescale_with(f: Flagship, backend: &str, from: usize, to: usize) {
    f.kill_after_three_checkpoints(backend, from);
    let err = f.finish(backend, to);
    assert!(err.contains("restoring from"), "{err}");
    f.assert_equals_flink(&format!("{backend} {from} -> {to}"));
}

#[test]
fn restore_at_another_parallelism_gives_the_same_results() {
    rescale("memory", 4, 2);
    rescale("rocksdb", 1, 3);
}

/// An operator keyed by `(user_id, action)` keeps its state in `user_id`'s key groups while
/// it shares `detect`'s task, in its own key's groups in a task of its own: a checkpoint
/// restores only into the layout it was taken in, and says how to get there.
#[test]
fn a_checkpoint_restores_only_where_its_key_groups_are_chosen_alike() {
    let (_, case) = cases().remove(0);
    let mut f = Flagship::new(&case);
    let own_task = vec!["operator.actions60s.chain=false".to_string()];
    f.extra = own_task.clone();
    f.kill_after_three_checkpoints("memory", 2);
    f.extra.clear();
    let out = Command::new(env!("CARGO_BIN_EXE_weir")).args(f.args("memory", 2, 1_000_000, true)).output().expect("weir runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "restored into another layout:\n{err}");
    assert!(
        err.contains(
            "cannot restore `actions60s`: its state sits in the key groups of its whole key there and of its key's first field now"
        ) && err.contains("set `chain = false` on `actions60s`"),
        "{err}"
    );
    // As it ran then, it restores, and the output is Flink's.
    f.extra = own_task;
    let err = f.finish("memory", 2);
    assert!(err.contains("restoring from"), "{err}");
    f.assert_equals_flink("restored in a task of its own");
    // And the other way: taken shared, refused in a task of its own.
    let shared = Flagship::new(&case);
    shared.kill_after_three_checkpoints("memory", 2);
    let own = shared.args_with("memory", 2, 1_000_000, Some("latest"), &["operator.actions60s.chain=false".to_string()]);
    let out = Command::new(env!("CARGO_BIN_EXE_weir")).args(own).output().expect("weir runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("remove `chain = false` from `actions60s`"), "{err}");
}

#[test]
fn a_corrupt_checkpoint_is_skipped_for_the_previous_one() {
    let (_, case) = cases().remove(0);
    let f = Flagship::new(&case);
    let mut child = f.spawn("memory", 2, 3_000);
    let started = Instant::now();
    let complete = |f: &Flagship| {
        let mut v: Vec<PathBuf> = std::fs::read_dir(f.path("ck"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("_metadata").exists())
            .collect();
        v.sort_by_key(|p| p.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix("chk-")).and_then(|n| n.parse::<u64>().ok()));
        v
    };
    while complete(&f).len() < 2 && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    let all = complete(&f);
    let newest = all.last().expect("a checkpoint").clone();
    // Corrupt one state file of the newest checkpoint.
    let victim =
        std::fs::read_dir(&newest).expect("ls").flatten().map(|e| e.path()).find(|p| p.join("op.json").exists()).expect("a keyed snapshot");
    let mut bytes = std::fs::read(victim.join("op.json")).expect("read");
    let last_digit = bytes.iter().rposition(|b| b.is_ascii_digit()).expect("a digit");
    bytes[last_digit] = if bytes[last_digit] == b'0' { b'1' } else { b'0' };
    std::fs::write(victim.join("op.json"), bytes).expect("corrupt, same size");
    let err = f.finish("memory", 2);
    assert!(err.contains("skipping checkpoint") && err.contains("does not match its hash"), "{err}");
    f.assert_equals_flink("after a corrupt checkpoint");
}

#[test]
fn rocksdb_state_larger_than_its_caches_gives_the_memory_backends_results() {
    plugins();
    let dir = tempfile::tempdir().expect("tempdir");
    let job = |backend: &str, out: &Path| {
        format!(
            "[source.logs]\nkind = \"generator\"\ncount = 1000000\nusers = 1000000\nseed = 7\nevent-time = {{ field = \"timestamp\", unit = \"s\" }}\n\n\
             [operator.parse]\nkind = \"map\"\ninput = \"logs\"\nplugin = \"{}\"\n\n\
             [operator.per-user]\nkind = \"window\"\ninput = \"parse\"\nkey-by = \"user_id\"\nwindow = {{ type = \"tumbling\", size = \"30d\" }}\n\n\
             [sink.out]\nkind = \"file\"\ninput = \"per-user\"\npath = \"{}\"\n\n[state]\nbackend = \"{backend}\"\ndir = \"{}\"\n\n\
             [checkpoint]\ninterval = \"1s\"\ndir = \"{}\"\n",
            plugin("log_analyzer_parse").display(),
            out.display(),
            dir.path().join(format!("state-{backend}")).display(),
            dir.path().join(format!("ck-{backend}")).display()
        )
    };
    let (mem_out, rocks_out) = (dir.path().join("mem.jsonl"), dir.path().join("rocks.jsonl"));
    let (_d1, j1) = job_file(&job("memory", &mem_out));
    let (_d2, j2) = job_file(&job("rocksdb", &rocks_out));
    let rate = "source.logs.rate=250000".to_string();
    let (_, _, m1) = run_job(&j1, &["parallelism=2".into(), rate.clone()]);
    let (_, _, m2) = run_job(&j2, &["parallelism=2".into(), rate]);
    for m in [&m1, &m2] {
        assert!(m["checkpoints"]["completed"].as_u64().unwrap_or(0) >= 1, "checkpoints of a large state complete: {}", m["checkpoints"]);
        assert_eq!(m["checkpoints"]["failed"].as_u64(), Some(0));
    }
    let rows = read_jsonl(&rocks_out);
    let keys: std::collections::BTreeSet<&str> = rows.iter().filter_map(|r| r["user_id"].as_str()).collect();
    assert!(keys.len() > 500_000, "{} distinct keys", keys.len());
    // Both backends go through the window cache, which spills here: every event is counted
    // in exactly one window, or dropped as late, or dead-lettered.
    let counted: u64 = rows.iter().map(|r| r["count"].as_u64().expect("count")).sum();
    let late = m2["nodes"]["per-user"]["late_dropped"].as_u64().expect("late_dropped");
    assert_eq!(counted + late + dead_letters(&m2), 1_000_000, "{counted} counted, {late} late");
    assert!(sorted(rows.clone()) == sorted(read_jsonl(&mem_out)), "RocksDB and memory backends disagree");
}

#[test]
fn savepoint_against_a_running_job_stops_it_and_restores_at_another_parallelism() {
    let (_, case) = cases().remove(0);
    let f = Flagship::new(&case);
    let addr = format!("127.0.0.1:{}", free_port());
    let args = f.args_with("rocksdb", 2, 3_000, None, &[format!("control={addr}")]);
    let mut child =
        Command::new(env!("CARGO_BIN_EXE_weir")).args(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn");
    wait_for_listener(&addr, Duration::from_secs(120));
    let started = Instant::now();
    // The savepoint comes once some results are committed (an event, not a time).
    while std::fs::metadata(f.path("metrics.jsonl")).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(started.elapsed() < Duration::from_secs(120), "no results were committed");
        std::thread::sleep(Duration::from_millis(5));
    }
    let sp = f.path("savepoint-1");
    let out = weir(&["savepoint", "--control", &addr, &sp.display().to_string(), "--stop"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("savepoint written to"));
    let status = child.wait().expect("wait");
    assert!(status.success(), "a job stopped with a savepoint exits 0");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(sp.join("_metadata")).expect("metadata")).expect("json");
    assert_eq!(meta["savepoint"], true);
    let partial = read_jsonl(&f.path("metrics.jsonl")).len();
    let want =
        read_jsonl(&case.join("flink-windows.jsonl")).iter().filter(|r| r["kind"] == "tumble10s" || r["kind"] == "actions60s").count();
    assert!(partial < want, "the job stopped in the middle ({partial} of {want} rows)");
    // Resume from the savepoint at parallelism 3.
    let args = f.args_with("rocksdb", 3, 1_000_000, Some(&sp.display().to_string()), &[]);
    let out = Command::new(env!("CARGO_BIN_EXE_weir")).args(&args).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    f.assert_equals_flink("savepoint, stop, restore at 3");
}

#[test]
fn fixed_delay_restart_recovers_a_failed_job() {
    use std::io::BufRead;
    let (_, case) = cases().remove(0);
    let f = Flagship::new(&case);
    let missing = f.path("not-yet");
    let extra = [
        format!("sink.alerts.path={}", missing.join("alerts.jsonl").display()),
        "restart.strategy=fixed-delay".into(),
        "restart.attempts=2".into(),
        "restart.delay=1s".into(),
    ];
    let args = f.args_with("memory", 2, 20_000, None, &extra);
    let mut child =
        Command::new(env!("CARGO_BIN_EXE_weir")).args(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn");
    let stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut log = String::new();
    for line in stderr.lines() {
        let line = line.expect("line");
        log += &line;
        log.push('\n');
        if line.contains("restart 1 in") {
            // The outage ends: the folder appears before the restart.
            std::fs::create_dir_all(&missing).expect("mkdir");
        }
    }
    let status = child.wait().expect("wait");
    assert!(status.success(), "{log}");
    assert!(log.contains("job failed") && log.contains("sink file") && log.contains("restart 1 in"), "{log}");
    let alerts = sorted(read_jsonl(&missing.join("alerts.jsonl")));
    assert!(alerts == sorted(read_jsonl(&case.join("flink-alerts.jsonl"))), "alerts after the restart equal Flink's");
}

/// The flagship reading a topic of `partitions` partitions with `readers` readers.
fn from_kafka(broker: &Broker, case: &Path, topic: &str, partitions: u32, readers: usize) -> Flagship {
    broker.create_topic(topic, partitions);
    crate::kafka::produce(broker, case, topic);
    let mut f = Flagship::new(case);
    f.extra = crate::kafka::from_topic(broker, topic);
    f.extra.push(format!("source.logs.parallelism={readers}"));
    f
}

/// Offsets are in the checkpoints: killed ten times mid-topic and restored, the job writes
/// Flink's results exactly once (one partition: the order Flink read the file in).
#[test]
fn sigkill_at_ten_points_with_a_kafka_source_and_restore_gives_flinks_output() {
    let broker = Broker::start();
    let (_, case) = cases().remove(0);
    kill_many_times_then_finish_with(from_kafka(&broker, &case, "kill", 1, 1), "memory");
}

/// Killed with 3 readers of 3 partitions and restored with 2: the partitions move with their
/// offsets, and every alert comes out once. (Window rows of several partitions depend on how
/// the partitions interleave, in Flink as here; the alerts do not.)
#[test]
fn a_kafka_source_restores_at_another_parallelism() {
    let broker = Broker::start();
    let (_, case) = cases().remove(0);
    let mut f = from_kafka(&broker, &case, "rescale", 3, 3);
    f.kill_after_three_checkpoints("memory", 2);
    f.extra.pop();
    f.extra.push("source.logs.parallelism=2".into());
    let err = f.finish("memory", 2);
    assert!(err.contains("restoring from"), "{err}");
    let want = sorted(read_jsonl(&case.join("flink-alerts.jsonl")));
    assert!(sorted(read_jsonl(&f.path("alerts.jsonl"))) == want, "kafka readers 3 -> 2: alerts differ from Flink's");
    assert_eq!(read_jsonl(&f.path("dead.jsonl")).len() as u64, malformed(&case), "dead letters");
}
