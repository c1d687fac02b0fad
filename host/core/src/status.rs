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
            let t = m.task_time();
            if !t.is_empty() {
                node["task_ms"] = t
                    .iter()
                    .map(|[b, i, p]| serde_json::json!({"busy": b / 1_000_000, "idle": i / 1_000_000, "backpressured": p / 1_000_000}))
                    .collect();
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
