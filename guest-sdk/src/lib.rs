//! The Rust SDK for weir plugins.
//!
//! A weir operator is a WebAssembly component. This crate hides the generated bindings and
//! gives plugin authors a small API: [`Record`] with JSON helpers, typed keyed state
//! ([`ValueState`], [`ListState`], [`MapState`]), [`emit`] and side outputs, timers, logging,
//! and one attribute macro per operator kind:
//!
//! | macro | on | world |
//! | --- | --- | --- |
//! | [`macro@map`] | `fn(Record) -> Result<Record>`, `fn(RecordView) -> Result<Mapped>` or `impl Map for T` | `map` |
//! | [`macro@filter`] | `fn(&Record) -> Result<bool>`, `fn(RecordView) -> Result<bool>` or `impl Filter for T` | `filter` |
//! | [`macro@flat_map`] | `fn(Record) -> Result<Vec<Record>>` or `impl FlatMap for T` | `flat-map` |
//! | [`macro@key_selector`] | `fn(&Record) -> Result<Vec<u8>>`, `fn(RecordView) -> Result<Vec<u8>>` or `impl KeySelector for T` | `key-selector` |
//! | [`macro@process`] | `impl Process for T` | `process` |
//! | [`macro@aggregate`] | `impl Aggregate for T` | `aggregate` |
//! | [`macro@window_process`] | `impl WindowProcess for T` | `window-process` |
//!
//! ```ignore
//! #[weir_sdk::map]
//! fn double(rec: weir_sdk::Record) -> weir_sdk::Result<weir_sdk::Record> {
//!     let x: i64 = rec.json()?;
//!     rec.with_json(&(x * 2))
//! }
//! ```
//!
//! The forms that take a [`RecordView`] read each record where it lies in the batch the
//! host sent, and a map answering [`Mapped::Unchanged`] sends nothing back: the cheapest
//! boundary, for operators that mostly check or pass records on.
//!
//! [`json`] is the validating JSON scanner the host reads event times and keys with: a
//! plugin that checks records (every field present, of the right type) can walk each line
//! once in place, and leave what the scanner gives up on to serde_json.
//!
//! Operator logic runs natively too: [`testing`] is an in-memory host with state, timers and
//! simulated time, so plugins are unit-tested with plain `cargo test`.

pub use weir_sdk_macro::{aggregate, filter, flat_map, key_selector, map, process, window_process};

mod api;
mod host;
mod reads;
mod record;
#[doc(hidden)]
pub mod rt;
mod state;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use api::*;
pub use record::{Mapped, RecordView};
pub use state::*;
pub use weir_json as json;

/// Generated bindings of the host imports. Not part of the API: use the items re-exported at
/// the crate root.
#[doc(hidden)]
pub mod wit {
    wit_bindgen::generate!({
        path: "../wit",
        world: "host-imports",
        generate_all,
    });
}

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// A record of a stream: optional key, value bytes (JSON by default), event time, headers.
pub type Record = wit::weir::plugin::types::Record;
/// Why an operator refused a record, its config or a call.
pub type Error = wit::weir::plugin::types::Error;
/// A window `[start, end)` in epoch milliseconds.
pub type Window = wit::weir::plugin::types::Window;
/// A fired timer.
pub type Timer = wit::weir::plugin::types::Timer;
/// The clock a timer runs on.
pub type TimeDomain = wit::weir::plugin::types::TimeDomain;
/// Log levels of [`log`].
pub type Level = wit::weir::plugin::log::Level;
/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
