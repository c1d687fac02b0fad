//! Compiling, inspecting and instantiating plugins, and calling them in batches.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::{types::ComponentItem, Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store};

pub use super::bindings::World;
use super::bindings::{self, Bound, FlatBatch, GuestError, Prepared, WitFailure, WitHeader, WitRecord};
use super::grants::Grants;
use super::host::{to_wit, CallCtx, HostCtx, ProcessCall};
use weir_core::record::{Key, Record};

/// Epoch ticks happen every 100 ms (the granularity of a call's deadline).
pub const EPOCH_TICK: Duration = Duration::from_millis(100);
/// How long a plugin call may run unless the job says otherwise (`plugin-deadline`).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);
/// Linear memory one instance may grow to.
pub const DEFAULT_MEMORY_LIMIT: usize = 512 << 20;
/// Calls of one operator subtask that may run past the deadline before the job fails
/// (`plugin-deadline-budget`).
pub const DEFAULT_DEADLINE_BUDGET: u32 = 3;
/// A record retried alone after its batch's call ran past the deadline gets this share of
/// the deadline (at least one epoch tick): a looping record then costs a tenth, not a whole
/// deadline, again.
pub const RETRY_DEADLINE_DIVISOR: u64 = 10;

/// Errors of loading and starting plugins (the job does not start).
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file cannot be read.
    #[error("plugin {path}: cannot read the file: {cause}; build it first (`make plugins`) or fix the `plugin` path")]
    Read { path: PathBuf, cause: std::io::Error },
    /// The file is not a valid component.
    #[error("plugin {path}: not a WebAssembly component weir can run: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// The component exports none of weir's worlds, or another one than the operator needs.
    #[error("plugin {path}: {reason}")]
    WrongWorld { path: PathBuf, reason: String },
    /// `init` returned an error or trapped.
    #[error("plugin {path} (operator `{operator}`): init failed: {reason}")]
    Init { path: PathBuf, operator: String, reason: String },
}

/// The shared engine and linker of a job; compiled plugins hold an `Arc` of it.
pub struct PluginEngine {
    engine: Engine,
    linker: Linker<HostCtx>,
    /// How long a call may run, in epoch ticks; `None`: no limit (code compiled without
    /// interruption checks).
    deadline_ticks: Option<u64>,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PluginEngine")
    }
}

impl PluginEngine {
    /// The process-wide engine with the default call deadline (10 s).
    pub fn shared() -> wasmtime::Result<Arc<PluginEngine>> {
        Self::with_deadline(Some(DEFAULT_DEADLINE))
    }

    /// The process-wide engine whose plugin calls trap after `deadline` (epoch
    /// interruption: compiled code checks an epoch counter at every function entry and loop
    /// head, which a ticker thread advances every 100 ms), or never (`None`: no checks,
    /// faster plugin code, and a plugin that loops forever hangs its task).
    pub fn with_deadline(deadline: Option<Duration>) -> wasmtime::Result<Arc<PluginEngine>> {
        static ENGINES: Mutex<Vec<Arc<PluginEngine>>> = Mutex::new(Vec::new());
        let ticks = deadline.map(|d| (d.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64);
        let mut engines = ENGINES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(e) = engines.iter().find(|e| e.deadline_ticks == ticks) {
            return Ok(e.clone());
        }
        let mut cfg = Config::new();
        cfg.epoch_interruption(ticks.is_some());
        cfg.cranelift_opt_level(wasmtime::OptLevel::Speed);
        // `WEIR_PERFMAP=1` names compiled plugin functions for `perf` (/tmp/perf-PID.map).
        if std::env::var_os("WEIR_PERFMAP").is_some_and(|v| v == "1") {
            cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&cfg)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        bindings::process::Process::add_to_linker::<HostCtx, HasSelf<HostCtx>>(&mut linker, |s| s)?;
        if ticks.is_some() {
            let ticker = engine.weak();
            std::thread::Builder::new().name("weir-epoch".into()).spawn(move || {
                while let Some(e) = ticker.upgrade() {
                    e.increment_epoch();
                    drop(e);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;
        }
        let e = Arc::new(PluginEngine { engine, linker, deadline_ticks: ticks });
        engines.push(e.clone());
        Ok(e)
    }

    /// The wasmtime engine plugins are compiled for (with the deadline's interruption checks
    /// or without), for running other components alike, such as the benchmarks' WASI
    /// commands.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Gives a store's next call the full deadline. The ticker may tick right after the
    /// call starts, so one tick more than the deadline holds: a call always gets at least
    /// the deadline, and at most one tick more.
    pub fn arm<T>(&self, store: &mut Store<T>) {
        self.arm_for(store, false);
    }

    /// Gives a store's next call the full deadline, or with `retry` its share
    /// ([`RETRY_DEADLINE_DIVISOR`]).
    fn arm_for<T>(&self, store: &mut Store<T>, retry: bool) {
        if let Some(t) = self.ticks(retry) {
            store.set_epoch_deadline(t + 1);
        }
    }

    /// Epoch ticks of the deadline, or of a retry's share of it (at least one).
    fn ticks(&self, retry: bool) -> Option<u64> {
        self.deadline_ticks.map(|t| if retry { (t / RETRY_DEADLINE_DIVISOR).max(1) } else { t })
    }

    /// The deadline (or a retry's share of it), written as in job files.
    fn deadline(&self, retry: bool) -> String {
        let ms = self.ticks(retry).unwrap_or(0) * EPOCH_TICK.as_millis() as u64;
        humantime::format_duration(Duration::from_millis(ms)).to_string()
    }

    /// What a trap on the deadline says.
    fn deadline_text(&self, retry: bool) -> String {
        match retry {
            false => format!("deadline of {} exceeded (`plugin-deadline`): the call ran too long or loops", self.deadline(false)),
            true => format!(
                "deadline of {} exceeded (a tenth of `plugin-deadline`, for a record retried alone after its batch's call ran past it): the record makes the plugin loop or run too long",
                self.deadline(true)
            ),
        }
    }
}

/// The hash a plugin version is known by: xxHash64 of the component's bytes, hex.
pub fn hash_bytes(bytes: &[u8]) -> String {
    format!("{:016x}", twox_hash::XxHash64::oneshot(0, bytes))
}

/// A compiled plugin.
pub struct Plugin {
    /// Where it was loaded from.
    pub path: PathBuf,
    /// The world it exports.
    pub world: World,
    /// xxHash64 of the file, hex (recorded in checkpoints).
    pub hash: String,
    /// It exports the optional `migrate` interface (state migration on a hot reload).
    pub migrates: bool,
    /// It imports `context.read-fields`, so its `init` may ask the host for members. A
    /// component imports only the functions it calls (Rust plugins that never ask do not
    /// import it); the planner probes no other for what it reads.
    pub may_read_fields: bool,
    component: Component,
    engine: Arc<PluginEngine>,
    /// Imports resolved and exports looked up once; instantiating is then cheap.
    pre: Option<Prepared>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("path", &self.path).field("world", &self.world).field("hash", &self.hash).finish_non_exhaustive()
    }
}

/// What `weir inspect` shows.
#[derive(Debug)]
pub struct Description {
    /// The world, when the component exports one of weir's.
    pub world: Option<World>,
    /// `(name, kind)` of each export.
    pub exports: Vec<(String, String)>,
    /// `(name, kind)` of each import.
    pub imports: Vec<(String, String)>,
}

fn item_kind(i: &ComponentItem) -> &'static str {
    match i {
        ComponentItem::ComponentFunc(_) => "func",
        ComponentItem::CoreFunc(_) => "core func",
        ComponentItem::Module(_) => "module",
        ComponentItem::Component(_) => "component",
        ComponentItem::ComponentInstance(_) => "instance",
        ComponentItem::Type(_) => "type",
        ComponentItem::Resource(_) => "resource",
    }
}

impl Plugin {
    /// Reads and compiles a component and finds its world.
    pub fn load(engine: &Arc<PluginEngine>, path: &Path) -> Result<Plugin, PluginError> {
        let bytes = std::fs::read(path).map_err(|cause| PluginError::Read { path: path.to_path_buf(), cause })?;
        Self::from_bytes(engine, path, &bytes)
    }

    /// Compiles the component `bytes` read from `path` and finds its world.
    pub fn from_bytes(engine: &Arc<PluginEngine>, path: &Path, bytes: &[u8]) -> Result<Plugin, PluginError> {
        let invalid = |reason: String| PluginError::Invalid { path: path.to_path_buf(), reason };
        if bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0] {
            return Err(invalid(
                "this is a core Wasm module, not a component; build for `wasm32-wasip2` (or run `wasm-tools component new`)".into(),
            ));
        }
        let hash = hash_bytes(bytes);
        let component = super::cache::component(&engine.engine, bytes, &hash).map_err(|e| invalid(format!("{e:#}")))?;
        let mut p = Plugin {
            path: path.to_path_buf(),
            world: World::Map,
            hash,
            migrates: false,
            may_read_fields: false,
            component,
            engine: engine.clone(),
            pre: None,
        };
        p.world = p.describe().world.ok_or_else(|| PluginError::WrongWorld {
            path: path.to_path_buf(),
            reason: format!(
                "exports none of weir's operator worlds ({}: {}); it exports: {}",
                bindings::wit_package(),
                World::ALL.iter().map(|w| w.name()).collect::<Vec<_>>().join(", "),
                p.describe().exports.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
            ),
        })?;
        let migrate = bindings::qualified("migrate");
        p.migrates = p.describe().exports.iter().any(|(n, _)| *n == migrate);
        p.may_read_fields = p.imports_func("context", "read-fields");
        p.pre = Some(
            p.pre_instantiate().map_err(|e| invalid(format!("its imports or exports do not match {}: {e:#}", bindings::wit_package())))?,
        );
        Ok(p)
    }

    /// Whether the component imports function `func` of weir's interface `interface`.
    fn imports_func(&self, interface: &str, func: &str) -> bool {
        let engine = &self.engine.engine;
        match self.component.component_type().get_import(engine, &bindings::qualified(interface)).map(|i| i.ty) {
            Some(ComponentItem::ComponentInstance(i)) => i.get_export(engine, func).is_some(),
            _ => false,
        }
    }

    fn pre_instantiate(&self) -> wasmtime::Result<Prepared> {
        Prepared::new(self.world, self.engine.linker.instantiate_pre(&self.component)?)
    }

    /// Exports, imports and world.
    pub fn describe(&self) -> Description {
        let ty = self.component.component_type();
        let exports: Vec<(String, String)> =
            ty.exports(&self.engine.engine).map(|(n, i)| (n.to_string(), item_kind(&i.ty).to_string())).collect();
        let imports = ty.imports(&self.engine.engine).map(|(n, i)| (n.to_string(), item_kind(&i.ty).to_string())).collect();
        let has = |n: &str| exports.iter().any(|(e, _)| e == n);
        let world = World::ALL.iter().copied().find(|w| has(w.marker()) && has("init"));
        Description { world, exports, imports }
    }

    /// Checks that the plugin exports `want`, with a fix in the message.
    pub fn expect_world(&self, want: &[World], operator: &str) -> Result<(), PluginError> {
        if want.contains(&self.world) {
            return Ok(());
        }
        Err(PluginError::WrongWorld {
            path: self.path.clone(),
            reason: format!(
                "operator `{operator}` needs a plugin of world {}, but this one exports world `{}`; use a plugin built for it (Rust: #[weir_sdk::{}]; Python: weir.{}_world; JavaScript: {}World; C and Go: the process SDK) or change the operator's `kind`",
                want.iter().map(|w| format!("`{}`", w.name())).collect::<Vec<_>>().join(" or "),
                self.world.name(),
                want[0].name().replace('-', "_"),
                want[0].name().replace('-', "_"),
                camel(want[0].name()),
            ),
        })
    }
}

/// `flat-map` as JavaScript names it: `flatMap`.
fn camel(name: &str) -> String {
    let mut parts = name.split('-');
    let first = parts.next().unwrap_or_default().to_string();
    parts.fold(first, |acc, p| acc + &p[..1].to_ascii_uppercase() + &p[1..])
}

/// Why one record (or call) failed inside a plugin.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The guest returned an error: the record is at fault (or the guest's logic).
    Guest(String),
    /// The instance trapped (panic, out of bounds, deadline, memory limit); it was recreated.
    Trap(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Guest(m) => write!(f, "plugin error: {m}"),
            Failure::Trap(m) => write!(f, "plugin trapped: {m}"),
        }
    }
}

/// The failures of an answer by input index; they must come by increasing index below `n`.
fn failures(n: usize, failed: Vec<WitFailure>) -> Result<Vec<Option<Failure>>, String> {
    let mut out: Vec<Option<Failure>> = vec![None; n];
    let mut last: Option<usize> = None;
    for f in failed {
        let i = f.index as usize;
        if i >= n || last.is_some_and(|l| i <= l) {
            return Err(format!("a failure for record {} of {n}, out of order or out of range", f.index));
        }
        last = Some(i);
        out[i] = Some(guest(f.error));
    }
    Ok(out)
}

/// A plugin's output batch, checked: its records and their headers agree.
fn checked_parts(b: &FlatBatch) -> Result<weir_batch::Parts<'_>, String> {
    let parts = weir_batch::Parts::new(&b.data, &b.ends, &b.timestamps, &b.flags).map_err(|e| e.to_string())?;
    weir_batch::check_header_indexes(b.headers.iter().map(|h| h.index), parts.len()).map_err(|e| e.to_string())?;
    Ok(parts)
}

/// Writes a `map` answer over its input records, after checking all of it (a malformed
/// answer changes nothing). Records the plugin passed unchanged are not touched. Values are
/// copied into the inputs' buffers, so a batch allocates nothing per record; keys read ahead
/// stay only with values that did not change.
fn apply_mapped(m: bindings::Mapped, batch: &mut [Record]) -> Result<Vec<Option<Failure>>, String> {
    let n = batch.len();
    let failed = failures(n, m.failed)?;
    let mut changed = failed.iter().filter(|f| f.is_none()).count();
    if !m.same.is_empty() {
        if m.same.len() != n {
            return Err(format!("{} entries of `same` for {n} records", m.same.len()));
        }
        for (i, (_, f)) in m.same.iter().zip(&failed).enumerate().filter(|(_, (&s, _))| s != 0) {
            if f.is_some() {
                return Err(format!("record {i} both failed and unchanged"));
            }
            changed -= 1;
        }
    }
    let same = |i: usize| m.same.get(i).is_some_and(|&s| s != 0);
    let parts = checked_parts(&m.out)?;
    if parts.len() != changed {
        return Err(format!("{} records for {changed} inputs that neither failed nor passed unchanged", parts.len()));
    }
    if changed == 0 {
        return Ok(failed);
    }
    if let Some(h) = m.out.headers.iter().find(|h| parts.get(h.index as usize).value_as_is) {
        return Err(format!("headers for record {}, which keeps its own (value as it is)", h.index));
    }
    let mut headers = m.out.headers.iter().peekable();
    let outputs = batch.iter_mut().zip(&failed).enumerate().filter(|(i, (_, f))| f.is_none() && !same(*i));
    for (j, (_, (rec, _))) in outputs.enumerate() {
        let o = parts.get(j);
        if o.value_as_is {
            // Value and headers stay; so do keys read ahead of the value.
            rec.key = o.key.map(Key::from_slice);
            if o.timestamp.is_some() {
                rec.timestamp = o.timestamp;
            }
            continue;
        }
        if rec.value != o.value {
            rec.value.clear();
            rec.value.extend_from_slice(o.value);
            rec.prekeys.clear();
        }
        rec.key = o.key.map(Key::from_slice);
        if o.timestamp.is_some() {
            rec.timestamp = o.timestamp;
        }
        rec.headers.clear();
        while let Some(h) = headers.next_if(|h| h.index as usize == j) {
            rec.headers.push((h.name.clone(), h.value.clone()));
        }
    }
    Ok(failed)
}

/// Records of a flat batch returned by a plugin.
fn records_of(b: FlatBatch) -> Result<Vec<Record>, String> {
    let parts = checked_parts(&b)?;
    if let Some(i) = parts.iter().position(|r| r.value_as_is) {
        return Err(format!("record {i} keeps the value of an input (flag bit 2), which only a `map` answer may say"));
    }
    let mut headers = b.headers.iter().peekable();
    let mut out = Vec::with_capacity(parts.len());
    for (i, r) in parts.iter().enumerate() {
        let mut own = Vec::new();
        while let Some(h) = headers.next_if(|h| h.index as usize == i) {
            own.push((h.name.clone(), h.value.clone()));
        }
        out.push(Record {
            key: r.key.map(Key::from_slice),
            value: r.value.to_vec(),
            timestamp: r.timestamp,
            headers: own,
            ..Record::default()
        });
    }
    Ok(out)
}

/// One result per input record: the failures at their indexes (increasing, below `n`),
/// `ok(i)` for the others.
fn by_index<T>(
    n: usize,
    failed: Vec<WitFailure>,
    mut ok: impl FnMut(usize) -> Result<T, &'static str>,
) -> Result<Vec<Result<T, Failure>>, String> {
    failures(n, failed)?
        .into_iter()
        .enumerate()
        .map(|(i, f)| match f {
            Some(f) => Ok(Err(f)),
            None => ok(i).map(Ok).map_err(str::to_string),
        })
        .collect()
}

fn guest(e: GuestError) -> Failure {
    Failure::Guest(match e {
        GuestError::InvalidInput(m) => format!("invalid input: {m}"),
        GuestError::InvalidConfig(m) => format!("invalid config: {m}"),
        GuestError::Other(m) => m,
    })
}

/// Whether `e` is the deadline's interruption.
fn is_deadline(e: &wasmtime::Error) -> bool {
    e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt)
}

/// What a trap was about, in the words a plugin author needs: the deadline, the memory cap,
/// the panic message the guest wrote to its standard error, or else the trap itself.
fn trap_reason(engine: &PluginEngine, e: &wasmtime::Error, host: &HostCtx, retry: bool) -> String {
    if is_deadline(e) {
        return engine.deadline_text(retry);
    }
    if host.limits.refused() {
        return format!("memory limit of {} MiB reached (the plugin's linear memory may not grow further)", host.limits.memory >> 20);
    }
    let trap = e.downcast_ref::<wasmtime::Trap>().map(|t| t.to_string()).unwrap_or_else(|| format!("{:#}", e.root_cause()));
    let trap = trap.lines().next().unwrap_or("trap").to_string();
    match host.stderr.last_lines() {
        // Rust: "thread '<unnamed>' panicked at src/lib.rs:9:5:; boom; note: run with ...".
        Some(lines) if lines.contains("panicked at") => {
            let msg = lines.split("; note: run with").next().unwrap_or(&lines);
            let msg = msg.find("panicked at").map_or(msg, |at| &msg[at..]);
            msg.replacen(":; ", ": ", 1)
        }
        Some(lines) => format!("{trap}; the plugin wrote: {lines}"),
        None => trap,
    }
}

/// One instance of a plugin for one subtask, with its store.
pub struct Instance {
    plugin: Arc<Plugin>,
    store: Store<HostCtx>,
    bound: Bound,
    config: String,
    operator: String,
    /// What the plugin may reach (every new store of this instance gets the same).
    grants: Arc<Grants>,
    /// Where its traps and restarts are counted (the operator's node).
    faults: Arc<weir_core::status::NodeMetrics>,
    /// Calls that ran past the deadline.
    overruns: u32,
    /// Overruns tolerated before [`Instance::check_budget`] fails the job.
    budget: u32,
    /// Calls get the retry share of the deadline (see [`Instance::set_retrying`]).
    retrying: bool,
    /// The members a walk upstream reads ahead for this plugin (`read-fields`), and their
    /// id in `Record::prekeys` (see [`Instance::read_ahead`]).
    read_ahead: Option<(u16, Vec<String>)>,
    /// The flat input lists, reused from call to call.
    scratch: weir_batch::Builder,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance").field("plugin", &self.plugin.path).field("operator", &self.operator).finish_non_exhaustive()
    }
}

/// Why an instance could not start, and the host data it was given (boxed: it is large).
type NotStarted = Box<(String, HostCtx)>;

/// A started instance: its store, its typed exports, and the instance as it is.
type Started = (Store<HostCtx>, Bound, wasmtime::component::Instance);

/// Moves what outlives an instance (state, timers, TTLs, records emitted) from `from` to `to`.
fn hand_over(from: &mut HostCtx, to: &mut HostCtx) {
    std::mem::swap(&mut to.state, &mut from.state);
    std::mem::swap(&mut to.event_timers, &mut from.event_timers);
    std::mem::swap(&mut to.processing_timers, &mut from.processing_timers);
    std::mem::swap(&mut to.ttl, &mut from.ttl);
    std::mem::swap(&mut to.emitted, &mut from.emitted);
}

fn instantiate(plugin: &Plugin, store: &mut Store<HostCtx>) -> wasmtime::Result<(Bound, wasmtime::component::Instance)> {
    plugin.engine.arm(store);
    let Some(pre) = &plugin.pre else { return Err(wasmtime::Error::msg("plugin was not pre-instantiated")) };
    pre.instantiate(store)
}

/// State migration at a swap: every entry of the keyed state `store` holds through the new
/// version's `migrate-state` (the optional `migrate` interface). All answers are gathered
/// before anything is written, so on an error the state is as it was.
fn migrate(plugin: &Plugin, store: &mut Store<HostCtx>, raw: wasmtime::component::Instance) -> Result<(), String> {
    let iface =
        raw.get_export_index(&mut *store, None, &bindings::qualified("migrate")).ok_or("the component exports no `migrate` interface")?;
    let f = raw.get_export_index(&mut *store, Some(&iface), "migrate-state").ok_or("its `migrate` interface has no `migrate-state`")?;
    type Args<'a> = (&'a str, Option<&'a [u8]>, &'a [u8]);
    let func = raw
        .get_typed_func::<Args<'_>, (Result<Option<Vec<u8>>, String>,)>(&mut *store, f)
        .map_err(|e| format!("its `migrate-state` has another type than weir's: {e:#}"))?;
    let cells = store.data_mut().state_cells();
    let mut answers = Vec::with_capacity(cells.len());
    for cell in cells {
        let mut values = Vec::with_capacity(cell.values.len());
        for (expires, value) in cell.values {
            plugin.engine.arm(store);
            let (answer,) = func
                .call(&mut *store, (&cell.name, cell.map_key.as_deref(), &value))
                .map_err(|e| format!("trapped on state `{}`: {}", cell.name, trap_reason(&plugin.engine, &e, store.data(), false)))?;
            match answer {
                Ok(Some(v)) => values.push((expires, v)),
                Ok(None) => {}
                Err(e) => return Err(format!("on state `{}`: {e}", cell.name)),
            }
        }
        answers.push((cell.key, cell.list, values));
    }
    let host = store.data_mut();
    for (key, list, values) in answers {
        host.put_cell(key, list, values);
    }
    Ok(())
}

impl weir_core::keys::KeySelector for Instance {
    fn select_keys(&mut self, records: &[Record]) -> Vec<Result<Vec<u8>, String>> {
        self.select_key(records).into_iter().map(|k| k.map_err(|f| f.to_string())).collect()
    }
}

impl Instance {
    /// Instantiates `plugin` for subtask `subtask` of `operator` and runs `init(config)`;
    /// the plugin is granted nothing.
    pub fn new(plugin: Arc<Plugin>, operator: &str, subtask: u32, config: String) -> Result<Instance, PluginError> {
        Self::with_grants(plugin, operator, subtask, config, Arc::new(Grants::none()))
    }

    /// [`Instance::new`] with what the operator's `grants` let the plugin reach.
    pub fn with_grants(
        plugin: Arc<Plugin>,
        operator: &str,
        subtask: u32,
        config: String,
        grants: Arc<Grants>,
    ) -> Result<Instance, PluginError> {
        let ctx = HostCtx::new(Arc::from(operator), subtask, DEFAULT_MEMORY_LIMIT, &grants);
        let (store, bound, _) = Self::start(&plugin, ctx, &config).map_err(|failed| PluginError::Init {
            path: plugin.path.clone(),
            operator: operator.to_string(),
            reason: failed.0,
        })?;
        Ok(Instance {
            plugin,
            store,
            bound,
            config,
            operator: operator.to_string(),
            grants,
            faults: Arc::default(),
            overruns: 0,
            budget: DEFAULT_DEADLINE_BUDGET,
            retrying: false,
            read_ahead: None,
            scratch: weir_batch::Builder::default(),
        })
    }

    /// A store with `ctx` and an instance of `plugin` in it, `init(config)` run; on failure
    /// why, and `ctx` back (its state and timers are not lost).
    fn start(plugin: &Plugin, ctx: HostCtx, config: &str) -> Result<Started, NotStarted> {
        let mut store = Store::new(&plugin.engine.engine, ctx);
        store.limiter(|s| &mut s.limits);
        let (bound, raw) = match instantiate(plugin, &mut store) {
            Ok(b) => b,
            Err(e) => return Err(Box::new((format!("instantiation failed: {e:#}"), store.into_data()))),
        };
        plugin.engine.arm(&mut store);
        let why = match bound.call_init(&mut store, config) {
            Ok(Ok(())) => return Ok((store, bound, raw)),
            Ok(Err(e)) => guest(e).to_string(),
            Err(e) => format!("trapped: {}", trap_reason(&plugin.engine, &e, store.data(), false)),
        };
        Err(Box::new((why, store.into_data())))
    }

    /// The host data of this instance moved into a fresh context, for a new instance that
    /// keeps the state, timers and emitted records of this one.
    fn carry_over(&mut self) -> HostCtx {
        let old = self.store.data_mut();
        let mut ctx = HostCtx::new(old.name.clone(), old.subtask, DEFAULT_MEMORY_LIMIT, &self.grants);
        hand_over(old, &mut ctx);
        ctx.call = old.call.clone();
        ctx
    }

    /// Gives the host data back to this instance after a new one could not start.
    fn give_back(&mut self, mut ctx: HostCtx) {
        hand_over(&mut ctx, self.store.data_mut());
    }

    /// A walk upstream reads ahead where the members `names` lie in each record, under `id`
    /// in `Record::prekeys`: while the plugin asks for some of these (`read-fields`), its
    /// `field-spans` come from there, and its host walks no record itself.
    pub fn read_ahead(&mut self, id: u16, names: Vec<String>) {
        self.read_ahead = Some((id, names));
    }

    /// Hot reload: runs `plugin` from now on, with this operator's config, keyed state,
    /// timers and TTLs carried over. On failure (`init` errs or traps) this instance keeps
    /// its plugin and all of its data, and the error says why.
    pub fn swap(&mut self, plugin: Arc<Plugin>) -> Result<(), String> {
        if plugin.world != self.plugin.world {
            return Err(format!(
                "{} exports world `{}`, the running version `{}`",
                plugin.path.display(),
                plugin.world.name(),
                self.plugin.world.name()
            ));
        }
        let ctx = self.carry_over();
        let (mut store, bound, raw) = match Self::start(&plugin, ctx, &self.config) {
            Ok(started) => started,
            Err(failed) => {
                let (why, ctx) = *failed;
                self.give_back(ctx);
                return Err(format!("{}: init failed: {why}", plugin.path.display()));
            }
        };
        if plugin.migrates {
            if let Err(why) = migrate(&plugin, &mut store, raw) {
                // Nothing was changed: the old version takes its data back as it was.
                self.give_back(store.into_data());
                return Err(format!("{}: state migration failed: {why}", plugin.path.display()));
            }
        }
        self.store = store;
        self.bound = bound;
        self.plugin = plugin;
        self.overruns = 0;
        Ok(())
    }

    /// Counts this instance's traps and restarts into `node` (`weir_plugin_traps_total`,
    /// `weir_plugin_restarts_total`).
    pub fn count_faults_into(&mut self, node: Arc<weir_core::status::NodeMetrics>) {
        self.faults = node;
    }

    /// The plugin.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// The host data: state, timers, call context, emitted records.
    pub fn host(&mut self) -> &mut HostCtx {
        self.store.data_mut()
    }

    /// The host data, to read.
    pub fn host_data(&self) -> &HostCtx {
        self.store.data()
    }

    /// Sets how many calls may run past the deadline before [`Instance::check_budget`]
    /// fails (`plugin-deadline-budget`).
    pub fn set_deadline_budget(&mut self, budget: u32) {
        self.budget = budget.max(1);
    }

    /// Fails once more calls ran past the deadline than the budget allows: a plugin that
    /// loops on some input would otherwise cost a whole deadline for every such record.
    /// The job then fails (and restarts as its restart strategy says).
    pub fn check_budget(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.overruns <= self.budget,
            "operator `{}` (subtask {}): {} calls of plugin {} ran past the deadline of {}, more than `plugin-deadline-budget` = {} allows; \
             the plugin loops or is too slow on some input (see the dead letters): fix it, or raise `plugin-deadline` or the budget",
            self.operator,
            self.store.data().subtask,
            self.overruns,
            self.plugin.path.display(),
            self.plugin.engine.deadline(false),
            self.budget
        );
        Ok(())
    }

    /// Calls that ran past the deadline so far.
    pub fn overruns(&self) -> u32 {
        self.overruns
    }

    /// While set, each call gets only the retry share of the deadline
    /// ([`RETRY_DEADLINE_DIVISOR`]): for records retried alone after their batch's call ran
    /// past the deadline.
    pub fn set_retrying(&mut self, retrying: bool) {
        self.retrying = retrying;
    }

    /// After a trap: a fresh instance that keeps the state and timers of the old one.
    fn recover(&mut self, e: &wasmtime::Error) -> Failure {
        let reason = trap_reason(&self.plugin.engine, e, self.store.data(), self.retrying);
        self.faults.traps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if is_deadline(e) {
            self.overruns += 1;
        }
        let ctx = self.carry_over();
        match Self::start(&self.plugin, ctx, &self.config) {
            Ok((store, bound, _)) => {
                self.store = store;
                self.bound = bound;
                self.faults.restarts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(failed) => {
                let (why, ctx) = *failed;
                // The trapped store keeps serving (wasmtime lets a trapped instance be called
                // again), with its state.
                self.give_back(ctx);
                eprintln!("weir: operator `{}`: could not restart plugin after a trap: {why}", self.operator)
            }
        }
        Failure::Trap(reason)
    }

    fn wit_batch(batch: &[Record]) -> Vec<WitRecord> {
        batch.iter().map(|r| to_wit(r.clone())).collect()
    }

    /// Before a call: the deadline (or a retry's share), and no trap causes left from
    /// earlier calls.
    fn arm(&mut self) {
        self.plugin.engine.arm_for(&mut self.store, self.retrying);
        let host = self.store.data_mut();
        host.stderr.clear();
        host.limits.clear();
    }

    /// The batch in the flat layout, in the reused scratch lists (give them back with
    /// [`Self::reclaim`]), with the spans of the members the plugin reads (`field-spans`,
    /// `member-counts`) for the length of the call.
    fn flat(&mut self, batch: &[Record]) -> FlatBatch {
        let spans = self.store.data().spans_of(batch, self.read_ahead.as_ref());
        self.host().spans = spans;
        let mut lists = std::mem::take(&mut self.scratch);
        lists.clear();
        let mut headers = Vec::new();
        for r in batch {
            let index = lists.push(r.key.as_deref(), &r.value, r.timestamp);
            headers.extend(r.headers.iter().map(|(name, value)| WitHeader { index, name: name.clone(), value: value.clone() }));
        }
        FlatBatch { data: lists.data, ends: lists.ends, timestamps: lists.timestamps, flags: lists.flags, headers }
    }

    fn reclaim(&mut self, b: FlatBatch) {
        self.host().spans = Default::default();
        self.scratch = weir_batch::Builder { data: b.data, ends: b.ends, timestamps: b.timestamps, flags: b.flags };
    }

    /// Calls a stateless export on the flat batch, then turns its answer into one result per
    /// input record; a trap or a malformed answer fails every record of the call.
    fn call_flat<A, T>(
        &mut self,
        batch: &[Record],
        call: impl FnOnce(&Bound, &mut Store<HostCtx>, &FlatBatch) -> wasmtime::Result<A>,
        answer: impl FnOnce(A, usize) -> Result<Vec<Result<T, Failure>>, String>,
    ) -> Vec<Result<T, Failure>> {
        let n = batch.len();
        let why = match self.call_raw(batch, call) {
            Ok(a) => match answer(a, n) {
                Ok(v) => return v,
                Err(m) => Failure::Guest(format!("the plugin returned {m}")),
            },
            Err(f) => f,
        };
        (0..n).map(|_| Err(why.clone())).collect()
    }

    /// Calls a stateless export on the flat batch; a trap recreates the instance.
    fn call_raw<A>(
        &mut self,
        batch: &[Record],
        call: impl FnOnce(&Bound, &mut Store<HostCtx>, &FlatBatch) -> wasmtime::Result<A>,
    ) -> Result<A, Failure> {
        self.arm();
        let input = self.flat(batch);
        let res = call(&self.bound, &mut self.store, &input);
        self.reclaim(input);
        res.map_err(|e| self.recover(&e))
    }

    /// `map` over a batch, in place: each record that did not fail now holds its result (key,
    /// value, headers, and the event time when the plugin set one); a failed record is left
    /// as it was, with its failure at its index. A trap or a malformed answer fails them all
    /// and changes none.
    pub fn map(&mut self, batch: &mut [Record]) -> Vec<Option<Failure>> {
        let n = batch.len();
        let answer = self.call_raw(batch, |b, store, input| match b {
            Bound::Map(b) => b.call_map(store, input),
            _ => unreachable!("world checked at load"),
        });
        let why = match answer {
            Ok(m) => match apply_mapped(m, batch) {
                Ok(v) => return v,
                Err(m) => Failure::Guest(format!("the plugin returned {m}")),
            },
            Err(f) => f,
        };
        (0..n).map(|_| Some(why.clone())).collect()
    }

    /// `filter` over a batch.
    pub fn filter(&mut self, batch: &[Record]) -> Vec<Result<bool, Failure>> {
        self.call_flat(
            batch,
            |b, store, input| match b {
                Bound::Filter(b) => b.call_filter(store, input),
                _ => unreachable!("world checked at load"),
            },
            |f, n| {
                if f.keep.len() != n {
                    return Err(format!("{} verdicts for {n} records", f.keep.len()));
                }
                by_index(n, f.failed, |i| Ok(f.keep[i] != 0))
            },
        )
    }

    /// `flat-map` over a batch.
    pub fn flat_map(&mut self, batch: &[Record]) -> Vec<Result<Vec<Record>, Failure>> {
        self.call_flat(
            batch,
            |b, store, input| match b {
                Bound::FlatMap(b) => b.call_flat_map(store, input),
                _ => unreachable!("world checked at load"),
            },
            |f, n| {
                if f.counts.len() != n {
                    return Err(format!("{} counts for {n} records", f.counts.len()));
                }
                let mut out = records_of(f.out)?.into_iter();
                let v = by_index(n, f.failed, |i| {
                    let c = f.counts[i] as usize;
                    let part: Vec<Record> = out.by_ref().take(c).collect();
                    if part.len() == c {
                        Ok(part)
                    } else {
                        Err("fewer records than its counts say")
                    }
                })?;
                if out.next().is_some() {
                    return Err("more records than its counts say".into());
                }
                Ok(v)
            },
        )
    }

    /// `select-key` over a batch.
    pub fn select_key(&mut self, batch: &[Record]) -> Vec<Result<Vec<u8>, Failure>> {
        self.call_flat(
            batch,
            |b, store, input| match b {
                Bound::KeySelector(b) => b.call_select_key(store, input),
                _ => unreachable!("world checked at load"),
            },
            |k, n| {
                if k.ends.len() != n {
                    return Err(format!("{} keys for {n} records", k.ends.len()));
                }
                let mut at = 0usize;
                by_index(n, k.failed, |i| {
                    let end = k.ends[i] as usize;
                    let key = k.data.get(at..end).ok_or("key offsets out of order")?.to_vec();
                    at = end;
                    Ok(key)
                })
            },
        )
    }

    /// `process` of records of any keys, each with its context (see `context.enter`).
    /// Returns the results of the records the plugin handled, in order (at least one), and
    /// for each record it entered how many records had been emitted before it. After a
    /// trap the record the plugin was on fails with it and those before it count as done
    /// (their state changes and emitted records stay); the caller passes the rest again.
    pub fn process(&mut self, batch: &[Record], records: Vec<CallCtx>, marks: Vec<(usize, i64)>) -> (Vec<Result<(), Failure>>, Vec<usize>) {
        self.arm();
        let n = batch.len();
        self.host().process = ProcessCall { records, marks, entered: Vec::with_capacity(n), stop_at: usize::MAX };
        // The flat layout, as the stateless worlds take it: a few lists for the whole batch.
        let input = self.flat(batch);
        let Bound::Process(b) = &self.bound else { unreachable!("world checked at load") };
        let res = b.call_process(&mut self.store, &input);
        self.reclaim(input);
        let entered = std::mem::take(&mut self.host().process).entered;
        let bad_writes = self.host().bad_writes.take();
        let results = match (res, bad_writes) {
            // A write log that did not read: what the guest did is not known in full.
            (Ok(_), Some(why)) => {
                let why = Failure::Guest(why);
                (0..n).map(|_| Err(why.clone())).collect()
            }
            (Ok(v), None) if (1..=n).contains(&v.len()) && v.len() >= entered.len() => v.into_iter().map(|r| r.map_err(guest)).collect(),
            (Ok(v), None) => {
                let why = Failure::Guest(format!("returned {} results for {n} records", v.len()));
                (0..n).map(|_| Err(why.clone())).collect()
            }
            (Err(e), _) => {
                let why = self.recover(&e);
                let done = entered.len().saturating_sub(1);
                (0..done).map(|_| Ok(())).chain([Err(why)]).collect()
            }
        };
        (results, entered)
    }

    /// `on-timer` for timers of the key in the call context.
    pub fn on_timer(&mut self, fired: &[bindings::Timer]) -> Result<(), Failure> {
        self.arm();
        let Bound::Process(b) = &self.bound else { unreachable!("world checked at load") };
        let res = b.call_on_timer(&mut self.store, fired);
        if let Some(why) = self.host().bad_writes.take() {
            return Err(Failure::Guest(why));
        }
        match res {
            Ok(r) => r.map_err(guest),
            Err(e) => Err(self.recover(&e)),
        }
    }

    /// `create-accumulator`.
    pub fn create_accumulator(&mut self) -> Result<Vec<u8>, Failure> {
        self.arm();
        let Bound::Aggregate(b) = &self.bound else { unreachable!("world checked at load") };
        b.call_create_accumulator(&mut self.store).map_err(|e| self.recover(&e))
    }

    /// `add` records to an accumulator.
    pub fn add(&mut self, acc: &[u8], batch: &[Record]) -> Result<Vec<u8>, Failure> {
        self.arm();
        let Bound::Aggregate(b) = &self.bound else { unreachable!("world checked at load") };
        match b.call_add(&mut self.store, acc, &Self::wit_batch(batch)) {
            Ok(r) => r.map_err(guest),
            Err(e) => Err(self.recover(&e)),
        }
    }

    /// `merge` two accumulators.
    pub fn merge(&mut self, a: &[u8], b2: &[u8]) -> Result<Vec<u8>, Failure> {
        self.arm();
        let Bound::Aggregate(b) = &self.bound else { unreachable!("world checked at load") };
        match b.call_merge(&mut self.store, a, b2) {
            Ok(r) => r.map_err(guest),
            Err(e) => Err(self.recover(&e)),
        }
    }

    /// `get-result` of an accumulator.
    pub fn get_result(&mut self, acc: &[u8]) -> Result<Vec<u8>, Failure> {
        self.arm();
        let Bound::Aggregate(b) = &self.bound else { unreachable!("world checked at load") };
        match b.call_get_result(&mut self.store, acc) {
            Ok(r) => r.map_err(guest),
            Err(e) => Err(self.recover(&e)),
        }
    }

    /// `process-window` with the window's elements.
    pub fn process_window(&mut self, window: bindings::Window, elements: Vec<Record>) -> Result<(), Failure> {
        self.arm();
        let Bound::WindowProcess(b) = &self.bound else { unreachable!("world checked at load") };
        let elements: Vec<WitRecord> = elements.into_iter().map(to_wit).collect();
        match b.call_process_window(&mut self.store, window, &elements) {
            Ok(r) => r.map_err(guest),
            Err(e) => Err(self.recover(&e)),
        }
    }
}

impl Instance {
    /// The earliest processing-time timer of this instance's keys.
    pub fn peek_processing_timer(&self) -> Option<i64> {
        self.store.data().processing_timers.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Rec<'a> = (Option<&'a [u8]>, &'a [u8], Option<i64>);

    fn flat(records: &[Rec], headers: Vec<WitHeader>) -> FlatBatch {
        let mut b = weir_batch::Builder::default();
        for (k, v, t) in records {
            b.push(*k, v, *t);
        }
        FlatBatch { data: b.data, ends: b.ends, timestamps: b.timestamps, flags: b.flags, headers }
    }

    fn fail(index: u32) -> WitFailure {
        WitFailure { index, error: GuestError::InvalidInput(format!("bad {index}")) }
    }

    #[test]
    fn flat_answers_become_records_with_their_headers() {
        let h = |index, name: &str| WitHeader { index, name: name.into(), value: b"x".to_vec() };
        let b = flat(&[(Some(b"k"), b"a", Some(5)), (None, b"b", None)], vec![h(0, "one"), h(1, "two"), h(1, "three")]);
        let recs = records_of(b).unwrap();
        assert_eq!((recs[0].key.as_deref(), recs[0].value.as_slice(), recs[0].timestamp), (Some(&b"k"[..]), &b"a"[..], Some(5)));
        assert_eq!((recs[1].key.as_deref(), recs[1].value.as_slice(), recs[1].timestamp), (None, &b"b"[..], None));
        let names: Vec<Vec<&str>> = recs.iter().map(|r| r.headers.iter().map(|(n, _)| n.as_str()).collect()).collect();
        assert_eq!(names, [vec!["one"], vec!["two", "three"]]);
        let stray = flat(&[(None, b"a", None)], vec![h(3, "past the end")]);
        assert!(records_of(stray).unwrap_err().contains("a header past the last record"));
        let unordered = flat(&[(None, b"a", None), (None, b"b", None)], vec![h(1, "x"), h(0, "y")]);
        assert!(records_of(unordered).unwrap_err().contains("headers out of order"));
        let mut broken = flat(&[(None, b"abc", None)], vec![]);
        broken.ends[1] = 99;
        assert!(records_of(broken).unwrap_err().contains("malformed batch"));
    }

    #[test]
    fn map_answers_are_written_over_their_inputs_and_bad_ones_change_nothing() {
        let inputs = || {
            (0..3)
                .map(|i| Record {
                    value: format!("in{i}").into_bytes(),
                    timestamp: Some(i),
                    prekeys: smallvec::smallvec![(0, Key::from_slice(b"k"))],
                    ..Record::default()
                })
                .collect::<Vec<_>>()
        };
        let header = WitHeader { index: 1, name: "h".into(), value: b"v".to_vec() };
        let good = bindings::Mapped {
            out: flat(&[(None, b"in0", None), (Some(b"key"), b"out2", Some(99))], vec![header]),
            same: vec![],
            failed: vec![fail(1)],
        };
        let mut batch = inputs();
        let failures = apply_mapped(good, &mut batch).unwrap();
        assert_eq!(failures.iter().map(Option::is_some).collect::<Vec<_>>(), [false, true, false]);
        // Unchanged value: event time and read-ahead keys stay.
        assert_eq!((batch[0].value.as_slice(), batch[0].timestamp, batch[0].prekeys.len()), (&b"in0"[..], Some(0), 1));
        // The failed record is as it was, for the dead-letter output.
        assert_eq!((batch[1].value.as_slice(), batch[1].prekeys.len()), (&b"in1"[..], 1));
        // A new value drops the read-ahead keys; the plugin's key, time and headers count.
        let r = &batch[2];
        assert_eq!((r.value.as_slice(), r.key.as_deref(), r.timestamp, r.prekeys.len()), (&b"out2"[..], Some(&b"key"[..]), Some(99), 0));
        assert_eq!(r.headers, vec![("h".to_string(), b"v".to_vec())]);
        let short = bindings::Mapped { out: flat(&[(None, b"x", None)], vec![]), same: vec![], failed: vec![] };
        let mut batch = inputs();
        assert!(apply_mapped(short, &mut batch).unwrap_err().contains("1 records for 3 inputs"));
        assert_eq!(batch, inputs(), "a malformed answer changes nothing");
        let unordered = bindings::Mapped { out: flat(&[(None, b"x", None)], vec![]), same: vec![], failed: vec![fail(2), fail(1)] };
        assert!(apply_mapped(unordered, &mut inputs()).unwrap_err().contains("out of order"));

        // Records passed unchanged keep everything; the others take `out` in order.
        let mixed = bindings::Mapped { out: flat(&[(None, b"new1", Some(7))], vec![]), same: vec![1, 0, 0], failed: vec![fail(2)] };
        let mut batch = inputs();
        let failures = apply_mapped(mixed, &mut batch).unwrap();
        assert_eq!(failures.iter().map(Option::is_some).collect::<Vec<_>>(), [false, false, true]);
        assert_eq!(batch[0], inputs()[0]);
        assert_eq!((batch[1].value.as_slice(), batch[1].timestamp, batch[1].prekeys.len()), (&b"new1"[..], Some(7), 0));
        assert_eq!(batch[2], inputs()[2]);
        let all_same = bindings::Mapped { out: flat(&[], vec![]), same: vec![1, 1, 1], failed: vec![] };
        let mut batch = inputs();
        assert!(apply_mapped(all_same, &mut batch).unwrap().iter().all(Option::is_none));
        assert_eq!(batch, inputs());
        for (same, failed, out, why) in [
            (vec![1, 1], vec![], 1, "2 entries of `same` for 3 records"),
            (vec![0, 0, 1], vec![fail(2)], 2, "record 2 both failed and unchanged"),
            (vec![1, 0, 1], vec![], 0, "0 records for 1 inputs"),
            (vec![1, 0, 1], vec![], 2, "2 records for 1 inputs"),
        ] {
            let recs: Vec<Rec> = (0..out).map(|_| (None, &b"x"[..], None)).collect();
            let m = bindings::Mapped { out: flat(&recs, vec![]), same, failed };
            let mut batch = inputs();
            assert!(apply_mapped(m, &mut batch).unwrap_err().contains(why), "{why}");
            assert_eq!(batch, inputs(), "a malformed answer changes nothing");
        }
    }

    #[test]
    fn a_value_kept_as_it_is_takes_only_key_and_event_time() {
        let input = || Record {
            key: Some(Key::from_slice(b"old")),
            value: b"{\"user\":\"u1\"}".to_vec(),
            timestamp: None,
            headers: vec![("h".into(), b"v".to_vec())],
            prekeys: smallvec::smallvec![(0, Key::from_slice(b"u1"))],
            ..Record::default()
        };
        let answer = |headers: Vec<WitHeader>| {
            let mut b = weir_batch::Builder::default();
            b.push_value_as_is(Some(b"u1"), Some(5000));
            b.push_value_as_is(None, None);
            let out = FlatBatch { data: b.data, ends: b.ends, timestamps: b.timestamps, flags: b.flags, headers };
            bindings::Mapped { out, same: vec![], failed: vec![] }
        };
        let mut batch = vec![input(), input()];
        assert!(apply_mapped(answer(vec![]), &mut batch).unwrap().iter().all(Option::is_none));
        let want = Record { key: Some(Key::from_slice(b"u1")), timestamp: Some(5000), ..input() };
        assert_eq!(batch[0], want, "value, headers and read-ahead keys stay; key and time are the plugin's");
        assert_eq!(batch[1], Record { key: None, ..input() }, "no key given: none; no time given: the one it had");
        // Headers for such a record are an error, and change nothing.
        let mut batch = vec![input(), input()];
        let h = WitHeader { index: 1, name: "x".into(), value: vec![] };
        assert!(apply_mapped(answer(vec![h]), &mut batch).unwrap_err().contains("headers for record 1"));
        assert_eq!(batch, vec![input(), input()]);
        // Only a map's answer may keep a value.
        let mut b = weir_batch::Builder::default();
        b.push_value_as_is(None, None);
        let out = FlatBatch { data: b.data, ends: b.ends, timestamps: b.timestamps, flags: b.flags, headers: vec![] };
        assert!(records_of(out).unwrap_err().contains("only a `map` answer"));
    }

    #[test]
    fn failures_land_at_their_indexes_and_bad_ones_fail_the_call() {
        let v = by_index(4, vec![fail(1), fail(3)], |i| Ok(i * 10)).unwrap();
        let shape: Vec<Result<usize, String>> = v.into_iter().map(|r| r.map_err(|f| f.to_string())).collect();
        assert_eq!(shape[0], Ok(0));
        assert_eq!(shape[2], Ok(20));
        assert!(shape[1].as_ref().unwrap_err().contains("bad 1") && shape[3].as_ref().unwrap_err().contains("bad 3"));
        for bad in [vec![fail(2), fail(1)], vec![fail(4)], vec![fail(1), fail(1)]] {
            assert!(by_index(4, bad, Ok).unwrap_err().contains("out of order or out of range"));
        }
        assert_eq!(by_index(2, vec![], |_| Err::<(), _>("short")).unwrap_err(), "short");
    }
}
