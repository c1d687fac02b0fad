//! A run: channels and routes between tasks, each task's chain built (plugins instantiated,
//! state restored) before any thread starts, one thread per task, the checkpoint coordinator
//! and the control endpoint beside them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::Context as _;
use crossbeam_channel::{bounded, Receiver, Sender};
use weir_core::operator::{Operator, SourceSnapshot, SOURCE_SNAPSHOT};
use weir_core::status::RunState;
use weir_job::Backend;
use weir_runtime::checkpoint::{self, Ack, Control, Coordinator, JobFacts, Metadata};
use weir_runtime::fan::{Refine, Share};
use weir_runtime::route::KeyExtractor;
use weir_runtime::{Chain, ChainLink, Envelope, InputTask, Partitioner, Route, SourceControl, CHANNEL_CAPACITY};
use weir_state::key_groups_of;

use super::{build, Layout, NodeKind, Planned, RunReport};

/// What a key-group prefix means, for an error.
fn describe_prefix(prefix: usize) -> String {
    match prefix {
        0 => "its whole key".into(),
        1 => "its key's first field".into(),
        n => format!("its key's first {n} fields"),
    }
}

/// How often `--watch` looks at the plugin files.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// The channels of a run and the routes into them, before tasks take them.
struct Wiring {
    /// Per node, one sender per subtask of a task head (none for chained nodes and sources).
    txs: Vec<Vec<Sender<Envelope>>>,
    rxs: Vec<Vec<Option<Receiver<Envelope>>>>,
    /// Input channels of each head so far; edges take indexes in a fixed order.
    inputs: Vec<u32>,
    /// `(node, side output)` → per upstream subtask, its routes.
    routes: HashMap<(usize, Option<String>), Vec<Vec<Route>>>,
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

/// How the coordinator reaches the tasks.
#[derive(Default)]
struct Steering {
    sources: Vec<Sender<Control>>,
    tasks: Vec<Sender<Control>>,
}

impl Planned {
    /// The checkpoint to restore from, checked against this job.
    fn restore_point(&self) -> anyhow::Result<Option<(Metadata, PathBuf)>> {
        let Some(what) = &self.opts.restore else { return Ok(None) };
        let Some((m, p)) = checkpoint::resolve(self.job.checkpoint_dir.as_deref(), what)? else { return Ok(None) };
        anyhow::ensure!(
            m.max_parallelism == self.job.max_parallelism,
            "checkpoint {} is incompatible: it has {} key groups, the job {} (max-parallelism must stay the same)",
            p.display(),
            m.max_parallelism,
            self.job.max_parallelism
        );
        eprintln!("weir: restoring from {}", p.display());
        if m.versions.is_empty() {
            // A checkpoint of a weir without versions per operator: say what changed.
            for (path, hash) in &m.plugins {
                if let Some(now) = self.plugins.get(&PathBuf::from(path)) {
                    if now.hash != *hash {
                        eprintln!("weir: plugin {path} changed since checkpoint {} (hash {hash} → {}); its state is kept", m.id, now.hash);
                    }
                }
            }
        }
        // Keyed state sits in key groups chosen by the key's leading fields when its operator
        // shares a task with a coarser key: a restore must choose them alike.
        let now = self.key_prefixes();
        for (i, n) in self.nodes.iter().enumerate().filter(|(_, n)| n.keyed && m.parallelism.contains_key(&n.name)) {
            let (then, now) = (m.key_prefixes.get(&n.name).copied().unwrap_or(0), now.get(&n.name).copied().unwrap_or(0));
            if then != now {
                let fix = match self.layout().shared[i] {
                    Some((h, _)) => format!("set `chain = false` on `{}` to run it in a task of its own, as it ran then (its state is keyed by its whole key there, not `{}`'s)", n.name, self.nodes[h].name),
                    None => format!("remove `chain = false` from `{}`, so that it shares a task as it did then", n.name),
                };
                anyhow::bail!(
                    "checkpoint {} cannot restore `{}`: its state sits in the key groups of {} there and of {} now; {fix}, or start without --restore",
                    p.display(),
                    n.name,
                    describe_prefix(then),
                    describe_prefix(now)
                );
            }
        }
        self.reloads.restore_versions(&m, &p)?;
        Ok(Some((m, p)))
    }

    /// Restores link `m` of subtask `s` from checkpoint `chk`.
    fn restore_link(&self, op: &mut dyn Operator, m: usize, s: usize, meta: &Metadata, chk: &Path) -> anyhow::Result<()> {
        let node = &self.nodes[m];
        let Some(&old_p) = meta.parallelism.get(&node.name) else { return Ok(()) };
        if node.kind == NodeKind::Source {
            // A source's position is restored with its reader (`Planned::start`).
            return Ok(());
        }
        let maxp = self.job.max_parallelism;
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

    /// Channels for every subtask of each task head, and the routes of every edge into them.
    fn wire(&self, layout: &Layout) -> anyhow::Result<Wiring> {
        let n = self.nodes.len();
        let mut w = Wiring { txs: vec![vec![]; n], rxs: vec![vec![]; n], inputs: vec![0; n], routes: HashMap::new() };
        for (i, node) in self.nodes.iter().enumerate() {
            if !layout.joins(i) && node.kind != NodeKind::Source {
                for _ in 0..node.parallelism {
                    let (tx, rx) = bounded(CHANNEL_CAPACITY);
                    w.txs[i].push(tx);
                    w.rxs[i].push(Some(rx));
                }
            }
        }
        for (ci, c) in self.nodes.iter().enumerate() {
            if layout.joins(ci) {
                continue;
            }
            let drop_values = self.input_drops_values(layout, ci);
            for (up, side) in &c.inputs {
                let upp = self.nodes[*up].parallelism;
                let forward = !c.keyed && c.parallelism == upp && c.parallelism > 1;
                let base = w.inputs[ci];
                w.inputs[ci] += if forward { 1 } else { upp as u32 };
                let per_sub = w.routes.entry((*up, side.clone())).or_insert_with(|| (0..upp).map(|_| Vec::new()).collect());
                for (u, rs) in per_sub.iter_mut().enumerate() {
                    let (senders, channel, partitioner, drop_values) = if forward {
                        (vec![w.txs[ci][u].clone()], base, Partitioner::Forward, false)
                    } else if c.keyed {
                        let by_key = Partitioner::Hash(self.key_extractor(ci)?, self.job.max_parallelism);
                        (w.txs[ci].clone(), base + u as u32, by_key, drop_values)
                    } else if c.parallelism == 1 {
                        (w.txs[ci].clone(), base + u as u32, Partitioner::Forward, false)
                    } else {
                        (w.txs[ci].clone(), base + u as u32, Partitioner::Rebalance(u), false)
                    };
                    rs.push(Route { senders, channel, partitioner, drop_values });
                }
            }
        }
        Ok(w)
    }

    /// The chain of subtask `s` of the task headed by `hi`: each member's operator (state
    /// restored) with the routes of its outputs.
    fn chain(
        &self,
        members: &[(usize, Option<usize>)],
        s: usize,
        w: &mut Wiring,
        restore: Option<&(Metadata, PathBuf)>,
    ) -> anyhow::Result<Vec<ChainLink>> {
        let mut links = Vec::new();
        for &(m, next) in members {
            let mut take = |side: Option<String>| w.routes.get_mut(&(m, side)).map(|v| std::mem::take(&mut v[s])).unwrap_or_default();
            let main = if next.is_none() { take(None) } else { Vec::new() };
            let mut sides: Vec<(String, Vec<Route>)> = Vec::new();
            let side_names = self.nodes.iter().flat_map(|n| n.inputs.iter()).filter(|(u, _)| *u == m).filter_map(|(_, side)| side.clone());
            for name in side_names {
                if !sides.iter().any(|(n, _)| *n == name) {
                    sides.push((name.clone(), take(Some(name))));
                }
            }
            let name = &self.nodes[m].name;
            let mut op = self.make_operator(m, s).with_context(|| format!("starting `{name}` (subtask {s})"))?;
            if let Some((meta, chk)) = restore {
                let t = Instant::now();
                self.restore_link(op.as_mut(), m, s, meta, chk)
                    .with_context(|| format!("restoring `{name}` (subtask {s}) from {}", chk.display()))?;
                self.metrics.checkpoints.restore_ms.fetch_add(t.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
            links.push(ChainLink { name: name.clone(), op, main, next, sides, metrics: self.node_metrics[m].clone(), last_output: 0 });
        }
        Ok(links)
    }

    /// How root `m` of a shared task receives the task's input (see `weir_runtime::fan`).
    fn share(&self, layout: &Layout, m: usize) -> anyhow::Result<Share> {
        let Some((head, prefix)) = layout.shared[m] else { return Ok(Share::default()) };
        let extractor = self.key_extractor(m)?;
        let refine = match extractor {
            KeyExtractor::Fields(paths, id) if !self.same_key(m, head) => {
                let (name, h) = (&self.nodes[m].name, &self.nodes[head].name);
                let remedy = format!("`{name}` shares the task of `{h}`, whose input is partitioned by `{h}`'s key; give `{name}` `chain = false` to partition its input by its own key");
                Some(Refine { paths, id, prefix, remedy })
            }
            _ => None,
        };
        let key_fields = self.key_fields(m).map_or(0, |f| f.len());
        Ok(Share { refine, drop_values: self.reads_only_keys(m), key_fields })
    }

    /// Every task of the run, built before any thread starts.
    fn build_tasks(
        &self,
        layout: &Layout,
        w: &mut Wiring,
        restore: Option<&(Metadata, PathBuf)>,
        acks: Option<&Sender<Ack>>,
        steering: &mut Steering,
    ) -> anyhow::Result<Vec<Task>> {
        let sources = Arc::new(self.job.sources.iter().map(|(n, s)| (n.clone(), s.connector.describe_split())).collect::<Vec<_>>());
        let dead_letter = self.nodes.len() - 1;
        let mut tasks = Vec::new();
        for (hi, h) in self.nodes.iter().enumerate() {
            if layout.joins(hi) {
                continue;
            }
            let members = self.task_members(layout, hi);
            let read_ahead = self.read_ahead_in(layout, hi);
            for s in 0..h.parallelism {
                let links = self.chain(&members, s, w, restore)?;
                let roots = members
                    .iter()
                    .enumerate()
                    .filter(|(_, (m, _))| *m == hi || layout.shared[*m].is_some())
                    .map(|(pos, &(m, _))| Ok((pos, self.share(layout, m)?)))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let dead_letter = (!matches!(h.kind, NodeKind::Sink | NodeKind::DeadLetter)).then(|| {
                    let channel = w.inputs[dead_letter];
                    w.inputs[dead_letter] += 1;
                    Route { senders: w.txs[dead_letter].clone(), channel, partitioner: Partitioner::Forward, drop_values: false }
                });
                let control = acks.map(|_| {
                    let (tx, rx) = crossbeam_channel::unbounded();
                    match h.kind {
                        NodeKind::Source => steering.sources.push(tx),
                        _ => steering.tasks.push(tx),
                    }
                    rx
                });
                let read_ahead = read_ahead.clone().map(|(prekeys, spans)| build::read_ahead(prekeys, spans));
                let chain = Chain { links, roots, dead_letter, sources: sources.clone(), subtask: s, acks: acks.cloned(), read_ahead };
                let rx = if h.kind == NodeKind::Source { None } else { w.rxs[hi][s].take() };
                tasks.push(Task { name: format!("{}#{s}", h.name), chain, rx, head: hi, subtask: s, control });
            }
        }
        Ok(tasks)
    }

    /// Starts a thread per task; a source task opens its reader here (and seeks it to the
    /// restored position).
    fn start(
        &self,
        tasks: Vec<Task>,
        inputs: &[u32],
        restore: Option<&(Metadata, PathBuf)>,
        run: &Arc<RunState>,
        ended: &Arc<AtomicUsize>,
        stop: &Arc<AtomicBool>,
    ) -> anyhow::Result<Vec<JoinHandle<()>>> {
        let batch_size = self.job.batch_size;
        let mode = self.job.checkpoint.as_ref().map(|c| c.mode).unwrap_or_default();
        let mut handles = Vec::new();
        for Task { name, chain, rx, head: hi, subtask: s, control } in tasks {
            let mut src = if self.nodes[hi].kind == NodeKind::Source { Some(self.source(hi, s)?) } else { None };
            if let (Some((source, time, _)), Some((meta, chk))) = (&mut src, restore) {
                let node = &self.nodes[hi].name;
                let read = |j: usize| -> anyhow::Result<SourceSnapshot> {
                    let f = chk.join(format!("{node}-{j}")).join(SOURCE_SNAPSHOT);
                    let raw = std::fs::read(&f).with_context(|| format!("restoring source `{node}`: {} is missing", f.display()))?;
                    serde_json::from_slice(&raw).with_context(|| format!("{} is not a source snapshot", f.display()))
                };
                let old = meta.parallelism.get(node).copied().unwrap_or(self.nodes[hi].parallelism);
                if old == self.nodes[hi].parallelism {
                    let snap = read(s)?;
                    source.seek(&snap.position).with_context(|| format!("restoring source `{node}`"))?;
                    if snap.watermark.is_some() {
                        time.generator = snap.watermark;
                    }
                } else {
                    // At another parallelism, each reader takes its part of every old one's
                    // position (Kafka partitions move with their offsets); watermarks start anew.
                    let all = (0..old).map(|j| read(j).map(|snap| snap.position)).collect::<anyhow::Result<Vec<_>>>()?;
                    source
                        .seek_all(&all)
                        .with_context(|| format!("restoring source `{node}` (parallelism {old} → {})", self.nodes[hi].parallelism))?;
                }
            }
            let (run, clock, inputs) = (run.clone(), self.opts.clock.clone(), inputs[hi] as usize);
            let (ended, stop) = (ended.clone(), stop.clone());
            let handle = std::thread::Builder::new().name(name.clone()).spawn(move || {
                let res = match (src, rx) {
                    (Some((source, time, rate)), _) => {
                        let ctl = SourceControl { control, ended: Some(ended), stop: Some(stop) };
                        weir_runtime::run_source_task(source, time, chain, batch_size, rate, ctl, run.clone())
                    }
                    (None, Some(rx)) => {
                        weir_runtime::run_input_task(chain, InputTask { rx, inputs: inputs.max(1), control, mode }, clock, run.clone())
                    }
                    (None, None) => Ok(()),
                };
                if let Err(e) = res {
                    run.fail(&name, &e);
                }
            })?;
            handles.push(handle);
        }
        Ok(handles)
    }

    /// Runs the job to its end.
    /// What the HTTP endpoint shows of this run: the graph and the live counters.
    fn web_job(&self, started: Instant) -> weir_runtime::web::Job {
        let graph = self
            .nodes
            .iter()
            .map(|n| weir_runtime::web::GraphNode {
                name: n.name.clone(),
                kind: match n.kind {
                    NodeKind::Source => "source",
                    NodeKind::Operator => "operator",
                    NodeKind::Sink => "sink",
                    NodeKind::DeadLetter => "dead-letter",
                },
                parallelism: n.parallelism,
                inputs: n
                    .inputs
                    .iter()
                    .map(|(i, side)| match side {
                        Some(side) => format!("{}.{side}", self.nodes[*i].name),
                        None => self.nodes[*i].name.clone(),
                    })
                    .collect(),
            })
            .collect();
        // Reloads swap at a checkpoint barrier: without checkpoints there are none.
        let commands = self.job.checkpoint.is_some().then(|| self.reloads.clone() as Arc<dyn weir_runtime::control::Commands>);
        weir_runtime::web::Job { name: self.job.name.clone(), graph, metrics: self.metrics.clone(), started, commands }
    }

    pub fn run(self) -> anyhow::Result<RunReport> {
        let started = Instant::now();
        let restore = self.restore_point()?;
        if let Some(dir) = &self.job.checkpoint_dir {
            checkpoint::check_writable(dir)?;
        }
        let layout = self.layout();
        let mut wiring = self.wire(&layout)?;
        let (ack_tx, ack_rx) = crossbeam_channel::unbounded();
        let mut steering = Steering::default();
        let acks = self.job.checkpoint.as_ref().map(|_| &ack_tx);
        let tasks = self.build_tasks(&layout, &mut wiring, restore.as_ref(), acks, &mut steering)?;
        // Dead-letter routes took their channels as the tasks were built: count them now.
        let inputs = std::mem::take(&mut wiring.inputs);
        drop(wiring);
        drop(ack_tx);
        let expected = tasks.len();
        let run = Arc::new(RunState::default());
        let sources_ended = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        // The metrics endpoint answers from before the first record to after the last.
        let web = match &self.job.metrics {
            Some(m) => {
                let endpoint = weir_runtime::web::serve(m.addr, self.web_job(started))?;
                let token = match &endpoint.token_file {
                    Some(f) => format!(" (the dashboard's reload asks for the token in {})", f.display()),
                    None => String::new(),
                };
                eprintln!("weir: dashboard at http://{0}/, metrics at http://{0}/metrics{token}", endpoint.addr);
                Some((endpoint, m.linger))
            }
            None => None,
        };
        let handles = self.start(tasks, &inputs, restore.as_ref(), &run, &sources_ended, &stop)?;
        let done = Arc::new(AtomicBool::new(false));
        let mut control = None;
        let mut watch = None;
        let coordinator = match self.job.checkpoint.clone() {
            Some(cfg) => {
                let (swaps_tx, swaps) = crossbeam_channel::unbounded();
                let hold = Arc::new(AtomicBool::new(false));
                let versions = self.reloads.link(swaps_tx, hold.clone(), &cfg.dir);
                let facts = JobFacts {
                    job: self.job.name.clone(),
                    max_parallelism: self.job.max_parallelism,
                    parallelism: self.nodes.iter().map(|n| (n.name.clone(), n.parallelism)).collect(),
                    plugins: self.plugins.iter().map(|(p, pl)| (p.display().to_string(), pl.hash.clone())).collect(),
                    versions,
                    key_prefixes: self.key_prefixes(),
                };
                let (req_tx, requests) = crossbeam_channel::unbounded();
                if let Some(addr) = self.job.control {
                    control = Some(weir_runtime::control::serve(addr, req_tx, self.reloads.clone(), done.clone())?);
                }
                if self.opts.watch {
                    watch = Some(self.reloads.clone().watch(done.clone(), WATCH_EVERY)?);
                }
                let c = Coordinator {
                    cfg,
                    sources: steering.sources,
                    tasks: steering.tasks,
                    acks: ack_rx,
                    requests,
                    swaps,
                    hold,
                    expected,
                    facts,
                    done: done.clone(),
                    sources_ended,
                    stop,
                    run: run.clone(),
                    metrics: self.metrics.checkpoints.clone(),
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
        done.store(true, Ordering::SeqCst);
        if let Some(c) = control {
            c.join();
        }
        if let Some(w) = watch {
            let _ = w.join();
        }
        if let Some(c) = coordinator {
            match c.join() {
                Ok(Err(e)) => run.fail("checkpoint coordinator", &e),
                Err(_) => run.fail("checkpoint coordinator", &anyhow::anyhow!("panicked")),
                Ok(Ok(())) => {}
            }
        }
        if let Some((endpoint, linger)) = web {
            endpoint.finish(linger);
        }
        if self.job.state.backend == Backend::Rocksdb && self.job.state.dir.is_none() {
            let _ = std::fs::remove_dir_all(self.state_dir());
        }
        if let Some(e) = run.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            anyhow::bail!(e);
        }
        Ok(RunReport { metrics: self.metrics.clone(), elapsed: started.elapsed() })
    }
}
