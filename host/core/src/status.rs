//! What a running job knows of itself: counters per node and of checkpoints, and its first
//! failure. Shared by the tasks, the checkpoint coordinator and whatever reports on the job.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::record::Record;

/// Counters of one node (operator, source or sink), summed over its subtasks.
#[derive(Debug, Default)]
pub struct NodeMetrics {
    /// Records that entered the node.
    pub records_in: AtomicU64,
    /// Records the node emitted on its main output.
    pub records_out: AtomicU64,
    /// Records the node sent to the dead-letter output.
    pub dead_letters: AtomicU64,
    /// Late records dropped (no late side output configured).
    pub late_dropped: AtomicU64,
    /// Late records sent to the late side output.
    pub late_side: AtomicU64,
    /// Records emitted to side outputs nobody reads (counted, dropped).
    pub unrouted: AtomicU64,
    /// Plugin instances recreated after a trap.
    pub restarts: AtomicU64,
    /// Sinks: time from a record entering the job to reaching this sink, µs.
    pub latency: Mutex<Option<hdrhistogram::Histogram<u64>>>,
    /// The event-time watermark each subtask last saw arrive (epoch ms; `i64::MIN` before
    /// the first), by subtask index.
    pub watermarks: Mutex<Vec<i64>>,
    /// For the head node of a task: per subtask, ns the task spent busy (processing),
    /// idle (waiting for input) and backpressured (waiting for room downstream).
    pub task_ns: Mutex<Vec<[u64; 3]>>,
    /// For the head node of a task: per subtask, CPU time of the task's thread, ns (Linux's
    /// `/proc/thread-self/schedstat`).
    pub task_cpu_ns: Mutex<Vec<u64>>,
    /// Time spent in the operator's calls (for a plugin operator: the plugin's calls with
    /// the host calls they make), ns, over all subtasks.
    pub operator_ns: AtomicU64,
    /// Plugin calls that trapped (each fails its records into the dead letters).
    pub traps: AtomicU64,
    /// Hot reloads that ended: taken (`ok`), refused, and rolled back.
    pub reloads: [AtomicU64; 3],
    /// Keyed state per subtask: entries and bytes (estimates for RocksDB).
    pub state: Mutex<Vec<StateSize>>,
    /// Sources: per subtask, how far it read (`None` until it reports).
    pub source: Mutex<Vec<Option<SourceProgress>>>,
    /// The latest dead letters of the node (at most [`RECENT_DEAD_LETTERS`]), newest last.
    pub recent_dead: Mutex<std::collections::VecDeque<serde_json::Value>>,
}

/// Dead letters each node keeps for the dashboard.
pub const RECENT_DEAD_LETTERS: usize = 20;

/// Bytes of a dead letter's `value` kept for the dashboard.
pub const RECENT_VALUE_BYTES: usize = 300;

/// The size of one subtask's keyed state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StateSize {
    /// Entries (keys with their namespaces).
    pub entries: u64,
    /// Bytes of keys and values.
    pub bytes: u64,
}

/// What a source subtask read, of what there is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SourceProgress {
    /// Read so far, in `unit`s.
    pub done: u64,
    /// All it will read, when the source is bounded and knows it.
    pub total: Option<u64>,
    /// What `done` and `total` count.
    pub unit: ProgressUnit,
    /// Records available that it has not read yet (Kafka: consumer lag), when it knows.
    pub lag: Option<u64>,
}

/// What a source's progress counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressUnit {
    /// Records (or offsets).
    #[default]
    Records,
    /// Bytes of input.
    Bytes,
}

/// CPU time the calling thread used so far, ns (`None` where the kernel does not say).
pub fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Sets `v[i]`, growing `v` with defaults.
fn set_at<T: Default + Clone>(v: &Mutex<Vec<T>>, i: usize, value: T) {
    let mut v = v.lock().unwrap_or_else(|e| e.into_inner());
    if v.len() <= i {
        v.resize(i + 1, T::default());
    }
    v[i] = value;
}

impl NodeMetrics {
    /// Notes that subtask `subtask` saw the watermark reach `watermark`.
    pub fn note_watermark(&self, subtask: usize, watermark: i64) {
        let mut w = self.watermarks.lock().unwrap_or_else(|e| e.into_inner());
        if w.len() <= subtask {
            w.resize(subtask + 1, i64::MIN);
        }
        w[subtask] = w[subtask].max(watermark);
    }

    /// Adds busy, idle and backpressured ns to subtask `subtask`'s task time.
    pub fn note_task_time(&self, subtask: usize, busy: u64, idle: u64, backpressured: u64) {
        let mut t = self.task_ns.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() <= subtask {
            t.resize(subtask + 1, [0; 3]);
        }
        t[subtask][0] += busy;
        t[subtask][1] += idle;
        t[subtask][2] += backpressured;
    }

    /// Notes the CPU time subtask `subtask`'s task thread used so far.
    pub fn note_task_cpu(&self, subtask: usize, ns: u64) {
        set_at(&self.task_cpu_ns, subtask, ns);
    }

    /// CPU time of the task threads this node heads, by subtask, ns (empty: it heads none).
    pub fn task_cpu(&self) -> Vec<u64> {
        self.task_cpu_ns.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Notes the size of subtask `subtask`'s state.
    pub fn note_state(&self, subtask: usize, size: StateSize) {
        set_at(&self.state, subtask, size);
    }

    /// The state's size, over all subtasks (`None`: the node keeps no keyed state).
    pub fn state_size(&self) -> Option<StateSize> {
        let v = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (!v.is_empty()).then(|| StateSize { entries: v.iter().map(|s| s.entries).sum(), bytes: v.iter().map(|s| s.bytes).sum() })
    }

    /// Notes how far source subtask `subtask` read.
    pub fn note_source(&self, subtask: usize, p: SourceProgress) {
        set_at(&self.source, subtask, Some(p));
    }

    /// How far the source read, over the subtasks that reported (`None`: none did). The
    /// total is known only when every reporting subtask knows its own.
    pub fn source_progress(&self) -> Option<SourceProgress> {
        let v = self.source.lock().unwrap_or_else(|e| e.into_inner());
        let all: Vec<&SourceProgress> = v.iter().flatten().collect();
        let first = all.first()?;
        let sum = |f: &dyn Fn(&SourceProgress) -> Option<u64>| all.iter().map(|p| f(p)).sum::<Option<u64>>();
        Some(SourceProgress {
            done: all.iter().map(|p| p.done).sum(),
            total: sum(&|p| p.total),
            unit: first.unit,
            lag: all.iter().filter_map(|p| p.lag).reduce(|a, b| a + b),
        })
    }

    /// The sources' lag by subtask (`None`: not known).
    pub fn lags(&self) -> Vec<Option<u64>> {
        self.source.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|p| p.and_then(|p| p.lag)).collect()
    }

    /// Keeps `entry` (a dead letter as the dead-letter output writes it) among the latest,
    /// with its `value` cut to [`RECENT_VALUE_BYTES`].
    pub fn note_dead_letter(&self, mut entry: serde_json::Value) {
        if let Some(serde_json::Value::String(v)) = entry.get_mut("value") {
            if v.len() > RECENT_VALUE_BYTES {
                let mut cut = RECENT_VALUE_BYTES;
                while !v.is_char_boundary(cut) {
                    cut -= 1;
                }
                v.truncate(cut);
                v.push('…');
            }
        }
        if let Some(o) = entry.as_object_mut() {
            o.remove("value_base64");
            o.insert("at_ms".into(), crate::time::wall_ms().into());
        }
        let mut q = self.recent_dead.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() == RECENT_DEAD_LETTERS {
            q.pop_front();
        }
        q.push_back(entry);
    }

    /// Busy, idle and backpressured ns by subtask (empty unless the node heads a task).
    pub fn task_time(&self) -> Vec<[u64; 3]> {
        self.task_ns.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The watermarks by subtask (`i64::MIN`: none yet).
    pub fn watermarks(&self) -> Vec<i64> {
        self.watermarks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Adds the latency of records that know when they entered the job.
    pub fn record_latency(&self, records: &[Record]) {
        let now = crate::time::mono_ns();
        let mut guard = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        // 1 µs to 1 hour at 3 significant digits.
        if guard.is_none() {
            *guard = hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3).ok();
        }
        let Some(h) = guard.as_mut() else { return };
        for r in records.iter().filter(|r| r.origin.ingest_ns != 0) {
            h.saturating_record((now.saturating_sub(r.origin.ingest_ns) / 1000).max(1));
        }
    }

    /// Latency percentiles as JSON, when any were recorded.
    fn latency_json(&self) -> Option<serde_json::Value> {
        let guard = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let h = guard.as_ref().filter(|h| !h.is_empty())?;
        Some(serde_json::json!({
            "count": h.len(), "p50_us": h.value_at_quantile(0.5), "p99_us": h.value_at_quantile(0.99),
            "p999_us": h.value_at_quantile(0.999), "max_us": h.max(),
        }))
    }
}

/// Checkpoint counters of a job.
#[derive(Debug, Default)]
pub struct CheckpointMetrics {
    /// Checkpoints completed.
    pub completed: AtomicU64,
    /// Checkpoints failed or timed out.
    pub failed: AtomicU64,
    /// Trigger to metadata of the last completed checkpoint, ms.
    pub last_duration_ms: AtomicU64,
    /// The longest so far, ms.
    pub max_duration_ms: AtomicU64,
    /// Bytes of the last completed checkpoint's files.
    pub last_bytes: AtomicU64,
    /// Time spent restoring operator state at start (`--restore`), ms.
    pub restore_ms: AtomicU64,
    /// When the last checkpoint completed, epoch ms (0: none yet).
    pub last_completed_at_ms: AtomicU64,
    /// The latest completed checkpoints (at most [`CHECKPOINT_HISTORY`]), newest last.
    pub history: Mutex<std::collections::VecDeque<CheckpointDone>>,
}

/// Completed checkpoints [`CheckpointMetrics`] keeps.
pub const CHECKPOINT_HISTORY: usize = 10;

/// A completed checkpoint.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct CheckpointDone {
    /// Its id.
    pub id: u64,
    /// When it completed, epoch ms.
    pub at_ms: u64,
    /// Trigger to metadata, ms.
    pub duration_ms: u64,
    /// Bytes of its files.
    pub bytes: u64,
}

impl CheckpointMetrics {
    /// Counts checkpoint `id` completed after `duration_ms`, with `bytes` of files.
    pub fn note_completed(&self, id: u64, duration_ms: u64, bytes: u64) {
        let at_ms = crate::time::wall_ms().max(0) as u64;
        self.completed.fetch_add(1, Ordering::Relaxed);
        self.last_duration_ms.store(duration_ms, Ordering::Relaxed);
        self.max_duration_ms.fetch_max(duration_ms, Ordering::Relaxed);
        self.last_bytes.store(bytes, Ordering::Relaxed);
        self.last_completed_at_ms.store(at_ms, Ordering::Relaxed);
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if h.len() == CHECKPOINT_HISTORY {
            h.pop_front();
        }
        h.push_back(CheckpointDone { id, at_ms, duration_ms, bytes });
    }
}

/// Metrics of a job, by node name in declaration order.
#[derive(Debug, Default)]
pub struct JobMetrics {
    /// `(node name, counters)`.
    pub nodes: Vec<(String, Arc<NodeMetrics>)>,
    /// Checkpoints.
    pub checkpoints: Arc<CheckpointMetrics>,
}

impl JobMetrics {
    /// The counters of `name` (created on first use).
    pub fn node(&mut self, name: &str) -> Arc<NodeMetrics> {
        if let Some((_, m)) = self.nodes.iter().find(|(n, _)| n == name) {
            return m.clone();
        }
        let m = Arc::new(NodeMetrics::default());
        self.nodes.push((name.to_string(), m.clone()));
        m
    }

    /// The counters of `name`, if it is a node.
    pub fn get(&self, name: &str) -> Option<Arc<NodeMetrics>> {
        self.nodes.iter().find(|(n, _)| n == name).map(|(_, m)| m.clone())
    }

    /// The latest dead letters over all nodes, newest first, at most `n`.
    pub fn recent_dead_letters(&self, n: usize) -> Vec<serde_json::Value> {
        let mut all: Vec<serde_json::Value> =
            self.nodes.iter().flat_map(|(_, m)| m.recent_dead.lock().unwrap_or_else(|e| e.into_inner()).clone()).collect();
        all.sort_by_key(|e| std::cmp::Reverse(e["at_ms"].as_i64().unwrap_or(0)));
        all.truncate(n);
        all
    }

    /// Total dead letters over all nodes.
    pub fn dead_letters(&self) -> u64 {
        self.nodes.iter().map(|(_, m)| m.dead_letters.load(Ordering::Relaxed)).sum()
    }

    /// The counters as JSON: `{"node": {"records_in": .., ...}, ..., "dead_letters": N}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut nodes = serde_json::Map::new();
        for (n, m) in &self.nodes {
            let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
            let mut node = serde_json::json!({
                "records_in": g(&m.records_in), "records_out": g(&m.records_out),
                "dead_letters": g(&m.dead_letters), "late_dropped": g(&m.late_dropped),
                "late_side_output": g(&m.late_side), "unrouted": g(&m.unrouted), "plugin_restarts": g(&m.restarts),
            });
            if let Some(l) = m.latency_json() {
                node["latency"] = l;
            }
            node["operator_ms"] = (g(&m.operator_ns) / 1_000_000).into();
            node["plugin_traps"] = g(&m.traps).into();
            let r = &m.reloads;
            if r.iter().any(|r| g(r) > 0) {
                node["reloads"] = serde_json::json!({"ok": g(&r[0]), "refused": g(&r[1]), "rolled_back": g(&r[2])});
            }
            if let Some(s) = m.state_size() {
                node["state"] = serde_json::json!({"entries": s.entries, "bytes": s.bytes});
            }
            if let Some(p) = m.source_progress() {
                node["source"] = serde_json::to_value(p).unwrap_or_default();
            }
            let t = m.task_time();
            if !t.is_empty() {
                node["task_ms"] = t
                    .iter()
                    .map(|[b, i, p]| serde_json::json!({"busy": b / 1_000_000, "idle": i / 1_000_000, "backpressured": p / 1_000_000}))
                    .collect();
            }
            let cpu = m.task_cpu();
            if !cpu.is_empty() {
                node["task_cpu_ms"] = cpu.iter().map(|ns| ns / 1_000_000).collect();
            }
            let w = m.watermarks();
            if !w.is_empty() {
                // null: no watermark yet in that subtask.
                node["watermarks_ms"] = w.iter().map(|w| (*w != i64::MIN).then_some(*w)).collect();
            }
            nodes.insert(n.clone(), node);
        }
        let c = &self.checkpoints;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let checkpoints = serde_json::json!({
            "completed": g(&c.completed), "failed": g(&c.failed), "last_duration_ms": g(&c.last_duration_ms),
            "max_duration_ms": g(&c.max_duration_ms), "last_bytes": g(&c.last_bytes), "restore_ms": g(&c.restore_ms),
            "last_completed_at_ms": g(&c.last_completed_at_ms),
            "history": serde_json::to_value(&*c.history.lock().unwrap_or_else(|e| e.into_inner())).unwrap_or_default(),
        });
        serde_json::json!({"nodes": nodes, "dead_letters": self.dead_letters(), "checkpoints": checkpoints})
    }
}

/// Shared run state: stop flag and the first error.
#[derive(Debug, Default)]
pub struct RunState {
    /// Set when a task failed; others stop at their next step.
    pub failed: AtomicBool,
    /// The first error (the first cause, when a consequence came first).
    pub error: Mutex<Option<String>>,
    /// The error held is an [`UpstreamGone`], a consequence of another task's failure.
    consequence: AtomicBool,
}

/// A task's input ended without its end-of-stream: a task upstream failed. Its own error
/// is the one to report, even when this one is seen first.
#[derive(Debug, thiserror::Error)]
#[error("an upstream task stopped without ending its stream")]
pub struct UpstreamGone;

impl RunState {
    /// Records a task's failure: the first one wins, but a cause replaces a consequence
    /// ([`UpstreamGone`]) recorded before it.
    pub fn fail(&self, who: &str, e: &anyhow::Error) {
        let consequence = e.downcast_ref::<UpstreamGone>().is_some();
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() || (self.consequence.load(Ordering::SeqCst) && !consequence) {
            *slot = Some(format!("{who}: {e:#}"));
            self.consequence.store(consequence, Ordering::SeqCst);
        }
        self.failed.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn a_failures_cause_wins_over_the_consequence_seen_first() {
        let run = RunState::default();
        run.fail("out#0", &anyhow::Error::from(UpstreamGone));
        run.fail("faulty#0", &anyhow::anyhow!("the budget is spent"));
        run.fail("other#0", &anyhow::anyhow!("a later failure"));
        assert!(run.failed.load(Ordering::SeqCst));
        assert_eq!(run.error.lock().expect("lock").as_deref(), Some("faulty#0: the budget is spent"));
    }
}
