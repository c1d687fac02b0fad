//! Wasm plugins: compile once per job, instantiate per subtask, call in batches.
//!
//! A plugin call is synchronous CPU work on the subtask's thread. Keyed state, timers and
//! emitted records live in the host ([`HostCtx`]), so a trapped instance is thrown away and
//! recreated with nothing lost but the call that trapped.

pub mod bindings;
pub mod cache;
mod fault;
mod grants;
mod host;
mod instance;

pub use grants::Grants;
pub use host::{CallCtx, HostCtx, ProcessCall, Ttl};
pub use instance::*;
