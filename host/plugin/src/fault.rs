//! What a trap was about. A trap itself only says "`unreachable` executed"; the cause is
//! elsewhere: a panic prints its message to the guest's standard error before it traps (Rust,
//! Python and JavaScript guests alike), and a refused memory growth is seen by the store's
//! limiter. [`StderrTail`] keeps the last lines a guest wrote, [`Limits`] remembers refusals.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use wasmtime::{ResourceLimiter, StoreLimits};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi_io::bytes::Bytes;

/// Bytes of a guest's standard error kept: the tail, where a panic message is.
const TAIL: usize = 4096;

/// A guest's standard error: the last [`TAIL`] bytes are kept, older ones dropped, so a
/// plugin that logs a lot never fills it (a full pipe would fail its writes).
#[derive(Debug, Clone, Default)]
pub struct StderrTail {
    buf: Arc<Mutex<VecDeque<u8>>>,
    /// Something was written since the last [`StderrTail::clear`]: a call that wrote
    /// nothing (the usual case) clears without taking the lock.
    written: Arc<AtomicBool>,
}

impl StderrTail {
    fn push(&self, bytes: &[u8]) {
        self.written.store(true, Ordering::Relaxed);
        let mut buf = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
        buf.extend(bytes.iter().rev().take(TAIL).rev());
        let over = buf.len().saturating_sub(TAIL);
        buf.drain(..over);
    }

    /// Forgets what was written (before a call, so a trap reads only its own output).
    pub fn clear(&self) {
        if self.written.swap(false, Ordering::Relaxed) {
            self.buf.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }

    /// The last non-empty lines written, joined by `; ` (at most 3 and 500 bytes).
    pub fn last_lines(&self) -> Option<String> {
        let buf = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
        let (a, b) = buf.as_slices();
        let text = String::from_utf8_lossy(&[a, b].concat()).into_owned();
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(3)..].join("; ");
        (!tail.is_empty()).then(|| tail.chars().take(500).collect())
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for StderrTail {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for StderrTail {
    /// Always ready: writes never wait.
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for StderrTail {
    fn poll_write(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The store's limits, remembering whether a memory growth was refused since
/// [`Limits::clear`].
#[derive(Debug)]
pub struct Limits {
    inner: StoreLimits,
    /// The memory cap in bytes.
    pub memory: usize,
    refused: bool,
}

impl Limits {
    /// Linear memory up to `memory` bytes, and enough instances for any component: one built by
    /// componentize-py or componentize-js links a dozen or more core modules (libc, the
    /// interpreter, adapters), each an instance; memories and tables stay capped by `memory`.
    pub fn new(memory: usize) -> Limits {
        Limits { inner: wasmtime::StoreLimitsBuilder::new().memory_size(memory).instances(64).build(), memory, refused: false }
    }

    /// Whether a memory growth was refused since the last [`Limits::clear`].
    pub fn refused(&self) -> bool {
        self.refused
    }

    /// Forgets earlier refusals (before a call).
    pub fn clear(&mut self) {
        self.refused = false;
    }
}

impl ResourceLimiter for Limits {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let ok = self.inner.memory_growing(current, desired, maximum)?;
        self.refused |= !ok;
        Ok(ok)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_lines_of_a_long_output() {
        let t = StderrTail::default();
        assert_eq!(t.last_lines(), None);
        for i in 0..10_000 {
            t.push(format!("log line {i}\n").as_bytes());
        }
        t.push(b"\nthread '<unnamed>' panicked at src/lib.rs:9:5:\nboom on user7\n");
        assert_eq!(t.last_lines().as_deref(), Some("log line 9999; thread '<unnamed>' panicked at src/lib.rs:9:5:; boom on user7"));
        t.clear();
        assert_eq!(t.last_lines(), None);
        t.push(&vec![b'x'; 3 * TAIL]);
        assert_eq!(t.last_lines().map(|l| l.len()), Some(500));
    }
}
