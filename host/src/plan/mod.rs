//! From a checked job to running tasks: the graph of nodes with their parallelism
//! (here), the operators, sources and sinks each subtask runs ([`build`]), and the run:
//! channels, routes, chains, threads and the checkpoint coordinator ([`run`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use weir_core::json;
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
        Ok(Planned { job, nodes, plugins, opts, metrics, node_metrics, reloads })
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
        if self.operator(i).is_some_and(|op| !op.chain) {
            return None;
        }
        let up = n.inputs[0].0;
        let readers = self.nodes.iter().filter(|m| m.inputs.iter().any(|(u, side)| *u == up && side.is_none())).count();
        (readers == 1 && self.nodes[up].parallelism == n.parallelism && self.nodes[up].kind != NodeKind::Sink).then_some(up)
    }

    /// For each node, the node it chains into (see [`Self::chains_into`]).
    fn chaining(&self) -> Vec<Option<usize>> {
        (0..self.nodes.len()).map(|i| self.chains_into(i)).collect()
    }

    /// The nodes of the task headed by `head`, in chain order.
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
        let chained = self.chaining();
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

    #[test]
    fn only_windows_that_read_nothing_but_keys_get_records_without_values() {
        let window = |name: &str, extra: &str| {
            format!("[operator.{name}]\nkind = \"window\"\ninput = \"logs\"\nkey-by = \"user\"\nwindow = {{ type = \"tumbling\", size = \"10s\" }}\n{extra}\n")
        };
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

    /// Key-by fields are read ahead by the last walk before them: an operator that reads an
    /// event-time field reads those of the keyed operators after it, and the source only those
    /// it reaches past operators that do not walk.
    #[test]
    fn key_bys_are_read_ahead_by_the_last_walk_before_them() {
        let identity = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist/identity.wasm");
        let map = |name: &str, extra: &str| {
            format!("[operator.{name}]\nkind = \"map\"\ninput = \"logs\"\nplugin = \"{}\"\n{extra}\n", identity.display())
        };
        let window = |name: &str, input: &str, key: &str| {
            format!("[operator.{name}]\nkind = \"window\"\ninput = \"{input}\"\nkey-by = {key}\nwindow = {{ type = \"tumbling\", size = \"10s\" }}\n")
        };
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
        let mut walk = build::field_walk(Some(field), vec![(3, vec![path("user")])], false);
        let mut r = Record::new(br#"{"user": "a", "t": 5}"#.to_vec());
        walk(&mut r).expect("walked");
        assert_eq!((r.timestamp, r.prekeys.to_vec()), (Some(5000), vec![(3, weir_core::record::Key::from_slice(b"a"))]));
        walk(&mut r).expect("walked again");
        assert_eq!(r.prekeys.len(), 1, "a key read ahead already is not read again");
        assert_eq!(walk(&mut Record::new(b"{".to_vec())).unwrap_err().split(':').next(), Some("not JSON"));
    }
}
