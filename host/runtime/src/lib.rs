//! weir's runtime: tasks, channels and routing, checkpoints and the control endpoint.
//!
//! Every operator implements one lifecycle (`weir_core::operator::Operator`): process a
//! batch (whose in-band marks carry the watermark), fire processing-time timers, close at end
//! of input. A task ([`task`]) is a chain of operators ([`chain`]) for one parallel subtask,
//! run on its own thread: Wasm calls are CPU work and never block an async reactor. Tasks
//! talk over bounded channels (backpressure); a task with several input channels combines
//! their watermarks (minimum over active inputs). [`route`]s partition a task's output:
//! forward, rebalance, or by key group. The [`checkpoint`] coordinator injects barriers at
//! the sources and completes a checkpoint when every task acknowledged it; the [`control`]
//! endpoint asks it for savepoints.

pub mod chain;
pub mod checkpoint;
pub mod control;
pub mod fan;
pub mod listen;
pub mod route;
pub mod task;
pub mod web;

pub use chain::{Chain, ChainLink, ReadAhead};
pub use route::{Envelope, KeyExtractor, Partitioner, Route, CHANNEL_CAPACITY};
pub use task::{run_input_task, run_source_task, InputTask, SourceControl, SourceTime};
