//! Sources (collection, file, generator) and sinks (print, file, discard).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::job::Format;
use crate::record::{Batch, Origin, Record};
use crate::runtime::{Operator, Output, Source};

/// Inline values, each one JSON record (Flink's `from_collection`).
#[derive(Debug)]
pub struct CollectionSource {
    values: std::vec::IntoIter<serde_json::Value>,
    source: u16,
    next: u64,
}

impl CollectionSource {
    /// A source over `values`.
    pub fn new(values: Vec<serde_json::Value>, source: u16) -> Self {
        CollectionSource { values: values.into_iter(), source, next: 1 }
    }
}

impl Source for CollectionSource {
    fn poll(&mut self, max: usize) -> anyhow::Result<Option<(Vec<Record>, Duration)>> {
        let batch: Vec<Record> = self
            .values
            .by_ref()
            .take(max)
            .map(|v| {
                let origin = Origin { source: self.source, position: self.next };
                self.next += 1;
                Record { value: v.to_string().into_bytes(), origin, ..Record::default() }
            })
            .collect();
        Ok((!batch.is_empty()).then_some((batch, Duration::ZERO)))
    }
}

/// JSON lines (or text lines) from a file; bounded.
#[derive(Debug)]
pub struct FileSource {
    reader: BufReader<File>,
    path: PathBuf,
    format: Format,
    source: u16,
    line: u64,
    buf: Vec<u8>,
}

impl FileSource {
    /// Opens `path`.
    pub fn open(path: &Path, format: Format, source: u16) -> anyhow::Result<Self> {
        let f = File::open(path).with_context(|| format!("source file {}: cannot open it", path.display()))?;
        Ok(FileSource { reader: BufReader::with_capacity(1 << 20, f), path: path.to_path_buf(), format, source, line: 0, buf: Vec::new() })
    }
}

/// Marks records that failed at the source: the value is kept, the reason travels in a
/// header that the source task turns into a dead letter.
pub const REJECT_HEADER: &str = "weir-reject";

impl Source for FileSource {
    fn poll(&mut self, max: usize) -> anyhow::Result<Option<(Vec<Record>, Duration)>> {
        let mut out = Vec::with_capacity(max);
        while out.len() < max {
            self.buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .with_context(|| format!("source file {}: read failed", self.path.display()))?;
            if n == 0 {
                break;
            }
            self.line += 1;
            while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
                self.buf.pop();
            }
            let mut r =
                Record { value: self.buf.clone(), origin: Origin { source: self.source, position: self.line }, ..Record::default() };
            if self.format == Format::Json {
                if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&r.value) {
                    r.headers.push((REJECT_HEADER.into(), format!("not JSON: {e}").into_bytes()));
                }
            }
            out.push(r);
        }
        Ok((!out.is_empty()).then_some((out, Duration::ZERO)))
    }
}

/// Settings of the log generator.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// Events to make (None: unbounded).
    pub count: Option<u64>,
    /// Seed; equal seeds give equal streams.
    pub seed: u64,
    /// Distinct users.
    pub users: u32,
    /// Epoch seconds of the first event.
    pub start: i64,
}

const ACTIONS: [&str; 8] = ["login_success", "logout", "view", "purchase", "download", "login_failed", "view", "view"];
const IPS: [&str; 4] = ["192.168.1.1", "192.168.1.2", "10.0.0.1", "10.0.0.2"];
const AGENTS: [&str; 3] = ["Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (Macintosh)", "curl/8.5.0"];

/// The log generator: users acting in sessions, with failed-login bursts (security alerts)
/// and users who go quiet for more than a day after logging in (anomaly alerts). Event time
/// advances about two seconds per event. Deterministic for a seed.
#[derive(Debug)]
pub struct Generator {
    cfg: GeneratorConfig,
    rng: ChaCha8Rng,
    made: u64,
    t: i64,
    pending: std::collections::VecDeque<(String, &'static str, i64)>,
    /// Sleepers: user index → event time (s) until which the user is quiet.
    quiet_until: Vec<i64>,
    source: u16,
}

impl Generator {
    /// A generator for subtask `subtask` (each subtask gets its own seed).
    pub fn new(cfg: GeneratorConfig, subtask: u64, source: u16) -> Generator {
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(subtask.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        let users = cfg.users.max(1) as usize;
        let t = cfg.start;
        Generator { rng, made: 0, t, pending: Default::default(), quiet_until: vec![i64::MIN; users], cfg, source }
    }

    fn sleepers(&self) -> usize {
        (self.cfg.users as usize / 10).max(1)
    }

    fn next_event(&mut self) -> (String, &'static str, i64) {
        if let Some(e) = self.pending.pop_front() {
            return e;
        }
        loop {
            self.t += [0, 1, 1, 2, 2, 3, 5][self.rng.random_range(0..7)];
            let u = self.rng.random_range(0..self.cfg.users.max(1) as usize);
            let user = format!("user{}", u + 1);
            if self.quiet_until[u] > self.t {
                continue;
            }
            // Sleepers log in, then go quiet for 24-27 h of event time.
            if u < self.sleepers() && self.quiet_until[u] == i64::MIN {
                let offset = 600 * (u as i64 + 1);
                if self.t - self.cfg.start >= offset {
                    self.quiet_until[u] = self.t + 86_400 + self.rng.random_range(60..10_800);
                    return (user, "login_success", self.t);
                }
            }
            if self.rng.random_bool(0.01) {
                let mut ts = self.t;
                for _ in 0..self.rng.random_range(3..=8) {
                    ts += self.rng.random_range(0..=40);
                    self.pending.push_back((user.clone(), "login_failed", ts));
                }
                self.t = ts;
                return self.pending.pop_front().expect("burst has at least three");
            }
            let action = ACTIONS[self.rng.random_range(0..ACTIONS.len())];
            if u < self.sleepers() && action == "login_success" {
                // A sleeper's next login starts its next long quiet spell.
                self.quiet_until[u] = self.t + 86_400 + self.rng.random_range(60..10_800);
            }
            return (user, action, self.t);
        }
    }
}

impl Source for Generator {
    fn poll(&mut self, max: usize) -> anyhow::Result<Option<(Vec<Record>, Duration)>> {
        let left = self.cfg.count.map(|c| c - self.made).unwrap_or(u64::MAX);
        if left == 0 {
            return Ok(None);
        }
        let n = (max as u64).min(left) as usize;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let (user, action, ts) = self.next_event();
            self.made += 1;
            let ev = serde_json::json!({
                "user_id": user,
                "session_id": format!("session_{}", self.rng.random_range(1000..10000)),
                "action": action,
                "timestamp": ts,
                "ip_address": IPS[self.rng.random_range(0..IPS.len())],
                "user_agent": AGENTS[self.rng.random_range(0..AGENTS.len())],
                "metadata": {},
            });
            out.push(Record {
                value: ev.to_string().into_bytes(),
                origin: Origin { source: self.source, position: self.made },
                ..Record::default()
            });
        }
        Ok(Some((out, Duration::ZERO)))
    }
}

/// Where a print sink writes.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error (the dead-letter default).
    Stderr,
}

/// Prints each record's value on its own line, as `PREFIX> value` with a prefix.
#[derive(Debug)]
pub struct PrintSink {
    prefix: Option<String>,
    stream: Stream,
}

impl PrintSink {
    /// A print sink.
    pub fn new(prefix: Option<String>, stream: Stream) -> Self {
        PrintSink { prefix, stream }
    }
}

fn write_lines(w: &mut dyn Write, prefix: Option<&str>, batch: &Batch) -> std::io::Result<()> {
    for r in &batch.records {
        if let Some(p) = prefix {
            w.write_all(p.as_bytes())?;
            w.write_all(b"> ")?;
        }
        w.write_all(&r.value)?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

impl Operator for PrintSink {
    fn process(&mut self, batch: Batch, _out: &mut Output) -> anyhow::Result<()> {
        let res = match self.stream {
            Stream::Stdout => {
                let mut w = std::io::stdout().lock();
                write_lines(&mut w, self.prefix.as_deref(), &batch).and_then(|_| w.flush())
            }
            Stream::Stderr => {
                let mut w = std::io::stderr().lock();
                write_lines(&mut w, self.prefix.as_deref(), &batch).and_then(|_| w.flush())
            }
        };
        // A closed pipe (`weir run ... | head`) is not the job's failure.
        match res {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other.context("print sink: write failed"),
        }
    }
}

/// Writes JSON lines to a file.
#[derive(Debug)]
pub struct FileSink {
    w: BufWriter<File>,
    path: PathBuf,
}

impl FileSink {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let f = File::create(path).with_context(|| format!("sink file {}: cannot create it (does its folder exist?)", path.display()))?;
        Ok(FileSink { w: BufWriter::with_capacity(1 << 20, f), path: path.to_path_buf() })
    }
}

impl Operator for FileSink {
    fn process(&mut self, batch: Batch, _out: &mut Output) -> anyhow::Result<()> {
        write_lines(&mut self.w, None, &batch).with_context(|| format!("sink file {}: write failed", self.path.display()))
    }
    fn close(&mut self, _out: &mut Output) -> anyhow::Result<()> {
        self.w.flush().with_context(|| format!("sink file {}: flush failed", self.path.display()))?;
        self.w.get_ref().sync_all().with_context(|| format!("sink file {}: sync failed", self.path.display()))
    }
}

/// Counts and drops.
#[derive(Debug, Default)]
pub struct DiscardSink;

impl Operator for DiscardSink {
    fn process(&mut self, _batch: Batch, _out: &mut Output) -> anyhow::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(g: &mut Generator) -> Vec<serde_json::Value> {
        let mut all = Vec::new();
        while let Some((b, _)) = g.poll(1000).unwrap() {
            all.extend(b.iter().map(|r| serde_json::from_slice::<serde_json::Value>(&r.value).unwrap()));
        }
        all
    }

    #[test]
    fn generator_is_deterministic_for_a_seed() {
        let cfg = GeneratorConfig { count: Some(500), seed: 7, users: 50, start: 1_735_689_600 };
        let a = drain(&mut Generator::new(cfg.clone(), 0, 0));
        let b = drain(&mut Generator::new(cfg.clone(), 0, 0));
        let c = drain(&mut Generator::new(GeneratorConfig { seed: 8, ..cfg }, 0, 0));
        assert_eq!(a.len(), 500);
        assert_eq!(a, b);
        assert_ne!(a, c);
        for f in ["user_id", "session_id", "action", "ip_address", "user_agent"] {
            assert!(a.iter().all(|e| e[f].is_string()), "{f}");
        }
        assert!(a.iter().all(|e| e["timestamp"].is_i64()));
    }
}
