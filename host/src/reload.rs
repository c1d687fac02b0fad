//! Hot reload: an operator's plugin swapped in a running job, with its keyed state, timers
//! and window contents kept, and rolled back by itself when the new version fails.
//!
//! A reload (`weir reload`, or `weir run --watch` when a plugin file changes):
//! 1. compiles the new component, checks that it exports the world of the running version,
//!    and runs its `init` with the operator's config on a trial instance; any failure leaves
//!    the running version alone and says why;
//! 2. keeps a copy of it in the version store (`CHECKPOINT_DIR/plugins/HASH.wasm`), so a
//!    restore can run the versions a checkpoint was taken with;
//! 3. asks the checkpoint coordinator for a checkpoint whose barrier swaps the plugin in every
//!    subtask of the operator ([`Reloadable::snapshot`]): each record is processed by the old
//!    version or the new one, exactly once; state, timers and windows stay in the host and
//!    carry over as they are, or, when the new version exports `migrate`, its state is
//!    rewritten entry by entry at the swap (`weir_plugin::Instance::swap`);
//! 4. puts the new version on probation (`[reload] probation`): no periodic checkpoint
//!    completes meanwhile, so a transactional sink commits nothing the new version wrote. If
//!    it fails more than `max-failures` records (errors or traps), the job stops and
//!    restarts from the checkpoint of the swap, whose metadata names the old version.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Sender;
use weir_core::operator::{Operator, Output};
use weir_core::record::Batch;
use weir_core::status::JobMetrics;
use weir_job::PluginDef;
use weir_plugin::{hash_bytes, Grants, Instance, Plugin, PluginEngine};
use weir_runtime::checkpoint::{PluginVersion, SwapRequest};
use weir_state::Deferred;

/// Locks, whether or not a thread panicked holding the lock.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The folder of the version store beside checkpoints in `checkpoint_dir`.
pub fn store_dir(checkpoint_dir: &Path) -> PathBuf {
    checkpoint_dir.join("plugins")
}

/// Copies `bytes` (of version `hash`) into the version store, unless it is there.
fn keep(store: &Path, hash: &str, bytes: &[u8]) -> std::io::Result<()> {
    let path = store.join(format!("{hash}.wasm"));
    if path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(store)?;
    let tmp = store.join(format!(".{hash}.wasm.{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, &path)
}

/// The version a plugin is.
fn version_of(p: &Plugin) -> PluginVersion {
    PluginVersion { path: p.path.display().to_string(), hash: p.hash.clone() }
}

/// One reloadable operator: the version it runs, a swap waiting for its barrier, and its
/// probation.
#[derive(Debug)]
pub struct Slot {
    operator: String,
    config: String,
    grants: Arc<Grants>,
    subtasks: usize,
    current: Mutex<(Arc<Plugin>, i64)>,
    /// `(checkpoint id, version)`: swap when that barrier passes.
    due: Mutex<Option<(u64, Arc<Plugin>)>>,
    swapped: AtomicU64,
    swap_errors: Mutex<Vec<String>>,
    /// Set from the swap until the probation ends.
    probation: AtomicBool,
    failures: AtomicU64,
    max_failures: u64,
    /// Set when the new version must go: why.
    rollback: Mutex<Option<String>>,
    failing: AtomicBool,
    /// What the last reload came to, for `weir status`.
    last: Mutex<Option<serde_json::Value>>,
    /// The version a rollback removed: `--watch` does not load it again.
    rejected: Mutex<Option<String>>,
    /// The version on probation.
    trying: Mutex<Option<String>>,
    /// The operator's counters (`weir_plugin_reloads_total`).
    node: Arc<weir_core::status::NodeMetrics>,
}

impl Slot {
    /// The version running now.
    pub fn current(&self) -> Arc<Plugin> {
        lock(&self.current).0.clone()
    }

    /// Fails the new version: the job stops and restarts from the checkpoint of the swap.
    fn roll_back(&self, why: String) {
        let mut r = lock(&self.rollback);
        if r.is_none() {
            *r = Some(why);
        }
        self.failing.store(true, Ordering::SeqCst);
    }

    /// Notes how a reload ended (`outcome` is `ok`, `refused` or `rolled back`; `fields`
    /// say more), for `weir status` and the reload counters.
    fn conclude(&self, outcome: &str, fields: serde_json::Value) {
        let mut last = serde_json::json!({"outcome": outcome, "at_ms": weir_core::time::wall_ms()});
        if let (Some(l), serde_json::Value::Object(f)) = (last.as_object_mut(), fields) {
            l.extend(f);
        }
        *lock(&self.last) = Some(last);
        let i = match outcome {
            "ok" => 0,
            "refused" => 1,
            _ => 2,
        };
        self.node.reloads[i].fetch_add(1, Ordering::Relaxed);
    }

    fn rollback_error(&self) -> anyhow::Error {
        let why = lock(&self.rollback).clone().unwrap_or_default();
        anyhow::anyhow!("operator `{}`: the reloaded plugin is rolled back: {why}", self.operator)
    }
}

/// Where reloads reach the running job (set when the run starts its coordinator).
#[derive(Debug)]
struct Link {
    swaps: Sender<SwapRequest>,
    hold: Arc<AtomicBool>,
    versions: Arc<Mutex<BTreeMap<String, PluginVersion>>>,
    store: PathBuf,
}

/// The reloadable operators of a run, and the reloads in it.
#[derive(Debug)]
pub struct Reloads {
    job: String,
    engine: Arc<PluginEngine>,
    slots: BTreeMap<String, Arc<Slot>>,
    probation: Duration,
    link: Mutex<Option<Link>>,
    busy: Mutex<()>,
    metrics: Arc<JobMetrics>,
    /// When this run started, epoch ms.
    started_ms: i64,
}

/// A rollback that ended a run: the operator, the version it returns to, and why.
#[derive(Debug, Clone)]
pub struct Rollback {
    /// The operator.
    pub operator: String,
    /// The version that went.
    pub version: String,
    /// Why it went.
    pub reason: String,
}

impl Reloads {
    /// Reloads of `job`'s operators `(name, plugin running, its definition, subtasks)`.
    pub fn new(
        job: &weir_job::Job,
        engine: Arc<PluginEngine>,
        operators: Vec<(String, Arc<Plugin>, &PluginDef, usize)>,
        metrics: Arc<JobMetrics>,
    ) -> Reloads {
        let started = weir_core::time::wall_ms();
        let slots = operators
            .into_iter()
            .map(|(operator, plugin, def, subtasks)| {
                let slot = Slot {
                    operator: operator.clone(),
                    config: def.config.clone(),
                    grants: Arc::new(def.grants.clone()),
                    subtasks,
                    current: Mutex::new((plugin, started)),
                    due: Mutex::new(None),
                    swapped: AtomicU64::new(0),
                    swap_errors: Mutex::new(Vec::new()),
                    probation: AtomicBool::new(false),
                    failures: AtomicU64::new(0),
                    max_failures: u64::from(job.reload.max_failures),
                    rollback: Mutex::new(None),
                    failing: AtomicBool::new(false),
                    last: Mutex::new(None),
                    rejected: Mutex::new(None),
                    trying: Mutex::new(None),
                    node: metrics.get(&operator).unwrap_or_default(),
                };
                (operator, Arc::new(slot))
            })
            .collect();
        Reloads {
            job: job.name.clone(),
            engine,
            slots,
            probation: job.reload.probation,
            link: Mutex::new(None),
            busy: Mutex::new(()),
            metrics,
            started_ms: started,
        }
    }

    /// The slot of a reloadable operator.
    pub fn slot(&self, operator: &str) -> Option<&Arc<Slot>> {
        self.slots.get(operator)
    }

    /// The version each reloadable operator runs now.
    pub fn versions(&self) -> BTreeMap<String, PluginVersion> {
        self.slots.iter().map(|(n, s)| (n.clone(), version_of(&s.current()))).collect()
    }

    /// Runs the versions checkpoint `chk` was taken with (`meta.versions`) where they differ
    /// from the job file's: the recorded file when it still holds that version, else the
    /// version store's copy; when neither has it, the job file's, with a warning.
    pub fn restore_versions(&self, meta: &weir_runtime::checkpoint::Metadata, chk: &Path) -> anyhow::Result<()> {
        for (op, want) in &meta.versions {
            let Some(slot) = self.slots.get(op) else { continue };
            let now = slot.current();
            if now.hash == want.hash {
                continue;
            }
            let stored = chk.parent().map(|d| store_dir(d).join(format!("{}.wasm", want.hash)));
            let candidates = [Some(PathBuf::from(&want.path)), stored];
            let found = candidates.into_iter().flatten().find_map(|p| {
                let bytes = std::fs::read(&p).ok()?;
                (hash_bytes(&bytes) == want.hash).then_some((p, bytes))
            });
            match found {
                Some((p, bytes)) => {
                    let plugin = Plugin::from_bytes(&self.engine, Path::new(&want.path), &bytes)
                        .map_err(|e| anyhow::anyhow!("restoring operator `{op}`'s plugin version {} from {}: {e}", want.hash, p.display()))?;
                    eprintln!(
                        "weir: operator `{op}` runs plugin version {} ({}) as checkpoint {} did, not {} of {}; `weir reload` changes it",
                        want.hash, want.path, meta.id, now.hash, now.path.display()
                    );
                    *lock(&slot.current) = (Arc::new(plugin), weir_core::time::wall_ms());
                }
                None => eprintln!(
                    "weir: warning: operator `{op}` ran plugin version {} ({}) in checkpoint {}, which is no longer there; running {} ({}) with its state",
                    want.hash, want.path, meta.id, now.hash, now.path.display()
                ),
            }
        }
        Ok(())
    }

    /// Connects reloads to the run's coordinator; keeps the running versions in the store.
    pub fn link(
        &self,
        swaps: Sender<SwapRequest>,
        hold: Arc<AtomicBool>,
        checkpoint_dir: &Path,
    ) -> Arc<Mutex<BTreeMap<String, PluginVersion>>> {
        let store = store_dir(checkpoint_dir);
        for slot in self.slots.values() {
            let p = slot.current();
            if let Ok(bytes) = std::fs::read(&p.path) {
                if hash_bytes(&bytes) == p.hash {
                    if let Err(e) = keep(&store, &p.hash, &bytes) {
                        eprintln!("weir: warning: cannot keep plugin {} in {}: {e}", p.path.display(), store.display());
                    }
                }
            }
        }
        let versions = Arc::new(Mutex::new(self.versions()));
        *lock(&self.link) = Some(Link { swaps, hold, versions: versions.clone(), store });
        versions
    }

    /// The rollback that ended the run, if one did.
    pub fn rollback(&self) -> Option<Rollback> {
        self.slots.values().find_map(|s| {
            let reason = lock(&s.rollback).clone()?;
            let version = lock(&s.trying).clone().unwrap_or_default();
            Some(Rollback { operator: s.operator.clone(), version, reason })
        })
    }

    /// Notes on `operator` that the previous run rolled it back (for `weir status`).
    pub fn note_rollback(&self, rb: &Rollback) {
        if let Some(s) = self.slots.get(&rb.operator) {
            s.conclude("rolled back", serde_json::json!({"version": rb.version, "reason": rb.reason}));
            *lock(&s.rejected) = Some(rb.version.clone());
        }
    }

    /// Hot-reloads `operator` from the component at `path`; see the module's steps.
    pub fn reload(&self, operator: &str, path: &Path) -> Result<serde_json::Value, String> {
        let Ok(_one) = self.busy.try_lock() else { return Err("another reload is in progress; try again when it is done".into()) };
        let Some(slot) = self.slots.get(operator).cloned() else {
            let names: Vec<&str> = self.slots.keys().map(String::as_str).collect();
            return Err(format!(
                "no operator `{operator}` runs a plugin that can be reloaded; these can: {}",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            ));
        };
        let (swaps, hold, versions, store) = match &*lock(&self.link) {
            Some(l) => (l.swaps.clone(), l.hold.clone(), l.versions.clone(), l.store.clone()),
            None => return Err("the job is not running with a checkpoint coordinator".into()),
        };
        if slot.probation.load(Ordering::SeqCst) {
            return Err(format!("the last reload of `{operator}` is still on probation; reload again when it passed"));
        }
        let outcome = self.prepare(&slot, path).and_then(|plugin| {
            if let Err(e) = keep(&store, &plugin.hash, &std::fs::read(path).unwrap_or_default()) {
                eprintln!("weir: warning: cannot keep plugin {} in {}: {e}", path.display(), store.display());
            }
            self.swap(&slot, plugin, &swaps, &hold, &versions)
        });
        if let Err(why) = &outcome {
            eprintln!("weir: reload of `{operator}` from {} refused: {why}", path.display());
            slot.conclude("refused", serde_json::json!({"reason": why, "path": path}));
        }
        outcome
    }

    /// Steps 1: the new version compiled, its world checked, its `init` run on a trial
    /// instance.
    fn prepare(&self, slot: &Slot, path: &Path) -> Result<Arc<Plugin>, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let plugin = Plugin::from_bytes(&self.engine, path, &bytes).map_err(|e| e.to_string())?;
        let running = slot.current();
        if plugin.world != running.world {
            return Err(format!(
                "{} exports world `{}`, but `{}` runs a plugin of world `{}`; build the new version with #[weir_sdk::{}]",
                path.display(),
                plugin.world.name(),
                slot.operator,
                running.world.name(),
                running.world.name().replace('-', "_")
            ));
        }
        if plugin.hash == running.hash {
            return Err(format!("`{}` already runs this version ({})", slot.operator, plugin.hash));
        }
        let plugin = Arc::new(plugin);
        Instance::with_grants(plugin.clone(), &slot.operator, 0, slot.config.clone(), slot.grants.clone()).map_err(|e| e.to_string())?;
        Ok(plugin)
    }

    /// Steps 3 and 4: the swap at a checkpoint barrier, then the probation.
    fn swap(
        &self,
        slot: &Arc<Slot>,
        plugin: Arc<Plugin>,
        swaps: &Sender<SwapRequest>,
        hold: &Arc<AtomicBool>,
        versions: &Arc<Mutex<BTreeMap<String, PluginVersion>>>,
    ) -> Result<serde_json::Value, String> {
        let previous = slot.current();
        slot.swapped.store(0, Ordering::SeqCst);
        lock(&slot.swap_errors).clear();
        slot.failures.store(0, Ordering::SeqCst);
        // No periodic checkpoint from here until the probation passes.
        hold.store(true, Ordering::SeqCst);
        *lock(&slot.trying) = Some(plugin.hash.clone());
        let (reply, answer) = crossbeam_channel::bounded(1);
        let (armed, version) = (slot.clone(), plugin.clone());
        let arm = Box::new(move |id: u64| {
            armed.probation.store(true, Ordering::SeqCst);
            *lock(&armed.due) = Some((id, version));
        });
        if swaps.send(SwapRequest { arm, reply }).is_err() {
            hold.store(false, Ordering::SeqCst);
            return Err("the job is ending".into());
        }
        let result = answer.recv().unwrap_or_else(|_| Err("the job ended".into()));
        let swapped = slot.swapped.load(Ordering::SeqCst) as usize;
        let errors = lock(&slot.swap_errors).clone();
        let failing = slot.failing.load(Ordering::SeqCst);
        let checkpoint = match result {
            Ok(id) if errors.is_empty() && !failing => id,
            Err(why) if swapped == 0 && errors.is_empty() && !failing => {
                *lock(&slot.due) = None;
                slot.probation.store(false, Ordering::SeqCst);
                hold.store(false, Ordering::SeqCst);
                return Err(format!("the checkpoint of the swap failed ({why}); `{}` still runs {}", slot.operator, previous.hash));
            }
            _ => {
                // The new version failed at once, or some subtasks swapped and some did not:
                // back to the checkpoint before.
                if !failing {
                    let why = errors.first().cloned().unwrap_or_else(|| format!("only {swapped} of {} subtasks swapped", slot.subtasks));
                    slot.roll_back(why);
                }
                let why = lock(&slot.rollback).clone().unwrap_or_default();
                return Err(format!("{} was swapped in and is being rolled back: {why}", plugin.hash));
            }
        };
        *lock(&slot.current) = (plugin.clone(), weir_core::time::wall_ms());
        lock(versions).insert(slot.operator.clone(), version_of(&plugin));
        let probation = self.probation;
        eprintln!(
            "weir: operator `{}` swapped to plugin version {} ({}) at checkpoint {checkpoint}; on probation for {probation:?}",
            slot.operator,
            plugin.hash,
            plugin.path.display(),
        );
        let note = serde_json::json!({
            "operator": slot.operator,
            "version": plugin.hash,
            "path": plugin.path,
            "previous": previous.hash,
            "checkpoint": checkpoint,
            "probation_ms": probation.as_millis() as u64,
        });
        *lock(&slot.last) = Some(
            serde_json::json!({"outcome": "on probation", "at_ms": weir_core::time::wall_ms(), "version": plugin.hash, "checkpoint": checkpoint}),
        );
        let (slot, hold) = (slot.clone(), hold.clone());
        let _ = std::thread::Builder::new().name("weir-probation".into()).spawn(move || {
            let end = Instant::now() + probation;
            while Instant::now() < end && !slot.failing.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20).min(end.saturating_duration_since(Instant::now())));
            }
            if slot.failing.load(Ordering::SeqCst) {
                return;
            }
            slot.probation.store(false, Ordering::SeqCst);
            hold.store(false, Ordering::SeqCst);
            let failures = slot.failures.load(Ordering::SeqCst);
            eprintln!(
                "weir: operator `{}`: plugin version {} passed its probation ({failures} failed records)",
                slot.operator, plugin.hash
            );
            slot.conclude("ok", serde_json::json!({"version": plugin.hash, "checkpoint": checkpoint, "failures": failures}));
        });
        Ok(note)
    }

    /// The state of the job for `weir status`.
    pub fn status(&self) -> serde_json::Value {
        let operators: serde_json::Map<String, serde_json::Value> = self
            .slots
            .iter()
            .map(|(n, s)| {
                let (p, at) = lock(&s.current).clone();
                let v = serde_json::json!({
                    "plugin": p.path,
                    "version": p.hash,
                    "world": p.world.name(),
                    "loaded_at_ms": at,
                    "on_probation": s.probation.load(Ordering::SeqCst),
                    "last_reload": lock(&s.last).clone(),
                });
                (n.clone(), v)
            })
            .collect();
        let nodes: Vec<&str> = self.metrics.nodes.iter().map(|(n, _)| n.as_str()).collect();
        serde_json::json!({
            "job": self.job, "operators": operators, "metrics": self.metrics.to_json(), "nodes": nodes,
            "elapsed_ms": weir_core::time::wall_ms() - self.started_ms, "peak_memory_kb": crate::progress::peak_memory(),
        })
    }

    /// `--watch`: polls the plugin files of reloadable operators until `done`, and reloads
    /// one whose file changed once it stays the same for two polls in a row (a file being
    /// written is never loaded; one that does not compile is refused and logged). The file
    /// is read once it is steady also at the start: a restart after a rollback may run
    /// another version than the file holds (and does not load the rolled-back one again).
    pub fn watch(self: Arc<Self>, done: Arc<AtomicBool>, every: Duration) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new().name("weir-watch".into()).spawn(move || {
            let mut files: Vec<Watched> = self
                .slots
                .iter()
                .map(|(n, s)| {
                    let p = s.current();
                    let tried = lock(&s.rejected).clone().unwrap_or_else(|| p.hash.clone());
                    Watched { operator: n.clone(), path: p.path.clone(), last: None, steady: 0, tried }
                })
                .collect();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(every);
                for w in &mut files {
                    let Some(bytes) = w.changed() else { continue };
                    let hash = hash_bytes(&bytes);
                    if hash == w.tried || self.slots[&w.operator].current().hash == hash {
                        continue;
                    }
                    w.tried = hash;
                    match self.reload(&w.operator, &w.path) {
                        Ok(_) => eprintln!("weir: --watch: reloaded `{}` from {}", w.operator, w.path.display()),
                        Err(why) => eprintln!("weir: --watch: kept `{}` as it runs: {why}", w.operator),
                    }
                }
            }
        })
    }
}

/// A plugin file `--watch` follows: its size and time when last looked at, for how many
/// looks it stayed so, and the version last tried from it.
struct Watched {
    operator: String,
    path: PathBuf,
    last: Option<(u64, Option<SystemTime>)>,
    steady: u32,
    tried: String,
}

impl Watched {
    /// The file's bytes when it just became steady (the same for two looks after a change).
    fn changed(&mut self) -> Option<Vec<u8>> {
        let now = std::fs::metadata(&self.path).ok().map(|m| (m.len(), m.modified().ok()));
        if now != self.last {
            self.last = now;
            self.steady = 0;
            return None;
        }
        self.steady += 1;
        if self.steady != 2 || now.is_none() {
            return None;
        }
        std::fs::read(&self.path).ok()
    }
}

impl weir_runtime::control::Commands for Reloads {
    fn reload(&self, operator: &str, path: &Path) -> Result<serde_json::Value, String> {
        Reloads::reload(self, operator, path)
    }

    fn status(&self) -> serde_json::Value {
        Reloads::status(self)
    }
}

/// A plugin operator that can be hot-reloaded: swaps its plugin when the barrier of its
/// slot's swap passes, and counts what the new version fails while it is on probation.
pub struct Reloadable {
    inner: Box<dyn Operator>,
    slot: Arc<Slot>,
    /// This subtask runs a version on probation.
    probing: bool,
}

impl Reloadable {
    /// Wraps `inner`, whose plugin is `slot`'s.
    pub fn new(inner: Box<dyn Operator>, slot: Arc<Slot>) -> Reloadable {
        Reloadable { inner, slot, probing: false }
    }

    /// Counts `failed` records of a version on probation; too many roll it back.
    fn judge(&mut self, failed: usize, result: &anyhow::Result<()>) -> anyhow::Result<()> {
        if !self.probing {
            return Ok(());
        }
        if !self.slot.probation.load(Ordering::Relaxed) {
            self.probing = false;
            return Ok(());
        }
        if let Err(e) = result {
            self.slot.roll_back(format!("it failed: {e:#}"));
        } else if failed > 0 {
            let total = self.slot.failures.fetch_add(failed as u64, Ordering::SeqCst) + failed as u64;
            if total > self.slot.max_failures {
                self.slot.roll_back(format!(
                    "it failed {total} records during its probation, more than `reload.max-failures` = {} (see the dead letters)",
                    self.slot.max_failures
                ));
            }
        }
        match self.slot.failing.load(Ordering::SeqCst) {
            true => Err(self.slot.rollback_error()),
            false => Ok(()),
        }
    }
}

impl Operator for Reloadable {
    fn process(&mut self, batch: Batch, out: &mut Output) -> anyhow::Result<()> {
        if self.slot.failing.load(Ordering::Relaxed) {
            return Err(self.slot.rollback_error());
        }
        let before = out.dead.len();
        let result = self.inner.process(batch, out);
        let failed = out.dead.len() - before;
        self.judge(failed, &result)?;
        result
    }

    fn next_processing_timer(&self) -> Option<i64> {
        self.inner.next_processing_timer()
    }

    fn state_size(&self) -> Option<weir_core::status::StateSize> {
        self.inner.state_size()
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Output) -> anyhow::Result<()> {
        let before = out.dead.len();
        let result = self.inner.on_processing_time(now, out);
        let failed = out.dead.len() - before;
        self.judge(failed, &result)?;
        result
    }

    fn close(&mut self, out: &mut Output) -> anyhow::Result<()> {
        self.inner.close(out)
    }

    fn snapshot(&mut self, id: u64, dir: &Path) -> anyhow::Result<Option<Deferred>> {
        // The state as the old version left it goes into the checkpoint; then the swap.
        let deferred = self.inner.snapshot(id, dir)?;
        let due = lock(&self.slot.due).as_ref().filter(|(at, _)| *at == id).map(|(_, p)| p.clone());
        if let Some(plugin) = due {
            let swapped = match self.inner.plugin_instance().and_then(|i| i.downcast_mut::<Instance>()) {
                Some(inst) => inst.swap(plugin),
                None => Err("the operator has no plugin instance".into()),
            };
            match swapped {
                Ok(()) => {
                    self.probing = true;
                    self.slot.swapped.fetch_add(1, Ordering::SeqCst);
                }
                Err(why) => {
                    lock(&self.slot.swap_errors).push(why.clone());
                    self.slot.roll_back(format!("the swap failed in a subtask: {why}"));
                    return Err(self.slot.rollback_error());
                }
            }
        }
        Ok(deferred)
    }

    fn restore(&mut self, dirs: &[PathBuf], groups: Range<u16>) -> anyhow::Result<()> {
        self.inner.restore(dirs, groups)
    }

    fn notify_checkpoint_complete(&mut self, id: u64) -> anyhow::Result<()> {
        self.inner.notify_checkpoint_complete(id)
    }

    fn plugin_instance(&mut self) -> Option<&mut dyn std::any::Any> {
        self.inner.plugin_instance()
    }
}
