//! From a checked job to running tasks: parallelism, partitioning, chaining, channels,
//! plugin instances (compiled once per job, instantiated per subtask, `init` before any
//! record flows).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use crossbeam_channel::{bounded, Receiver, Sender};

use crate::checkpoint::{self, Control, Coordinator, JobFacts, Metadata};
use crate::connectors::{self, CollectionSource, FileSource, Generator, GeneratorConfig, Stream};
use crate::job::{
    toml_to_json, BackendKind, Format, Job, KeyBySpec, OperatorKind, OperatorSpec, SinkKind, SinkSpec, SourceKind, TimeKind, TimeUnit,
    WatermarkSpec, WatermarkStrategy, WindowKind,
};
use crate::json;
use crate::operator::{Assign, Identity, Operator, Source, SourceSnapshot, SOURCE_SNAPSHOT};
use crate::operators::{ProcessOp, Stamped, Stateless, StatelessOp};
use crate::plugin::{Instance, Plugin, PluginEngine, World};
use crate::record::Record;
use crate::runtime::{self, Chain, ChainLink, Envelope, InputTask, KeyExtractor, Partitioner, Route, SourceControl, SourceTime};
use crate::state::{key_groups_of, Cached, MemoryBackend, RocksBackend, StateBackend};
use crate::status::{JobMetrics, RunState};
use crate::time::{parse_duration, Clock, WatermarkGenerator};
use crate::window::{AggSpec, Assigner, WindowConfig, WindowFn, WindowOp, LATE_OUTPUT};

/// Options of a run beyond the job file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The processing-time clock.
    pub clock: Arc<dyn Clock>,
    /// `latest` or a checkpoint/savepoint folder to resume from.
    pub restore: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum NodeKind {
    Source,
    Operator,
    Sink,
    DeadLetter,
}

#[derive(Debug, Clone)]
struct Node {
    name: String,
    kind: NodeKind,
    parallelism: usize,
    /// `(upstream node index, side output name)`.
    inputs: Vec<(usize, Option<String>)>,
    keyed: bool,
    stateless: bool,
}

const DEAD_LETTER: &str = "dead-letter";

/// A job ready to run: plugins compiled, graph planned.
pub struct Planned {
    job: Job,
    nodes: Vec<Node>,
    plugins: HashMap<PathBuf, Arc<Plugin>>,
    opts: RunOptions,
}

impl std::fmt::Debug for Planned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planned").field("nodes", &self.nodes.len()).finish_non_exhaustive()
    }
}

/// The outcome of a run.
#[derive(Debug)]
pub struct RunReport {
    /// Counters.
    pub metrics: JobMetrics,
    /// Wall time.
    pub elapsed: Duration,
}

fn split_input(s: &str) -> (&str, Option<String>) {
    match s.split_once('.') {
        Some((n, side)) => (n, Some(side.to_string())),
        None => (s, None),
    }
}

impl Planned {
    /// Plans `job`: compiles every plugin and checks its world.
    pub fn new(job: Job, opts: RunOptions) -> anyhow::Result<Planned> {
        let spec = &job.spec;
        let mut nodes: Vec<Node> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (n, s) in &spec.source {
            index.insert(n.clone(), nodes.len());
            let p = if s.kind == SourceKind::Generator { s.parallelism.unwrap_or(1) } else { 1 };
            nodes.push(Node { name: n.clone(), kind: NodeKind::Source, parallelism: p, inputs: vec![], keyed: false, stateless: false });
        }
        for (n, _) in &spec.operator {
            index.insert(n.clone(), nodes.len());
            nodes.push(Node { name: n.clone(), kind: NodeKind::Operator, parallelism: 0, inputs: vec![], keyed: false, stateless: false });
        }
        for (n, _) in &spec.sink {
            index.insert(n.clone(), nodes.len());
            nodes.push(Node { name: n.clone(), kind: NodeKind::Sink, parallelism: 1, inputs: vec![], keyed: false, stateless: false });
        }
        let inputs_of = |list: Vec<String>| -> Vec<(usize, Option<String>)> {
            list.iter().map(|i| split_input(i)).map(|(n, side)| (index[n], side)).collect()
        };
        for (n, op) in &spec.operator {
            let i = index[n];
            nodes[i].inputs = inputs_of(op.input.as_ref().map(|x| x.list()).unwrap_or_default());
            nodes[i].keyed = op.key_by.is_some();
            nodes[i].stateless = matches!(op.kind, OperatorKind::Map | OperatorKind::Filter | OperatorKind::FlatMap) && op.key_by.is_none();
        }
        for (n, s) in &spec.sink {
            nodes[index[n]].inputs = inputs_of(s.input.as_ref().map(|x| x.list()).unwrap_or_default());
        }
        // Parallelism in declaration order (inputs are declared before use or are sources).
        for _ in 0..nodes.len() {
            for (n, op) in &spec.operator {
                let i = index[n];
                if nodes[i].parallelism != 0 {
                    continue;
                }
                let p = match op.parallelism {
                    Some(p) => p,
                    None if nodes[i].keyed => spec.parallelism,
                    None => nodes[nodes[i].inputs[0].0].parallelism,
                };
                nodes[i].parallelism = p;
            }
        }
        if let Some(n) = nodes.iter().find(|n| n.parallelism == 0) {
            return Err(job.error(&format!("operator.{}.input", n.name), "the inputs form a cycle").into());
        }
        nodes.push(Node {
            name: DEAD_LETTER.into(),
            kind: NodeKind::DeadLetter,
            parallelism: 1,
            inputs: vec![],
            keyed: false,
            stateless: false,
        });

        // Compile each plugin once.
        let deadline = job.plugin_deadline().map_err(|e| anyhow::anyhow!("plugin-deadline: {e}"))?;
        let engine = PluginEngine::with_deadline(deadline).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut plugins = HashMap::new();
        let mut want = |path: &PathBuf, worlds: &[World], who: &str| -> anyhow::Result<()> {
            let p = job.resolve(path);
            if !plugins.contains_key(&p) {
                plugins.insert(p.clone(), Arc::new(Plugin::load(&engine, &p)?));
            }
            plugins[&p].expect_world(worlds, who)?;
            Ok(())
        };
        for (n, op) in &spec.operator {
            let worlds: &[World] = match op.kind {
                OperatorKind::Map => &[World::Map],
                OperatorKind::Filter => &[World::Filter],
                OperatorKind::FlatMap => &[World::FlatMap],
                OperatorKind::Process => &[World::Process],
                OperatorKind::Window => &[World::Aggregate, World::WindowProcess],
            };
            if let Some(p) = &op.plugin {
                want(p, worlds, n)?;
            }
            if let Some(KeyBySpec::Plugin(r)) = &op.key_by {
                want(&r.plugin, &[World::KeySelector], n)?;
            }
        }
        Ok(Planned { job, nodes, plugins, opts })
    }

    /// The job.
    pub fn job(&self) -> &Job {
        &self.job
    }

    fn plugin(&self, p: &std::path::Path) -> Arc<Plugin> {
        self.plugins[&self.job.resolve(p)].clone()
    }

    /// Node `i` chains into its input's task: stateless, one main input read by nobody
    /// else, same parallelism, and its `chain` is not `false`.
    fn chains_into(&self, i: usize) -> Option<usize> {
        let n = &self.nodes[i];
        if !n.stateless || n.inputs.len() != 1 || n.inputs[0].1.is_some() {
            return None;
        }
        if n.kind == NodeKind::Operator && self.job.spec.operator[&n.name].chain == Some(false) {
            return None;
        }
        let up = n.inputs[0].0;
        let readers = self.nodes.iter().filter(|m| m.inputs.iter().any(|(u, side)| *u == up && side.is_none())).count();
        (readers == 1 && self.nodes[up].parallelism == n.parallelism && self.nodes[up].kind != NodeKind::Sink).then_some(up)
    }

    /// The nodes of the task headed by `head`, in chain order (see [`Self::chains_into`]).
    fn task_members(&self, chained: &[Option<usize>], head: usize) -> Vec<usize> {
        let mut members = vec![head];
        while let Some(next) = (0..self.nodes.len()).find(|j| chained[*j] == members.last().copied()) {
            members.push(next);
        }
        members
    }

    /// The tasks a run starts, one line each: the head node, its subtasks (threads), the
    /// nodes chained into it, and how its input is partitioned.
    pub fn tasks(&self) -> Vec<String> {
        let chained: Vec<Option<usize>> = (0..self.nodes.len()).map(|i| self.chains_into(i)).collect();
        let heads = (0..self.nodes.len()).filter(|i| chained[*i].is_none());
        heads
            .map(|hi| {
                let names: Vec<&str> = self.task_members(&chained, hi).iter().map(|&m| self.nodes[m].name.as_str()).collect();
                let h = &self.nodes[hi];
                let keyed = if h.keyed { " (input partitioned by key)" } else { "" };
                format!("{} ×{}{}{keyed}", names[0], h.parallelism, names[1..].iter().map(|n| format!(" → {n}")).collect::<String>())
            })
            .collect()
    }

    fn config_json(v: &Option<toml::Value>) -> String {
        v.as_ref().map(toml_to_json).unwrap_or_else(|| serde_json::json!({})).to_string()
    }

    /// The field paths of an operator's `key-by`, when it names fields.
    fn key_fields(&self, node: usize) -> Option<Vec<json::Path>> {
        let op = self.job.spec.operator.get(&self.nodes[node].name)?;
        let path = |f: &String| f.split('.').map(str::to_string).collect();
        match op.key_by.as_ref()? {
            KeyBySpec::Field(f) => Some(vec![path(f)]),
            KeyBySpec::Fields(fs) => Some(fs.iter().map(path).collect()),
            KeyBySpec::Plugin(_) | KeyBySpec::RecordKey(_) => None,
        }
    }

    /// Whether `node` reads `src`'s main output directly or through stateless operators only.
    fn fed_by(&self, node: usize, src: usize) -> bool {
        self.nodes[node]
            .inputs
            .iter()
            .any(|(u, side)| side.is_none() && (*u == src || (self.nodes[*u].stateless && !self.walks(*u) && self.fed_by(*u, src))))
    }

    /// Whether operator `node` walks its output records itself: it reads their event time
    /// from a field (and then reads ahead the key-by fields downstream, in the same walk).
    fn walks(&self, node: usize) -> bool {
        self.job.spec.operator.get(&self.nodes[node].name).is_some_and(|op| op.event_time.as_ref().is_some_and(|e| e.field.is_some()))
    }

    /// The distinct field sets of the job's key-bys; a set's index is its id in
    /// [`Record::prekeys`].
    fn key_sets(&self) -> Vec<Vec<json::Path>> {
        let mut sets: Vec<Vec<json::Path>> = Vec::new();
        for p in (0..self.nodes.len()).filter_map(|i| self.key_fields(i)) {
            if !sets.contains(&p) {
                sets.push(p);
            }
        }
        sets
    }

    /// Key-by field sets the source or operator `src` reads ahead in its walk over each
    /// record: those of keyed operators it feeds through stateless operators that do not
    /// walk records themselves, with their ids.
    fn prekeys_of(&self, src: usize) -> Vec<(u16, Vec<json::Path>)> {
        let fed: Vec<Vec<json::Path>> = (0..self.nodes.len()).filter(|&i| self.fed_by(i, src)).filter_map(|i| self.key_fields(i)).collect();
        self.key_sets().into_iter().enumerate().filter(|(_, set)| fed.contains(set)).map(|(id, set)| (id as u16, set)).collect()
    }

    fn key_extractor(&self, node: usize) -> anyhow::Result<KeyExtractor> {
        let name = &self.nodes[node].name;
        if let Some(KeyBySpec::Plugin(r)) = &self.job.spec.operator[name].key_by {
            let inst = Instance::new(self.plugin(&r.plugin), &format!("{name}.key-by"), 0, Self::config_json(&r.config))?;
            return Ok(KeyExtractor::Plugin(Box::new(inst)));
        }
        if let Some(KeyBySpec::RecordKey(_)) = &self.job.spec.operator[name].key_by {
            return Ok(KeyExtractor::RecordKey);
        }
        let paths = self.key_fields(node).expect("a keyed operator's key-by names a plugin or fields");
        let id = self.key_sets().iter().position(|s| *s == paths).map(|id| id as u16);
        Ok(KeyExtractor::Fields(paths, id))
    }

    /// The state store of a keyed operator subtask. `write_back` puts a byte cache in front
    /// of RocksDB (for process plugins' state: a window operator caches decoded states
    /// itself).
    fn backend(&self, node: &str, subtask: usize, write_back: bool) -> anyhow::Result<Box<dyn StateBackend>> {
        Ok(match self.job.spec.state.backend {
            BackendKind::Memory => Box::new(MemoryBackend::default()),
            BackendKind::Rocksdb => {
                let rocks = RocksBackend::open(&self.state_dir().join(format!("{node}-{subtask}")))?;
                match write_back {
                    true => Box::new(Cached::new(rocks, crate::state::cache::DEFAULT_CAPACITY)),
                    false => Box::new(rocks),
                }
            }
        })
    }

    fn state_dir(&self) -> PathBuf {
        self.job.spec.state.dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("weir-state-{}", std::process::id())))
    }

    fn make_operator(&self, i: usize, subtask: usize) -> anyhow::Result<Box<dyn Operator>> {
        let node = &self.nodes[i];
        let spec = &self.job.spec;
        let clock = self.opts.clock.clone();
        let txn = self.job.checkpoint_config().is_some();
        match node.kind {
            NodeKind::Source => Ok(Box::new(Identity)),
            NodeKind::Sink => make_sink(&spec.sink[&node.name], false, txn),
            NodeKind::DeadLetter => {
                let dl = &spec.dead_letter;
                make_sink(&SinkSpec { kind: dl.kind, input: None, path: dl.path.clone(), prefix: Some(DEAD_LETTER.into()) }, true, txn)
            }
            NodeKind::Operator => {
                let op = &spec.operator[&node.name];
                let budget = spec.plugin_deadline_budget.unwrap_or(crate::plugin::DEFAULT_DEADLINE_BUDGET);
                let inst = |p: &PathBuf| {
                    let mut i = Instance::new(self.plugin(p), &node.name, subtask as u32, Self::config_json(&op.config))?;
                    i.set_deadline_budget(budget);
                    Ok::<_, crate::plugin::PluginError>(i)
                };
                let stateless = |kind| -> anyhow::Result<Box<dyn Operator>> {
                    let inner = Box::new(StatelessOp::new(kind, inst(op.plugin.as_ref().expect("checked"))?));
                    self.stamped(i, op, inner)
                };
                Ok(match op.kind {
                    OperatorKind::Map => stateless(Stateless::Map)?,
                    OperatorKind::Filter => stateless(Stateless::Filter)?,
                    OperatorKind::FlatMap => stateless(Stateless::FlatMap)?,
                    OperatorKind::Process => {
                        let mut i = inst(op.plugin.as_ref().expect("checked"))?;
                        i.host().state = self.backend(&node.name, subtask, true)?;
                        for (name, t) in &op.state_ttl {
                            let (d, refresh_on_read) =
                                t.parse().map_err(|m| self.job.error(&format!("operator.{}.state-ttl.{name}", node.name), m))?;
                            i.host().ttl.insert(name.clone(), crate::plugin::Ttl { ms: d.as_millis() as i64, refresh_on_read });
                        }
                        Box::new(ProcessOp::new(i, spec.max_parallelism, clock))
                    }
                    OperatorKind::Window => {
                        let w = op.window.as_ref().expect("checked");
                        let ms =
                            |v: &Option<String>| v.as_ref().and_then(|s| parse_duration(s).ok()).map(|d| d.as_millis() as i64).unwrap_or(0);
                        let assigner = match w.kind {
                            WindowKind::Tumbling => Assigner::Tumbling { size: ms(&w.size) },
                            WindowKind::Sliding => Assigner::Sliding { size: ms(&w.size), slide: ms(&w.slide) },
                            WindowKind::Session => Assigner::Session { gap: ms(&w.gap) },
                            WindowKind::Count => Assigner::Count { count: w.count.unwrap_or(1), every: w.every.or(w.count).unwrap_or(1) },
                        };
                        let function = match &op.plugin {
                            Some(p) => {
                                let i = inst(p)?;
                                match i.plugin().world {
                                    World::Aggregate => WindowFn::Aggregate(Box::new(i)),
                                    _ => WindowFn::Process(Box::new(i)),
                                }
                            }
                            None if op.aggregates.is_empty() => WindowFn::Builtin(vec![("count".into(), AggSpec::Count)]),
                            None => WindowFn::Builtin(
                                op.aggregates.iter().map(|(k, v)| (k.clone(), AggSpec::parse(v).expect("checked"))).collect(),
                            ),
                        };
                        let key_fields = match op.key_by.as_ref().expect("checked") {
                            KeyBySpec::Field(f) => vec![(f.clone(), f.split('.').map(str::to_string).collect())],
                            KeyBySpec::Fields(fs) => fs.iter().map(|f| (f.clone(), f.split('.').map(str::to_string).collect())).collect(),
                            KeyBySpec::Plugin(_) | KeyBySpec::RecordKey(_) => vec![],
                        };
                        let key_name = match op.key_by.as_ref() {
                            Some(KeyBySpec::RecordKey(r)) => Some(r.record_key.clone()),
                            _ => None,
                        };
                        let cfg = WindowConfig {
                            assigner,
                            processing_time: w.time == TimeKind::Processing,
                            allowed_lateness: ms(&op.allowed_lateness),
                            function,
                            key_fields,
                            key_name,
                            constants: op.fields.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect(),
                            max_parallelism: spec.max_parallelism,
                        };
                        Box::new(WindowOp::with_backend(cfg, clock, self.backend(&node.name, subtask, false)?))
                    }
                })
            }
        }
    }

    /// Whether node `i` reads nothing of its input records but their keys and event times: a
    /// window of built-in aggregates that read no field (`count`) on time windows (keyed by
    /// fields, a key-selector plugin or the record's key: several fields' texts come back from
    /// the key's JSON array), with no late output routed anywhere. Records then
    /// reach it without their values (Flink SQL's planner prunes such fields too; a
    /// DataStream job cannot know). On the flagship job the values had been allocated on the
    /// source's thread and freed on the windows', a quarter of each window thread's time.
    fn reads_only_keys(&self, i: usize) -> bool {
        let Some(op) = self.job.spec.operator.get(&self.nodes[i].name) else { return false };
        let late_routed = self.nodes.iter().any(|n| n.inputs.iter().any(|(up, side)| *up == i && side.as_deref() == Some(LATE_OUTPUT)));
        op.kind == OperatorKind::Window
            && op.plugin.is_none()
            && !late_routed
            && op.window.as_ref().is_some_and(|w| w.kind != WindowKind::Count)
            && op.aggregates.values().all(|a| AggSpec::parse(a).is_ok_and(|a| a.field().is_none()))
    }

    fn source(&self, i: usize, subtask: usize) -> anyhow::Result<(Box<dyn Source>, SourceTime, Option<f64>)> {
        let name = &self.nodes[i].name;
        let s = &self.job.spec.source[name];
        let src_idx = self.job.spec.source.get_index_of(name).unwrap_or(0) as u16;
        let f = |k: &str| format!("source.{name}.{k}");
        let source: Box<dyn Source> = match s.kind {
            SourceKind::Collection => Box::new(CollectionSource::new(s.values.iter().map(toml_to_json).collect(), src_idx)),
            SourceKind::File => {
                let path = s.path.as_ref().ok_or_else(|| self.job.error(&f("path"), "missing"))?;
                Box::new(FileSource::open(path, src_idx, s.max_line_bytes.unwrap_or(connectors::DEFAULT_MAX_LINE_BYTES))?)
            }
            SourceKind::Generator => {
                let p = self.nodes[i].parallelism as u64;
                let count = s.count.map(|c| c / p + u64::from((subtask as u64) < c % p));
                let cfg = GeneratorConfig {
                    count,
                    seed: s.seed.unwrap_or(42),
                    users: s.users.unwrap_or(50),
                    start: s.start.unwrap_or(1_735_689_600),
                };
                Box::new(Generator::new(cfg, subtask as u64, src_idx))
            }
        };
        let clock = self.opts.clock.clone();
        let ingestion = s.event_time.as_ref().is_some_and(|e| e.ingestion);
        let time_field = s.event_time.as_ref().filter(|e| !e.ingestion).map(|e| (e.field.clone().unwrap_or_default(), e.unit));
        let check_json = s.kind == SourceKind::File && s.format == Format::Json;
        let mut walk = field_walk(time_field, self.prekeys_of(i), check_json);
        let assign = move |r: &mut Record| -> Result<(), String> {
            if ingestion {
                r.timestamp = Some(clock.now_ms());
            }
            walk(r)
        };
        let wm = s.watermark.as_ref();
        let (bound, interval) = self.watermark_settings(&format!("source.{name}"), wm)?;
        let idle_timeout = wm.and_then(|w| w.idle_timeout.as_deref()).map(parse_duration).transpose().map_err(|m| anyhow::anyhow!(m))?;
        let time = SourceTime {
            assign: Some(Box::new(assign)),
            generator: s.event_time.as_ref().map(|_| WatermarkGenerator::bounded(bound)),
            interval,
            idle_timeout,
        };
        Ok((source, time, s.rate))
    }

    /// The bound and the interval (`None`: after every record) of a `watermark` table at `f`.
    fn watermark_settings(&self, f: &str, wm: Option<&WatermarkSpec>) -> anyhow::Result<(Duration, Option<Duration>)> {
        let bound = match wm {
            Some(w) if w.strategy == WatermarkStrategy::BoundedOutOfOrderness => w
                .max_out_of_orderness
                .as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(|m| self.job.error(&format!("{f}.watermark.max-out-of-orderness"), m))?
                .unwrap_or_default(),
            _ => Duration::ZERO,
        };
        let interval = wm
            .and_then(|w| w.interval.as_deref())
            .map(parse_duration)
            .transpose()
            .map_err(|m| self.job.error(&format!("{f}.watermark.interval"), m))?
            .filter(|d| !d.is_zero());
        Ok((bound, interval))
    }

    /// `inner` with the event time and watermarks of its operator's `event-time` and
    /// `watermark` settings, when it has either.
    fn stamped(&self, i: usize, op: &OperatorSpec, inner: Box<dyn Operator>) -> anyhow::Result<Box<dyn Operator>> {
        if op.event_time.is_none() && op.watermark.is_none() {
            return Ok(inner);
        }
        let (bound, interval) = self.watermark_settings(&format!("operator.{}", self.nodes[i].name), op.watermark.as_ref())?;
        let assign: Assign = match op.event_time.as_ref().and_then(|e| e.field.clone().map(|f| (f, e.unit))) {
            // One walk reads the event time and the key-bys downstream (see `walks`).
            Some(field) => Box::new(field_walk(Some(field), self.prekeys_of(i), false)),
            None => Box::new(|r: &mut Record| match r.timestamp {
                Some(_) => Ok(()),
                None => {
                    Err("event time: the record has none (the plugin sets none; or give the operator `event-time = { field = \"...\" }`)"
                        .into())
                }
            }),
        };
        Ok(Box::new(Stamped::new(inner, assign, WatermarkGenerator::bounded(bound), interval)))
    }

    /// The checkpoint to restore from, checked against this job.
    fn restore_point(&self) -> anyhow::Result<Option<(Metadata, PathBuf)>> {
        let Some(what) = &self.opts.restore else { return Ok(None) };
        let Some((m, p)) = checkpoint::resolve(self.job.checkpoint_dir().as_deref(), what)? else { return Ok(None) };
        anyhow::ensure!(
            m.max_parallelism == self.job.spec.max_parallelism,
            "checkpoint {} is incompatible: it has {} key groups, the job {} (max-parallelism must stay the same)",
            p.display(),
            m.max_parallelism,
            self.job.spec.max_parallelism
        );
        for (path, hash) in &m.plugins {
            if let Some(now) = self.plugins.get(&PathBuf::from(path)) {
                if now.hash != *hash {
                    eprintln!("weir: plugin {path} changed since checkpoint {} (hash {hash} → {}); its state is kept", m.id, now.hash);
                }
            }
        }
        eprintln!("weir: restoring from {}", p.display());
        Ok(Some((m, p)))
    }

    /// Restores link `m` of subtask `s` from checkpoint `chk`.
    fn restore_link(&self, op: &mut dyn Operator, m: usize, s: usize, meta: &Metadata, chk: &Path) -> anyhow::Result<()> {
        let node = &self.nodes[m];
        let Some(&old_p) = meta.parallelism.get(&node.name) else { return Ok(()) };
        let maxp = self.job.spec.max_parallelism;
        if node.keyed {
            let dirs: Vec<PathBuf> = (0..old_p).map(|j| chk.join(format!("{}-{j}", node.name))).collect();
            return op.restore(&dirs, key_groups_of(s, node.parallelism, maxp));
        }
        anyhow::ensure!(
            old_p == node.parallelism || node.stateless,
            "`{}` ran with parallelism {old_p} in the checkpoint and {} now; only keyed and stateless operators can change parallelism",
            node.name,
            node.parallelism
        );
        op.restore(&[chk.join(format!("{}-{s}", node.name))], 0..maxp as u16)
    }

    /// Runs the job to its end.
    pub fn run(self) -> anyhow::Result<RunReport> {
        let started = Instant::now();
        let restore = self.restore_point()?;
        let ck = self.job.checkpoint_config();
        if let Some(dir) = self.job.checkpoint_dir() {
            checkpoint::check_writable(&dir)?;
        }
        let (ack_tx, ack_rx) = crossbeam_channel::unbounded();
        let mut source_ctl: Vec<Sender<Control>> = Vec::new();
        let mut task_ctl: Vec<Sender<Control>> = Vec::new();
        let sources_ended = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut metrics = JobMetrics::default();
        let node_metrics: Vec<_> = self.nodes.iter().map(|n| metrics.node(&n.name)).collect();
        // Task heads: nodes that do not chain into another.
        let chained: Vec<Option<usize>> = (0..self.nodes.len()).map(|i| self.chains_into(i)).collect();
        let head_of = |mut i: usize| {
            while let Some(up) = chained[i] {
                i = up;
            }
            i
        };
        // Channels: one per subtask of each head.
        let mut txs: Vec<Vec<Sender<Envelope>>> = vec![vec![]; self.nodes.len()];
        let mut rxs: Vec<Vec<Option<Receiver<Envelope>>>> = vec![vec![]; self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            if chained[i].is_none() && n.kind != NodeKind::Source {
                for _ in 0..n.parallelism {
                    let (tx, rx) = bounded(runtime::CHANNEL_CAPACITY);
                    txs[i].push(tx);
                    rxs[i].push(Some(rx));
                }
            }
        }
        // Input channel counts per head node; edges allocate indexes in a fixed order.
        let mut next_channel: Vec<u32> = vec![0; self.nodes.len()];
        let dl = self.nodes.len() - 1;
        // routes[(node, side)][subtask] -> Vec<Route>
        let mut routes: HashMap<(usize, Option<String>), Vec<Vec<Route>>> = HashMap::new();
        for (ci, c) in self.nodes.iter().enumerate() {
            if chained[ci].is_some() {
                continue;
            }
            for (up, side) in &c.inputs {
                let upp = self.nodes[*up].parallelism;
                let forward = !c.keyed && c.parallelism == upp && c.parallelism > 1;
                let base = next_channel[ci];
                next_channel[ci] += if forward { 1 } else { upp as u32 };
                let per_sub = routes.entry((*up, side.clone())).or_insert_with(|| (0..upp).map(|_| Vec::new()).collect());
                for (u, rs) in per_sub.iter_mut().enumerate() {
                    let route = if forward {
                        Route { senders: vec![txs[ci][u].clone()], channel: base, partitioner: Partitioner::Forward, drop_values: false }
                    } else if c.keyed {
                        Route {
                            senders: txs[ci].clone(),
                            channel: base + u as u32,
                            partitioner: Partitioner::Hash(self.key_extractor(ci)?, self.job.spec.max_parallelism),
                            drop_values: self.reads_only_keys(ci),
                        }
                    } else if c.parallelism == 1 {
                        Route { senders: txs[ci].clone(), channel: base + u as u32, partitioner: Partitioner::Forward, drop_values: false }
                    } else {
                        Route {
                            senders: txs[ci].clone(),
                            channel: base + u as u32,
                            partitioner: Partitioner::Rebalance(u),
                            drop_values: false,
                        }
                    };
                    rs.push(route);
                }
            }
        }
        let source_names: Arc<Vec<String>> = Arc::new(self.job.spec.source.keys().cloned().collect());
        let run = Arc::new(RunState::default());
        let mut handles = Vec::new();
        // Build every task (plugins instantiated, init run) before any thread starts.
        let mut tasks: Vec<Task> = Vec::new();
        for (hi, h) in self.nodes.iter().enumerate() {
            if chained[hi].is_some() {
                continue;
            }
            let members = self.task_members(&chained, hi);
            for s in 0..h.parallelism {
                let mut links = Vec::new();
                for (pos, &m) in members.iter().enumerate() {
                    let mut take = |side: Option<String>| routes.get_mut(&(m, side)).map(|v| std::mem::take(&mut v[s])).unwrap_or_default();
                    let main = if pos + 1 == members.len() { take(None) } else { Vec::new() };
                    let side_names: Vec<String> = self
                        .nodes
                        .iter()
                        .flat_map(|n| n.inputs.iter())
                        .filter(|(u, side)| *u == m && side.is_some())
                        .filter_map(|(_, side)| side.clone())
                        .collect();
                    let mut sides: Vec<(String, Vec<Route>)> = Vec::new();
                    for name in side_names {
                        if !sides.iter().any(|(n, _)| *n == name) {
                            sides.push((name.clone(), take(Some(name))));
                        }
                    }
                    let mut op = self.make_operator(m, s).with_context(|| format!("starting `{}` (subtask {s})", self.nodes[m].name))?;
                    if let Some((meta, chk)) = &restore {
                        let t = Instant::now();
                        self.restore_link(op.as_mut(), m, s, meta, chk)
                            .with_context(|| format!("restoring `{}` (subtask {s}) from {}", self.nodes[m].name, chk.display()))?;
                        metrics.checkpoints.restore_ms.fetch_add(t.elapsed().as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                    links.push(ChainLink { name: self.nodes[m].name.clone(), op, main, sides, metrics: node_metrics[m].clone() });
                }
                let dead_letter = (!matches!(h.kind, NodeKind::Sink | NodeKind::DeadLetter)).then(|| {
                    let ch = next_channel[dl];
                    next_channel[dl] += 1;
                    Route { senders: txs[dl].clone(), channel: ch, partitioner: Partitioner::Forward, drop_values: false }
                });
                let control = ck.as_ref().map(|_| {
                    let (tx, rx) = crossbeam_channel::unbounded();
                    if h.kind == NodeKind::Source {
                        source_ctl.push(tx);
                    } else {
                        task_ctl.push(tx);
                    }
                    rx
                });
                let acks = ck.as_ref().map(|_| ack_tx.clone());
                let chain = Chain { links, dead_letter, source_names: source_names.clone(), subtask: s, acks };
                let rx = if h.kind == NodeKind::Source { None } else { rxs[hi][s].take() };
                tasks.push(Task { name: format!("{}#{s}", h.name), chain, rx, head: hi, subtask: s, control });
            }
        }
        drop(txs);
        drop(ack_tx);
        let batch_size = self.job.spec.batch_size;
        let mode = ck.as_ref().map(|c| c.mode).unwrap_or_default();
        let expected = tasks.len();
        for Task { name, chain, rx, head: hi, subtask: s, control } in tasks {
            let run2 = run.clone();
            let clock = self.opts.clock.clone();
            let inputs = next_channel[head_of(hi)] as usize;
            let mut src = if self.nodes[hi].kind == NodeKind::Source { Some(self.source(hi, s)?) } else { None };
            if let (Some((source, time, _)), Some((_, chk))) = (&mut src, &restore) {
                let f = chk.join(format!("{}-{s}", self.nodes[hi].name)).join(SOURCE_SNAPSHOT);
                let raw = std::fs::read(&f).with_context(|| {
                    format!("restoring source `{}`: {} is missing (was its parallelism changed?)", self.nodes[hi].name, f.display())
                })?;
                let snap: SourceSnapshot =
                    serde_json::from_slice(&raw).with_context(|| format!("{} is not a source snapshot", f.display()))?;
                source.seek(&snap.position).with_context(|| format!("restoring source `{}`", self.nodes[hi].name))?;
                if snap.watermark.is_some() {
                    time.generator = snap.watermark;
                }
            }
            let ended = sources_ended.clone();
            let stop2 = stop.clone();
            let handle = std::thread::Builder::new().name(name.clone()).spawn(move || {
                let res = match (src, rx) {
                    (Some((source, time, rate)), _) => {
                        let ctl = SourceControl { control, ended: Some(ended), stop: Some(stop2) };
                        runtime::run_source_task(source, time, chain, batch_size, rate, ctl, run2.clone())
                    }
                    (None, Some(rx)) => {
                        runtime::run_input_task(chain, InputTask { rx, inputs: inputs.max(1), control, mode }, clock, run2.clone())
                    }
                    (None, None) => Ok(()),
                };
                if let Err(e) = res {
                    run2.fail(&name, &e);
                }
            })?;
            handles.push(handle);
        }
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut control = None;
        let coordinator = match ck {
            Some(cfg) => {
                let facts = JobFacts {
                    job: self.job.spec.name.clone().unwrap_or_else(|| "job".into()),
                    max_parallelism: self.job.spec.max_parallelism,
                    parallelism: self.nodes.iter().map(|n| (n.name.clone(), n.parallelism)).collect(),
                    plugins: self.plugins.iter().map(|(p, pl)| (p.display().to_string(), pl.hash.clone())).collect(),
                };
                let (req_tx, requests) = crossbeam_channel::unbounded();
                if let Some(addr) = &self.job.spec.control {
                    let addr = addr.parse().map_err(|_| self.job.error("control", "not an address"))?;
                    control = Some(crate::control::serve(addr, req_tx, done.clone())?);
                }
                let c = Coordinator {
                    cfg,
                    sources: source_ctl,
                    tasks: task_ctl,
                    acks: ack_rx,
                    requests,
                    expected,
                    facts,
                    done: done.clone(),
                    sources_ended,
                    stop,
                    run: run.clone(),
                    metrics: metrics.checkpoints.clone(),
                };
                Some(std::thread::Builder::new().name("checkpoint-coordinator".into()).spawn(move || c.run())?)
            }
            None => None,
        };
        for h in handles {
            if h.join().is_err() {
                run.fail("task", &anyhow::anyhow!("a task panicked"));
            }
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(c) = control {
            c.join();
        }
        if let Some(c) = coordinator {
            match c.join() {
                Ok(Err(e)) => run.fail("checkpoint coordinator", &e),
                Err(_) => run.fail("checkpoint coordinator", &anyhow::anyhow!("panicked")),
                Ok(Ok(())) => {}
            }
        }
        if self.job.spec.state.backend == BackendKind::Rocksdb && self.job.spec.state.dir.is_none() {
            let _ = std::fs::remove_dir_all(self.state_dir());
        }
        if let Some(e) = run.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            anyhow::bail!(e);
        }
        Ok(RunReport { metrics, elapsed: started.elapsed() })
    }
}

/// One task to start: a chain for one subtask of a head node.
struct Task {
    name: String,
    chain: Chain,
    rx: Option<Receiver<Envelope>>,
    head: usize,
    subtask: usize,
    control: Option<Receiver<Control>>,
}

/// A sink; file sinks commit in two phases when `transactional` (checkpoints are on).
fn make_sink(s: &SinkSpec, dead_letter: bool, transactional: bool) -> anyhow::Result<Box<dyn Operator>> {
    Ok(match s.kind {
        SinkKind::Print => {
            Box::new(connectors::PrintSink::new(s.prefix.clone(), if dead_letter { Stream::Stderr } else { Stream::Stdout }))
        }
        SinkKind::File if transactional => Box::new(connectors::FileSink::transactional(s.path.as_ref().expect("checked"), 0)?),
        SinkKind::File => Box::new(connectors::FileSink::create(s.path.as_ref().expect("checked"))?),
        SinkKind::Discard => Box::new(connectors::DiscardSink),
    })
}

/// One walk over each record's JSON value, as a source or an operator with an `event-time`
/// field makes it: the event time from `time_field` (path, unit), and the key-by fields of
/// `prekeys` read ahead into [`Record::prekeys`]. A value that is not JSON fails the record
/// when an event time is to be read or `check_json` says so; when only keys were to be read
/// ahead, the key-by reports it.
fn field_walk(
    time_field: Option<(String, TimeUnit)>,
    prekeys: Vec<(u16, Vec<json::Path>)>,
    check_json: bool,
) -> impl FnMut(&mut Record) -> Result<(), String> + Send + 'static {
    let mut paths: Vec<json::Path> = time_field.iter().map(|(f, _)| f.split('.').map(str::to_string).collect()).collect();
    prekeys.iter().for_each(|(_, p)| paths.extend(p.iter().cloned()));
    move |r: &mut Record| -> Result<(), String> {
        if paths.is_empty() && !check_json {
            return Ok(());
        }
        let mut found = json::Found::new();
        if let Err(e) = json::extract(&r.value, &paths, &mut found) {
            return match time_field.is_some() || check_json {
                true => Err(format!("not JSON: {e}")),
                false => Ok(()),
            };
        }
        let mut at = 0;
        if let Some((field, unit)) = &time_field {
            r.timestamp = Some(event_time_of(found[0], field, *unit)?);
            at = 1;
        }
        let mut vals: smallvec::SmallVec<[json::Raw; 4]> = smallvec::SmallVec::new();
        for (id, p) in &prekeys {
            if r.prekeys.iter().any(|(have, _)| have == id) {
                // Read ahead upstream already (another branch of the job reads it there).
                at += p.len();
                continue;
            }
            vals.clear();
            vals.extend(found[at..at + p.len()].iter().map_while(|v| json::non_null(*v)));
            if vals.len() == p.len() {
                r.prekeys.push((*id, crate::keys::key_bytes(&vals)));
            }
            at += p.len();
        }
        Ok(())
    }
}

/// A record's event time in ms from the raw value of its event-time `field` (in `unit`).
fn event_time_of(raw: Option<json::Raw>, field: &str, unit: TimeUnit) -> Result<i64, String> {
    let raw = raw.ok_or_else(|| format!("event time: missing field `{field}`"))?;
    let t = json::raw_i64(raw).ok_or_else(|| format!("event time: field `{field}` must be an integer, found {}", json::value(raw)))?;
    match unit {
        TimeUnit::Millis => Ok(t),
        TimeUnit::Seconds => t.checked_mul(1000).ok_or_else(|| format!("event time: `{field}` = {t} s overflows")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::SystemClock;

    #[test]
    fn only_windows_that_read_nothing_but_keys_get_records_without_values() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("job.toml");
        let window = |name: &str, extra: &str| {
            format!("[operator.{name}]\nkind = \"window\"\ninput = \"logs\"\nkey-by = \"user\"\nwindow = {{ type = \"tumbling\", size = \"10s\" }}\n{extra}\n")
        };
        let job = [
            "[source.logs]\nkind = \"collection\"\nvalues = [{ user = \"a\", t = 1, x = 2 }]\nevent-time = { field = \"t\", unit = \"ms\" }\n".to_string(),
            window("counts", "aggregates = { n = \"count\" }"),
            window("plain", ""),
            window("sums", "aggregates = { n = \"count\", total = \"sum(x)\" }"),
            window("late", ""),
            window("pairs", "").replace("key-by = \"user\"", "key-by = [\"user\", \"x\"]"),
            "[operator.slices]\nkind = \"window\"\ninput = \"logs\"\nkey-by = \"user\"\nwindow = { type = \"count\", count = 2 }\n".into(),
            "[sink.out]\nkind = \"discard\"\ninput = \"counts\"\n[sink.late-out]\nkind = \"discard\"\ninput = \"late.late\"\n".into(),
        ]
        .concat();
        std::fs::write(&path, job).expect("job written");
        let job = Job::load(&path, &[]).expect("a valid job");
        let planned = Planned::new(job, RunOptions { clock: Arc::new(SystemClock), restore: None }).expect("planned");
        let reads_only_keys = |name: &str| planned.reads_only_keys(planned.nodes.iter().position(|n| n.name == name).expect("a node"));
        assert!(reads_only_keys("counts") && reads_only_keys("plain") && reads_only_keys("pairs"));
        // Aggregates of a field, a late output, count windows: values go.
        for name in ["sums", "late", "slices", "logs"] {
            assert!(!reads_only_keys(name), "{name}");
        }
    }
    /// Key-by fields are read ahead by the last walk before them: an operator that reads an
    /// event-time field reads those of the keyed operators after it, and the source only those
    /// it reaches past operators that do not walk.
    #[test]
    fn key_bys_are_read_ahead_by_the_last_walk_before_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("job.toml");
        let identity = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist/identity.wasm");
        let map = |name: &str, extra: &str| {
            format!("[operator.{name}]\nkind = \"map\"\ninput = \"logs\"\nplugin = \"{}\"\n{extra}\n", identity.display())
        };
        let window = |name: &str, input: &str, key: &str| {
            format!("[operator.{name}]\nkind = \"window\"\ninput = \"{input}\"\nkey-by = {key}\nwindow = {{ type = \"tumbling\", size = \"10s\" }}\n")
        };
        let job = [
            "[source.logs]\nkind = \"collection\"\nvalues = [{ user = \"a\", t = 1, x = 2 }]\n".to_string(),
            map("parse", "event-time = { field = \"t\" }"),
            map("plain", ""),
            window("by_user", "parse", "\"user\""),
            window("by_pair", "plain", "[\"user\", \"x\"]"),
        ]
        .concat();
        std::fs::write(&path, job).expect("job written");
        let job = Job::load(&path, &[]).expect("a valid job");
        let planned = Planned::new(job, RunOptions { clock: Arc::new(SystemClock), restore: None }).expect("planned");
        let node = |name: &str| planned.nodes.iter().position(|n| n.name == name).expect("a node");
        let read = |name: &str| planned.prekeys_of(node(name)).into_iter().map(|(_, p)| p).collect::<Vec<_>>();
        let path = |f: &str| vec![f.to_string()];
        assert_eq!(read("logs"), [vec![path("user"), path("x")]]);
        assert_eq!(read("parse"), [vec![path("user")]]);

        // The walk reads event time and keys at once, and leaves a key read ahead upstream.
        let mut walk = field_walk(Some(("t".into(), TimeUnit::Seconds)), vec![(3, vec![path("user")])], false);
        let mut r = Record::new(br#"{"user": "a", "t": 5}"#.to_vec());
        walk(&mut r).expect("walked");
        assert_eq!((r.timestamp, r.prekeys.to_vec()), (Some(5000), vec![(3, crate::record::Key::from_slice(b"a"))]));
        walk(&mut r).expect("walked again");
        assert_eq!(r.prekeys.len(), 1, "a key read ahead already is not read again");
        assert_eq!(walk(&mut Record::new(b"{".to_vec())).unwrap_err().split(':').next(), Some("not JSON"));
    }
}
