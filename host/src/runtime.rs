//! Tasks, channels and routing.
//!
//! Every operator implements one lifecycle ([`Operator`]): process a batch (whose in-band
//! marks carry the watermark), fire processing-time timers, close at end of input. A task is
//! a chain of operators for one parallel subtask, run on its own thread: Wasm calls are CPU
//! work and never block an async reactor. Tasks talk over bounded channels (backpressure);
//! a task with several input channels combines their watermarks (minimum over active
//! inputs). [`Route`]s partition a task's output: forward, rebalance, or by key group.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use crossbeam_channel::{Receiver, Sender};

use crate::checkpoint::{Ack, Control, Mode};
use crate::json;

use crate::keys::{key_bytes, key_text_in_key};
use crate::operator::{stamp_batch, Assign, Operator, Output, Source, SourceSnapshot, SOURCE_SNAPSHOT};
use crate::plugin::Instance;
use crate::record::{Batch, BatchBuilder, Key, Message, Record};
use crate::state::{key_group, subtask_of};
use crate::status::{NodeMetrics, RunState, UpstreamGone};
use crate::time::{Clock, InputWatermarks};

/// Bounded channel capacity, in batches.
pub const CHANNEL_CAPACITY: usize = 16;

/// The shortest sleep of a rate-limited source between batches.
const RATE_TICK: Duration = Duration::from_millis(1);

/// What a channel carries: `(input channel index at the receiver, message)`.
pub type Envelope = (u32, Message);

/// How records of an output are spread over the downstream subtasks.
pub enum Partitioner {
    /// One downstream subtask.
    Forward,
    /// Round robin by batch (watermarks go to all).
    Rebalance(usize),
    /// By key group of the record's key, computed here.
    Hash(KeyExtractor, u32),
}

impl std::fmt::Debug for Partitioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Partitioner::Forward => "Forward",
            Partitioner::Rebalance(_) => "Rebalance",
            Partitioner::Hash(..) => "Hash",
        })
    }
}

/// How a key is computed from a record.
pub enum KeyExtractor {
    /// JSON fields (dotted paths). One string field: its UTF-8 bytes; otherwise the JSON text
    /// (an array for several fields). With an id, a key the source read ahead under that id
    /// (see [`Record::prekeys`]) is taken instead of reading the value again.
    Fields(Vec<Vec<String>>, Option<u16>),
    /// A key-selector plugin instance.
    Plugin(Box<Instance>),
    /// The key each record carries (set upstream, `key-by = { record-key = ... }` in job files).
    RecordKey,
}

impl KeyExtractor {
    /// How many JSON fields make the key (0 for a plugin's key).
    pub fn key_fields(&self) -> usize {
        match self {
            KeyExtractor::Fields(paths, _) => paths.len(),
            KeyExtractor::Plugin(_) | KeyExtractor::RecordKey => 0,
        }
    }

    /// Sets `key` on each record; returns the indexes that failed with reasons.
    fn assign(&mut self, records: &mut [Record]) -> Vec<(usize, String)> {
        let mut failed = Vec::new();
        match self {
            KeyExtractor::Fields(paths, id) => {
                let mut found = json::Found::new();
                let mut vals = Vec::with_capacity(paths.len());
                for (i, r) in records.iter_mut().enumerate() {
                    if let Some(pos) = id.and_then(|id| r.prekeys.iter().position(|(p, _)| *p == id)) {
                        r.key = Some(r.prekeys.swap_remove(pos).1);
                        continue;
                    }
                    if let Err(e) = json::extract(&r.value, paths, &mut found) {
                        failed.push((i, format!("key-by: value is not JSON: {e}")));
                        continue;
                    }
                    vals.clear();
                    vals.extend(found.iter().map_while(|v| json::non_null(*v)));
                    match vals.len() == paths.len() {
                        true => r.key = Some(key_bytes(&vals)),
                        false => failed.push((
                            i,
                            format!(
                                "key-by: missing field {}",
                                paths.iter().map(|p| format!("`{}`", p.join("."))).collect::<Vec<_>>().join(", ")
                            ),
                        )),
                    }
                }
            }
            KeyExtractor::RecordKey => {
                failed.extend(
                    records.iter().enumerate().filter(|(_, r)| r.key.is_none()).map(|(i, _)| {
                        (i, "key-by: the record has no key (`record-key` keys by the key a plugin upstream set)".to_string())
                    }),
                );
            }
            KeyExtractor::Plugin(inst) => {
                for (i, res) in inst.select_key(records).into_iter().enumerate() {
                    match res {
                        Ok(k) => records[i].key = Some(Key::from_slice(&k)),
                        Err(f) => failed.push((i, format!("key-selector: {f}"))),
                    }
                }
            }
        }
        failed
    }
}

/// One output port's connection to a downstream node.
#[derive(Debug)]
pub struct Route {
    /// One sender per downstream subtask.
    pub senders: Vec<Sender<Envelope>>,
    /// This task's input channel index at each downstream subtask.
    pub channel: u32,
    /// How records are spread.
    pub partitioner: Partitioner,
    /// The keyed downstream reads nothing of a record but its key and event time (a window
    /// counting, see `Planned::reads_only_keys`): values are dropped before records go, on
    /// the thread that made them.
    pub drop_values: bool,
}

/// The receiving side went away: the job is failing elsewhere.
#[derive(Debug, thiserror::Error)]
#[error("downstream task stopped")]
pub struct Disconnected;

impl Route {
    /// A copy of `batch` for this route when others get it too. A keyed route's copy keeps
    /// only the key read ahead for its own key-by: the others would be freed unread on the
    /// downstream thread (and every allocation freed on another thread than its own is one
    /// of the dearest things in the job). Nor does it copy a value that [`Route::send_batch`]
    /// would drop at once: one whose key was read ahead, when the window downstream reads
    /// only keys.
    fn copy_of(&self, batch: &Batch) -> Batch {
        // The key this route will key by, where it is known before the route reads it.
        let (fields, id, record_key) = match &self.partitioner {
            Partitioner::Hash(KeyExtractor::Fields(paths, id), _) => (paths.len(), *id, false),
            Partitioner::Hash(KeyExtractor::RecordKey, _) => (0, None, true),
            _ => return batch.clone(),
        };
        let records = batch
            .records
            .iter()
            .map(|r| {
                let prekey = r.prekeys.iter().find(|(p, _)| Some(*p) == id);
                let key = if record_key { r.key.as_deref() } else { prekey.map(|(_, k)| k.as_slice()) };
                let dropped = key.is_some_and(|key| Self::drops_value(self.drop_values, fields, r, key));
                Record {
                    key: r.key.clone(),
                    value: if dropped { Vec::new() } else { r.value.clone() },
                    timestamp: r.timestamp,
                    headers: r.headers.clone(),
                    origin: r.origin,
                    prekeys: prekey.cloned().into_iter().collect(),
                }
            })
            .collect();
        Batch { records, marks: batch.marks.clone() }
    }

    /// Whether a route that drops values (see [`Route::drop_values`]) sends the record,
    /// keyed by `key` of `key_fields` fields, without its value. A record without event time
    /// goes whole: the window sends it to the dead letters. So does one whose key text the
    /// window reads from it.
    fn drops_value(drop_values: bool, key_fields: usize, r: &Record, key: &[u8]) -> bool {
        drop_values && r.timestamp.is_some() && key_text_in_key(key_fields, key)
    }

    fn send(&self, to: usize, m: Message) -> Result<(), Disconnected> {
        self.senders[to].send((self.channel, m)).map_err(|_| Disconnected)
    }

    fn broadcast(&self, m: impl Fn() -> Message) -> Result<(), Disconnected> {
        (0..self.senders.len()).try_for_each(|i| self.send(i, m()))
    }

    /// Sends a batch; records whose key cannot be computed are returned with a reason.
    pub fn send_batch(&mut self, mut batch: Batch) -> Result<Vec<(Record, String)>, Disconnected> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let n = self.senders.len();
        match &mut self.partitioner {
            Partitioner::Forward => {
                self.send(0, Message::Data(batch))?;
                Ok(Vec::new())
            }
            Partitioner::Rebalance(next) => {
                let to = *next % n;
                *next = next.wrapping_add(1);
                let wm = batch.last_watermark();
                if batch.records.is_empty() {
                    self.broadcast(|| Message::Data(Batch { records: Vec::new(), marks: batch.marks.clone() }))?;
                    return Ok(Vec::new());
                }
                self.send(to, Message::Data(batch))?;
                if let Some(wm) = wm {
                    for i in (0..n).filter(|i| *i != to) {
                        self.send(i, Message::Watermark(wm))?;
                    }
                }
                Ok(Vec::new())
            }
            Partitioner::Hash(extractor, max_par) => {
                let failed = extractor.assign(&mut batch.records);
                // Each record's subtask first (`n`: the dead letters), so that each output is
                // allocated once, at its size: records are 176 bytes, and growing by doubling
                // moves them again.
                let max_par = *max_par;
                let mut to: Vec<usize> = batch
                    .records
                    .iter()
                    .map(|r| subtask_of(key_group(r.key.as_deref().unwrap_or_default(), max_par), n, max_par))
                    .collect();
                for (i, _) in &failed {
                    to[*i] = n;
                }
                let mut reasons = failed.into_iter().map(|(_, r)| r);
                let mut dead = Vec::new();
                let mut sizes = vec![0; n + 1];
                to.iter().for_each(|&t| sizes[t] += 1);
                let mut outs: Vec<BatchBuilder> = sizes[..n].iter().map(|&len| BatchBuilder::with_capacity(len)).collect();
                let mut marks = batch.marks.iter().peekable();
                for (i, (mut r, to)) in batch.records.into_iter().zip(to).enumerate() {
                    while let Some((_, w)) = marks.next_if(|m| m.0 as usize <= i) {
                        outs.iter_mut().for_each(|o| o.mark(*w));
                    }
                    if to == n {
                        dead.push((r, reasons.next().unwrap_or_default()));
                        continue;
                    }
                    let key = r.key.as_deref().unwrap_or_default();
                    if Self::drops_value(self.drop_values, extractor.key_fields(), &r, key) {
                        r.value = Vec::new();
                        r.prekeys.clear();
                    }
                    outs[to].push(r);
                }
                for (_, w) in marks {
                    outs.iter_mut().for_each(|o| o.mark(*w));
                }
                for (i, o) in outs.into_iter().enumerate() {
                    let b = o.finish();
                    if !b.is_empty() {
                        self.send(i, Message::Data(b))?;
                    }
                }
                Ok(dead)
            }
        }
    }

    /// Sends a checkpoint barrier to every downstream subtask.
    pub fn barrier(&self, id: u64, dir: &Arc<Path>) -> Result<(), Disconnected> {
        self.broadcast(|| Message::Barrier(id, dir.clone()))
    }

    /// Sends end-of-input to every downstream subtask.
    pub fn end(&self) -> Result<(), Disconnected> {
        self.broadcast(|| Message::End)
    }

    /// Sends an idleness change to every downstream subtask.
    pub fn idle(&self, idle: bool) -> Result<(), Disconnected> {
        self.broadcast(|| Message::Idle(idle))
    }
}

/// One operator of a chain with the routes of its outputs.
pub struct ChainLink {
    /// Node name (for metrics and dead letters).
    pub name: String,
    /// The operator.
    pub op: Box<dyn Operator>,
    /// Routes of the main output (empty when the next link is chained).
    pub main: Vec<Route>,
    /// Routes of side outputs, by name.
    pub sides: Vec<(String, Vec<Route>)>,
    /// The node's counters.
    pub metrics: Arc<NodeMetrics>,
}

/// A chain of operators for one subtask, plus the dead-letter route.
pub struct Chain {
    /// The links, upstream first.
    pub links: Vec<ChainLink>,
    /// Where dead letters go (dead-letter sink node).
    pub dead_letter: Option<Route>,
    /// Source index → name, for dead-letter positions.
    pub source_names: Arc<Vec<String>>,
    /// This chain's subtask index.
    pub subtask: usize,
    /// Where checkpoint acknowledgements go (none without checkpoints).
    pub acks: Option<Sender<Ack>>,
}

impl Chain {
    /// Sends dead letters of link `i` to the dead-letter output (and counts them).
    fn send_dead(&mut self, i: usize, dead: Vec<(Record, String)>) -> anyhow::Result<()> {
        if dead.is_empty() {
            return Ok(());
        }
        let node = self.links[i].name.clone();
        self.links[i].metrics.dead_letters.fetch_add(dead.len() as u64, Ordering::Relaxed);
        let Some(route) = &mut self.dead_letter else { return Ok(()) };
        let recs = dead
            .into_iter()
            .map(|(r, reason)| {
                let mut entry = serde_json::json!({
                    "operator": node,
                    "source": self.source_names.get(usize::from(r.origin.source)).cloned().unwrap_or_default(),
                    "position": r.origin.position,
                    "reason": reason,
                    "value": String::from_utf8_lossy(&r.value),
                });
                if std::str::from_utf8(&r.value).is_err() {
                    // `value` had its invalid bytes replaced: the original stays recoverable.
                    entry["value_base64"] = base64::engine::general_purpose::STANDARD.encode(&r.value).into();
                }
                Record { value: entry.to_string().into_bytes(), ..Record::default() }
            })
            .collect();
        route.send_batch(Batch::of(recs))?;
        Ok(())
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
        self.links[i].metrics.records_out.fetch_add(main.records.len() as u64, Ordering::Relaxed);
        if i + 1 < self.links.len() {
            return self.push(i + 1, main);
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
        Output::new(&sides, self.links[i].metrics.clone())
    }

    /// Pushes a batch into link `i`.
    pub fn push(&mut self, i: usize, batch: Batch) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.links[i].metrics.records_in.fetch_add(batch.records.len() as u64, Ordering::Relaxed);
        let terminal = i + 1 == self.links.len() && self.links[i].main.is_empty() && self.links[i].sides.is_empty();
        if terminal {
            self.links[i].metrics.record_latency(&batch.records);
        }
        let mut out = self.output(i);
        self.links[i].op.process(batch, &mut out)?;
        self.route(i, out)
    }

    /// The earliest processing-time timer of any link.
    pub fn next_processing_timer(&self) -> Option<i64> {
        self.links.iter().filter_map(|l| l.op.next_processing_timer()).min()
    }

    /// Fires processing-time timers due at `now` in every link.
    pub fn on_processing_time(&mut self, now: i64) -> anyhow::Result<()> {
        for i in 0..self.links.len() {
            if self.links[i].op.next_processing_timer().is_some_and(|t| t <= now) {
                let mut out = self.output(i);
                self.links[i].op.on_processing_time(now, &mut out)?;
                self.route(i, out)?;
            }
        }
        Ok(())
    }

    /// End of input: close every link in order and send end-of-input downstream.
    pub fn close(&mut self) -> anyhow::Result<()> {
        for i in 0..self.links.len() {
            let mut out = self.output(i);
            self.links[i].op.close(&mut out)?;
            self.route(i, out)?;
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
        let Some(last) = self.links.last() else { return Ok(()) };
        for r in last.main.iter().chain(last.sides.iter().flat_map(|(_, rs)| rs.iter())) {
            r.idle(idle)?;
        }
        Ok(())
    }
}

/// Settings of an input task beyond its chain.
pub struct InputTask {
    /// The merged input channel.
    pub rx: Receiver<Envelope>,
    /// Number of input channels.
    pub inputs: usize,
    /// Checkpoint completion notices.
    pub control: Option<Receiver<Control>>,
    /// Barrier alignment mode.
    pub mode: Mode,
}

/// Barrier alignment state of an input task.
struct Alignment {
    id: u64,
    dir: Arc<Path>,
    seen: Vec<bool>,
}

/// Runs a task that reads channels: combines watermarks, aligns checkpoint barriers, feeds
/// the chain, fires processing time, and closes at the end of every input.
pub fn run_input_task(mut chain: Chain, task: InputTask, clock: Arc<dyn Clock>, run: Arc<RunState>) -> anyhow::Result<()> {
    let InputTask { rx, inputs, control, mode } = task;
    let mut control = control.unwrap_or(crossbeam_channel::never());
    let mut wms = InputWatermarks::new(inputs);
    let mut ended = vec![false; inputs];
    let mut aligning: Option<Alignment> = None;
    // Messages held back from channels that already delivered the barrier being aligned,
    // and messages to replay (in order) once alignment completes.
    let mut held: VecDeque<Envelope> = VecDeque::new();
    let mut replay: VecDeque<Envelope> = VecDeque::new();
    loop {
        if run.failed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let msg = if let Some(m) = replay.pop_front() {
            m
        } else {
            let timeout = chain.next_processing_timer().map(|t| {
                let now = clock.now_ms();
                Duration::from_millis((t - now).clamp(0, 1000) as u64)
            });
            if timeout.is_some_and(|d| d.is_zero()) {
                chain.on_processing_time(clock.now_ms())?;
                continue;
            }
            let tick = crossbeam_channel::after(timeout.unwrap_or(Duration::from_secs(3600)));
            crossbeam_channel::select! {
                recv(rx) -> m => m.map_err(|_| UpstreamGone)?,
                recv(control) -> c => {
                    match c {
                        Ok(Control::Complete(id)) => chain.notify_complete(id)?,
                        Ok(Control::Trigger { .. }) => {}
                        // The coordinator is gone: no more notices.
                        Err(_) => control = crossbeam_channel::never(),
                    }
                    continue;
                }
                recv(tick) -> _ => continue,
            }
        };
        let (ch, m) = msg;
        let ch = ch as usize;
        if mode == Mode::ExactlyOnce && aligning.as_ref().is_some_and(|a| a.seen[ch]) {
            held.push_back((ch as u32, m));
            continue;
        }
        match m {
            Message::Data(b) => {
                let b = if inputs == 1 { b } else { combine_marks(&mut wms, ch, b) };
                chain.push(0, b)?;
            }
            Message::Watermark(w) => {
                if let Some(w) = wms.update(ch, w) {
                    chain.push(0, Batch { records: Vec::new(), marks: vec![(0, w)] })?;
                }
            }
            Message::Idle(idle) => {
                if let Some(w) = wms.set_idle(ch, idle) {
                    chain.push(0, Batch { records: Vec::new(), marks: vec![(0, w)] })?;
                }
            }
            Message::Barrier(id, dir) => {
                let a = aligning.get_or_insert_with(|| Alignment { id, dir: dir.clone(), seen: vec![false; inputs] });
                if a.id == id {
                    a.seen[ch] = true;
                }
            }
            Message::End => {
                ended[ch] = true;
                if let Some(w) = wms.end(ch) {
                    chain.push(0, Batch { records: Vec::new(), marks: vec![(0, w)] })?;
                }
            }
        }
        // Alignment completes when every input delivered the barrier or ended.
        if let Some(a) = aligning.take() {
            if a.seen.iter().zip(&ended).all(|(s, e)| *s || *e) {
                chain.checkpoint(a.id, &a.dir)?;
                replay.extend(held.drain(..));
            } else {
                aligning = Some(a);
            }
        }
        if wms.all_ended() && replay.is_empty() && aligning.is_none() {
            chain.close()?;
            // Commit notices may still come for checkpoints taken before the end.
            while let Ok(Control::Complete(id)) = control.try_recv() {
                chain.notify_complete(id)?;
            }
            return Ok(());
        }
    }
}

/// Translates channel `ch`'s marks into marks of the combined watermark.
fn combine_marks(wms: &mut InputWatermarks, ch: usize, b: Batch) -> Batch {
    if b.marks.is_empty() {
        return b;
    }
    let marks = b.marks.iter().filter_map(|&(i, w)| wms.update(ch, w).map(|c| (i, c))).collect();
    Batch { records: b.records, marks }
}

/// How a source task stamps event time and makes watermarks.
pub struct SourceTime {
    /// Extracts or assigns the event time; an error sends the record to dead-letter.
    pub assign: Option<Assign>,
    /// The generator (none: no watermarks).
    pub generator: Option<crate::time::WatermarkGenerator>,
    /// Periodic emission interval (None: after every event).
    pub interval: Option<Duration>,
    /// Idle timeout.
    pub idle_timeout: Option<Duration>,
}

/// Checkpoint wiring of a source task.
#[derive(Debug, Default)]
pub struct SourceControl {
    /// Triggers and completion notices from the coordinator.
    pub control: Option<Receiver<Control>>,
    /// Incremented when the source ends (no barrier can pass it after that).
    pub ended: Option<Arc<AtomicUsize>>,
    /// Set to stop (after a savepoint): end without the final watermark.
    pub stop: Option<Arc<AtomicBool>>,
}

fn source_control(source: &dyn Source, time: &SourceTime, chain: &mut Chain, ctl: &SourceControl) -> anyhow::Result<()> {
    let Some(rx) = &ctl.control else { return Ok(()) };
    while let Ok(c) = rx.try_recv() {
        match c {
            Control::Trigger { id, dir } => {
                let d = chain.link_dir(&dir, 0);
                std::fs::create_dir_all(&d)?;
                let snap = SourceSnapshot { position: source.position(), watermark: time.generator.clone() };
                std::fs::write(d.join(SOURCE_SNAPSHOT), serde_json::to_vec(&snap)?)?;
                chain.checkpoint(id, &Arc::from(dir.as_path()))?;
            }
            Control::Complete(id) => chain.notify_complete(id)?,
        }
    }
    Ok(())
}

/// Runs a source task: poll, stamp, watermark, throttle, inject barriers, push through the
/// chain.
pub fn run_source_task(
    mut source: Box<dyn Source>,
    mut time: SourceTime,
    mut chain: Chain,
    batch_size: usize,
    rate: Option<f64>,
    ctl: SourceControl,
    run: Arc<RunState>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut emitted: u64 = 0;
    let mut last_periodic = Instant::now();
    let mut last_data = Instant::now();
    let mut idle = false;
    let metrics = chain.links[0].metrics.clone();
    loop {
        if run.failed.load(Ordering::Relaxed) {
            return Ok(());
        }
        source_control(source.as_ref(), &time, &mut chain, &ctl)?;
        if ctl.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
            // Stop with savepoint: no final watermark, so nothing fires that the savepoint
            // holds; sinks commit what they have.
            if let Some(e) = &ctl.ended {
                e.fetch_add(1, Ordering::SeqCst);
            }
            return chain.close();
        }
        let max = match rate {
            Some(r) => {
                let due = (started.elapsed().as_secs_f64() * r) as u64 + 1;
                let allowed = due.saturating_sub(emitted).min(batch_size as u64) as usize;
                if allowed == 0 {
                    // Sleep till the next record is due, but at least RATE_TICK: at high
                    // rates each batch then carries a tick's records instead of one or two,
                    // which costs every downstream task a wake-up per batch.
                    let wait = Duration::from_secs_f64(1.0 / r).clamp(RATE_TICK, Duration::from_millis(50));
                    std::thread::sleep(wait);
                    continue;
                }
                allowed
            }
            None => batch_size,
        };
        let Some((mut records, wait)) = source.poll(max)? else { break };
        let refused = source.take_refused();
        if !refused.is_empty() {
            // Read by the source, never made records (lines too long): straight to the dead letters.
            metrics.records_in.fetch_add(refused.len() as u64, Ordering::Relaxed);
            chain.send_dead(0, refused)?;
            last_data = Instant::now();
        }
        if records.is_empty() {
            if let Some(t) = time.idle_timeout {
                if !idle && last_data.elapsed() >= t {
                    idle = true;
                    chain.idle(true)?;
                }
            }
            std::thread::sleep(wait);
            continue;
        }
        if idle {
            idle = false;
            chain.idle(false)?;
        }
        last_data = Instant::now();
        emitted += records.len() as u64;
        let ingest = crate::time::mono_ns();
        let assign = &mut time.assign;
        let (marks, dead) = stamp_batch(
            &mut records,
            |r| {
                r.origin.ingest_ns = ingest;
                assign.as_mut().map_or(Ok(()), |a| a(r))
            },
            time.generator.as_mut(),
            time.interval.map(|iv| (iv, &mut last_periodic)),
        );
        // Records that never reach the chain still count as read by the source.
        metrics.records_in.fetch_add(dead.len() as u64, Ordering::Relaxed);
        chain.send_dead(0, dead)?;
        // The source link itself is an identity operator; push through the chain.
        chain.push(0, Batch { records, marks })?;
    }
    if let Some(e) = &ctl.ended {
        e.fetch_add(1, Ordering::SeqCst);
    }
    // End of a bounded input: the final watermark fires everything.
    chain.push(0, Batch { records: Vec::new(), marks: vec![(0, crate::time::MAX_WATERMARK)] })?;
    chain.close()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failures_cause_wins_over_the_consequence_seen_first() {
        let run = RunState::default();
        run.fail("out#0", &anyhow::Error::from(UpstreamGone));
        run.fail("faulty#0", &anyhow::anyhow!("the budget is spent"));
        run.fail("other#0", &anyhow::anyhow!("a later failure"));
        assert!(run.failed.load(Ordering::SeqCst));
        assert_eq!(run.error.lock().expect("lock").as_deref(), Some("faulty#0: the budget is spent"));
    }

    #[test]
    fn key_by_takes_a_key_read_ahead_under_its_id_and_reads_the_value_otherwise() {
        let rec = |v: &str, prekeys: Vec<(u16, Key)>| Record { value: v.as_bytes().to_vec(), prekeys: prekeys.into(), ..Record::default() };
        let mut by_user = KeyExtractor::Fields(vec![vec!["user".to_string()]], Some(3));
        let mut recs = vec![
            rec(r#"{"user": "a"}"#, vec![(3, Key::from_slice(b"a"))]),
            rec(r#"{"user": "b"}"#, vec![(7, Key::from_slice(b"other"))]),
            rec(r#"{"user": 7}"#, vec![]),
            rec(r#"{"name": "c"}"#, vec![]),
        ];
        let failed = by_user.assign(&mut recs);
        let keys: Vec<Option<&[u8]>> = recs.iter().map(|r| r.key.as_deref()).collect();
        assert_eq!(keys, [Some(&b"a"[..]), Some(&b"b"[..]), Some(&b"7"[..]), None]);
        assert_eq!(failed.len(), 1);
        assert!(failed[0].1.contains("missing field `user`"), "{failed:?}");
        // Taken, not copied: a later key-by reads the value.
        assert!(recs[0].prekeys.is_empty() && recs[1].prekeys.len() == 1);
        let mut pair = KeyExtractor::Fields(vec![vec!["user".to_string()], vec!["n".to_string()]], None);
        let mut recs = vec![rec(r#"{"user": "a", "n": 1.50}"#, vec![])];
        assert!(pair.assign(&mut recs).is_empty());
        assert_eq!(recs[0].key.as_deref(), Some(&br#"["a",1.5]"#[..]));
        // Several fields: the JSON array serde_json would print for the values.
        let v = r#"{"user": "a\u0041\"", "n": {"x": [1, 2.0], "y": null}}"#;
        let mut recs = vec![rec(v, vec![])];
        assert!(pair.assign(&mut recs).is_empty());
        let parsed: serde_json::Value = serde_json::from_str(v).unwrap();
        assert_eq!(recs[0].key.as_deref(), Some(serde_json::to_vec(&[&parsed["user"], &parsed["n"]]).unwrap().as_slice()));
    }

    #[test]
    fn a_keyed_routes_copy_keeps_only_its_own_key_read_ahead() {
        let (tx, _rx) = crossbeam_channel::unbounded();
        let route = |partitioner| Route { senders: vec![tx.clone()], channel: 0, partitioner, drop_values: false };
        let batch = Batch {
            records: vec![Record {
                value: br#"{"user": "a", "action": "x"}"#.to_vec(),
                timestamp: Some(5),
                headers: vec![("h".into(), b"v".to_vec())],
                prekeys: vec![(3, Key::from_slice(b"a")), (4, Key::from_slice(br#"["a","x"]"#))].into(),
                ..Record::default()
            }],
            marks: vec![(1, 7)],
        };
        let by_user = route(Partitioner::Hash(KeyExtractor::Fields(vec![vec!["user".into()]], Some(3)), 128));
        let copy = by_user.copy_of(&batch);
        assert_eq!(copy.records[0].prekeys.to_vec(), vec![(3, Key::from_slice(b"a"))]);
        let rest = |r: &Record| (r.value.clone(), r.timestamp, r.headers.clone());
        assert_eq!((rest(&copy.records[0]), &copy.marks), (rest(&batch.records[0]), &batch.marks));
        // A route that does not key (a stateless task downstream may feed a keyed one) keeps all.
        assert_eq!(route(Partitioner::Forward).copy_of(&batch).records, batch.records);
    }

    #[test]
    fn a_copy_for_a_route_that_drops_values_leaves_them_out_where_it_would_drop_them() {
        let rec = |v: &str, ts: Option<i64>, prekey: Option<&str>| Record {
            value: v.as_bytes().to_vec(),
            timestamp: ts,
            prekeys: prekey.map(|k| (3, Key::from_slice(k.as_bytes()))).into_iter().collect(),
            ..Record::default()
        };
        let batch = Batch::of(vec![
            rec(r#"{"user": "a"}"#, Some(1), Some("a")),
            rec(r#"{"user": "b"}"#, None, Some("b")),
            rec(r#"{"user": "7"}"#, Some(2), Some("7")),
            // No key read ahead: the route reads it from the value.
            rec(r#"{"user": "c"}"#, Some(3), None),
        ]);
        for drop_values in [false, true] {
            let (tx, rx) = crossbeam_channel::unbounded();
            let partitioner = Partitioner::Hash(KeyExtractor::Fields(vec![vec!["user".into()]], Some(3)), 128);
            let mut route = Route { senders: vec![tx], channel: 0, partitioner, drop_values };
            let copy = route.copy_of(&batch);
            let copied: Vec<bool> = copy.records.iter().map(|r| !r.value.is_empty()).collect();
            assert_eq!(copied, [!drop_values, true, true, true]);
            // What goes downstream is what the batch itself would have sent.
            for b in [copy, batch.clone()] {
                assert!(route.send_batch(b).expect("sent").is_empty());
            }
            let sent = |rx: &Receiver<Envelope>| match rx.try_recv() {
                Ok((_, Message::Data(b))) => b.records.into_iter().map(|r| (r.key, r.value)).collect::<Vec<_>>(),
                _ => panic!("a batch"),
            };
            assert_eq!(sent(&rx), sent(&rx));
        }
    }

    #[test]
    fn a_route_to_a_window_that_reads_only_keys_drops_values_it_can() {
        let records = || {
            let rec = |v: &str, ts: Option<i64>| Record { value: v.as_bytes().to_vec(), timestamp: ts, ..Record::default() };
            vec![
                rec(r#"{"user": "a"}"#, Some(1)),
                // No event time: the window sends it to the dead letters, whole.
                rec(r#"{"user": "b"}"#, None),
                // The key text of a non-string (or a string that reads like one) comes from
                // the record.
                rec(r#"{"user": 7}"#, Some(2)),
                rec(r#"{"user": "7"}"#, Some(3)),
            ]
        };
        for drop_values in [false, true] {
            let (tx, rx) = crossbeam_channel::unbounded();
            let mut route = Route {
                senders: vec![tx],
                channel: 0,
                partitioner: Partitioner::Hash(KeyExtractor::Fields(vec![vec!["user".into()]], None), 128),
                drop_values,
            };
            assert!(route.send_batch(Batch::of(records())).expect("sent").is_empty());
            let Ok((_, Message::Data(sent))) = rx.try_recv() else { panic!("a batch") };
            let values: Vec<&[u8]> = sent.records.iter().map(|r| r.value.as_slice()).collect();
            let keys: Vec<&[u8]> = sent.records.iter().map(|r| r.key.as_deref().unwrap_or_default()).collect();
            assert_eq!(keys, [&b"a"[..], b"b", b"7", b"7"]);
            let kept: Vec<Vec<u8>> = records().into_iter().map(|r| r.value).collect();
            match drop_values {
                false => assert_eq!(values, kept),
                true => assert_eq!(values, [&b""[..], &kept[1], &kept[2], &kept[3]]),
            }
        }
    }

    #[test]
    fn a_route_to_a_counting_window_keyed_by_several_fields_drops_values() {
        // The window reads the row's texts back from the key's JSON array.
        let (tx, rx) = crossbeam_channel::unbounded();
        let by = KeyExtractor::Fields(vec![vec!["user".into()], vec!["action".into()]], None);
        let mut route = Route { senders: vec![tx], channel: 0, partitioner: Partitioner::Hash(by, 128), drop_values: true };
        let rec = Record { value: br#"{"user": "a", "action": "view"}"#.to_vec(), timestamp: Some(1), ..Record::default() };
        assert!(route.send_batch(Batch::of(vec![rec])).expect("sent").is_empty());
        let Ok((_, Message::Data(sent))) = rx.try_recv() else { panic!("a batch") };
        assert_eq!(sent.records[0].key.as_deref(), Some(&br#"["a","view"]"#[..]));
        assert!(sent.records[0].value.is_empty());
    }
}
