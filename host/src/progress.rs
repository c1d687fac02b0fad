//! What `weir run` shows on a terminal while the job runs, refreshed in place: a progress
//! bar when every source knows how much it will read (a file's bytes, a bounded generator's
//! or topic's records; with the rate and ETA), else a status line (records in and out with
//! their rates, dead letters, the sinks' watermark lag, the last checkpoint, time); and a
//! table of the counters at the end. Nothing of it when stderr is not a terminal or with
//! `--quiet`: then `weir run` prints the one summary line it always printed, so scripts
//! keep working. The live line is
//! also left out when stdout is the same terminal (print sinks write there, and the line
//! would be drawn through their rows).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir_core::status::{JobMetrics, ProgressUnit};

/// How often the status line is redrawn.
const EVERY: Duration = Duration::from_millis(250);

/// The run whose counters the line shows.
#[derive(Debug, Clone)]
struct Watched {
    metrics: Arc<JobMetrics>,
    sources: Vec<String>,
    sinks: Vec<String>,
}

/// The live status line; [`Progress::finish`] clears it.
#[derive(Debug)]
pub struct Progress {
    watched: Arc<Mutex<Option<Watched>>>,
    done: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// A status line on stderr, drawn by a thread of its own.
    pub fn start() -> Progress {
        let watched: Arc<Mutex<Option<Watched>>> = Arc::default();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (m, d) = (watched.clone(), done.clone());
        let bar = indicatif::ProgressBar::new_spinner();
        // Dead letters printed to stderr clear the line and have it drawn again after.
        let b = bar.clone();
        weir_connectors::print::write_stderr_around(move |write| b.suspend(write));
        let thread = std::thread::Builder::new()
            .name("weir-progress".into())
            .spawn(move || {
                let mut shape = None;
                let started = Instant::now();
                let mut last: Option<(Instant, u64, u64)> = None;
                while !d.load(Ordering::Relaxed) {
                    if let Some(w) = m.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                        let (i, o) = ends(&w);
                        let now = Instant::now();
                        let (ri, ro) = match last {
                            Some((t, li, lo)) if now > t => {
                                let s = (now - t).as_secs_f64();
                                (i.saturating_sub(li) as f64 / s, o.saturating_sub(lo) as f64 / s)
                            }
                            _ => (0.0, 0.0),
                        };
                        last = Some((now, i, o));
                        let read = bounded(&w);
                        let want = Shape::of(read.as_ref());
                        if shape != Some(want) {
                            bar.set_style(want.style());
                            shape = Some(want);
                        }
                        if let Some(r) = read {
                            bar.set_length(r.total);
                            bar.set_position(r.done);
                        }
                        let dead = group(w.metrics.dead_letters());
                        let msg = match read {
                            // The bar says what was read and how fast.
                            Some(_) => format!("{} out ({}/s) · dead letters {dead}", group(o), group(ro as u64)),
                            None => format!(
                                "{} records in ({}/s) · {} out ({}/s) · dead letters {dead}{}",
                                group(i),
                                group(ri as u64),
                                group(o),
                                group(ro as u64),
                                unbounded_status(&w, started.elapsed())
                            ),
                        };
                        bar.set_message(msg);
                        bar.tick();
                    }
                    std::thread::sleep(EVERY);
                }
                bar.finish_and_clear();
            })
            .ok();
        Progress { watched, done, thread }
    }

    /// Follows the counters of `metrics` (each run of the job, restarts included), whose
    /// sources and sinks are named.
    pub fn follow(&self, metrics: Arc<JobMetrics>, sources: Vec<String>, sinks: Vec<String>) {
        *self.watched.lock().unwrap_or_else(|p| p.into_inner()) = Some(Watched { metrics, sources, sinks });
    }

    /// Clears the line.
    pub fn finish(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How far the bounded sources read of their input, summed when they count the same unit
/// (else as a share of a million, the mean of each source's share).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Read {
    done: u64,
    total: u64,
    unit: Option<ProgressUnit>,
}

/// What the line looks like: a spinner (some source is unbounded), or a bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Spinner,
    Bar(Option<ProgressUnit>),
}

impl Shape {
    fn of(read: Option<&Read>) -> Shape {
        read.map_or(Shape::Spinner, |r| Shape::Bar(r.unit))
    }

    fn style(self) -> indicatif::ProgressStyle {
        let template = match self {
            Shape::Spinner => "{spinner} {msg}",
            Shape::Bar(Some(ProgressUnit::Bytes)) => "{bar:24} {bytes}/{total_bytes} ({percent} %) · ETA {eta} · {msg}",
            Shape::Bar(Some(ProgressUnit::Records)) => "{bar:24} {human_pos}/{human_len} ({percent} %) · ETA {eta} · {msg}",
            Shape::Bar(None) => "{bar:24} {percent} % · ETA {eta} · {msg}",
        };
        indicatif::ProgressStyle::with_template(template).unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner())
    }
}

/// The sources' progress, when every source knows its total.
fn bounded(w: &Watched) -> Option<Read> {
    let mut reads = Vec::new();
    for (name, n) in &w.metrics.nodes {
        if w.sources.contains(name) {
            let p = n.source_progress()?;
            reads.push((p.done, p.total?, p.unit));
        }
    }
    let (_, _, unit) = *reads.first()?;
    if reads.iter().all(|r| r.2 == unit) {
        return Some(Read { done: reads.iter().map(|r| r.0).sum(), total: reads.iter().map(|r| r.1).sum(), unit: Some(unit) });
    }
    let share = |(d, t, _): &(u64, u64, ProgressUnit)| if *t == 0 { 1.0 } else { (*d as f64 / *t as f64).min(1.0) };
    let mean = reads.iter().map(share).sum::<f64>() / reads.len() as f64;
    Some(Read { done: (mean * 1e6) as u64, total: 1_000_000, unit: None })
}

/// For a job that does not end by itself: the lowest watermark at the sinks with its lag
/// behind the wall clock, the last checkpoint, and the time so far.
fn unbounded_status(w: &Watched, elapsed: Duration) -> String {
    let now = weir_core::time::wall_ms();
    let mut out = String::new();
    let low = w
        .metrics
        .nodes
        .iter()
        .filter(|(name, _)| w.sinks.contains(name))
        .flat_map(|(_, n)| n.watermarks())
        .filter(|w| *w != i64::MIN && *w != i64::MAX)
        .min();
    if let Some(low) = low {
        out += &format!(" · watermark lag {}", span(Duration::from_millis(now.saturating_sub(low).max(0) as u64)));
    }
    let c = &w.metrics.checkpoints;
    let at = c.last_completed_at_ms.load(Ordering::Relaxed);
    if at > 0 {
        let ago = Duration::from_millis((now.max(0) as u64).saturating_sub(at));
        out += &format!(" · checkpoint {} {} ago", c.completed.load(Ordering::Relaxed), span(ago));
    }
    out + &format!(" · {}", span(elapsed))
}

/// A duration as a person reads it: `850 ms`, `4.2 s`, `3 min 20 s`, `5 h 02 min`, `12 d`.
pub fn span(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{} ms", d.as_millis()),
        1..60 => format!("{:.1} s", d.as_secs_f64()),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d", s / 86_400),
    }
}

/// Records the sources read (what they emitted) and records the sinks received.
fn ends(w: &Watched) -> (u64, u64) {
    let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let (mut read, mut delivered) = (0, 0);
    for (name, n) in &w.metrics.nodes {
        if w.sources.contains(name) {
            read += g(&n.records_out) + g(&n.dead_letters);
        } else if w.sinks.contains(name) {
            delivered += g(&n.records_in);
        }
    }
    (read, delivered)
}

/// `1234567` as `1,234,567`.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The end-of-run summary as a table: per node in, out, dead-lettered, late, restarts, time
/// in its calls, and the CPU time of the task threads it heads (`-` for a node chained
/// behind another); then checkpoints, wall time and peak memory.
pub fn table(m: &JobMetrics, wall: Duration) -> String {
    let order: Vec<String> = m.nodes.iter().map(|(n, _)| n.clone()).collect();
    table_of(&m.to_json(), &order, wall, peak_memory())
}

/// [`table`] of counters as JSON ([`JobMetrics::to_json`]), nodes in `order`, with the peak
/// memory in KiB when known (`weir status` prints a running job's this way).
pub fn table_of(json: &serde_json::Value, order: &[String], wall: Duration, peak_kb: Option<u64>) -> String {
    let get = |n: &str, k: &str| json["nodes"][n][k].as_u64().unwrap_or(0);
    let width = order.iter().map(String::len).max().unwrap_or(8).max(8);
    let mut out = format!(
        "{:<width$} {:>12} {:>12} {:>10} {:>8} {:>9} {:>9} {:>9}\n",
        "node", "in", "out", "dead", "late", "restarts", "time", "cpu"
    );
    for n in order {
        out += &format!(
            "{:<width$} {:>12} {:>12} {:>10} {:>8} {:>9} {:>9} {:>9}\n",
            n,
            group(get(n, "records_in")),
            group(get(n, "records_out")),
            group(get(n, "dead_letters")),
            group(get(n, "late_dropped") + get(n, "late_side_output")),
            group(get(n, "plugin_restarts")),
            format!("{:.2} s", get(n, "operator_ms") as f64 / 1000.0),
            match json["nodes"][n]["task_cpu_ms"].as_array() {
                Some(cpu) => format!("{:.2} s", cpu.iter().filter_map(serde_json::Value::as_u64).sum::<u64>() as f64 / 1000.0),
                None => "-".into(),
            },
        );
    }
    let c = &json["checkpoints"];
    out += &format!(
        "checkpoints: {} completed, {} failed · wall time {:.2} s · peak memory {}",
        c["completed"].as_u64().unwrap_or(0),
        c["failed"].as_u64().unwrap_or(0),
        wall.as_secs_f64(),
        peak_kb.map_or("unknown".into(), |kb| format!("{} MB", kb / 1024)),
    );
    out
}

/// This process's peak resident memory in KiB (Linux's `VmHWM`).
pub fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_with_totals_make_a_bar_and_spans_read_well() {
        use weir_core::status::SourceProgress;
        let mut m = JobMetrics::default();
        let file = m.node("file");
        let gen = m.node("gen");
        let w = Watched { metrics: Arc::new(m), sources: vec!["file".into(), "gen".into()], sinks: vec![] };
        assert_eq!(bounded(&w), None, "no source reported yet");
        let bytes = |done, total| SourceProgress { done, total, unit: ProgressUnit::Bytes, lag: None };
        file.note_source(0, bytes(100, Some(400)));
        file.note_source(1, bytes(100, Some(400)));
        assert_eq!(bounded(&w), None, "the generator has not reported");
        gen.note_source(0, SourceProgress { done: 10, total: None, ..Default::default() });
        assert_eq!(bounded(&w), None, "an unbounded source: a status line");
        gen.note_source(0, SourceProgress { done: 10, total: Some(20), ..Default::default() });
        // Bytes and records: the mean of the shares (0.25 and 0.5).
        assert_eq!(bounded(&w), Some(Read { done: 375_000, total: 1_000_000, unit: None }));
        let only_file = Watched { sources: vec!["file".into()], ..w };
        assert_eq!(bounded(&only_file), Some(Read { done: 200, total: 800, unit: Some(ProgressUnit::Bytes) }));
        assert_eq!(span(Duration::from_millis(850)), "850 ms");
        assert_eq!(span(Duration::from_millis(4_250)), "4.2 s");
        assert_eq!(span(Duration::from_secs(200)), "3 min 20 s");
        assert_eq!(span(Duration::from_secs(5 * 3600 + 120)), "5 h 02 min");
        assert_eq!(span(Duration::from_secs(12 * 86_400 + 5)), "12 d");
    }

    #[test]
    fn numbers_are_grouped_and_the_table_lines_up() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
        let mut m = JobMetrics::default();
        m.node("logs").records_in.store(300_000, Ordering::Relaxed);
        m.node("logs").records_out.store(300_000, Ordering::Relaxed);
        m.node("parse").dead_letters.store(7, Ordering::Relaxed);
        m.node("parse").operator_ns.store(1_250_000_000, Ordering::Relaxed);
        m.node("logs").note_task_cpu(0, 700_000_000);
        m.node("logs").note_task_cpu(1, 800_000_000);
        let t = table(&m, Duration::from_millis(1500));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "node               in          out       dead     late  restarts      time       cpu");
        assert_eq!(lines[1], "logs          300,000      300,000          0        0         0    0.00 s    1.50 s");
        assert_eq!(lines[2], "parse               0            0          7        0         0    1.25 s         -");
        assert!(lines[3].starts_with("checkpoints: 0 completed, 0 failed · wall time 1.50 s · peak memory "), "{}", lines[3]);
    }
}
