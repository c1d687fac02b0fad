//! From a checked job to running tasks: the graph of nodes with their parallelism
//! (here), the operators, sources and sinks each subtask runs ([`build`]), and the run:
//! channels, routes, chains, threads and the checkpoint coordinator ([`run`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use weir_core::json;
use weir_core::keys::KeyGroups;
use weir_core::status::{JobMetrics, NodeMetrics};
use weir_core::time::Clock;
use weir_job::{Function, Job, KeyBy, PluginDef, WindowFunction};
use weir_plugin::{Plugin, PluginEngine, World};
use weir_window::LATE_OUTPUT;

use crate::reload::Reloads;

mod build;
mod run;

/// Options of a run beyond the job file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The processing-time clock.
    pub clock: Arc<dyn Clock>,
    /// `latest` or a checkpoint/savepoint folder to resume from.
    pub restore: Option<String>,
    /// Hot-reload a plugin when its file changes (`weir run --watch`).
    pub watch: bool,
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

/// Where each node runs (see [`Planned::layout`]).
struct Layout {
    /// The node each node is chained after, in that node's task.
    chained: Vec<Option<usize>>,
    /// The keyed node whose task each keyed node shares, with its key's prefix.
    shared: Vec<Option<(usize, usize)>>,
    /// The head of the task a sink with several inputs runs in, chained after each of them
    /// (see [`Planned::sink_task`]).
    merged: Vec<Option<usize>>,
}

impl Layout {
    /// Whether node `i` runs in another node's task.
    fn joins(&self, i: usize) -> bool {
        self.chained[i].is_some() || self.shared[i].is_some() || self.merged[i].is_some()
    }

    /// The head of the task node `i` runs in.
    fn head_of(&self, mut i: usize) -> usize {
        loop {
            match (self.chained[i], self.shared[i], self.merged[i]) {
                (Some(up), _, _) => i = up,
                (None, Some((head, _)), _) | (None, None, Some(head)) => return head,
                (None, None, None) => return i,
            }
        }
    }
}

/// A job ready to run: plugins compiled, graph planned.
pub struct Planned {
    job: Job,
    nodes: Vec<Node>,
    plugins: HashMap<PathBuf, Arc<Plugin>>,
    opts: RunOptions,
    /// The run's counters, readable while it runs ([`Planned::metrics`]).
    metrics: Arc<JobMetrics>,
    /// Each node's counters, by node index.
    node_metrics: Vec<Arc<NodeMetrics>>,
    /// Hot reloads: the plugin version each operator runs.
    reloads: Arc<Reloads>,
    /// What the plugins read of each record, found once ([`Planned::span_readers`]).
    span_readers: std::sync::OnceLock<(Vec<usize>, Vec<String>)>,
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
    pub metrics: Arc<JobMetrics>,
    /// Wall time.
    pub elapsed: Duration,
}

/// The worlds a plugin of `f` may export.
fn worlds(f: &Function) -> &'static [World] {
    match f {
        Function::Map(_) => &[World::Map],
        Function::Filter(_) => &[World::Filter],
        Function::FlatMap(_) => &[World::FlatMap],
        Function::Process { .. } => &[World::Process],
        Function::Window(_) => &[World::Aggregate, World::WindowProcess],
    }
}

impl Planned {
    /// Plans `job`: compiles every plugin and checks its world.
    pub fn new(job: Job, opts: RunOptions) -> anyhow::Result<Planned> {
        let mut nodes: Vec<Node> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut add = |name: &str, kind: NodeKind, parallelism: usize| {
            index.insert(name.to_string(), nodes.len());
            nodes.push(Node { name: name.to_string(), kind, parallelism, inputs: vec![], keyed: false, stateless: false });
        };
        for (n, s) in &job.sources {
            add(n, NodeKind::Source, s.parallelism);
        }
        for n in job.operators.keys() {
            add(n, NodeKind::Operator, 0);
        }
        for n in job.sinks.keys() {
            add(n, NodeKind::Sink, 1);
        }
        let inputs_of = |list: &[weir_job::Input]| list.iter().map(|i| (index[&i.node], i.side.clone())).collect::<Vec<_>>();
        for (n, op) in &job.operators {
            let i = index[n];
            nodes[i].inputs = inputs_of(&op.inputs);
            nodes[i].keyed = op.key_by.is_some();
            nodes[i].stateless = op.function.is_stateless() && op.key_by.is_none();
        }
        for (n, s) in &job.sinks {
            nodes[index[n]].inputs = inputs_of(&s.inputs);
            // Print and discard hold nothing: a restore may change their parallelism.
            nodes[index[n]].stateless = weir_connectors::sink_kind(s.kind).is_some_and(|k| k.parallel);
        }
        // Parallelism: keyed operators take the job's, others their first input's (checked
        // acyclic, so each pass settles at least one more).
        for _ in 0..nodes.len() {
            for (n, op) in &job.operators {
                let i = index[n];
                if nodes[i].parallelism == 0 {
                    nodes[i].parallelism = match op.parallelism {
                        Some(p) => p,
                        None if nodes[i].keyed => job.parallelism,
                        None => nodes[nodes[i].inputs[0].0].parallelism,
                    };
                }
            }
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
        let engine = PluginEngine::with_deadline(job.plugin_deadline).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut plugins: HashMap<PathBuf, Arc<Plugin>> = HashMap::new();
        let mut want = |p: &PluginDef, worlds: &[World], who: &str| -> anyhow::Result<()> {
            if !plugins.contains_key(&p.path) {
                plugins.insert(p.path.clone(), Arc::new(Plugin::load(&engine, &p.path)?));
            }
            plugins[&p.path].expect_world(worlds, who)?;
            Ok(())
        };
        for (n, op) in &job.operators {
            if let Some(p) = op.function.plugin() {
                want(p, worlds(&op.function), n)?;
            }
            if let Some(KeyBy::Selector(p)) = &op.key_by {
                want(p, &[World::KeySelector], n)?;
            }
        }
        let mut metrics = JobMetrics::default();
        let node_metrics = nodes.iter().map(|n| metrics.node(&n.name)).collect();
        let metrics = Arc::new(metrics);
        let mut job = job;
        if opts.watch && job.checkpoint.is_none() {
            // Swaps happen at checkpoint barriers: `--watch` needs a coordinator.
            job.checkpoint = Some(weir_runtime::checkpoint::CheckpointConfig::on_demand());
        }
        // Every operator that calls a plugin can be reloaded (a key selector cannot: it
        // decides where state lives).
        let reloadable = nodes
            .iter()
            .filter_map(|n| {
                let p = job.operators.get(&n.name)?.function.plugin()?;
                Some((n.name.clone(), plugins[&p.path].clone(), p, n.parallelism))
            })
            .collect();
        let reloads = Arc::new(Reloads::new(&job, engine, reloadable, metrics.clone()));
        let mut planned = Planned { job, nodes, plugins, opts, metrics, node_metrics, reloads, span_readers: Default::default() };
        planned.place_sinks();
        Ok(planned)
    }

    /// Gives each sink that runs in its inputs' task ([`Self::sink_task`]) that task's
    /// parallelism, one instance per subtask.
    fn place_sinks(&mut self) {
        let layout = self.layout();
        for i in 0..self.nodes.len() {
            if let Some(head) = self.sink_task(&layout, i) {
                self.nodes[i].parallelism = self.nodes[head].parallelism;
            }
        }
    }

    /// The head of the task sink `i` runs in, where its kind may run once per subtask
    /// (print, discard), its `chain` is not `false`, and its inputs are main outputs of
    /// distinct nodes, read by nothing else and all running in one task: its records are then
    /// written, or dropped, on the thread that made them, with no channel, thread or
    /// cross-thread free between (Flink chains its print and discarding sinks alike).
    fn sink_task(&self, layout: &Layout, i: usize) -> Option<usize> {
        let n = &self.nodes[i];
        if n.kind != NodeKind::Sink || !self.job.sinks[&n.name].chain {
            return None;
        }
        let mut head = None;
        for (j, (up, side)) in n.inputs.iter().enumerate() {
            let repeated = n.inputs[..j].iter().any(|(u, _)| u == up);
            if side.is_some() || repeated || matches!(self.nodes[*up].kind, NodeKind::Sink | NodeKind::DeadLetter) {
                return None;
            }
            let h = layout.head_of(*up);
            if self.main_readers(*up) != 1 || head.is_some_and(|x| x != h) {
                return None;
            }
            head = Some(h);
        }
        head
    }

    /// The job.
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// The run's counters: live while [`Planned::run`] runs (for an endpoint or a status
    /// command), final when it returns.
    pub fn metrics(&self) -> Arc<JobMetrics> {
        self.metrics.clone()
    }

    fn plugin(&self, p: &PluginDef) -> Arc<Plugin> {
        self.plugins[&p.path].clone()
    }

    /// The version of plugin `p` that operator `name` runs now (a restore may run another
    /// than the job file's: see `Reloads::restore_versions`).
    fn running(&self, p: &PluginDef, name: &str) -> Arc<Plugin> {
        self.reloads.slot(name).map(|s| s.current()).unwrap_or_else(|| self.plugin(p))
    }

    /// The hot reloads of this run (its operators' plugin versions, `weir reload`,
    /// `--watch`, rollbacks).
    pub fn reloads(&self) -> Arc<Reloads> {
        self.reloads.clone()
    }

    fn operator(&self, i: usize) -> Option<&weir_job::OperatorDef> {
        self.job.operators.get(&self.nodes[i].name)
    }

    /// Node `i` chains into its input's task: stateless, one main input read by nobody
    /// else, same parallelism, and its `chain` is not `false`.
    fn chains_into(&self, i: usize) -> Option<usize> {
        let n = &self.nodes[i];
        if !n.stateless || n.inputs.len() != 1 || n.inputs[0].1.is_some() {
            return None;
        }
        if self.operator(i).is_some_and(|op| !op.chain) || self.job.sinks.get(&n.name).is_some_and(|s| !s.chain) {
            return None;
        }
        let up = n.inputs[0].0;
        (self.main_readers(up) == 1 && self.nodes[up].parallelism == n.parallelism && self.nodes[up].kind != NodeKind::Sink).then_some(up)
    }

    /// How many nodes read node `up`'s main output.
    fn main_readers(&self, up: usize) -> usize {
        self.nodes.iter().filter(|m| m.inputs.iter().any(|(u, side)| *u == up && side.is_none())).count()
    }

    /// How keyed operator `i`'s key refines keyed operator `h`'s: `Some(prefix)` when every
    /// key of `i` determines one of `h` (its state can live in `h`'s key groups: see
    /// [`KeyGroups`]), `prefix` being the number of `i`'s leading key fields that make `h`'s
    /// key (0: the keys are the same). Keyed by fields, `h`'s fields lead `i`'s; keyed by the
    /// record's key, `i` has the same, or leads with a field of that name (checked record by
    /// record in the shared task: see `weir_runtime::fan`).
    fn refines(&self, i: usize, h: usize) -> Option<usize> {
        let (ki, kh) = (self.operator(i)?.key_by.as_ref()?, self.operator(h)?.key_by.as_ref()?);
        match (ki, kh) {
            (KeyBy::RecordKey(_), KeyBy::RecordKey(_)) => Some(0),
            (KeyBy::Fields(fi), KeyBy::RecordKey(name)) if fi.first() == Some(name) => Some(if fi.len() == 1 { 0 } else { 1 }),
            (KeyBy::Fields(fi), KeyBy::Fields(fh)) if fi == fh => Some(0),
            (KeyBy::Fields(fi), KeyBy::Fields(fh)) if fi.starts_with(fh) => Some(fh.len()),
            _ => None,
        }
    }

    /// Whether keyed operator `i` may share a task with keyed siblings: one input, keyed by
    /// fields or the record's key, and its `chain` is not `false`.
    fn can_share(&self, i: usize) -> bool {
        let n = &self.nodes[i];
        let op = self.operator(i);
        n.keyed && n.inputs.len() == 1 && op.is_some_and(|op| op.chain && !matches!(op.key_by, Some(KeyBy::Selector(_))))
    }

    /// Keyed operators reading the same input at the same parallelism share one task when
    /// their keys allow (one shuffle, one channel and one thread per subtask for all of them:
    /// Flink would run each behind its own shuffle): per node, the head of the task it
    /// shares and its key's [`Self::refines`] prefix. The coarsest keys head (fewest key
    /// fields, then file order).
    fn sharing(&self) -> Vec<Option<(usize, usize)>> {
        let mut shares = vec![None; self.nodes.len()];
        let fields = |i: usize| match self.operator(i).and_then(|op| op.key_by.as_ref()) {
            Some(KeyBy::Fields(f)) => f.len(),
            _ => 1,
        };
        let mut candidates: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.can_share(i)).collect();
        candidates.sort_by_key(|&i| (fields(i), i));
        let mut heads: Vec<usize> = Vec::new();
        for i in candidates {
            let n = &self.nodes[i];
            let head = heads.iter().find_map(|&h| {
                let same_input = self.nodes[h].inputs == n.inputs && self.nodes[h].parallelism == n.parallelism;
                same_input.then(|| self.refines(i, h)).flatten().map(|prefix| (h, prefix))
            });
            match head {
                Some(share) => shares[i] = Some(share),
                None => heads.push(i),
            }
        }
        shares
    }

    /// Whether keyed nodes `a` and `b` have the same key: the record's, or the same fields.
    fn same_key(&self, a: usize, b: usize) -> bool {
        self.key_fields(a) == self.key_fields(b)
    }

    /// Whether the input of the task headed by `head` goes without values: when none of
    /// its operators reads them, and each of them has the head's key (a finer key is read
    /// from the value: see `weir_runtime::fan::Refine`).
    fn input_drops_values(&self, layout: &Layout, head: usize) -> bool {
        let mut sharing = (0..self.nodes.len()).filter(|&j| layout.shared[j].is_some_and(|(h, _)| h == head));
        self.reads_only_keys(head) && sharing.all(|j| self.reads_only_keys(j) && self.same_key(j, head))
    }

    /// Where each node runs: in a task of its own, chained into its input's task (a sink:
    /// its inputs' task), or sharing a keyed sibling's.
    fn layout(&self) -> Layout {
        let n = self.nodes.len();
        let mut layout = Layout { chained: (0..n).map(|i| self.chains_into(i)).collect(), shared: self.sharing(), merged: vec![None; n] };
        // A sink placed with one input chains after it; one with several, after each.
        layout.merged = (0..n).map(|i| (self.nodes[i].inputs.len() > 1).then(|| self.sink_task(&layout, i)).flatten()).collect();
        layout
    }

    /// The nodes of the task headed by `head`: the head and the keyed operators sharing its
    /// task (the task's roots, each fed its input), each followed by the nodes chained after
    /// it; with, for each, the position of the member its main output feeds.
    fn task_members(&self, layout: &Layout, head: usize) -> Vec<(usize, Option<usize>)> {
        let roots = std::iter::once(head).chain((0..self.nodes.len()).filter(|j| layout.shared[*j].is_some_and(|(h, _)| h == head)));
        let mut members: Vec<(usize, Option<usize>)> = Vec::new();
        for root in roots {
            members.push((root, None));
            let mut at = root;
            while let Some(next) = (0..self.nodes.len()).find(|j| layout.chained[*j] == Some(at)) {
                let pos = members.len();
                members.last_mut().expect("a member").1 = Some(pos);
                members.push((next, None));
                at = next;
            }
        }
        for sink in (0..self.nodes.len()).filter(|j| layout.merged[*j] == Some(head)) {
            let pos = members.len();
            for (m, next) in members.iter_mut() {
                if self.nodes[sink].inputs.iter().any(|(u, _)| u == m) {
                    *next = Some(pos);
                }
            }
            members.push((sink, None));
        }
        members
    }

    /// The key groups of keyed node `i`'s keys (see [`KeyGroups`]).
    fn key_groups(&self, i: usize) -> KeyGroups {
        let prefix = self.sharing()[i].map_or(0, |(_, prefix)| prefix);
        KeyGroups { max_parallelism: self.job.max_parallelism, prefix }
    }

    /// Keyed operators whose key groups come from a prefix of their key, with it (see
    /// `Metadata::key_prefixes`).
    fn key_prefixes(&self) -> std::collections::BTreeMap<String, usize> {
        self.sharing()
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.filter(|(_, p)| *p > 0).map(|(_, p)| (self.nodes[i].name.clone(), p)))
            .collect()
    }

    /// The tasks a run starts, one line each: the head node, its subtasks (threads), the
    /// nodes chained into it (`→`) or sharing it (`+`), and how its input is partitioned.
    pub fn tasks(&self) -> Vec<String> {
        let layout = self.layout();
        let heads = (0..self.nodes.len()).filter(|i| !layout.joins(*i));
        heads
            .map(|hi| {
                let h = &self.nodes[hi];
                let mut line = format!("{} ×{}", h.name, h.parallelism);
                for (m, _) in self.task_members(&layout, hi).into_iter().skip(1) {
                    let sep = if layout.shared[m].is_some() { " +" } else { " →" };
                    line += &format!("{sep} {}", self.nodes[m].name);
                    if layout.merged[m].is_some() {
                        let inputs: Vec<&str> = self.nodes[m].inputs.iter().map(|(u, _)| self.nodes[*u].name.as_str()).collect();
                        line += &format!(" (after {})", inputs.join(", "));
                    }
                }
                if h.keyed {
                    line += " (input partitioned by key)";
                }
                line
            })
            .collect()
    }

    /// The field paths of an operator's `key-by`, when it names fields.
    fn key_fields(&self, node: usize) -> Option<Vec<json::Path>> {
        match self.operator(node)?.key_by.as_ref()? {
            KeyBy::Fields(fs) => Some(fs.iter().map(|f| f.split('.').map(str::to_string).collect()).collect()),
            KeyBy::Selector(_) | KeyBy::RecordKey(_) => None,
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
        self.operator(node).is_some_and(|op| op.stamp.as_ref().is_some_and(|s| s.field.is_some()))
    }

    /// The distinct field sets of the job's key-bys; a set's index is its id in
    /// `Record::prekeys`.
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

    /// The plugin operators (process, map, filter, flat-map) fed by a walk (a source's, or
    /// an operator's that reads event time from a field) that ask for members with
    /// `read-fields`, as the version each runs now answers in `init` (a probe instance, once
    /// per run, of a plugin that imports `read-fields` at all), and the union of the names
    /// they ask for: the one span set (id `SPAN_SET`) a walk that feeds one of them reads
    /// ahead (`field_walk`). Their hosts then walk no record again; a version that asks for
    /// others later (a hot reload) has its host find them itself.
    fn span_readers(&self) -> &(Vec<usize>, Vec<String>) {
        self.span_readers.get_or_init(|| {
            let walkers: Vec<usize> = (0..self.nodes.len()).filter(|&s| self.nodes[s].kind == NodeKind::Source || self.walks(s)).collect();
            let (mut readers, mut union) = (Vec::new(), Vec::<String>::new());
            for (i, node) in self.nodes.iter().enumerate() {
                let plugin = match self.operator(i).map(|op| &op.function) {
                    Some(Function::Process { plugin, .. }) => plugin,
                    Some(Function::Map(p) | Function::Filter(p) | Function::FlatMap(p)) => p,
                    _ => continue,
                };
                if !walkers.iter().any(|&s| self.fed_by(i, s)) || !self.running(plugin, &node.name).may_read_fields {
                    continue;
                }
                // A plugin that does not start says so when its operator starts.
                let names = self.instance(plugin, &node.name, 0).map(|mut p| p.host().read_fields.clone()).unwrap_or_default();
                if !names.is_empty() {
                    readers.push(i);
                    union.extend(names.into_iter().filter(|n| !union.contains(n)).collect::<Vec<_>>());
                }
            }
            (readers, union)
        })
    }

    /// The span set (see [`Planned::span_readers`]) that the source or operator `src` reads
    /// ahead in its walk, if it feeds a plugin that reads members through stateless operators
    /// that do not walk records themselves.
    fn spans_of(&self, src: usize) -> Option<Vec<String>> {
        let (readers, union) = self.span_readers();
        readers.iter().any(|&node| self.fed_by(node, src)).then(|| union.clone())
    }

    /// Whether source `src` leaves what it would read ahead for the operators it feeds
    /// (`field_walk`) to the tasks they run in ([`Planned::read_ahead_in`]): when it reads no
    /// event time from a field, and all it would read ahead is refined keys (see
    /// `weir_runtime::fan::Refine`) and the members plugins ask for, each read in another
    /// task than its own. The source's thread, which every record passes, then walks a
    /// record only to check that it is JSON (where its format says so), and the keyed
    /// tasks, each holding part of the records and otherwise waiting on the source, walk
    /// their own. A source that walks its records for event time, or for a key its routes
    /// partition by, reads everything ahead in that one walk.
    fn leaves_read_ahead(&self, layout: &Layout, src: usize) -> bool {
        let node = &self.nodes[src];
        if node.kind != NodeKind::Source || matches!(self.job.sources[&node.name].event_time, Some(weir_job::EventTime::Field(_))) {
            return false;
        }
        let fed: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.fed_by(i, src)).collect();
        let own = layout.head_of(src);
        let refined_elsewhere = |i: usize| layout.shared[i].is_some_and(|(h, _)| !self.same_key(i, h));
        let keys = fed.iter().all(|&i| self.key_fields(i).is_none() || refined_elsewhere(i));
        let members = fed.iter().all(|&i| self.read_ahead_for(i).is_none() || layout.head_of(i) != own);
        keys && members && (!self.prekeys_of(src).is_empty() || self.spans_of(src).is_some())
    }

    /// What the task headed by `head` reads ahead into its input records on its own thread,
    /// for the sources that leave it that ([`Planned::leaves_read_ahead`]): the refined keys
    /// of its roots and the members its plugins ask for, with their ids, as those sources
    /// would have read them (`field_walk`); `None` where it reads nothing ahead.
    #[allow(clippy::type_complexity)]
    fn read_ahead_in(&self, layout: &Layout, head: usize) -> Option<(Vec<(u16, Vec<json::Path>)>, Option<Vec<String>>)> {
        let leaving: Vec<usize> = (0..self.nodes.len()).filter(|&s| self.leaves_read_ahead(layout, s)).collect();
        let left = |i: usize| leaving.iter().any(|&s| self.fed_by(i, s));
        let members: Vec<usize> = self.task_members(layout, head).into_iter().map(|(m, _)| m).filter(|&m| left(m)).collect();
        let sets = self.key_sets();
        let mut prekeys: Vec<(u16, Vec<json::Path>)> = Vec::new();
        for &m in &members {
            let refines = layout.shared[m].is_some_and(|(h, _)| !self.same_key(m, h));
            let Some(paths) = self.key_fields(m).filter(|_| refines) else { continue };
            let Some(id) = sets.iter().position(|s| *s == paths) else { continue };
            if !prekeys.iter().any(|(have, _)| usize::from(*have) == id) {
                prekeys.push((id as u16, paths));
            }
        }
        let spans = members.iter().find_map(|&m| self.read_ahead_for(m));
        (!prekeys.is_empty() || spans.is_some()).then_some((prekeys, spans))
    }

    /// The span set a walk upstream reads ahead for plugin operator `i`, if it reads members.
    fn read_ahead_for(&self, i: usize) -> Option<Vec<String>> {
        let (readers, union) = self.span_readers();
        readers.contains(&i).then(|| union.clone())
    }

    /// Whether node `i` reads nothing of its input records but their keys and event times: a
    /// window of built-in aggregates that read no field (`count`) on time windows, with no
    /// late output routed anywhere. Records then reach it without their values (Flink SQL's
    /// planner prunes such fields too; a DataStream job cannot know).
    fn reads_only_keys(&self, i: usize) -> bool {
        let Some(Function::Window(w)) = self.operator(i).map(|op| &op.function) else { return false };
        let late_routed = self.nodes.iter().any(|n| n.inputs.iter().any(|(up, side)| *up == i && side.as_deref() == Some(LATE_OUTPUT)));
        let reads_fields = match &w.function {
            WindowFunction::Plugin(_) => true,
            WindowFunction::Aggregates(aggs) => aggs.iter().any(|(_, a)| a.field().is_some()),
        };
        !reads_fields && !late_routed && w.assigner.counting().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::record::Record;
    use weir_core::time::SystemClock;
    use weir_job::TimeUnit;

    fn plan(text: &str) -> Planned {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("job.toml");
        std::fs::write(&path, text).expect("job written");
        let job = Job::load(&path, &[]).expect("a valid job");
        Planned::new(job, RunOptions { clock: Arc::new(SystemClock), restore: None, watch: false }).expect("planned")
    }

    fn node(planned: &Planned, name: &str) -> usize {
        planned.nodes.iter().position(|n| n.name == name).expect("a node")
    }

    /// A collection source `logs` at parallelism 2 with event time from `t`.
    const LOGS_P2: &str =
        "parallelism = 2\n[source.logs]\nkind = \"collection\"\nvalues = [{ user = \"a\", t = 1, x = 2 }]\nevent-time = { field = \"t\" }\n";

    /// A 10 s tumbling window reading `input`, keyed by `key` (TOML), with `extra` lines.
    fn window(name: &str, input: &str, key: &str, extra: &str) -> String {
        format!("[operator.{name}]\nkind = \"window\"\ninput = \"{input}\"\nkey-by = {key}\nwindow = {{ type = \"tumbling\", size = \"10s\" }}\n{extra}\n")
    }

    #[test]
    fn only_windows_that_read_nothing_but_keys_get_records_without_values() {
        let window = |name: &str, extra: &str| window(name, "logs", "\"user\"", extra);
        let planned = plan(&[
            "[source.logs]\nkind = \"collection\"\nvalues = [{ user = \"a\", t = 1, x = 2 }]\nevent-time = { field = \"t\", unit = \"ms\" }\n".to_string(),
            window("counts", "aggregates = { n = \"count\" }"),
            window("plain", ""),
            window("sums", "aggregates = { n = \"count\", total = \"sum(x)\" }"),
            window("late", ""),
            window("pairs", "").replace("key-by = \"user\"", "key-by = [\"user\", \"x\"]"),
            "[operator.slices]\nkind = \"window\"\ninput = \"logs\"\nkey-by = \"user\"\nwindow = { type = \"count\", count = 2 }\n".into(),
            "[sink.out]\nkind = \"discard\"\ninput = \"counts\"\n[sink.late-out]\nkind = \"discard\"\ninput = \"late.late\"\n".into(),
        ]
        .concat());
        let reads_only_keys = |name: &str| planned.reads_only_keys(node(&planned, name));
        assert!(reads_only_keys("counts") && reads_only_keys("plain") && reads_only_keys("pairs"));
        // Aggregates of a field, a late output, count windows: values go.
        for name in ["sums", "late", "slices", "logs"] {
            assert!(!reads_only_keys(name), "{name}");
        }
    }

    /// Print and discard sinks run in their inputs' task, one per subtask, when every input
    /// is a main output read by nothing else and all of them run in that task; the rest keep
    /// tasks of their own.
    #[test]
    fn sinks_run_in_their_inputs_task_where_they_can() {
        let window = |name: &str, key: &str| window(name, "logs", key, "");
        let sink =
            |name: &str, kind: &str, input: &str, extra: &str| format!("[sink.{name}]\nkind = \"{kind}\"\ninput = {input}\n{extra}\n");
        let planned = plan(
            &[
                LOGS_P2.to_string(),
                window("users", "\"user\""),
                window("pairs", "[\"user\", \"x\"]"),
                window("by_x", "\"x\""),
                window("to_file", "\"user\"").replace("tumbling", "sliding\", slide = \"5s"),
                window("twice", "\"x\"").replace("size = \"10s\"", "size = \"20s\""),
                window("own", "\"x\"").replace("size = \"10s\"", "size = \"30s\""),
                window("filed", "\"x\"").replace("size = \"10s\"", "size = \"40s\""),
                window("by_t", "\"t\""),
                sink("apart", "discard", "[\"to_file\", \"by_t\"]", ""),
                sink("rows", "print", "[\"users\", \"pairs\"]", ""),
                sink("mixed", "discard", "[\"by_x\", \"users.late\"]", ""),
                sink("file", "file", "\"filed\"", "path = \"out.jsonl\""),
                sink("a", "discard", "\"twice\"", ""),
                sink("b", "discard", "\"twice\"", ""),
                sink("alone", "discard", "\"own\"", "chain = false"),
            ]
            .concat(),
        );
        let layout = planned.layout();
        let placed = |name: &str| planned.sink_task(&layout, node(&planned, name)).map(|h| planned.nodes[h].name.as_str());
        assert_eq!(placed("rows"), Some("users"), "two inputs in one shared task");
        assert_eq!(planned.nodes[node(&planned, "rows")].parallelism, 2);
        // Inputs in two tasks, a side output, a file, an output read twice, `chain = false`:
        // tasks of their own.
        for alone in ["apart", "mixed", "file", "a", "b", "alone"] {
            assert_eq!(placed(alone), None, "{alone}");
            assert_eq!(planned.nodes[node(&planned, alone)].parallelism, 1, "{alone}");
        }
        // Print and discard hold no state, placed or not: a checkpoint taken with one
        // `chain` setting restores with the other. A file sink's parallelism stays.
        let stateless = |name: &str| planned.nodes[node(&planned, name)].stateless;
        assert!(stateless("rows") && stateless("alone") && stateless("a") && !stateless("file"));
        let tasks = planned.tasks();
        assert!(
            tasks.contains(&"users ×2 + pairs + to_file → rows (after users, pairs) (input partitioned by key)".to_string()),
            "{tasks:?}"
        );
        assert!(tasks.contains(&"by_x ×2 + twice + own + filed (input partitioned by key)".to_string()), "{tasks:?}");
        assert!(tasks.contains(&"mixed ×1".to_string()), "{tasks:?}");

        // One input: chained after it, also behind a source.
        let planned = plan(
            &["[source.logs]\nkind = \"generator\"\ncount = 1\nparallelism = 3\n".to_string(), sink("out", "print", "\"logs\"", "")]
                .concat(),
        );
        assert_eq!(planned.tasks()[0], "logs ×3 → out");
    }

    /// Keyed operators reading one input at one parallelism share a task when their keys
    /// all refine the coarsest; the rest keep tasks of their own.
    #[test]
    fn keyed_siblings_share_a_task_when_their_keys_refine_one() {
        let identity = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist/identity.wasm");
        let planned = plan(
            &[
                LOGS_P2.to_string(),
                format!("[operator.parse]\nkind = \"map\"\ninput = \"logs\"\nplugin = \"{}\"\n", identity.display()),
                // Listed before the coarser key: the coarsest heads all the same.
                window("pairs", "parse", "[\"user\", \"x\"]", ""),
                window("users", "parse", "\"user\"", ""),
                window("users_again", "parse", "[\"user\"]", ""),
                window("by_x", "parse", "\"x\"", ""),
                window("own", "parse", "\"user\"", "chain = false"),
                window("wider", "parse", "\"user\"", "parallelism = 3"),
                window("elsewhere", "logs", "\"user\"", ""),
            ]
            .concat(),
        );
        let shared = planned.sharing();
        let share = |name: &str| shared[node(&planned, name)].map(|(h, prefix)| (planned.nodes[h].name.as_str(), prefix));
        assert_eq!(share("users"), None, "the head");
        assert_eq!(share("users_again"), Some(("users", 0)));
        assert_eq!(share("pairs"), Some(("users", 1)));
        for alone in ["by_x", "own", "wider", "elsewhere"] {
            assert_eq!(share(alone), None, "{alone}");
        }
        assert_eq!(planned.key_groups(node(&planned, "pairs")), KeyGroups { max_parallelism: 128, prefix: 1 });
        assert!(
            planned.tasks().contains(&"users ×2 + pairs + users_again (input partitioned by key)".to_string()),
            "{:?}",
            planned.tasks()
        );
        // `pairs` reads its key from the values: the shared input keeps them.
        assert!(!planned.input_drops_values(&planned.layout(), node(&planned, "users")));

        // Counting windows with the head's key get the input without values; one keyed by a
        // field that must lead with the record's key reads that field from the value.
        let by = |key: &str| {
            format!(
                "[source.logs]\nkind = \"collection\"\nvalues = [{{ user = \"a\", t = 1 }}]\nevent-time = {{ field = \"t\" }}\n{}{}",
                window("a", "logs", key, ""),
                window("b", "logs", key, "")
            )
        };
        for key in ["{ record-key = \"user\" }", "\"user\""] {
            let planned = plan(&by(key));
            assert!(planned.input_drops_values(&planned.layout(), node(&planned, "a")), "{key}");
        }
        let mixed = plan(&format!("{}{}", by("{ record-key = \"user\" }"), window("c", "logs", "\"user\"", "")));
        assert_eq!(mixed.sharing()[node(&mixed, "c")].map(|(h, p)| (mixed.nodes[h].name.as_str(), p)), Some(("a", 0)));
        assert!(!mixed.input_drops_values(&mixed.layout(), node(&mixed, "a")), "`c` checks its `user` against the record's key");
    }

    /// Key-by fields are read ahead by the last walk before them: an operator that reads an
    /// event-time field reads those of the keyed operators after it, and the source only those
    /// it reaches past operators that do not walk.
    #[test]
    fn key_bys_are_read_ahead_by_the_last_walk_before_them() {
        let identity = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist/identity.wasm");
        let map = |name: &str, extra: &str| {
            format!("[operator.{name}]\nkind = \"map\"\ninput = \"logs\"\nplugin = \"{}\"\n{extra}\n", identity.display())
        };
        let window = |name: &str, input: &str, key: &str| window(name, input, key, "");
        let planned = plan(
            &[
                "[source.logs]\nkind = \"collection\"\nvalues = [{ user = \"a\", t = 1, x = 2 }]\n".to_string(),
                map("parse", "event-time = { field = \"t\" }"),
                map("plain", ""),
                window("by_user", "parse", "\"user\""),
                window("by_pair", "plain", "[\"user\", \"x\"]"),
            ]
            .concat(),
        );
        let read = |name: &str| planned.prekeys_of(node(&planned, name)).into_iter().map(|(_, p)| p).collect::<Vec<_>>();
        let path = |f: &str| vec![f.to_string()];
        assert_eq!(read("logs"), [vec![path("user"), path("x")]]);
        assert_eq!(read("parse"), [vec![path("user")]]);

        // The walk reads event time and keys at once, and leaves a key read ahead upstream.
        let field = weir_job::TimeField { path: "t".into(), unit: TimeUnit::Seconds };
        let mut walk = build::field_walk(Some(field), vec![(3, vec![path("user")])], None, false);
        let mut r = Record::new(br#"{"user": "a", "t": 5}"#.to_vec());
        walk(&mut r).expect("walked");
        assert_eq!((r.timestamp, r.prekeys.to_vec()), (Some(5000), vec![(3, weir_core::record::Key::from_slice(b"a"))]));
        walk(&mut r).expect("walked again");
        assert_eq!(r.prekeys.len(), 1, "a key read ahead already is not read again");
        assert_eq!(walk(&mut Record::new(b"{".to_vec())).unwrap_err().split(':').next(), Some("not JSON"));
    }

    /// The members a process plugin asks for (`read-fields`) are read ahead by the walk
    /// before it, in the same walk as event time and keys: where each lies in the value,
    /// `(0, 0)` where it is absent or repeated.
    #[test]
    fn the_members_a_process_plugin_reads_are_read_ahead_with_the_keys() {
        let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist");
        let planned = plan(&format!(
            "[source.logs]\nkind = \"collection\"\nvalues = [{{ user = \"a\", t = 1 }}]\nevent-time = {{ field = \"t\" }}\n\n[operator.trace]\nkind = \"process\"\ninput = \"logs\"\nkey-by = \"user\"\nplugin = \"{}\"\nconfig = {{ read_fields = [\"x\", \"user\", \"n\"] }}\n\n[operator.pass]\nkind = \"map\"\ninput = \"logs\"\nplugin = \"{}\"\n",
            dist.join("event_trace.wasm").display(),
            dist.join("passthrough.wasm").display()
        ));
        let names = |ns: &[&str]| ns.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let set = names(&["x", "user", "n"]);
        assert_eq!(planned.spans_of(node(&planned, "logs")).as_ref(), Some(&set));
        // Only a plugin that imports `read-fields` is probed: the map that never asks is not.
        let may = |name: &str| match &planned.job.operators[name].function {
            Function::Process { plugin, .. } | Function::Map(plugin) => planned.running(plugin, name).may_read_fields,
            _ => unreachable!("a plugin operator"),
        };
        assert_eq!((may("trace"), may("pass")), (true, false));
        assert_eq!(planned.span_readers().0, [node(&planned, "trace")]);

        let field = weir_job::TimeField { path: "t".into(), unit: TimeUnit::Seconds };
        let path = |f: &str| vec![f.to_string()];
        let mut walk = build::field_walk(Some(field), vec![(0, vec![path("user")])], Some(set), false);
        let text = r#"{"user": "ab", "t": 5, "x": [1], "x": 2}"#;
        let mut r = Record::new(text.as_bytes().to_vec());
        walk(&mut r).expect("walked");
        let mut spans = [0; 6];
        assert_eq!(weir_core::record::read_spans(&r.prekeys[1].1, &mut spans), Some(4), "four members, a repeat counted");
        assert_eq!(
            (r.timestamp, r.prekeys[0].clone(), r.prekeys[1].0),
            (Some(5000), (0, weir_core::record::Key::from_slice(b"ab")), weir_core::record::SPAN_SET)
        );
        assert_eq!(&text[spans[2] as usize..spans[3] as usize], r#""ab""#);
        assert_eq!([spans[0], spans[1], spans[4], spans[5]], [0; 4], "a repeated and an absent member have none");
    }

    /// A source that reads no event time from its records leaves the refined keys and the
    /// members plugins read to the keyed task that reads them, which walks its own share of
    /// the records; one that walks them for event time, or for the key its route partitions
    /// by, reads everything ahead in that walk.
    #[test]
    fn a_source_that_reads_no_event_time_leaves_refined_keys_and_members_to_the_keyed_task() {
        let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist");
        let job = |event_time: &str, head_key: &str| {
            [
                format!("parallelism = 2\n[source.logs]\nkind = \"collection\"\nvalues = [{{ user = \"a\", t = 1, x = 2 }}]\n{event_time}\n"),
                format!("[operator.parse]\nkind = \"map\"\ninput = \"logs\"\nplugin = \"{}\"\n", dist.join("identity.wasm").display()),
                window("users", "parse", head_key, ""),
                window("pairs", "parse", "[\"user\", \"x\"]", ""),
                format!(
                    "[operator.trace]\nkind = \"process\"\ninput = \"parse\"\nkey-by = {head_key}\nplugin = \"{}\"\nconfig = {{ read_fields = [\"x\", \"user\"] }}\n",
                    dist.join("event_trace.wasm").display()
                ),
            ]
            .concat()
        };
        let path = |f: &str| vec![f.to_string()];
        let names = vec!["x".to_string(), "user".to_string()];

        let planned = plan(&job("", "{ record-key = \"user\" }"));
        let layout = planned.layout();
        let (logs, users) = (node(&planned, "logs"), node(&planned, "users"));
        assert!(planned.tasks().contains(&"users ×2 + pairs + trace (input partitioned by key)".to_string()), "{:?}", planned.tasks());
        assert!(planned.leaves_read_ahead(&layout, logs));
        let pairs_id = planned.key_sets().iter().position(|s| *s == [path("user"), path("x")]).expect("a key set") as u16;
        assert_eq!(planned.read_ahead_in(&layout, users), Some((vec![(pairs_id, vec![path("user"), path("x")])], Some(names.clone()))));

        // The walk a task makes: keys and members, none of which fails a record.
        let (prekeys, spans) = planned.read_ahead_in(&layout, users).expect("a walk");
        let mut walk = build::read_ahead(prekeys, spans);
        let mut r = Record::new(br#"{"user": "a", "x": 2}"#.to_vec());
        walk(&mut r);
        assert_eq!(r.prekeys[0], (pairs_id, weir_core::record::Key::from_slice(br#"["a",2]"#)));
        let mut spans = [0; 4];
        assert_eq!(weir_core::record::read_spans(&r.prekeys[1].1, &mut spans), Some(2));
        assert_eq!(spans, [19, 20, 9, 12]);
        let mut not_json = Record::new(b"{".to_vec());
        walk(&mut not_json);
        assert!(not_json.prekeys.is_empty());

        // Event time read from a field, or a head keyed by a field: the source's walk reads
        // it all, and the task reads nothing ahead.
        for planned in [plan(&job("event-time = { field = \"t\" }", "{ record-key = \"user\" }")), plan(&job("", "\"user\""))] {
            let layout = planned.layout();
            assert!(!planned.leaves_read_ahead(&layout, node(&planned, "logs")));
            assert_eq!(planned.read_ahead_in(&layout, node(&planned, "users")), None);
            assert_eq!(planned.spans_of(node(&planned, "logs")), Some(names.clone()));
        }
    }
}
