//! The one operator lifecycle every node implements: sources' chains, plugin operators,
//! windows and sinks alike ([`Operator`], writing into an [`Output`]); sources ([`Source`]);
//! what keyed operators snapshot; and the event time and watermarks a source or an operator
//! stamps on a batch.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::record::{add_mark, Batch, BatchBuilder, Mark, Record};
use crate::status::NodeMetrics;

/// Where an operator's results go during one call.
#[derive(Debug)]
pub struct Output {
    /// The main output.
    pub main: BatchBuilder,
    /// Side outputs that something reads, by name.
    pub sides: Vec<(String, BatchBuilder)>,
    /// Dead letters: `(record, reason)`.
    pub dead: Vec<(Record, String)>,
    metrics: Arc<NodeMetrics>,
}

impl Output {
    /// An output with the given routed side outputs.
    pub fn new(sides: &[String], metrics: Arc<NodeMetrics>) -> Output {
        Output {
            main: BatchBuilder::default(),
            sides: sides.iter().map(|s| (s.clone(), BatchBuilder::default())).collect(),
            dead: Vec::new(),
            metrics,
        }
    }

    /// Makes room for `n` more records on the main output (an operator about to emit many).
    pub fn reserve(&mut self, n: usize) {
        self.main.reserve(n);
    }

    /// Emits to the main output.
    pub fn emit(&mut self, r: Record) {
        self.main.push(r);
    }

    /// Emits to side output `name`; counted and dropped when nothing reads it. Returns
    /// whether something reads it.
    pub fn emit_to(&mut self, name: &str, r: Record) -> bool {
        match self.sides.iter_mut().find(|(n, _)| n == name) {
            Some((_, b)) => {
                b.push(r);
                true
            }
            None => {
                self.metrics.unrouted.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Whether side output `name` is read by something.
    pub fn has_side(&self, name: &str) -> bool {
        self.sides.iter().any(|(n, _)| n == name)
    }

    /// The watermark advanced to `wm` after what was emitted so far (on every output).
    pub fn mark(&mut self, wm: i64) {
        self.main.mark(wm);
        for (_, b) in &mut self.sides {
            b.mark(wm);
        }
    }

    /// Sends a record to the dead-letter output with a reason.
    pub fn dead_letter(&mut self, r: Record, reason: impl Into<String>) {
        self.dead.push((r, reason.into()));
    }

    /// The node's counters.
    pub fn metrics(&self) -> &Arc<NodeMetrics> {
        &self.metrics
    }
}

/// The lifecycle every operator implements: sources' followers, plugin operators, windows
/// and sinks alike.
pub trait Operator: Send {
    /// Processes a batch. Marks in the batch advance the watermark at their position; the
    /// operator forwards them with [`Output::mark`] after firing what they make due.
    fn process(&mut self, batch: Batch, out: &mut Output) -> anyhow::Result<()>;

    /// [`Operator::process`] of a batch lent where it lies, for an operator that reads
    /// nothing of a record but its key and event time and shares its task's input (see
    /// `weir_runtime::fan`): each record counts as keyed by what `key_of` gives it (where it
    /// lies in the record when it can: a key copied per record had cost a heap block per
    /// record where keys are longer than [`crate::record::Key`] holds inline; `None`:
    /// not this operator's, already sent to the dead letters), as in a copy of the batch
    /// holding those keys, which is not made. `None`, before calling `key_of` at all, where
    /// the operator takes no lent batches: the task then copies.
    fn process_lent(
        &mut self,
        _batch: &Batch,
        _key_of: &mut dyn for<'r> FnMut(&'r crate::record::Record) -> Option<std::borrow::Cow<'r, [u8]>>,
        _out: &mut Output,
    ) -> Option<anyhow::Result<()>> {
        None
    }

    /// The earliest processing-time timer, if any.
    fn next_processing_timer(&self) -> Option<i64> {
        None
    }

    /// Processing time reached `now`: fire due processing-time timers.
    fn on_processing_time(&mut self, _now: i64, _out: &mut Output) -> anyhow::Result<()> {
        Ok(())
    }

    /// End of input (after the final watermark): flush and release.
    fn close(&mut self, _out: &mut Output) -> anyhow::Result<()> {
        Ok(())
    }

    /// A checkpoint barrier passed: write this operator's state into the new folder `dir`.
    fn snapshot(&mut self, _id: u64, _dir: &Path) -> anyhow::Result<Option<weir_state::Deferred>> {
        Ok(None)
    }

    /// Before any record: load state from the snapshot folders of the previous run (all old
    /// subtasks' folders for keyed operators), keeping key groups `groups`.
    fn restore(&mut self, _dirs: &[PathBuf], _groups: Range<u16>) -> anyhow::Result<()> {
        Ok(())
    }

    /// Checkpoint `id` is complete (sinks commit what they pre-committed).
    fn notify_checkpoint_complete(&mut self, _id: u64) -> anyhow::Result<()> {
        Ok(())
    }

    /// The size of the keyed state this subtask holds (`None`: it keeps none). Asked about
    /// ten times a second, so it must be cheap.
    fn state_size(&self) -> Option<crate::status::StateSize> {
        None
    }

    /// The plugin instance this operator calls, for a hot reload to swap its plugin (as
    /// `Any`: this crate does not know plugins); `None` for operators without one.
    fn plugin_instance(&mut self) -> Option<&mut dyn std::any::Any> {
        None
    }
}

/// A source: produces records until it ends.
pub trait Source: Send {
    /// Up to `max` records; an empty vector with `Some(wait)` means nothing now, try again
    /// after `wait`; `None` means the source ended.
    fn poll(&mut self, max: usize) -> anyhow::Result<Option<(Vec<Record>, Duration)>>;
    /// The position after the last record polled (stored in checkpoints).
    fn position(&self) -> serde_json::Value;
    /// Continues after `position` (from a checkpoint) instead of from the start.
    fn seek(&mut self, position: &serde_json::Value) -> anyhow::Result<()>;
    /// Continues from the positions of every reader of a checkpoint taken at another
    /// parallelism, taking the part this reader reads now. Sources whose readers cannot
    /// change in number refuse.
    fn seek_all(&mut self, _positions: &[serde_json::Value]) -> anyhow::Result<()> {
        anyhow::bail!("this source reads at the parallelism it was checkpointed at; run it with that parallelism")
    }
    /// Input the source read but could not make records of (a file line over the length
    /// bound), with the reasons; they go to the dead letters. Taken after each `poll`.
    fn take_refused(&mut self) -> Vec<(Record, String)> {
        Vec::new()
    }
    /// The splits this reader reads (`Origin::split` of its records), when it reads several
    /// whose event time advances on its own (Kafka partitions): each gets its own watermark.
    fn splits(&self) -> Vec<u32> {
        Vec::new()
    }
    /// How far this reader read, of what there is to read (a file's bytes, a bounded
    /// source's records), and how far it is behind the newest input it could read (Kafka's
    /// consumer lag). Asked about ten times a second, so it must be cheap.
    fn progress(&self) -> Option<crate::status::SourceProgress> {
        None
    }
    /// Splits that ended since the last call (a bounded Kafka partition at its end offset):
    /// they hold the watermark back no more. Taken after each `poll`.
    fn take_ended_splits(&mut self) -> Vec<u32> {
        Vec::new()
    }
    /// Checkpoint `id` took [`Source::position`] now (called right after it).
    fn snapshotted(&mut self, _id: u64) {}
    /// Checkpoint `id` completed: a source may tell its system how far it got (Kafka commits
    /// the offsets of that checkpoint to its consumer group). Correctness never depends on it.
    fn checkpoint_complete(&mut self, _id: u64) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Names the part of a source a record came from (`Origin::split`), as fields of its dead
/// letter: a Kafka record's `topic` and `partition`.
pub type DescribeSplit = std::sync::Arc<dyn Fn(u32) -> serde_json::Map<String, serde_json::Value> + Send + Sync>;

/// What a source task stores in a checkpoint.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SourceSnapshot {
    /// The source's position.
    pub position: serde_json::Value,
    /// The watermark generator's state.
    pub watermark: Option<crate::time::WatermarkGenerator>,
}

/// What a keyed operator stores besides its state: the watermark it reached.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct KeyedOpSnapshot {
    /// The operator's watermark at the barrier.
    pub watermark: i64,
}

/// Snapshots a keyed operator's backend, timers and watermark into `dir`.
pub fn snapshot_keyed(
    dir: &Path,
    state: &mut dyn weir_state::StateBackend,
    timers: &[(&str, &crate::time::TimerQueue)],
    watermark: i64,
    groups: crate::keys::KeyGroups,
) -> anyhow::Result<Option<weir_state::Deferred>> {
    let mut steps = vec![state.snapshot(&dir.join("state"))?];
    for (name, t) in timers {
        steps.push(t.snapshot(&dir.join(format!("{name}.kv")), &|k| groups.of(k)));
    }
    std::fs::write(dir.join("op.json"), serde_json::to_vec(&KeyedOpSnapshot { watermark })?)?;
    Ok(Some(Box::new(move || steps.into_iter().try_for_each(|s| s()))))
}

/// Restores what [`snapshot_keyed`] wrote, keeping key groups `groups`; returns the
/// watermark to resume from (the lowest of the old subtasks', so nothing fires early).
pub fn restore_keyed(
    dirs: &[PathBuf],
    groups: Range<u16>,
    state: &mut dyn weir_state::StateBackend,
    timers: &mut [(&str, &mut crate::time::TimerQueue)],
) -> anyhow::Result<Option<i64>> {
    let states: Vec<PathBuf> = dirs.iter().map(|d| d.join("state")).filter(|d| d.exists()).collect();
    state.restore(&states.iter().map(PathBuf::as_path).collect::<Vec<_>>(), groups.clone())?;
    for (name, t) in timers.iter_mut() {
        let files: Vec<PathBuf> = dirs.iter().map(|d| d.join(format!("{name}.kv"))).collect();
        t.restore(&files, groups.clone())?;
    }
    let mut wm: Option<i64> = None;
    for d in dirs {
        if let Ok(raw) = std::fs::read(d.join("op.json")) {
            let s: KeyedOpSnapshot = serde_json::from_slice(&raw)?;
            wm = Some(wm.map_or(s.watermark, |w| w.min(s.watermark)));
        }
    }
    Ok(wm)
}

/// File name of a source snapshot inside its snapshot folder.
pub const SOURCE_SNAPSHOT: &str = "source.json";

/// Stamps a record's event time at the source; an error is the dead-letter reason.
pub type Assign = Box<dyn FnMut(&mut Record) -> Result<(), String> + Send>;

/// Event time and watermarks for a batch, where its records lie: `each` sets a record's event
/// time (or fails it: the record is taken out, with the reason); `generator` sees every event
/// time and makes a watermark after each record, or, with `periodic` (interval, last time), at
/// the end of the batch once the interval has passed. Returns the batch's marks and the
/// records taken out. A source and an operator with a `watermark` both stamp with this.
pub fn stamp_batch(
    records: &mut Vec<Record>,
    mut each: impl FnMut(&mut Record) -> Result<(), String>,
    mut generator: Option<&mut crate::time::WatermarkGenerator>,
    periodic: Option<(Duration, &mut Instant)>,
) -> (Vec<Mark>, Vec<(Record, String)>) {
    // Records stay where they are; the few that fail are taken out after.
    let (mut marks, mut failed, mut kept) = (Vec::new(), Vec::new(), 0);
    let per_event = periodic.is_none();
    for (i, r) in records.iter_mut().enumerate() {
        if let Err(why) = each(r) {
            failed.push((i, why));
            continue;
        }
        kept += 1;
        if let (Some(g), Some(ts)) = (generator.as_deref_mut(), r.timestamp) {
            g.observe_split(r.origin.split, ts);
            if per_event {
                if let Some(w) = g.advance() {
                    add_mark(&mut marks, kept, w);
                }
            }
        }
    }
    if let (Some(g), Some((iv, last))) = (generator, periodic) {
        if last.elapsed() >= iv {
            *last = Instant::now();
            if let Some(w) = g.advance() {
                add_mark(&mut marks, kept, w);
            }
        }
    }
    let mut dead = Vec::with_capacity(failed.len());
    if !failed.is_empty() {
        let (mut failed, mut i) = (failed.into_iter().peekable(), 0);
        records.retain_mut(|r| {
            i += 1;
            match failed.next_if(|(at, _)| *at == i - 1) {
                Some((_, why)) => {
                    dead.push((std::mem::take(r), why));
                    false
                }
                None => true,
            }
        });
    }
    (marks, dead)
}

/// The identity operator at the head of a source chain (counts, forwards).
#[derive(Debug, Default)]
pub struct Identity;

impl Operator for Identity {
    fn process(&mut self, batch: Batch, out: &mut Output) -> anyhow::Result<()> {
        out.main.append(batch);
        Ok(())
    }
}

/// Sends a record a plugin emitted to the main output (`to` is `None`) or to the named side
/// output.
pub fn emit_plugin_output(out: &mut Output, to: Option<String>, r: Record) {
    match to {
        None => out.emit(r),
        Some(name) => {
            out.emit_to(&name, r);
        }
    }
}
