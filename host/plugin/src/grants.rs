//! Capability grants: what a plugin may reach through WASI besides weir's own interfaces.
//!
//! By default a plugin has no files, no network, no environment variables, and a wall clock
//! that reads the epoch (its records' event time and `context.processing-time` are what it
//! should go by, so that a replay from a checkpoint computes the same). An operator's
//! `grants` in the job file opens read-only directories, passes named environment variables
//! and lets the wall clock run. A denied access is an ordinary error in the guest (a file
//! outside the granted directories cannot be opened, an ungranted variable is not set), so
//! the record goes to the dead letters with it and the job goes on.

use std::path::PathBuf;
use std::time::Duration;

use wasmtime_wasi::{FsPerms, HostWallClock, WasiCtx};

/// What one operator's plugin is granted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Directories it may read: `(host path, the path the plugin opens them by)`.
    pub read: Vec<(PathBuf, String)>,
    /// Environment variables it sees, by name, with weir's values (when weir has them).
    pub env: Vec<String>,
    /// The wall clock runs (else it reads 1970-01-01T00:00:00Z).
    pub clock: bool,
}

/// A wall clock that always reads the epoch.
struct Epoch;

impl HostWallClock for Epoch {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl Grants {
    /// Nothing granted.
    pub fn none() -> Grants {
        Grants::default()
    }

    /// The WASI context of one instance of `operator`'s plugin, writing its standard error
    /// to `stderr`. A granted directory that cannot be opened (it was checked when the job
    /// was, so it went away since) is left out with a warning.
    pub(crate) fn wasi(&self, operator: &str, stderr: super::fault::StderrTail) -> WasiCtx {
        let mut b = WasiCtx::builder();
        b.stderr(stderr);
        // Plugin calls run on the subtask's own thread, so file reads may block it.
        b.allow_blocking_current_thread(true);
        for (host, guest) in &self.read {
            if let Err(e) = b.preopened_dir(host, guest, FsPerms::ReadOnly) {
                eprintln!(
                    "weir: operator `{operator}`: granted directory {} cannot be opened ({e:#}); the plugin will not see it",
                    host.display()
                );
            }
        }
        for name in &self.env {
            if let Ok(value) = std::env::var(name) {
                b.env(name, value);
            }
        }
        if !self.clock {
            b.wall_clock(Epoch);
        }
        b.build()
    }
}
