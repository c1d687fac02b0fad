//! weir's runtime: runs jobs whose operators are WebAssembly components.
//!
//! Follow a record: [`job`] parses and checks the job file, [`plan`] turns it into tasks,
//! [`runtime`] runs each task on its own thread with bounded channels between them,
//! [`connectors`] read sources and write sinks, [`operators`] run Wasm operators and
//! [`window`] windows, all through the one lifecycle of [`operator`]; [`status`] holds what
//! a running job counts, [`checkpoint`] and [`control`] snapshot and steer it.
//!
//! Below this crate: `weir-plugin` ([`plugin`], wasmtime), `weir-core` ([`record`], [`time`],
//! [`json`]) and `weir-state` ([`state`], RocksDB). Modules import one way, never in a circle
//! (`tests/e2e/layout.rs` checks): `plan` → `runtime` → `checkpoint`, `window`,
//! `operators`, `connectors` → `operator`, `keys` → `status`.

pub mod checkpoint;
pub mod connectors;
pub mod control;
pub mod job;
pub mod keys;
pub mod operator;
pub mod operators;
pub mod plan;
pub mod runtime;
pub mod status;
pub mod window;

pub use weir_core::{json, record, time};
pub use weir_plugin as plugin;
pub use weir_state as state;
