//! `kind = "print"`: each record's value on a line of standard output (the dead letters:
//! standard error).

use std::io::Write;

use anyhow::Context as _;

use serde::Deserialize;
use weir_core::config::Check;
use weir_core::operator::{Operator, Output};
use weir_core::record::Batch;

/// Wraps writes to standard error when a live line is drawn there (`weir run`'s progress
/// on a terminal): the line is cleared before the write and drawn again after it.
type AroundStderr = Box<dyn Fn(&mut dyn FnMut()) + Send + Sync>;
static AROUND_STDERR: std::sync::OnceLock<AroundStderr> = std::sync::OnceLock::new();

/// Has every print sink that writes to standard error (the dead letters) write through
/// `around`, which runs the write it is given (once per process; later calls are ignored).
pub fn write_stderr_around(around: impl Fn(&mut dyn FnMut()) + Send + Sync + 'static) {
    let _ = AROUND_STDERR.set(Box::new(around));
}

/// `kind = "print"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Written before each line, as Flink's `print("Security Alerts")` (`Security Alerts> ...`);
    /// the dead letters' default is `dead-letter`.
    #[serde(default)]
    pub prefix: Option<String>,
}

impl Check for Config {}

impl crate::SinkConfig for Config {
    fn open(&self, at: crate::SinkAt) -> anyhow::Result<Box<dyn Operator>> {
        Ok(Box::new(match at.dead_letter {
            true => PrintSink::new(Some(self.prefix.clone().unwrap_or_else(|| "dead-letter".into())), Stream::Stderr),
            false => PrintSink::new(self.prefix.clone(), Stream::Stdout),
        }))
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
    /// Lines handed to the stream so far.
    written: u64,
}

impl PrintSink {
    /// A print sink.
    pub fn new(prefix: Option<String>, stream: Stream) -> Self {
        PrintSink { prefix, stream, written: 0 }
    }
}

/// Writes each record as a line; `written` counts the lines handed to `w` whole.
pub(crate) fn write_lines(w: &mut dyn Write, prefix: Option<&str>, batch: &Batch, written: &mut u64) -> std::io::Result<()> {
    for r in &batch.records {
        if let Some(p) = prefix {
            w.write_all(p.as_bytes())?;
            w.write_all(b"> ")?;
        }
        w.write_all(&r.value)?;
        w.write_all(b"\n")?;
        *written += 1;
    }
    Ok(())
}

impl Operator for PrintSink {
    fn process(&mut self, batch: Batch, _out: &mut Output) -> anyhow::Result<()> {
        let before = self.written;
        let (res, name) = match self.stream {
            Stream::Stdout => {
                let mut w = std::io::stdout().lock();
                (write_lines(&mut w, self.prefix.as_deref(), &batch, &mut self.written).and_then(|_| w.flush()), "standard output")
            }
            Stream::Stderr => {
                let mut res = Ok(());
                let mut write = || {
                    let mut w = std::io::stderr().lock();
                    res = write_lines(&mut w, self.prefix.as_deref(), &batch, &mut self.written).and_then(|_| w.flush());
                };
                match AROUND_STDERR.get() {
                    Some(around) => around(&mut write),
                    None => write(),
                }
                (res, "standard error")
            }
        };
        match res {
            // The reader went away (`weir run ... | head -1`): nothing printed from here on
            // reaches anyone, so the job stops, as `yes | head` does, and says how far it got.
            // (A line counted here may still have been in the pipe's buffer when it closed.)
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                anyhow::bail!("print sink: {name} was closed by its reader (broken pipe) after {} lines; the job stops", before)
            }
            other => other.with_context(|| format!("print sink: writing to {name} failed")),
        }
    }
}
