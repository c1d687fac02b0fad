//! Checkpoints (Flink's asynchronous barrier snapshotting, aligned for exactly-once).
//!
//! The [`Coordinator`] asks every source task to inject barrier `n`; each task snapshots
//! its operators into `DIR/chk-n/<node>-<subtask>/` when the barrier passes (after aligning
//! its inputs in exactly-once mode) and acknowledges. When every task acknowledged, the
//! coordinator writes `chk-n/_metadata` — durably and last, with the size and hash of every
//! file — and tells the tasks that `n` is complete (sinks then commit). A folder without
//! valid metadata is never read as a checkpoint; a corrupt one is reported and skipped.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde::{Deserialize, Serialize};

/// Name of the metadata file that makes a checkpoint complete.
pub const METADATA: &str = "_metadata";

/// Exactly-once aligns barriers; at-least-once does not wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Align barriers: state reflects exactly the records before the barrier.
    #[default]
    ExactlyOnce,
    /// Do not align: faster, may replay some records twice after a failure.
    AtLeastOnce,
}

/// Checkpoint settings of a run.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// Time between checkpoints (none: only savepoints on request).
    pub interval: Option<Duration>,
    /// Alignment mode.
    pub mode: Mode,
    /// Where checkpoints go.
    pub dir: PathBuf,
    /// Minimum pause between the end of one checkpoint and the start of the next.
    pub min_pause: Duration,
    /// Checkpoints in flight at once.
    pub max_concurrent: usize,
    /// A checkpoint not complete after this long is aborted.
    pub timeout: Duration,
    /// Completed checkpoints to keep.
    pub retain: usize,
    /// Failed or timed-out checkpoints tolerated before the job fails (Flink's default: 0).
    pub tolerable_failures: u32,
}

impl CheckpointConfig {
    /// No periodic checkpoints, only those asked for (savepoints, hot reloads), into a
    /// folder of this process in the temporary directory.
    pub fn on_demand() -> CheckpointConfig {
        CheckpointConfig {
            interval: None,
            mode: Mode::ExactlyOnce,
            dir: std::env::temp_dir().join(format!("weir-checkpoints-{}", std::process::id())),
            min_pause: Duration::ZERO,
            max_concurrent: 1,
            timeout: Duration::from_secs(600),
            retain: 3,
            tolerable_failures: 0,
        }
    }
}

/// A request for a savepoint from the control endpoint.
#[derive(Debug)]
pub struct SavepointRequest {
    /// Where to write it (must not exist yet).
    pub dir: PathBuf,
    /// Stop the job once the savepoint is complete.
    pub stop: bool,
    /// The answer: the savepoint folder, or why it failed.
    pub reply: Sender<Result<PathBuf, String>>,
}

struct Pending {
    started: Instant,
    acks: usize,
    dir: PathBuf,
    savepoint: Option<(bool, Sender<Result<PathBuf, String>>)>,
    /// A swap checkpoint's requester.
    swap: Option<Sender<Result<u64, String>>>,
}

/// One file of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    /// Path relative to the checkpoint folder.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// xxHash64 of the contents, hex.
    pub hash: String,
}

/// What `_metadata` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metadata {
    /// Checkpoint id.
    pub id: u64,
    /// Job name.
    pub job: String,
    /// Wall time of completion, epoch ms.
    pub completed_ms: i64,
    /// Key groups of the job (must match to restore).
    pub max_parallelism: u32,
    /// Parallelism of each node when the snapshot was taken.
    pub parallelism: BTreeMap<String, usize>,
    /// Plugin path → hash of the component that wrote the state.
    pub plugins: BTreeMap<String, String>,
    /// Operator → the plugin version it ran when the checkpoint was taken (hot reloads
    /// change it); a restore runs these versions.
    #[serde(default)]
    pub versions: BTreeMap<String, PluginVersion>,
    /// Keyed operator → how many leading fields of its key chose its key groups, where not
    /// the whole key (it shared a task partitioned by a coarser key: see
    /// `weir_core::keys::KeyGroups`). A restore needs the same.
    #[serde(default)]
    pub key_prefixes: BTreeMap<String, usize>,
    /// Whether it is a savepoint (kept until removed by hand).
    pub savepoint: bool,
    /// Every file with size and hash.
    pub files: Vec<FileEntry>,
}

/// The plugin an operator runs: where it was loaded from and the hash of its bytes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PluginVersion {
    /// The file it was loaded from.
    pub path: String,
    /// xxHash64 of the component, hex.
    pub hash: String,
}

/// A request to swap plugins at a checkpoint barrier (a hot reload).
pub struct SwapRequest {
    /// Called with the id of the checkpoint whose barrier swaps, before it is triggered.
    pub arm: Box<dyn FnOnce(u64) + Send>,
    /// The checkpoint id once it completed, or why it failed.
    pub reply: Sender<Result<u64, String>>,
}

impl std::fmt::Debug for SwapRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SwapRequest")
    }
}

/// Hash of a file's contents.
pub fn hash_file(p: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    Ok(format!("{:016x}", twox_hash::XxHash64::oneshot(0, &bytes)))
}

/// All files below `dir`, relative to `base`, with sizes and hashes.
pub fn list_files(base: &Path, dir: &Path) -> anyhow::Result<Vec<FileEntry>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != "LOCK" && !n.to_string_lossy().starts_with("LOG")) {
                let rel = p.strip_prefix(base).unwrap_or(&p).to_string_lossy().into_owned();
                out.push(FileEntry { path: rel, size: std::fs::metadata(&p)?.len(), hash: hash_file(&p)? });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Folder of checkpoint `id`.
pub fn chk_dir(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("chk-{id}"))
}

/// Writes `_metadata` durably: temp file, fsync, rename, fsync of the folder.
pub fn write_metadata(chk: &Path, m: &Metadata) -> anyhow::Result<()> {
    let tmp = chk.join("_metadata.inprogress");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(m)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, chk.join(METADATA))?;
    std::fs::File::open(chk)?.sync_all()?;
    Ok(())
}

/// Reads and verifies a checkpoint folder: metadata parses, every file exists with its
/// size and hash.
pub fn verify(chk: &Path) -> anyhow::Result<Metadata> {
    let raw = std::fs::read(chk.join(METADATA)).with_context(|| format!("{}: no {METADATA}: not a complete checkpoint", chk.display()))?;
    let m: Metadata = serde_json::from_slice(&raw).with_context(|| format!("{}: {METADATA} is not valid", chk.display()))?;
    for f in &m.files {
        let p = chk.join(&f.path);
        let size = std::fs::metadata(&p).with_context(|| format!("{}: file {} is missing", chk.display(), f.path))?.len();
        anyhow::ensure!(size == f.size, "{}: file {} has {size} bytes, {} expected (truncated?)", chk.display(), f.path, f.size);
        anyhow::ensure!(hash_file(&p)? == f.hash, "{}: file {} does not match its hash (corrupt)", chk.display(), f.path);
    }
    Ok(m)
}

/// Checkpoint ids in `dir` with a metadata file, newest first.
pub fn completed(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id: u64 = name.strip_prefix("chk-")?.parse().ok()?;
            e.path().join(METADATA).exists().then(|| (id, e.path()))
        })
        .collect();
    v.sort_by_key(|c| std::cmp::Reverse(c.0));
    v
}

/// Resolves `--restore latest|PATH`: the newest checkpoint that verifies (reporting and
/// skipping corrupt ones), or the given folder. `latest` with no complete checkpoint (a job
/// killed before its first one, or never run) is `None`: the job starts from the beginning,
/// as a supervisor that always restarts with `--restore latest` needs; a given folder that
/// is not a checkpoint is an error.
pub fn resolve(dir: Option<&Path>, what: &str) -> anyhow::Result<Option<(Metadata, PathBuf)>> {
    if what != "latest" {
        let p = PathBuf::from(what.strip_prefix("file://").unwrap_or(what));
        return Ok(Some((verify(&p).with_context(|| format!("--restore {what}"))?, p)));
    }
    let dir =
        dir.ok_or_else(|| anyhow::anyhow!("--restore latest needs `checkpoint.dir` in the job (or --set checkpoint.dir=file:///path)"))?;
    for (_, p) in completed(dir) {
        match verify(&p) {
            Ok(m) => return Ok(Some((m, p))),
            Err(e) => eprintln!("weir: skipping checkpoint: {e:#}; falling back to the previous one"),
        }
    }
    eprintln!(
        "weir: --restore latest: no complete checkpoint in {}; starting from the beginning (output an earlier run left uncommitted is discarded)",
        dir.display()
    );
    Ok(None)
}

/// Checks at start that checkpoints can be written into `dir` (creating it), rather than
/// when the first one is due: a bounded job would otherwise run to its end and then fail.
pub fn check_writable(dir: &Path) -> anyhow::Result<()> {
    let fix = "fix its permissions or point `checkpoint.dir` at a folder the job may write";
    std::fs::create_dir_all(dir).with_context(|| format!("checkpoint.dir {}: cannot create it; {fix}", dir.display()))?;
    let probe = dir.join(format!(".weir-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| format!("checkpoint.dir {}: cannot write into it; {fix}", dir.display()))?;
    std::fs::remove_file(&probe).with_context(|| format!("checkpoint.dir {}: cannot remove a file in it; {fix}", dir.display()))?;
    Ok(())
}

/// The highest checkpoint id ever started in `dir` (complete or not).
pub fn highest_id(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_string_lossy().strip_prefix("chk-").and_then(|s| s.parse().ok()))
        .max()
        .unwrap_or(0)
}

/// Messages from the coordinator to tasks.
#[derive(Debug, Clone)]
pub enum Control {
    /// Sources: inject barrier `id`; its snapshot goes to `dir`.
    Trigger {
        /// Checkpoint id.
        id: u64,
        /// The checkpoint folder.
        dir: PathBuf,
    },
    /// Checkpoint `id` is complete: commit.
    Complete(u64),
}

/// A task's acknowledgement.
#[derive(Debug)]
pub struct Ack {
    /// Checkpoint id.
    pub id: u64,
    /// Ok, or why the task could not snapshot.
    pub result: Result<(), String>,
}

/// Static facts written into every metadata file.
#[derive(Debug, Clone)]
pub struct JobFacts {
    /// Job name.
    pub job: String,
    /// Key groups.
    pub max_parallelism: u32,
    /// Node → parallelism.
    pub parallelism: BTreeMap<String, usize>,
    /// Plugin → hash.
    pub plugins: BTreeMap<String, String>,
    /// Operator → the plugin version it runs now (hot reloads change it).
    pub versions: std::sync::Arc<std::sync::Mutex<BTreeMap<String, PluginVersion>>>,
    /// Keyed operator → the key prefix of its key groups, where not 0 ([`Metadata::key_prefixes`]).
    pub key_prefixes: BTreeMap<String, usize>,
}

/// Triggers checkpoints and savepoints, collects acknowledgements, completes and retains
/// them.
pub struct Coordinator {
    /// Settings.
    pub cfg: CheckpointConfig,
    /// One sender per source task.
    pub sources: Vec<Sender<Control>>,
    /// One sender per task that wants completion notices (all tasks).
    pub tasks: Vec<Sender<Control>>,
    /// Acknowledgements from tasks.
    pub acks: Receiver<Ack>,
    /// Savepoint requests from the control endpoint.
    pub requests: Receiver<SavepointRequest>,
    /// Swap requests of hot reloads.
    pub swaps: Receiver<SwapRequest>,
    /// While set, no periodic checkpoint starts (a reloaded plugin on probation: nothing it
    /// writes may be committed before it passes).
    pub hold: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Number of tasks that must acknowledge.
    pub expected: usize,
    /// Facts for metadata.
    pub facts: JobFacts,
    /// Set when the job is over.
    pub done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Set when a source ended: later barriers could never complete.
    pub sources_ended: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Set to make the sources stop (stop with savepoint).
    pub stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Fails the job when checkpoints fail beyond tolerance.
    pub run: std::sync::Arc<weir_core::status::RunState>,
    /// Counters.
    pub metrics: std::sync::Arc<weir_core::status::CheckpointMetrics>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator").field("dir", &self.cfg.dir).finish_non_exhaustive()
    }
}

impl Coordinator {
    fn trigger(&self, id: u64, dir: &Path) {
        for s in &self.sources {
            let _ = s.send(Control::Trigger { id, dir: dir.to_path_buf() });
        }
    }

    fn failed(&self, failures: &mut u32, id: u64, p: Pending, why: String) {
        let _ = std::fs::remove_dir_all(&p.dir);
        if let Some(reply) = p.swap {
            let _ = reply.send(Err(format!("checkpoint {id} of the swap failed: {why}")));
        }
        if let Some((_, reply)) = p.savepoint {
            let _ = reply.send(Err(format!("savepoint {id} failed: {why}")));
            return;
        }
        self.metrics.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *failures += 1;
        eprintln!("weir: checkpoint {id} failed: {why}");
        if *failures > self.cfg.tolerable_failures {
            let e = anyhow::anyhow!(
                "checkpoint {id} failed ({why}); {failures} failure(s) exceed checkpoint.tolerable-failures = {}",
                self.cfg.tolerable_failures
            );
            self.run.fail("checkpoint coordinator", &e);
        }
    }

    /// Runs until the job is done.
    pub fn run(self) -> anyhow::Result<()> {
        use std::sync::atomic::Ordering;
        std::fs::create_dir_all(&self.cfg.dir).with_context(|| format!("creating checkpoint dir {}", self.cfg.dir.display()))?;
        let mut next_id = highest_id(&self.cfg.dir) + 1;
        let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
        let mut failures = 0u32;
        let mut last_end = Instant::now();
        let far = Duration::from_secs(3600);
        let mut next_trigger = Instant::now() + self.cfg.interval.unwrap_or(far);
        while !self.done.load(Ordering::Relaxed) {
            let now = Instant::now();
            let expired: Vec<u64> =
                pending.iter().filter(|(_, p)| now.duration_since(p.started) > self.cfg.timeout).map(|(id, _)| *id).collect();
            for id in expired {
                let p = pending.remove(&id).expect("listed");
                self.failed(&mut failures, id, p, format!("timed out after {:?}", self.cfg.timeout));
            }
            let ended = self.sources_ended.load(Ordering::Relaxed) > 0;
            while let Ok(req) = self.requests.try_recv() {
                if ended {
                    let _ = req.reply.send(Err("the job's sources have ended; nothing to save".into()));
                    continue;
                }
                if req.dir.exists() && std::fs::read_dir(&req.dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
                    let _ = req.reply.send(Err(format!("{} exists and is not empty", req.dir.display())));
                    continue;
                }
                if let Err(e) = std::fs::create_dir_all(&req.dir) {
                    let _ = req.reply.send(Err(format!("cannot create {}: {e}", req.dir.display())));
                    continue;
                }
                self.trigger(next_id, &req.dir);
                pending
                    .insert(next_id, Pending { started: now, acks: 0, dir: req.dir, savepoint: Some((req.stop, req.reply)), swap: None });
                next_id += 1;
            }
            while let Ok(req) = self.swaps.try_recv() {
                if ended {
                    let _ = req.reply.send(Err("the job's sources have ended; no barrier can pass any more".into()));
                    continue;
                }
                // A checkpoint like the periodic ones, whenever asked: the swap happens at its
                // barrier, and it is the point a rollback restores.
                let dir = chk_dir(&self.cfg.dir, next_id);
                std::fs::create_dir_all(&dir)?;
                (req.arm)(next_id);
                self.trigger(next_id, &dir);
                pending.insert(next_id, Pending { started: now, acks: 0, dir, savepoint: None, swap: Some(req.reply) });
                next_id += 1;
            }
            let periodic = pending.values().filter(|p| p.savepoint.is_none()).count();
            let can_start = self.cfg.interval.is_some()
                && !self.hold.load(Ordering::SeqCst)
                && periodic < self.cfg.max_concurrent
                && now >= next_trigger
                && now.duration_since(last_end) >= self.cfg.min_pause;
            if can_start && !ended {
                let dir = chk_dir(&self.cfg.dir, next_id);
                std::fs::create_dir_all(&dir)?;
                self.trigger(next_id, &dir);
                pending.insert(next_id, Pending { started: now, acks: 0, dir, savepoint: None, swap: None });
                next_id += 1;
                next_trigger = now + self.cfg.interval.unwrap_or(far);
            }
            let wait = next_trigger.saturating_duration_since(Instant::now()).clamp(Duration::from_millis(1), Duration::from_millis(20));
            match self.acks.recv_timeout(wait) {
                Ok(Ack { id, result }) => {
                    let Some(entry) = pending.get_mut(&id) else { continue };
                    if let Err(why) = result {
                        let p = pending.remove(&id).expect("present");
                        self.failed(&mut failures, id, p, why);
                        continue;
                    }
                    entry.acks += 1;
                    if entry.acks == self.expected {
                        let p = pending.remove(&id).expect("present");
                        let bytes = self.complete(id, &p.dir, p.savepoint.is_some())?;
                        if p.savepoint.is_none() {
                            self.metrics.note_completed(id, p.started.elapsed().as_millis() as u64, bytes);
                        }
                        if p.savepoint.is_none() {
                            last_end = Instant::now();
                            failures = 0;
                        }
                        for t in self.tasks.iter().chain(self.sources.iter()) {
                            let _ = t.send(Control::Complete(id));
                        }
                        if let Some(reply) = p.swap {
                            let _ = reply.send(Ok(id));
                        }
                        if let Some((stop, reply)) = p.savepoint {
                            if stop {
                                self.stop.store(true, Ordering::SeqCst);
                            }
                            let _ = reply.send(Ok(p.dir.clone()));
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        // Checkpoints still in flight can never complete: remove their folders.
        for (id, p) in pending {
            if let Some((_, reply)) = &p.savepoint {
                let _ = reply.send(Err(format!("the job ended before savepoint {id} completed")));
            }
            if let Some(reply) = &p.swap {
                let _ = reply.send(Err(format!("the job ended before checkpoint {id} of the swap completed")));
            }
            let _ = std::fs::remove_dir_all(&p.dir);
        }
        Ok(())
    }

    /// Writes the metadata of a finished checkpoint; returns the bytes of its files.
    fn complete(&self, id: u64, dir: &Path, savepoint: bool) -> anyhow::Result<u64> {
        let files = list_files(dir, dir)?;
        let bytes = files.iter().map(|f| f.size).sum();
        let f = &self.facts;
        let completed_ms = weir_core::time::wall_ms();
        let m = Metadata {
            id,
            job: f.job.clone(),
            completed_ms,
            max_parallelism: f.max_parallelism,
            parallelism: f.parallelism.clone(),
            plugins: f.plugins.clone(),
            versions: f.versions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
            key_prefixes: f.key_prefixes.clone(),
            savepoint,
            files,
        };
        write_metadata(dir, &m)?;
        if savepoint {
            return Ok(bytes);
        }
        // Retention: keep the newest `retain` complete checkpoints.
        for (old, p) in completed(&self.cfg.dir).into_iter().skip(self.cfg.retain.max(1)) {
            if old < id {
                let _ = std::fs::remove_dir_all(p);
            }
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(dir: &Path, id: u64) -> PathBuf {
        let chk = chk_dir(dir, id);
        std::fs::create_dir_all(chk.join("t-0")).unwrap();
        std::fs::write(chk.join("t-0/state.kv"), format!("state of {id}")).unwrap();
        let m = Metadata {
            id,
            job: "j".into(),
            completed_ms: 0,
            max_parallelism: 128,
            parallelism: BTreeMap::new(),
            plugins: BTreeMap::new(),
            versions: BTreeMap::new(),
            key_prefixes: BTreeMap::new(),
            savepoint: false,
            files: list_files(&chk, &chk).unwrap(),
        };
        write_metadata(&chk, &m).unwrap();
        chk
    }

    #[test]
    fn latest_skips_corrupt_truncated_and_half_written_checkpoints() {
        let d = tempfile::tempdir().unwrap();
        meta(d.path(), 1);
        let c2 = meta(d.path(), 2);
        let c3 = meta(d.path(), 3);
        std::fs::create_dir_all(chk_dir(d.path(), 4).join("t-0")).unwrap(); // no metadata: in progress
        let id = |d: &Path| resolve(Some(d), "latest").unwrap().map(|(m, _)| m.id);
        assert_eq!(id(d.path()), Some(3));
        std::fs::write(c3.join("t-0/state.kv"), "state of 9").unwrap(); // same size, other bytes
        assert_eq!(id(d.path()), Some(2));
        std::fs::write(c2.join("t-0/state.kv"), "x").unwrap(); // truncated
        assert_eq!(id(d.path()), Some(1));
        std::fs::write(chk_dir(d.path(), 1).join(METADATA), "{not json").unwrap();
        assert_eq!(id(d.path()), None, "no complete checkpoint: start from the beginning");
        assert_eq!(id(&d.path().join("never-made")), None, "no folder yet: the same");
        let e = resolve(None, &c3.display().to_string()).unwrap_err();
        assert!(format!("{e:#}").contains("does not match its hash"), "{e:#}");
        assert!(resolve(None, "/no/such/checkpoint").is_err(), "a given folder that is not there stays an error");
        assert_eq!(highest_id(d.path()), 4);
    }
}
