//! What `weir run` shows on a terminal: a status line refreshed in place while the job runs
//! (records in and out with their rates, dead letters, time), and a table of the counters at
//! the end. Nothing of it when stderr is not a terminal or with `--quiet`: then `weir run`
//! prints the one summary line it always printed, so scripts keep working. The live line is
//! also left out when stdout is the same terminal (print sinks write there, and the line
//! would be drawn through their rows).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir_core::status::JobMetrics;

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
        let thread = std::thread::Builder::new()
            .name("weir-progress".into())
            .spawn(move || {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
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
                        bar.set_message(format!(
                            "{} records in ({}/s) · {} out ({}/s) · dead letters {} · {:.1} s",
                            group(i),
                            group(ri as u64),
                            group(o),
                            group(ro as u64),
                            group(w.metrics.dead_letters()),
                            started.elapsed().as_secs_f64()
                        ));
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

/// The end-of-run summary as a table: per node in, out, dead-lettered, late and restarts;
/// then checkpoints, wall time and peak memory.
pub fn table(m: &JobMetrics, wall: Duration) -> String {
    let json = m.to_json();
    let get = |n: &str, k: &str| json["nodes"][n][k].as_u64().unwrap_or(0);
    let width = m.nodes.iter().map(|(n, _)| n.len()).max().unwrap_or(8).max(8);
    let mut out = format!("{:<width$} {:>12} {:>12} {:>10} {:>8} {:>9}\n", "node", "in", "out", "dead", "late", "restarts");
    for (n, _) in &m.nodes {
        out += &format!(
            "{:<width$} {:>12} {:>12} {:>10} {:>8} {:>9}\n",
            n,
            group(get(n, "records_in")),
            group(get(n, "records_out")),
            group(get(n, "dead_letters")),
            group(get(n, "late_dropped") + get(n, "late_side_output")),
            group(get(n, "plugin_restarts")),
        );
    }
    let c = &json["checkpoints"];
    out += &format!(
        "checkpoints: {} completed, {} failed · wall time {:.2} s · peak memory {}",
        c["completed"].as_u64().unwrap_or(0),
        c["failed"].as_u64().unwrap_or(0),
        wall.as_secs_f64(),
        peak_memory().map_or("unknown".into(), |kb| format!("{} MB", kb / 1024)),
    );
    out
}

/// This process's peak resident memory in KiB (Linux's `VmHWM`).
fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let t = table(&m, Duration::from_millis(1500));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "node               in          out       dead     late  restarts");
        assert_eq!(lines[1], "logs          300,000      300,000          0        0         0");
        assert_eq!(lines[2], "parse               0            0          7        0         0");
        assert!(lines[3].starts_with("checkpoints: 0 completed, 0 failed · wall time 1.50 s · peak memory "), "{}", lines[3]);
    }
}
