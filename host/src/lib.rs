//! weir's runtime: runs jobs whose operators are WebAssembly components.
//!
//! Follow a record: [`job`] parses and checks the job file, [`plan`] turns it into tasks,
//! [`runtime`] runs each task on its own thread with bounded channels between them,
//! [`connectors`] read sources and write sinks, [`operators`] run Wasm operators and
//! [`window`] windows, all through the one lifecycle of [`operator`]; [`checkpoint`] and
//! [`control`] snapshot and steer a running job.
//!
//! Below this crate: `weir-connectors` ([`connectors`]), `weir-window` ([`window`]), `weir-plugin` ([`plugin`], wasmtime), `weir-core` ([`record`], [`keys`],
//! [`time`], [`json`], [`operator`], [`status`]) and `weir-state` ([`state`], RocksDB).
//! Modules import one way, never in a circle (`tests/e2e/layout.rs` checks): `plan` →
//! `runtime` → `checkpoint`, `operators`.

pub mod checkpoint;
pub mod control;
pub mod job;
pub mod operators;
pub mod plan;
pub mod runtime;

pub use weir_connectors as connectors;
pub use weir_core::{json, keys, operator, record, status, time};
pub use weir_plugin as plugin;
pub use weir_state as state;
pub use weir_window as window;
