//! Time: clocks, event-time extraction, watermark generation and combination, timers.
//!
//! Watermarks follow Flink exactly: bounded out-of-orderness `B` gives
//! `max_event_time - B - 1` (ascending is `B = 0`), never going backwards; an operator's
//! watermark is the minimum over its active inputs; an idle input stops holding it back; the
//! end of a bounded input is the watermark `i64::MAX`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The watermark before any event: nothing is late yet.
pub const MIN_WATERMARK: i64 = i64::MIN;
/// The final watermark of a bounded input; fires every window and timer.
pub const MAX_WATERMARK: i64 = i64::MAX;

/// A processing-time clock in epoch milliseconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in epoch milliseconds.
    fn now_ms(&self) -> i64;
}

/// The machine's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }
}

/// The wall clock now, in epoch milliseconds.
pub fn wall_ms() -> i64 {
    SystemClock.now_ms()
}

/// A clock that only moves when told to: processing-time tests without sleeps.
#[derive(Debug, Default, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: i64) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(start)))
    }
    /// Moves the clock to `t` (never backwards).
    pub fn set(&self, t: i64) {
        self.0.fetch_max(t, Ordering::SeqCst);
    }
    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Generates watermarks from the event times a source sees. A source of several splits (Kafka
/// partitions) gets them per split, as Flink's per-split watermarks: the watermark is the
/// minimum over its splits that have not ended or gone idle, so a partition that lags holds
/// event time back, and one that has not delivered yet holds it at the start.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WatermarkGenerator {
    bound_ms: i64,
    max_ts: i64,
    current: i64,
    /// Per split, when the source reads several: `(split, highest event time, out of the
    /// minimum: ended or idle)`.
    #[serde(default)]
    splits: Vec<(u32, i64, bool)>,
}

impl WatermarkGenerator {
    /// Bounded out-of-orderness of `bound` (ascending timestamps: zero).
    pub fn bounded(bound: Duration) -> WatermarkGenerator {
        WatermarkGenerator { bound_ms: bound.as_millis() as i64, max_ts: i64::MIN, current: MIN_WATERMARK, splits: Vec::new() }
    }

    /// Tracks event time per split of `splits` (called when a source reads several); a split
    /// already tracked keeps its state.
    pub fn set_splits(&mut self, splits: &[u32]) {
        self.splits.retain(|(s, _, _)| splits.contains(s));
        for s in splits {
            if !self.splits.iter().any(|(have, _, _)| have == s) {
                self.splits.push((*s, i64::MIN, false));
            }
        }
    }

    /// Split `split` takes part in the minimum (`active`) or not (it ended, or went idle).
    pub fn set_split_active(&mut self, split: u32, active: bool) {
        if let Some(e) = self.splits.iter_mut().find(|(s, _, _)| *s == split) {
            e.2 = !active;
        }
    }

    /// Records an event time.
    pub fn observe(&mut self, ts: i64) {
        self.max_ts = self.max_ts.max(ts);
    }

    /// Records an event time of split `split` (of a source that set its splits; otherwise as
    /// [`WatermarkGenerator::observe`]).
    pub fn observe_split(&mut self, split: u32, ts: i64) {
        self.max_ts = self.max_ts.max(ts);
        if let Some(e) = self.splits.iter_mut().find(|(s, _, _)| *s == split) {
            e.1 = e.1.max(ts);
            e.2 = false;
        }
    }

    /// The watermark now due, if it advanced since the last call.
    pub fn advance(&mut self) -> Option<i64> {
        let max_ts = match self.splits.is_empty() {
            true => self.max_ts,
            // The lowest split that counts; with none left, the highest time seen.
            false => self.splits.iter().filter(|(_, _, out)| !out).map(|(_, t, _)| *t).min().unwrap_or(self.max_ts),
        };
        if max_ts == i64::MIN {
            return None;
        }
        let wm = max_ts.saturating_sub(self.bound_ms).saturating_sub(1);
        (wm > self.current).then(|| {
            self.current = wm;
            wm
        })
    }

    /// The last watermark emitted.
    pub fn current(&self) -> i64 {
        self.current
    }
}

#[derive(Debug, Clone, Copy)]
struct InputState {
    watermark: i64,
    idle: bool,
    ended: bool,
}

/// Combines the watermarks of several input channels: the minimum over inputs that are
/// neither idle nor ended.
#[derive(Debug, Clone)]
pub struct InputWatermarks {
    inputs: Vec<InputState>,
    current: i64,
}

impl InputWatermarks {
    /// `n` inputs, all at the minimum watermark.
    pub fn new(n: usize) -> InputWatermarks {
        InputWatermarks { inputs: vec![InputState { watermark: MIN_WATERMARK, idle: false, ended: false }; n], current: MIN_WATERMARK }
    }

    fn recompute(&mut self) -> Option<i64> {
        let active = self.inputs.iter().filter(|i| !i.idle && !i.ended);
        let min = active.map(|i| i.watermark).min();
        let min = match min {
            Some(m) => m,
            // Every input is idle or ended: ended inputs hold MAX; all-idle holds the max seen.
            None => self.inputs.iter().map(|i| i.watermark).max().unwrap_or(MIN_WATERMARK),
        };
        (min > self.current).then(|| {
            self.current = min;
            min
        })
    }

    /// Input `i` reached `wm`; returns the combined watermark when it advanced.
    pub fn update(&mut self, i: usize, wm: i64) -> Option<i64> {
        let s = &mut self.inputs[i];
        s.watermark = s.watermark.max(wm);
        s.idle = false;
        self.recompute()
    }

    /// Input `i` became idle or active.
    pub fn set_idle(&mut self, i: usize, idle: bool) -> Option<i64> {
        self.inputs[i].idle = idle;
        self.recompute()
    }

    /// Input `i` ended (its watermark is final).
    pub fn end(&mut self, i: usize) -> Option<i64> {
        self.inputs[i].ended = true;
        self.inputs[i].watermark = MAX_WATERMARK;
        self.recompute()
    }

    /// Whether every input ended.
    pub fn all_ended(&self) -> bool {
        self.inputs.iter().all(|i| i.ended)
    }

    /// The combined watermark.
    pub fn current(&self) -> i64 {
        self.current
    }
}

/// Timers of one operator subtask: one per (time, key, namespace), popped in time order
/// (of timers at one time, shorter keys first). Key and namespace share one allocation: a
/// window opened per record registers a timer per record.
///
/// Timers are kept by time, each time's as a set: windows of many keys end at one time, so a
/// register is a lookup among the few pending times and a hash, not a search through every
/// pending timer comparing their bytes. The earliest time's timers are sorted once, when the
/// first of them is due, and popped from that list.
#[derive(Debug, Default, Clone)]
pub struct TimerQueue {
    by_time: BTreeMap<i64, Bucket>,
    /// The timers of time `popping_at` being popped, sorted with the next one last; while
    /// it holds any, `by_time` has no entry at that time.
    popping: Vec<Box<[u8]>>,
    popping_at: i64,
    len: usize,
}

/// The timers of one time: a short list, a hash set past [`Bucket::FEW`] of them.
#[derive(Debug, Clone)]
enum Bucket {
    Few(smallvec::SmallVec<[Box<[u8]>; 2]>),
    Many(hashbrown::HashSet<Box<[u8]>, foldhash::fast::FixedState>),
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket::Few(smallvec::SmallVec::new())
    }
}

impl Bucket {
    const FEW: usize = 8;

    /// Adds `e`; false when it was there.
    fn insert(&mut self, e: Box<[u8]>) -> bool {
        match self {
            Bucket::Few(v) if v.contains(&e) => false,
            Bucket::Few(v) if v.len() < Self::FEW => {
                v.push(e);
                true
            }
            Bucket::Few(v) => {
                let mut set: hashbrown::HashSet<_, _> = std::mem::take(v).into_iter().collect();
                set.insert(e);
                *self = Bucket::Many(set);
                true
            }
            Bucket::Many(set) => set.insert(e),
        }
    }

    /// Removes `e`; false when it was not there.
    fn remove(&mut self, e: &[u8]) -> bool {
        match self {
            Bucket::Few(v) => match v.iter().position(|x| **x == *e) {
                Some(i) => {
                    v.swap_remove(i);
                    true
                }
                None => false,
            },
            Bucket::Many(set) => set.remove(e),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Bucket::Few(v) => v.is_empty(),
            Bucket::Many(set) => set.is_empty(),
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = &Box<[u8]>> + '_> {
        match self {
            Bucket::Few(v) => Box::new(v.iter()),
            Bucket::Many(set) => Box::new(set.iter()),
        }
    }

    /// Its timers, sorted with the first due last.
    fn into_popping(self) -> Vec<Box<[u8]>> {
        let mut v: Vec<Box<[u8]>> = match self {
            Bucket::Few(v) => v.into_vec(),
            Bucket::Many(set) => set.into_iter().collect(),
        };
        v.sort_unstable_by(|a, b| b.cmp(a));
        v
    }
}

/// A timer's key and namespace in one buffer: the key's length (u32, big-endian), the key,
/// the namespace.
fn timer_entry(key: &[u8], ns: &[u8]) -> Box<[u8]> {
    let mut e = Vec::with_capacity(4 + key.len() + ns.len());
    e.extend_from_slice(&(key.len() as u32).to_be_bytes());
    e.extend_from_slice(key);
    e.extend_from_slice(ns);
    e.into_boxed_slice()
}

/// A timer that is due (see [`TimerQueue::pop_due`]).
#[derive(Debug)]
pub struct Due {
    /// Its time.
    pub at: i64,
    entry: Box<[u8]>,
}

/// A [`timer_entry`]'s key and namespace.
fn split_entry(entry: &[u8]) -> (&[u8], &[u8]) {
    let len = u32::from_be_bytes(entry[..4].try_into().unwrap_or_default()) as usize;
    entry[4..].split_at(len)
}

impl Due {
    /// Its key.
    pub fn key(&self) -> &[u8] {
        split_entry(&self.entry).0
    }
    /// Its namespace.
    pub fn namespace(&self) -> &[u8] {
        split_entry(&self.entry).1
    }
}

impl TimerQueue {
    /// Every timer, `(time, entry)`, in no particular order.
    fn iter(&self) -> impl Iterator<Item = (i64, &Box<[u8]>)> {
        let popping = self.popping.iter().map(|e| (self.popping_at, e));
        popping.chain(self.by_time.iter().flat_map(|(t, b)| b.iter().map(move |e| (*t, e))))
    }

    /// Writes the timers to `path`, each under its key's key group, `group_of(key)`
    /// (restorable by group).
    pub fn snapshot(&self, path: &std::path::Path, group_of: &dyn Fn(&[u8]) -> u16) -> weir_state::Deferred {
        let entries: Vec<(Vec<u8>, Vec<u8>)> = self
            .iter()
            .map(|(ts, entry)| {
                let (k, ns) = split_entry(entry);
                let mut key = group_of(k).to_be_bytes().to_vec();
                key.extend_from_slice(&ts.to_be_bytes());
                key.extend_from_slice(&(k.len() as u32).to_be_bytes());
                key.extend_from_slice(k);
                (key, ns.to_vec())
            })
            .collect();
        let path = path.to_path_buf();
        Box::new(move || weir_state::write_kv(&path, entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))))
    }

    /// Adds the timers of key groups `groups` from snapshot files.
    pub fn restore(&mut self, paths: &[std::path::PathBuf], groups: std::ops::Range<u16>) -> anyhow::Result<()> {
        for p in paths.iter().filter(|p| p.exists()) {
            for (k, ns) in weir_state::read_kv(p, groups.clone())? {
                anyhow::ensure!(k.len() >= 14, "{}: a timer entry is truncated", p.display());
                let ts = i64::from_be_bytes(k[2..10].try_into()?);
                let klen = u32::from_be_bytes(k[10..14].try_into()?) as usize;
                anyhow::ensure!(k.len() == 14 + klen, "{}: a timer entry is malformed", p.display());
                self.insert(ts, timer_entry(&k[14..], &ns));
            }
        }
        Ok(())
    }

    /// Where `e` is or would go in `popping` (sorted with the first due last).
    fn popping_index(&self, e: &[u8]) -> Result<usize, usize> {
        self.popping.binary_search_by(|x| e.cmp(x))
    }

    fn insert(&mut self, ts: i64, e: Box<[u8]>) {
        if !self.popping.is_empty() && ts == self.popping_at {
            if let Err(i) = self.popping_index(&e) {
                self.popping.insert(i, e);
                self.len += 1;
            }
        } else if self.by_time.entry(ts).or_default().insert(e) {
            self.len += 1;
        }
    }

    /// Registers a timer; a no-op when it exists.
    pub fn register(&mut self, ts: i64, key: &[u8], ns: &[u8]) {
        self.insert(ts, timer_entry(key, ns));
    }

    /// Deletes a timer; a no-op when absent.
    pub fn delete(&mut self, ts: i64, key: &[u8], ns: &[u8]) {
        let e = timer_entry(key, ns);
        if !self.popping.is_empty() && ts == self.popping_at {
            if let Ok(i) = self.popping_index(&e) {
                self.popping.remove(i);
                self.len -= 1;
            }
            return;
        }
        if let std::collections::btree_map::Entry::Occupied(mut b) = self.by_time.entry(ts) {
            if b.get_mut().remove(&e) {
                self.len -= 1;
                if b.get().is_empty() {
                    b.remove();
                }
            }
        }
    }

    /// Pops the earliest timer at or before `upto`.
    pub fn pop_due(&mut self, upto: i64) -> Option<Due> {
        loop {
            let first = self.by_time.first_key_value().map(|(t, _)| *t);
            if self.popping.is_empty() {
                let t = first.filter(|t| *t <= upto)?;
                let bucket = self.by_time.remove(&t)?;
                (self.popping, self.popping_at) = (bucket.into_popping(), t);
                continue;
            }
            if first.is_some_and(|t| t < self.popping_at) {
                // An earlier timer was registered while these were popped: back to its
                // time's set they go, and the earlier one comes first.
                let bucket = self.by_time.entry(self.popping_at).or_default();
                for e in self.popping.drain(..) {
                    bucket.insert(e);
                }
                continue;
            }
            if self.popping_at > upto {
                return None;
            }
            let entry = self.popping.pop()?;
            self.len -= 1;
            return Some(Due { at: self.popping_at, entry });
        }
    }

    /// The earliest timer time.
    pub fn next(&self) -> Option<i64> {
        let first = self.by_time.first_key_value().map(|(t, _)| *t);
        match self.popping.is_empty() {
            true => first,
            false => Some(first.map_or(self.popping_at, |t| t.min(self.popping_at))),
        }
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Parses durations written as `10s`, `500ms`, `5m`, `1h` (humantime syntax).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. `10s`, `500ms`, `5m`"))?;
    if d > MAX_DURATION {
        return Err(format!("`{s}` is longer than the longest duration weir takes, 100 years"));
    }
    Ok(d)
}

/// The longest duration a job file may name: every duration becomes milliseconds in an
/// `i64` beside event times, and 100 years keeps all such sums far from overflowing.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Monotonic nanoseconds since the first call in this process (never 0 after the first call,
/// so 0 can mean "unknown").
pub fn mono_ns() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(|| std::time::Instant::now() - Duration::from_nanos(1));
    epoch.elapsed().as_nanos() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_out_of_orderness_is_max_minus_bound_minus_one() {
        let mut g = WatermarkGenerator::bounded(Duration::from_secs(10));
        g.observe(20_000);
        assert_eq!(g.advance(), Some(9_999));
        g.observe(15_000);
        assert_eq!(g.advance(), None, "never backwards");
        g.observe(21_000);
        assert_eq!(g.advance(), Some(10_999));
    }

    #[test]
    fn combined_watermark_is_min_of_active_inputs() {
        let mut w = InputWatermarks::new(2);
        assert_eq!(w.update(0, 100), None);
        assert_eq!(w.update(1, 50), Some(50));
        assert_eq!(w.set_idle(1, true), Some(100));
        assert_eq!(w.update(1, 60), None, "an input that speaks again is active but cannot pull back");
        assert_eq!(w.end(1), None);
        assert_eq!(w.end(0), Some(MAX_WATERMARK));
        assert!(w.all_ended());
    }

    /// Per-split watermarks: the minimum over splits that count, a split that has not
    /// delivered holds it at the start, an ended or idle one stops holding it back, and a
    /// record brings an idle one back.
    #[test]
    fn splits_hold_the_watermark_at_their_minimum() {
        let mut g = WatermarkGenerator::bounded(Duration::from_millis(10));
        g.set_splits(&[0, 1]);
        g.observe_split(0, 1000);
        assert_eq!(g.advance(), None, "split 1 has delivered nothing");
        g.observe_split(1, 500);
        assert_eq!(g.advance(), Some(489));
        g.observe_split(1, 700);
        assert_eq!(g.advance(), Some(689));
        g.set_split_active(1, false);
        assert_eq!(g.advance(), Some(989), "an idle split holds nothing back");
        g.observe_split(1, 800);
        assert_eq!(g.advance(), None, "back in the minimum, but watermarks never go back");
        g.observe_split(1, 2000);
        assert_eq!(g.advance(), None, "split 0, at 1000, is the lowest now");
        g.observe_split(0, 3000);
        assert_eq!(g.advance(), Some(1989));
        // Restored with other splits: kept ones keep their time, new ones hold it back.
        g.set_splits(&[1, 2]);
        g.observe_split(1, 5000);
        assert_eq!(g.advance(), None);
        g.observe_split(2, 4000);
        assert_eq!(g.advance(), Some(3989));
    }

    #[test]
    fn timers_dedupe_and_pop_in_order() {
        let mut t = TimerQueue::default();
        t.register(5, b"a", b"");
        t.register(5, b"a", b"");
        t.register(3, b"b", b"");
        assert_eq!(t.len(), 2);
        assert_eq!(t.pop_due(4).map(|x| (x.at, x.key().to_vec())), Some((3, b"b".to_vec())));
        assert!(t.pop_due(4).is_none());
        t.register(5, b"", b"ns");
        let due = t.pop_due(5).expect("due");
        assert_eq!((due.at, due.key(), due.namespace()), (5, &b""[..], &b"ns"[..]));
        let due = t.pop_due(5).expect("due");
        assert_eq!((due.at, due.key(), due.namespace()), (5, &b"a"[..], &b""[..]));
        assert!(t.is_empty());
    }

    /// The queue by time against the plain ordered set it replaced: the same timers pop in
    /// the same order, registered, deleted and popped in any mix (timers registered while a
    /// time's timers pop, at that time and before it, too).
    #[test]
    fn timers_pop_as_an_ordered_set_of_time_key_namespace_would() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for round in 0..200 {
            let (mut q, mut model) = (TimerQueue::default(), std::collections::BTreeSet::new());
            let keys = if round % 2 == 0 { 3 } else { 40 };
            for _ in 0..400 {
                let (t, k) = (rng.random_range(0..6i64), format!("k{}", rng.random_range(0..keys)));
                let ns = [rng.random_range(0..2u8)];
                match rng.random_range(0..10) {
                    0..5 => {
                        q.register(t, k.as_bytes(), &ns);
                        model.insert((t, timer_entry(k.as_bytes(), &ns)));
                    }
                    5..7 => {
                        q.delete(t, k.as_bytes(), &ns);
                        model.remove(&(t, timer_entry(k.as_bytes(), &ns)));
                    }
                    _ => {
                        let upto = rng.random_range(0..6i64);
                        let want = model.first().filter(|x| x.0 <= upto).cloned();
                        if let Some(w) = &want {
                            model.remove(w);
                        }
                        assert_eq!(q.pop_due(upto).map(|d| (d.at, d.entry)), want);
                    }
                }
                assert_eq!((q.len(), q.next()), (model.len(), model.first().map(|x| x.0)));
            }
            let mut all: Vec<_> = q.iter().map(|(t, e)| (t, e.clone())).collect();
            all.sort();
            assert_eq!(all, model.into_iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1_000);
        assert_eq!(c.now_ms(), 1_000);
        c.advance(Duration::from_millis(500));
        c.set(1_200);
        assert_eq!(c.now_ms(), 1_500);
    }
}
