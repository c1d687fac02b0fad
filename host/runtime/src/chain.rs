//! Chains: the operators of one task, one subtask each, run on the task's thread, each with
//! the routes of its outputs. The task's input feeds its roots (one, or several keyed
//! operators sharing the task: see [`crate::fan`]); each link's main output feeds the link
//! chained after it, or leaves by its routes.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use base64::Engine as _;
use crossbeam_channel::Sender;

use crate::checkpoint::Ack;
use weir_core::operator::{Operator, Output};
use weir_core::record::{Batch, BatchBuilder, Record};
use weir_core::status::NodeMetrics;

use crate::fan::Share;
use crate::route::Route;

/// One operator of a chain with the routes of its outputs.
pub struct ChainLink {
    /// Node name (for metrics and dead letters).
    pub name: String,
    /// The operator.
    pub op: Box<dyn Operator>,
    /// Routes of the main output (empty when a link is chained after it).
    pub main: Vec<Route>,
    /// The link chained after it, fed its main output.
    pub next: Option<usize>,
    /// Routes of side outputs, by name.
    pub sides: Vec<(String, Vec<Route>)>,
    /// The node's counters.
    pub metrics: Arc<NodeMetrics>,
    /// How many records the link's last call emitted: the next call's main output starts
    /// with room for as many (a window emits about a row per record in some jobs, and a
    /// batch grown from empty is reallocated about ten times on the way to 1,024 records).
    pub last_output: usize,
}

/// A chain of operators for one subtask, plus the dead-letter route.
pub struct Chain {
    /// The links, each before those chained after it.
    pub links: Vec<ChainLink>,
    /// The links the task's input feeds, each with how it receives it.
    pub roots: Vec<(usize, Share)>,
    /// Where dead letters go (dead-letter sink node).
    pub dead_letter: Option<Route>,
    /// Source index → its name and what names its splits, for dead letters.
    pub sources: Arc<Vec<(String, Option<weir_core::operator::DescribeSplit>)>>,
    /// This chain's subtask index.
    pub subtask: usize,
    /// Where checkpoint acknowledgements go (none without checkpoints).
    pub acks: Option<Sender<Ack>>,
    /// Reads ahead into each input record what the roots read of it (keys, members), on
    /// this task's thread, where the source left that to the task (see the planner).
    pub read_ahead: Option<ReadAhead>,
}

/// A walk over a record's value that notes in `Record::prekeys` what operators read of it.
pub type ReadAhead = Box<dyn FnMut(&mut Record) + Send>;

impl Chain {
    /// Sends dead letters of link `i` to the dead-letter output (and counts them).
    pub(crate) fn send_dead(&mut self, i: usize, dead: Vec<(Record, String)>) -> anyhow::Result<()> {
        if dead.is_empty() {
            return Ok(());
        }
        let node = self.links[i].name.clone();
        let metrics = &self.links[i].metrics;
        metrics.dead_letters.fetch_add(dead.len() as u64, Ordering::Relaxed);
        let entries: Vec<serde_json::Value> = dead
            .into_iter()
            .map(|(r, reason)| {
                let mut entry = serde_json::json!({
                    "operator": node,
                    "source": self.sources.get(usize::from(r.origin.source)).map(|s| s.0.clone()).unwrap_or_default(),
                    "position": r.origin.position,
                    "reason": reason,
                    "value": String::from_utf8_lossy(&r.value),
                });
                if let Some(describe) = self.sources.get(usize::from(r.origin.source)).and_then(|s| s.1.as_ref()) {
                    if let Some(entry) = entry.as_object_mut() {
                        entry.extend(describe(r.origin.split));
                    }
                }
                if std::str::from_utf8(&r.value).is_err() {
                    // `value` had its invalid bytes replaced: the original stays recoverable.
                    entry["value_base64"] = base64::engine::general_purpose::STANDARD.encode(&r.value).into();
                }
                entry
            })
            .collect();
        // The latest few stay in the metrics, for the dashboard.
        for e in entries.iter().skip(entries.len().saturating_sub(weir_core::status::RECENT_DEAD_LETTERS)) {
            metrics.note_dead_letter(e.clone());
        }
        let Some(route) = &mut self.dead_letter else { return Ok(()) };
        let recs = entries.into_iter().map(|e| Record { value: e.to_string().into_bytes(), ..Record::default() }).collect();
        route.send_batch(Batch::of(recs))?;
        Ok(())
    }

    /// Runs `call` on link `i`'s operator with a fresh output, counting its time, then
    /// routes what it produced.
    fn call(&mut self, i: usize, call: impl FnOnce(&mut dyn Operator, &mut Output) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let mut out = self.output(i);
        let started = std::time::Instant::now();
        let result = call(self.links[i].op.as_mut(), &mut out);
        self.links[i].metrics.operator_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        result?;
        self.route(i, out)
    }

    /// Notes the size of each link's keyed state in its node's counters.
    pub fn note_state_sizes(&self) {
        for l in &self.links {
            if let Some(size) = l.op.state_size() {
                l.metrics.note_state(self.subtask, size);
            }
        }
    }

    /// Routes what link `i` produced; main output feeds link `i + 1` when chained.
    fn route(&mut self, i: usize, out: Output) -> anyhow::Result<()> {
        let Output { main, sides, dead, .. } = out;
        self.send_dead(i, dead)?;
        for (side, b) in sides {
            let b = b.finish();
            if b.is_empty() {
                continue;
            }
            let mut failed = Vec::new();
            if let Some((_, routes)) = self.links[i].sides.iter_mut().find(|(n, _)| *n == side) {
                let n = routes.len();
                let mut b = Some(b);
                for (j, r) in routes.iter_mut().enumerate() {
                    let part = if j + 1 == n { b.take().unwrap_or_default() } else { b.as_ref().map(|b| r.copy_of(b)).unwrap_or_default() };
                    failed.extend(r.send_batch(part)?);
                }
            }
            self.send_dead(i, failed)?;
        }
        let main = main.finish();
        self.links[i].last_output = main.records.len();
        self.links[i].metrics.records_out.fetch_add(main.records.len() as u64, Ordering::Relaxed);
        if let Some(next) = self.links[i].next {
            return self.push(next, main);
        }
        if main.is_empty() {
            return Ok(());
        }
        let mut failed = Vec::new();
        let n = self.links[i].main.len();
        let mut main = Some(main);
        for j in 0..n {
            let route = &mut self.links[i].main[j];
            let part =
                if j + 1 == n { main.take().unwrap_or_default() } else { main.as_ref().map(|b| route.copy_of(b)).unwrap_or_default() };
            failed.extend(route.send_batch(part)?);
        }
        self.send_dead(i, failed)
    }

    fn output(&self, i: usize) -> Output {
        let sides: Vec<String> = self.links[i].sides.iter().map(|(n, _)| n.clone()).collect();
        let mut out = Output::new(&sides, self.links[i].metrics.clone());
        out.main = BatchBuilder::with_capacity(self.links[i].last_output);
        out
    }

    /// Feeds a batch of the task's input to its roots: each keyed as it is keyed, the one
    /// that reads values as they came (if any) taking the batch itself, the others copies.
    pub fn feed(&mut self, mut batch: Batch) -> anyhow::Result<()> {
        if let Some(walk) = &mut self.read_ahead {
            // A value is first read here, on another thread than the one that wrote it:
            // the walk of one record runs while the next few values are being fetched.
            const AHEAD: usize = 4;
            for i in 0..batch.records.len() {
                if let Some(next) = batch.records.get(i + AHEAD) {
                    weir_core::record::prefetch(&next.value);
                }
                walk(&mut batch.records[i]);
            }
        }
        if let [(root, share)] = self.roots.as_slice() {
            if share.takes_batch() {
                return self.push(*root, batch);
            }
        }
        let taker = self.roots.iter().rposition(|(_, s)| s.takes_batch());
        for j in 0..self.roots.len() {
            if Some(j) == taker {
                continue;
            }
            // One that reads only keys and event times reads them from the batch itself.
            if self.roots[j].1.drop_values && self.lend(j, &batch)? {
                continue;
            }
            let (root, (copy, dead)) = (self.roots[j].0, self.roots[j].1.copy_of(&batch));
            self.send_dead(root, dead)?;
            self.push(root, copy)?;
        }
        match taker {
            Some(j) => self.push(self.roots[j].0, batch),
            None => Ok(()),
        }
    }

    /// Lends the task's `batch` to root `j`, which reads nothing of a record but its key and
    /// event time ([`Operator::process_lent`]), as [`Chain::push`] would push it a copy;
    /// false, and nothing done, where its operator takes no lent batches.
    fn lend(&mut self, j: usize, batch: &Batch) -> anyhow::Result<bool> {
        let (i, share) = (self.roots[j].0, &self.roots[j].1);
        let (mut dead, mut keyed) = (Vec::new(), 0u64);
        let mut out = self.output(i);
        let started = std::time::Instant::now();
        let mut key_of = lender(|r| match share.key_ref(r) {
            Ok(k) => {
                keyed += 1;
                Some(k.unwrap_or_default())
            }
            Err(why) => {
                dead.push((r.clone(), why));
                None
            }
        });
        let Some(result) = self.links[i].op.process_lent(batch, &mut key_of, &mut out) else { return Ok(false) };
        let link = &self.links[i];
        link.metrics.operator_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        link.metrics.records_in.fetch_add(keyed, Ordering::Relaxed);
        if let Some(w) = batch.last_watermark() {
            link.metrics.note_watermark(self.subtask, w);
        }
        self.send_dead(i, dead)?;
        result?;
        self.route(i, out)?;
        Ok(true)
    }

    /// Pushes a batch into link `i`.
    pub fn push(&mut self, i: usize, batch: Batch) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.links[i].metrics.records_in.fetch_add(batch.records.len() as u64, Ordering::Relaxed);
        if let Some(w) = batch.last_watermark() {
            self.links[i].metrics.note_watermark(self.subtask, w);
        }
        let terminal = self.links[i].next.is_none() && self.links[i].main.is_empty() && self.links[i].sides.is_empty();
        if terminal {
            self.links[i].metrics.record_latency(&batch.records);
        }
        self.call(i, |op, out| op.process(batch, out))
    }

    /// The earliest processing-time timer of any link.
    pub fn next_processing_timer(&self) -> Option<i64> {
        self.links.iter().filter_map(|l| l.op.next_processing_timer()).min()
    }

    /// Fires processing-time timers due at `now` in every link.
    pub fn on_processing_time(&mut self, now: i64) -> anyhow::Result<()> {
        for i in 0..self.links.len() {
            if self.links[i].op.next_processing_timer().is_some_and(|t| t <= now) {
                self.call(i, |op, out| op.on_processing_time(now, out))?;
            }
        }
        Ok(())
    }

    /// End of input: close every link in order (each before those chained after it) and send
    /// end-of-input downstream.
    pub fn close(&mut self) -> anyhow::Result<()> {
        for i in 0..self.links.len() {
            self.call(i, |op, out| op.close(out))?;
            let link = &self.links[i];
            for r in link.main.iter().chain(link.sides.iter().flat_map(|(_, rs)| rs.iter())) {
                r.end()?;
            }
        }
        if let Some(d) = &self.dead_letter {
            d.end()?;
        }
        Ok(())
    }

    fn all_routes(&self) -> impl Iterator<Item = &Route> {
        self.links.iter().flat_map(|l| l.main.iter().chain(l.sides.iter().flat_map(|(_, rs)| rs.iter()))).chain(self.dead_letter.iter())
    }

    /// The snapshot folder of link `i` inside checkpoint folder `dir`.
    pub fn link_dir(&self, dir: &Path, i: usize) -> PathBuf {
        dir.join(format!("{}-{}", self.links[i].name, self.subtask))
    }

    /// Barrier `id`: snapshot every link, forward the barrier, acknowledge.
    pub fn checkpoint(&mut self, id: u64, dir: &Arc<Path>) -> anyhow::Result<()> {
        let mut result = Ok(());
        let mut writes = Vec::new();
        for i in 0..self.links.len() {
            let d = self.link_dir(dir, i);
            let name = self.links[i].name.clone();
            match std::fs::create_dir_all(&d).map_err(anyhow::Error::from).and_then(|_| self.links[i].op.snapshot(id, &d)) {
                Ok(Some(w)) => writes.push((name, w)),
                Ok(None) => {}
                Err(e) => {
                    result = Err(format!("{name}: {e:#}"));
                    break;
                }
            }
        }
        // The barrier moves on at once; the snapshot's files are written beside the stream
        // and acknowledged when they are durable.
        for r in self.all_routes() {
            r.barrier(id, dir)?;
        }
        let Some(acks) = self.acks.clone() else { return Ok(()) };
        if writes.is_empty() || result.is_err() {
            let _ = acks.send(Ack { id, result });
            return Ok(());
        }
        std::thread::Builder::new().name(format!("snapshot-{id}")).spawn(move || {
            let result = writes.into_iter().try_for_each(|(name, w)| w().map_err(|e| format!("{name}: {e:#}")));
            let _ = acks.send(Ack { id, result });
        })?;
        Ok(())
    }

    /// Checkpoint `id` completed.
    pub fn notify_complete(&mut self, id: u64) -> anyhow::Result<()> {
        self.links.iter_mut().try_for_each(|l| l.op.notify_checkpoint_complete(id))
    }

    /// Tells every downstream subtask that this input is idle (or active again).
    pub fn idle(&self, idle: bool) -> anyhow::Result<()> {
        for l in self.links.iter().filter(|l| l.next.is_none()) {
            for r in l.main.iter().chain(l.sides.iter().flat_map(|(_, rs)| rs.iter())) {
                r.idle(idle)?;
            }
        }
        Ok(())
    }
}

/// `f` as a key maker for [`Operator::process_lent`]: a closure's signature names the
/// lifetime that ties the key it gives to the record only when it is declared so.
fn lender<F: for<'r> FnMut(&'r Record) -> Option<std::borrow::Cow<'r, [u8]>>>(f: F) -> F {
    f
}
