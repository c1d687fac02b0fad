//! The `weir` command's library: plans a checked job into running tasks ([`plan`]) and runs
//! Wasm operators ([`operators`]: map, filter, flat-map, process).
//!
//! Follow a record: `weir-job` reads the job file into checked types, [`plan`] turns them
//! into tasks, `weir-runtime` runs each task on its own thread with bounded channels between
//! them, `weir-connectors` read sources and write sinks, [`operators`] run Wasm operators and
//! `weir-window` windows, all through the one lifecycle of `weir_core::operator`.
//!
//! The crates below are re-exported under their short names for the CLI, the tests and the
//! benchmarks. Modules import one way, never in a circle (`tests/e2e/layout.rs` checks).

pub mod operators;
pub mod plan;
pub mod progress;
pub mod reload;
pub mod scaffold;

pub use weir_connectors as connectors;
pub use weir_core::{config, json, keys, operator, record, status, time};
pub use weir_job as job;
pub use weir_plugin as plugin;
pub use weir_runtime as runtime;
pub use weir_runtime::{checkpoint, control};
pub use weir_state as state;
pub use weir_window as window;
