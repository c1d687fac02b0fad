//! `kind = "file"`: a source of JSON (or text) lines, and a sink of JSON lines that commits
//! in two phases with checkpoints.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use serde::Deserialize;
use weir_core::config::{Check, FieldError};
use weir_core::operator::{Operator, Output, Source};
use weir_core::record::{Batch, Origin, Record};
use weir_core::status::{ProgressUnit, SourceProgress};

/// `kind = "file"` as a source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileSourceConfig {
    /// The file of lines.
    pub path: PathBuf,
    /// `json` (each line must be JSON; others go to the dead letters) or `text`.
    #[serde(default)]
    pub format: Format,
    /// The longest line read as a record, in bytes; a longer one goes to the dead letters
    /// with its first bytes and its length.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: u64,
}

fn default_max_line_bytes() -> u64 {
    DEFAULT_MAX_LINE_BYTES
}

/// Payload format of a file source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Each line must be JSON.
    #[default]
    Json,
    /// Lines as they are.
    Text,
}

impl Check for FileSourceConfig {
    fn check(&self) -> Result<(), FieldError> {
        match self.max_line_bytes {
            0 => Err(FieldError::new("max-line-bytes", "must be at least 1 (bytes)")),
            _ => Ok(()),
        }
    }
}

impl crate::SourceConfig for FileSourceConfig {
    fn open(&self, at: crate::SourceAt<'_>) -> anyhow::Result<Box<dyn Source>> {
        Ok(Box::new(FileSource::open(&self.path, at.index, self.max_line_bytes)?))
    }

    fn requires_json(&self) -> bool {
        self.format == Format::Json
    }
}

/// `kind = "file"` as a sink.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileSinkConfig {
    /// Where to write.
    pub path: PathBuf,
}

impl Check for FileSinkConfig {}

impl crate::SinkConfig for FileSinkConfig {
    fn open(&self, at: crate::SinkAt) -> anyhow::Result<Box<dyn Operator>> {
        Ok(Box::new(match at.transactional {
            true => FileSink::transactional(&self.path, at.subtask)?,
            false => FileSink::create(&self.path)?,
        }))
    }
}

/// The longest line a file source reads as a record unless the job says otherwise
/// (`max-line-bytes`): 1 MiB, Kafka's default largest message.
pub const DEFAULT_MAX_LINE_BYTES: u64 = 1 << 20;
/// Bytes of a too-long line kept in its dead letter.
pub const TOO_LONG_HEAD: usize = 256;

/// JSON lines (or text lines) from a file; bounded.
#[derive(Debug)]
pub struct FileSource {
    reader: BufReader<File>,
    path: PathBuf,
    source: u16,
    line: u64,
    offset: u64,
    max_line: u64,
    /// Lines refused before they became records (too long), with the reason.
    refused: Vec<(Record, String)>,
    /// The file's length at open, when it is a regular file (not a pipe).
    len: Option<u64>,
}

/// A line read from a file.
enum Line {
    /// The line with its line end.
    Whole(Vec<u8>),
    /// A line longer than the bound: its first bytes and its length (line end included).
    TooLong(Vec<u8>, u64),
}

impl FileSource {
    /// The next line, if any: copied once, straight out of the reader's buffer, unless it
    /// runs past the buffer's end. A line longer than `max_line` is never held whole: only
    /// its first [`TOO_LONG_HEAD`] bytes are kept while the rest is skipped. `None` at the end.
    fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        let ahead = self.reader.fill_buf()?;
        if ahead.is_empty() {
            return Ok(None);
        }
        let line = match memchr::memchr(b'\n', ahead) {
            Some(end) if end as u64 <= self.max_line => {
                let line = ahead[..=end].to_vec();
                self.reader.consume(end + 1);
                Line::Whole(line)
            }
            _ => {
                // The line runs past the buffer or past the bound: read it in pieces, keeping
                // no more of it than the bound and a line end (`\r\n`), or a dead letter's head.
                let keep = usize::try_from(self.max_line.saturating_add(2)).unwrap_or(usize::MAX).max(TOO_LONG_HEAD);
                let (mut line, mut len) = (Vec::new(), 0u64);
                loop {
                    let ahead = self.reader.fill_buf()?;
                    if ahead.is_empty() {
                        break;
                    }
                    let (take, done) = match memchr::memchr(b'\n', ahead) {
                        Some(end) => (end + 1, true),
                        None => (ahead.len(), false),
                    };
                    line.extend_from_slice(&ahead[..keep.saturating_sub(line.len()).min(take)]);
                    len += take as u64;
                    self.reader.consume(take);
                    if done {
                        break;
                    }
                }
                // A line end not kept means a line longer than the bound anyway.
                let ends = match line.len() as u64 == len {
                    true => line.iter().rev().take_while(|b| matches!(b, b'\n' | b'\r')).count(),
                    false => 0,
                };
                if len - ends as u64 > self.max_line {
                    line.truncate((line.len() - ends).min(TOO_LONG_HEAD));
                    line.shrink_to_fit();
                    Line::TooLong(line, len)
                } else {
                    Line::Whole(line)
                }
            }
        };
        self.offset += match &line {
            Line::Whole(l) => l.len() as u64,
            Line::TooLong(_, len) => *len,
        };
        self.line += 1;
        Ok(Some(line))
    }

    /// Opens `path`; lines longer than `max_line` bytes go to the dead letters.
    pub fn open(path: &Path, source: u16, max_line: u64) -> anyhow::Result<Self> {
        let f = File::open(path).with_context(|| format!("source file {}: cannot open it", path.display()))?;
        let len = f.metadata().ok().filter(std::fs::Metadata::is_file).map(|m| m.len());
        let reader = BufReader::with_capacity(1 << 20, f);
        Ok(FileSource { reader, path: path.to_path_buf(), source, line: 0, offset: 0, max_line, refused: Vec::new(), len })
    }
}

impl Source for FileSource {
    fn poll(&mut self, max: usize) -> anyhow::Result<Option<(Vec<Record>, Duration)>> {
        let mut out = Vec::with_capacity(max);
        let mut read = 0;
        while read < max {
            let Some(line) = self.next_line().with_context(|| format!("source file {}: read failed", self.path.display()))? else {
                break;
            };
            read += 1;
            let origin = Origin { source: self.source, position: self.line, ..Origin::default() };
            let mut value = match line {
                Line::Whole(value) => value,
                Line::TooLong(head, len) => {
                    let why = format!(
                        "line of {len} bytes is longer than `max-line-bytes` ({}); `value` holds its first {} bytes",
                        self.max_line,
                        head.len().min(TOO_LONG_HEAD)
                    );
                    self.refused.push((Record { value: head, origin, ..Record::default() }, why));
                    continue;
                }
            };
            while matches!(value.last(), Some(b'\n' | b'\r')) {
                value.pop();
            }
            // JSON lines are checked in the source task's one pass over each record.
            out.push(Record { value, origin, ..Record::default() });
        }
        if read == 0 {
            return Ok(None);
        }
        Ok(Some((out, Duration::ZERO)))
    }

    fn take_refused(&mut self) -> Vec<(Record, String)> {
        std::mem::take(&mut self.refused)
    }

    fn progress(&self) -> Option<SourceProgress> {
        // A file that grew since it was opened is read to its new end.
        let total = self.len.map(|l| l.max(self.offset));
        Some(SourceProgress { done: self.offset, total, unit: ProgressUnit::Bytes, lag: None })
    }

    fn position(&self) -> serde_json::Value {
        serde_json::json!({ "offset": self.offset, "line": self.line })
    }

    fn seek(&mut self, position: &serde_json::Value) -> anyhow::Result<()> {
        let (Some(offset), Some(line)) = (position["offset"].as_u64(), position["line"].as_u64()) else {
            anyhow::bail!("file position without `offset` and `line`");
        };
        let len = std::fs::metadata(&self.path)?.len();
        anyhow::ensure!(
            offset <= len,
            "source file {} is shorter ({len} bytes) than the checkpoint's position {offset}: it changed",
            self.path.display()
        );
        self.reader.seek(SeekFrom::Start(offset))?;
        (self.offset, self.line) = (offset, line);
        Ok(())
    }
}

/// Writes JSON lines to a file.
///
/// With checkpoints the sink commits in two phases, so a reader of `path` sees every
/// result exactly once: records go to an in-progress part file beside `path`; at a barrier
/// the part is flushed and becomes pending (pre-commit), and the snapshot keeps its own
/// link to it; when the checkpoint completes, pending parts are appended to `path`. A
/// restore truncates `path` to its length at the checkpoint and appends that checkpoint's
/// pending parts from the snapshot, so a commit interrupted by a crash is neither lost nor
/// doubled, and every checkpoint or savepoint is self-contained.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    direct: Option<BufWriter<File>>,
    txn: Option<Txn>,
}

#[derive(Debug)]
struct Txn {
    parts: PathBuf,
    subtask: usize,
    started: bool,
    inprogress: Option<BufWriter<File>>,
    /// Pre-committed parts: (checkpoint id, file name in `parts`).
    pending: Vec<(u64, String)>,
}

/// What a transactional file sink stores in a checkpoint.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SinkSnapshot {
    committed_len: u64,
    /// Pending parts, in commit order; each is a file of the snapshot folder.
    pending: Vec<(u64, String)>,
}

const SINK_SNAPSHOT: &str = "sink.json";

fn append_file(to: &Path, from: &Path) -> anyhow::Result<()> {
    let mut src = File::open(from).with_context(|| format!("part file {} is missing", from.display()))?;
    let mut dst = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(to)
        .with_context(|| format!("sink file {}: cannot open", to.display()))?;
    std::io::copy(&mut src, &mut dst)?;
    dst.sync_all()?;
    Ok(())
}

/// A hard link when both are on one file system, else a copy.
fn link_or_copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).with_context(|| format!("copying {} into {}", from.display(), to.display()))?;
    }
    Ok(())
}

impl FileSink {
    /// Creates (truncates) `path` and writes to it directly.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let f = File::create(path).with_context(|| format!("sink file {}: cannot create it (does its folder exist?)", path.display()))?;
        Ok(FileSink { path: path.to_path_buf(), direct: Some(BufWriter::with_capacity(1 << 20, f)), txn: None })
    }

    /// A two-phase-commit sink for runs with checkpoints; part files live beside `path`.
    pub fn transactional(path: &Path, subtask: usize) -> anyhow::Result<Self> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
        let parts = path.parent().unwrap_or(Path::new(".")).join(format!(".{name}.parts"));
        let txn = Txn { parts, subtask, started: false, inprogress: None, pending: Vec::new() };
        Ok(FileSink { path: path.to_path_buf(), direct: None, txn: Some(txn) })
    }

    fn start(&mut self) -> anyhow::Result<()> {
        let Some(t) = &mut self.txn else { return Ok(()) };
        if !t.started {
            // A fresh run: empty output, no parts from an earlier run.
            File::create(&self.path)
                .with_context(|| format!("sink file {}: cannot create it (does its folder exist?)", self.path.display()))?;
            let _ = std::fs::remove_dir_all(&t.parts);
            t.started = true;
        }
        std::fs::create_dir_all(&t.parts)?;
        Ok(())
    }

    fn part_writer(&mut self) -> anyhow::Result<&mut BufWriter<File>> {
        self.start()?;
        let t = self.txn.as_mut().expect("transactional");
        if t.inprogress.is_none() {
            let p = t.parts.join(format!("part-{}.inprogress", t.subtask));
            t.inprogress = Some(BufWriter::with_capacity(1 << 20, File::create(&p)?));
        }
        Ok(t.inprogress.as_mut().expect("just set"))
    }

    /// Flushes the in-progress part and turns it into a pending part of checkpoint `id`.
    fn precommit(&mut self, id: u64) -> anyhow::Result<()> {
        self.start()?;
        let t = self.txn.as_mut().expect("transactional");
        let Some(w) = t.inprogress.take() else { return Ok(()) };
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        let name = format!("part-{}-{id}.pending", t.subtask);
        std::fs::rename(t.parts.join(format!("part-{}.inprogress", t.subtask)), t.parts.join(&name))?;
        t.pending.push((id, name));
        Ok(())
    }

    /// Appends pending parts up to checkpoint `upto` to the output and drops them.
    fn commit(&mut self, upto: u64) -> anyhow::Result<()> {
        let t = self.txn.as_mut().expect("transactional");
        let (done, keep): (Vec<_>, Vec<_>) = t.pending.drain(..).partition(|(id, _)| *id <= upto);
        t.pending = keep;
        for (_, name) in done {
            let part = t.parts.join(&name);
            append_file(&self.path, &part)?;
            std::fs::remove_file(&part)?;
        }
        Ok(())
    }
}

impl Operator for FileSink {
    fn process(&mut self, batch: Batch, _out: &mut Output) -> anyhow::Result<()> {
        if batch.records.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let w: &mut dyn Write = match &mut self.direct {
            Some(w) => w,
            None => self.part_writer()?,
        };
        let mut written = 0;
        crate::print::write_lines(w, None, &batch, &mut written).with_context(|| format!("sink file {}: write failed", path.display()))
    }

    fn close(&mut self, _out: &mut Output) -> anyhow::Result<()> {
        if let Some(w) = &mut self.direct {
            w.flush().with_context(|| format!("sink file {}: flush failed", self.path.display()))?;
            return w.get_ref().sync_all().with_context(|| format!("sink file {}: sync failed", self.path.display()));
        }
        // End of input: everything left is final (Flink's final checkpoint at the end).
        self.precommit(u64::MAX)?;
        self.commit(u64::MAX)?;
        let t = self.txn.as_mut().expect("transactional");
        let _ = std::fs::remove_dir_all(&t.parts);
        Ok(())
    }

    fn snapshot(&mut self, id: u64, dir: &Path) -> anyhow::Result<Option<weir_state::Deferred>> {
        if self.txn.is_none() {
            return Ok(None);
        }
        self.precommit(id)?;
        let committed_len = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        let t = self.txn.as_ref().expect("transactional");
        for (_, name) in &t.pending {
            link_or_copy(&t.parts.join(name), &dir.join(name))?;
        }
        let snap = SinkSnapshot { committed_len, pending: t.pending.clone() };
        std::fs::write(dir.join(SINK_SNAPSHOT), serde_json::to_vec(&snap)?)?;
        Ok(None)
    }

    fn notify_checkpoint_complete(&mut self, id: u64) -> anyhow::Result<()> {
        if self.txn.is_none() {
            return Ok(());
        }
        self.commit(id)
    }

    fn restore(&mut self, dirs: &[PathBuf], _groups: std::ops::Range<u16>) -> anyhow::Result<()> {
        let Some(t) = &mut self.txn else { return Ok(()) };
        let Some(dir) = dirs.iter().find(|d| d.join(SINK_SNAPSHOT).exists()) else { return Ok(()) };
        let snap: SinkSnapshot = serde_json::from_slice(&std::fs::read(dir.join(SINK_SNAPSHOT))?)?;
        let f = std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(&self.path)?;
        let len = f.metadata()?.len();
        anyhow::ensure!(
            len >= snap.committed_len,
            "sink file {} is shorter ({len} bytes) than at the checkpoint ({} bytes): it was changed",
            self.path.display(),
            snap.committed_len
        );
        f.set_len(snap.committed_len)?;
        f.sync_all()?;
        for (_, name) in &snap.pending {
            append_file(&self.path, &dir.join(name))?;
        }
        // Parts of the interrupted run are void: the source replays what they held.
        let _ = std::fs::remove_dir_all(&t.parts);
        t.started = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_lines_are_read_whole_across_the_readers_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, "a\nbbbbb\r\n\nccc").unwrap();
        let mut src = FileSource::open(&path, 3, DEFAULT_MAX_LINE_BYTES).unwrap();
        // A 4-byte buffer: the second line runs past it, the last has no line end.
        src.reader = BufReader::with_capacity(4, File::open(&path).unwrap());
        let (recs, _) = src.poll(10).unwrap().unwrap();
        let values: Vec<&[u8]> = recs.iter().map(|r| r.value.as_slice()).collect();
        assert_eq!(values, [&b"a"[..], b"bbbbb", b"", b"ccc"]);
        assert_eq!(recs.iter().map(|r| (r.origin.source, r.origin.position)).collect::<Vec<_>>(), [(3, 1), (3, 2), (3, 3), (3, 4)]);
        assert_eq!(src.position(), serde_json::json!({"offset": 13, "line": 4}));
        assert!(src.poll(10).unwrap().is_none());
    }

    #[test]
    fn lines_over_the_bound_are_refused_with_their_head_and_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        let long = "y".repeat(3000);
        std::fs::write(&path, format!("short\n{long}\n1234567890\r\n12345678901\nend")).unwrap();
        let mut src = FileSource::open(&path, 0, 10).unwrap();
        // A buffer smaller than the long line: it is read in pieces, never held whole.
        src.reader = BufReader::with_capacity(64, File::open(&path).unwrap());
        let mut values = Vec::new();
        while let Some((recs, _)) = src.poll(2).unwrap() {
            values.extend(recs.into_iter().map(|r| (r.origin.position, String::from_utf8(r.value).unwrap())));
        }
        assert_eq!(values, [(1, "short".to_string()), (3, "1234567890".into()), (5, "end".into())]);
        let refused: Vec<(u64, usize, String)> =
            src.take_refused().into_iter().map(|(r, why)| (r.origin.position, r.value.len(), why)).collect();
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert_eq!((refused[0].0, refused[0].1), (2, TOO_LONG_HEAD));
        assert!(refused[0].2.starts_with("line of 3001 bytes is longer than `max-line-bytes` (10)"), "{}", refused[0].2);
        assert_eq!((refused[1].0, refused[1].1), (4, 11), "a line just over the bound keeps all of it but its line end");
        assert_eq!(src.position(), serde_json::json!({"offset": 3034, "line": 5}), "offsets count refused lines whole");
    }
}
