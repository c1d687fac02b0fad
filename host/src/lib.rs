//! weir's runtime: runs jobs whose operators are WebAssembly components.
//!
//! Follow a record: [`job`] parses and checks the job file, [`plan`] turns it into tasks,
//! [`runtime`] runs each task on its own thread with bounded channels between them,
//! [`connectors`] read sources and write sinks, [`operators`] and [`plugin`] run Wasm
//! operators, [`window`] and [`time`] handle event time, [`state`] keeps keyed state.

pub mod checkpoint;
pub mod connectors;
pub mod control;
pub mod job;
pub mod operators;
pub mod plan;
pub mod runtime;
pub mod window;

pub use weir_core::{json, record, time};
pub use weir_plugin as plugin;
pub use weir_state as state;
