//! Plugin-backed operators: map, filter, flat-map (stateless, one call per batch) and the
//! keyed process function (records of many keys per call, each in its own context; timers,
//! side outputs); and the event time and watermarks an operator assigns to its output.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::keys::KeyGroups;
use crate::operator::{emit_plugin_output, restore_keyed, snapshot_keyed, stamp_batch, Assign, Operator, Output};
use crate::plugin::bindings::{TimeDomain, Timer};
use crate::plugin::{CallCtx, Failure, Instance};
use crate::record::{add_mark, Batch, Key, Record};
use crate::state::Deferred;
use crate::time::{Clock, WatermarkGenerator, MAX_WATERMARK, MIN_WATERMARK};

/// An operator whose output gets event times and watermarks of its own: its `event-time` and
/// `watermark` settings, Flink's `assignTimestampsAndWatermarks` after it. Each output record
/// gets its event time from `assign` (or goes to the dead letters, with the reason, and moves
/// no watermark); watermarks from upstream stop here, except the end of input's. A parse
/// plugin's rejects thus never move event time, as they would when a source read the time
/// of lines before the plugin looked at them.
pub struct Stamped {
    inner: Box<dyn Operator>,
    assign: Assign,
    generator: WatermarkGenerator,
    interval: Option<Duration>,
    last_periodic: Instant,
}

impl Stamped {
    /// Wraps `inner`; `interval` `None` makes a watermark after every record.
    pub fn new(inner: Box<dyn Operator>, assign: Assign, generator: WatermarkGenerator, interval: Option<Duration>) -> Stamped {
        Stamped { inner, assign, generator, interval, last_periodic: Instant::now() }
    }
}

/// The file a [`Stamped`] operator keeps its watermark generator in, in its snapshot folder.
const GENERATOR_FILE: &str = "watermark.json";

impl Operator for Stamped {
    fn process(&mut self, batch: Batch, out: &mut Output) -> anyhow::Result<()> {
        let end = batch.marks.iter().any(|m| m.1 == MAX_WATERMARK);
        self.inner.process(Batch { records: batch.records, marks: Vec::new() }, out)?;
        let Batch { mut records, .. } = out.main.take();
        let periodic = self.interval.map(|iv| (iv, &mut self.last_periodic));
        let (mut marks, dead) = stamp_batch(&mut records, &mut self.assign, Some(&mut self.generator), periodic);
        for (r, why) in dead {
            out.dead_letter(r, why);
        }
        if end {
            add_mark(&mut marks, records.len(), MAX_WATERMARK);
        }
        out.main.append(Batch { records, marks });
        Ok(())
    }

    fn next_processing_timer(&self) -> Option<i64> {
        self.inner.next_processing_timer()
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Output) -> anyhow::Result<()> {
        self.inner.on_processing_time(now, out)
    }

    fn close(&mut self, out: &mut Output) -> anyhow::Result<()> {
        self.inner.close(out)
    }

    fn snapshot(&mut self, id: u64, dir: &Path) -> anyhow::Result<Option<Deferred>> {
        std::fs::write(dir.join(GENERATOR_FILE), serde_json::to_vec(&self.generator)?)?;
        self.inner.snapshot(id, dir)
    }

    fn restore(&mut self, dirs: &[PathBuf], groups: Range<u16>) -> anyhow::Result<()> {
        for d in dirs {
            let path = d.join(GENERATOR_FILE);
            if path.exists() {
                let bytes = std::fs::read(&path)?;
                self.generator = serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            }
        }
        self.inner.restore(dirs, groups)
    }

    fn notify_checkpoint_complete(&mut self, id: u64) -> anyhow::Result<()> {
        self.inner.notify_checkpoint_complete(id)
    }

    fn plugin_instance(&mut self) -> Option<&mut dyn std::any::Any> {
        self.inner.plugin_instance()
    }

    fn state_size(&self) -> Option<weir_core::status::StateSize> {
        self.inner.state_size()
    }
}

/// Which stateless call an operator makes.
#[derive(Debug, Clone, Copy)]
pub enum Stateless {
    /// 1→1.
    Map,
    /// Predicate.
    Filter,
    /// 1→n.
    FlatMap,
}

/// A stateless plugin operator: one call per batch, marks kept at their positions.
#[derive(Debug)]
pub struct StatelessOp {
    kind: Stateless,
    inst: Box<Instance>,
}

impl StatelessOp {
    /// Wraps an instance.
    pub fn new(kind: Stateless, inst: Instance) -> Self {
        StatelessOp { kind, inst: Box::new(inst) }
    }
}

fn inherit(mut out: Record, input: &mut Record) -> Record {
    if out.timestamp.is_none() {
        out.timestamp = input.timestamp;
    }
    out.origin = input.origin;
    // Keys read ahead from the value hold while the value is unchanged.
    if !input.prekeys.is_empty() && out.value == input.value {
        out.prekeys = std::mem::take(&mut input.prekeys);
    }
    out
}

/// What a stateless call made of one record.
enum Outcome {
    /// Map: the record now holds its result, or failed and is unchanged.
    Mapped(Option<Failure>),
    /// Filter: keep it or not.
    Keep(Result<bool, Failure>),
    /// Flat-map: its outputs.
    Many(Result<Vec<Record>, Failure>),
}

impl Outcome {
    fn trapped(&self) -> bool {
        matches!(
            self,
            Outcome::Mapped(Some(Failure::Trap(_))) | Outcome::Keep(Err(Failure::Trap(_))) | Outcome::Many(Err(Failure::Trap(_)))
        )
    }
}

impl StatelessOp {
    /// One call over `records` (maps write their results over them).
    fn call(&mut self, records: &mut [Record]) -> Vec<Outcome> {
        match self.kind {
            Stateless::Map => self.inst.map(records).into_iter().map(Outcome::Mapped).collect(),
            Stateless::Filter => self.inst.filter(records).into_iter().map(Outcome::Keep).collect(),
            Stateless::FlatMap => self.inst.flat_map(records).into_iter().map(Outcome::Many).collect(),
        }
    }
}

impl Operator for StatelessOp {
    fn plugin_instance(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self.inst.as_mut())
    }

    fn process(&mut self, batch: Batch, out: &mut Output) -> anyhow::Result<()> {
        let Batch { mut records, marks } = batch;
        let overruns = self.inst.overruns();
        let mut results = if records.is_empty() { Vec::new() } else { self.call(&mut records) };
        if records.len() > 1 && results.iter().any(Outcome::trapped) {
            // A trap fails the whole call and changes no record. These operators are pure, so
            // each record is retried alone on the fresh instance: only those that trap again
            // fail. After the deadline, each gets a tenth of it: a looping record is found
            // without waiting a whole deadline again.
            self.inst.set_retrying(self.inst.overruns() > overruns);
            results = records.iter_mut().flat_map(|r| self.call(std::slice::from_mut(r))).collect();
            self.inst.set_retrying(false);
        }
        self.inst.check_budget()?;
        if results.iter().all(|r| matches!(r, Outcome::Mapped(None) | Outcome::Keep(Ok(true)))) {
            // Every record goes on as it is (the usual case): the batch moves whole.
            out.main.append(Batch { records, marks });
            return Ok(());
        }
        let mut marks = marks.into_iter().peekable();
        for (i, (mut rec, res)) in records.into_iter().zip(results).enumerate() {
            while let Some((_, w)) = marks.next_if(|m| m.0 as usize <= i) {
                out.mark(w);
            }
            match res {
                Outcome::Mapped(None) | Outcome::Keep(Ok(true)) => out.emit(rec),
                Outcome::Keep(Ok(false)) => {}
                Outcome::Many(Ok(v)) => v.into_iter().for_each(|r| out.emit(inherit(r, &mut rec))),
                Outcome::Mapped(Some(f)) | Outcome::Keep(Err(f)) | Outcome::Many(Err(f)) => out.dead_letter(rec, f.to_string()),
            }
        }
        marks.for_each(|(_, w)| out.mark(w));
        Ok(())
    }
}

/// A keyed process plugin: one call for the records of a batch up to the first watermark at
/// which a timer is due (the plugin moves from record to record with `context.enter`, each
/// with its key, the watermark it arrived at and its event time); event-time timers fire when
/// a mark passes them, processing-time timers when the clock does.
#[derive(Debug)]
pub struct ProcessOp {
    inst: Box<Instance>,
    groups: KeyGroups,
    watermark: i64,
    clock: Arc<dyn Clock>,
}

impl ProcessOp {
    /// Wraps an instance whose keys map to key groups as `groups` says.
    pub fn new(inst: Instance, groups: KeyGroups, clock: Arc<dyn Clock>) -> Self {
        ProcessOp { inst: Box::new(inst), groups, watermark: MIN_WATERMARK, clock }
    }

    /// Advances the watermark to `w`, firing the event-time timers it reaches.
    fn advance(&mut self, w: i64, out: &mut Output) {
        if w > self.watermark {
            self.watermark = w;
            self.fire(TimeDomain::EventTime, w, out);
        }
        out.mark(w);
    }

    fn enter(&mut self, key: &[u8], ts: Option<i64>) {
        let call = CallCtx::keyed(key, self.groups, self.watermark, self.clock.now_ms(), ts);
        self.inst.host().call = call;
    }

    fn drain(&mut self, out: &mut Output) {
        for (to, r) in std::mem::take(&mut self.inst.host().emitted) {
            emit_plugin_output(out, to, r);
        }
    }

    fn fire(&mut self, domain: TimeDomain, upto: i64, out: &mut Output) {
        loop {
            let due = match domain {
                TimeDomain::EventTime => self.inst.host().event_timers.pop_due(upto),
                TimeDomain::ProcessingTime => self.inst.host().processing_timers.pop_due(upto),
            };
            let Some(due) = due else { break };
            let (ts, key) = (due.at, due.key());
            self.enter(key, Some(ts));
            if let Err(f) = self.inst.on_timer(&[Timer { timestamp: ts, domain }]) {
                let note = serde_json::json!({"timer": ts, "key": String::from_utf8_lossy(key)});
                out.dead_letter(
                    Record {
                        key: Some(Key::from_slice(key)),
                        value: note.to_string().into_bytes(),
                        timestamp: Some(ts),
                        ..Record::default()
                    },
                    format!("on-timer: {f}"),
                );
            }
            self.drain(out);
        }
    }
}

impl Operator for ProcessOp {
    fn state_size(&self) -> Option<weir_core::status::StateSize> {
        let state = &self.inst.host_data().state;
        Some(weir_core::status::StateSize { entries: state.len() as u64, bytes: state.size_bytes() })
    }

    fn plugin_instance(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self.inst.as_mut())
    }

    fn process(&mut self, batch: Batch, out: &mut Output) -> anyhow::Result<()> {
        let Batch { mut records, marks } = batch;
        let n = records.len();
        let (mut pos, mut mi) = (0usize, 0usize);
        // The call before trapped (see below).
        let mut after_trap = false;
        loop {
            // Marks up to here: the watermark advances and due timers fire.
            while let Some(&(_, w)) = marks.get(mi).filter(|m| m.0 as usize <= pos) {
                self.advance(w, out);
                mi += 1;
            }
            if pos == n {
                // Timers fired by the marks count against the budget too.
                return self.inst.check_budget();
            }
            // One call up to the first later mark that reaches a pending timer; the marks
            // before it fire nothing (unless the call registers a timer they reach: then
            // `enter` stops the plugin there).
            // (Marks rise, so the first one at or past the timer is a binary search away.)
            let end = match self.inst.host().event_timers.next() {
                Some(t) => marks[mi..].get(marks[mi..].partition_point(|m| m.1 < t)).map_or(n, |m| m.0 as usize),
                None => n,
            };
            let mut ctxs = Vec::with_capacity(end - pos);
            let mut inner = Vec::new();
            let (mut wm, mut mj, now) = (self.watermark, mi, self.clock.now_ms());
            for (j, r) in records[pos..end].iter().enumerate() {
                while let Some(&(_, w)) = marks.get(mj).filter(|m| m.0 as usize <= pos + j) {
                    wm = wm.max(w);
                    inner.push((j, w));
                    mj += 1;
                }
                ctxs.push(CallCtx::keyed(r.key.as_deref().unwrap_or_default(), self.groups, wm, now, r.timestamp));
            }
            let overruns = self.inst.overruns();
            let (mut results, entered) = self.inst.process(&records[pos..end], ctxs, inner);
            self.inst.set_retrying(false);
            self.inst.check_budget()?;
            // A trap ends the call in the record the guest was in, which the host knows only
            // as the last record entered or one after it: a guest need not enter a record
            // that only writes state (its writes come with a later crossing, and go with the
            // trap). The records before that one are handled; the next call starts at it, its
            // emits of this call dropped. That call goes to a fresh instance, which enters
            // every record of its first call (so does a guest whose last call did not end):
            // a trap there is the last entered record's, which then fails. After the
            // deadline that call gets the retry's share, as a stateless operator's retries do.
            if !after_trap && matches!(results.last(), Some(Err(Failure::Trap(_)))) {
                results.pop();
                after_trap = true;
                self.inst.set_retrying(self.inst.overruns() > overruns);
            } else {
                after_trap = false;
            }
            // Outputs in input order: each record's emits, the marks between records.
            // Every result stands for a record handled (at least one).
            let handled = results.len();
            let mut emitted = std::mem::take(&mut self.inst.host().emitted).into_iter();
            let mut taken = 0usize;
            for (j, res) in results.into_iter().enumerate() {
                while let Some(&(_, w)) = marks.get(mi).filter(|m| j > 0 && m.0 as usize <= pos + j) {
                    self.watermark = self.watermark.max(w);
                    out.mark(w);
                    mi += 1;
                }
                let upto = entered.get(j + 1).copied().unwrap_or(usize::MAX);
                let rec = &mut records[pos + j];
                for (to, mut e) in emitted.by_ref().take(upto - taken.min(upto)) {
                    taken += 1;
                    e.origin = rec.origin;
                    emit_plugin_output(out, to, e);
                }
                if let Err(f) = res {
                    out.dead_letter(std::mem::take(rec), f.to_string());
                }
            }
            pos += handled;
        }
    }

    fn next_processing_timer(&self) -> Option<i64> {
        // `host()` needs `&mut`; the queue is read through a shared borrow here.
        self.inst.peek_processing_timer()
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Output) -> anyhow::Result<()> {
        self.fire(TimeDomain::ProcessingTime, now, out);
        self.inst.check_budget()
    }

    fn snapshot(&mut self, _id: u64, dir: &Path) -> anyhow::Result<Option<crate::state::Deferred>> {
        let (wm, groups, now) = (self.watermark, self.groups, self.clock.now_ms());
        let h = self.inst.host();
        h.call.processing_time = now;
        h.cleanup_expired();
        snapshot_keyed(dir, h.state.as_mut(), &[("event-timers", &h.event_timers), ("processing-timers", &h.processing_timers)], wm, groups)
    }

    fn restore(&mut self, dirs: &[PathBuf], groups: Range<u16>) -> anyhow::Result<()> {
        let h = self.inst.host();
        let mut timers = [("event-timers", &mut h.event_timers), ("processing-timers", &mut h.processing_timers)];
        if let Some(wm) = restore_keyed(dirs, groups, h.state.as_mut(), &mut timers)? {
            self.watermark = wm;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_ahead_follow_the_value_only_while_it_is_unchanged() {
        let input = || Record {
            value: b"{\"u\":\"a\"}".to_vec(),
            timestamp: Some(5),
            prekeys: smallvec::smallvec![(0, Key::from_slice(b"a"))],
            ..Record::default()
        };
        let same = inherit(Record { value: b"{\"u\":\"a\"}".to_vec(), ..Record::default() }, &mut input());
        assert_eq!((same.prekeys.to_vec(), same.timestamp), (vec![(0, Key::from_slice(b"a"))], Some(5)));
        let changed = inherit(Record { value: b"{\"u\":\"b\"}".to_vec(), ..Record::default() }, &mut input());
        assert!(changed.prekeys.is_empty());
    }
    /// Event times after the wrapped operator: records without one to the dead letters,
    /// upstream marks dropped but the end of input's, and the generator carried through a
    /// snapshot (a fresh one would let through what the restored one holds back).
    #[test]
    fn stamped_output_gets_its_own_watermarks_and_keeps_them_over_a_restore() {
        let op = || {
            let assign: Assign = Box::new(|r: &mut Record| r.timestamp.map(|_| ()).ok_or_else(|| "no time".to_string()));
            Stamped::new(Box::new(crate::operator::Identity), assign, WatermarkGenerator::bounded(Duration::from_secs(10)), None)
        };
        let at = |ts: Option<i64>| Record { timestamp: ts, ..Record::default() };
        let run = |op: &mut Stamped, batch: Batch| {
            let mut out = Output::new(&[], Arc::new(crate::status::NodeMetrics::default()));
            op.process(batch, &mut out).expect("process");
            let b = out.main.take();
            (
                b.records.iter().map(|r| r.timestamp).collect::<Vec<_>>(),
                b.marks,
                out.dead.into_iter().map(|(_, why)| why).collect::<Vec<_>>(),
            )
        };
        let mut a = op();
        let (times, marks, dead) = run(&mut a, Batch { records: vec![at(Some(100_000)), at(None), at(Some(50_000))], marks: vec![(0, 5)] });
        assert_eq!(times, [Some(100_000), Some(50_000)]);
        assert_eq!(marks, [(1, 89_999)], "one mark after the first record; upstream's dropped");
        assert_eq!(dead, ["no time"]);

        let dir = tempfile::tempdir().expect("tempdir");
        a.snapshot(1, dir.path()).expect("snapshot");
        let mut restored = op();
        restored.restore(&[dir.path().to_path_buf()], 0..128).expect("restore");
        let later = || Batch { records: vec![at(Some(95_000))], marks: Vec::new() };
        assert_eq!(run(&mut restored, later()).1, [], "the restored generator is past 84,999");
        assert_eq!(run(&mut op(), later()).1, [(1, 84_999)], "a fresh one is not");
        let end = run(&mut restored, Batch { records: Vec::new(), marks: vec![(0, MAX_WATERMARK)] });
        assert_eq!(end.1, [(0, MAX_WATERMARK)], "the end of input passes");
    }
}
