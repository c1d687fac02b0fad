//! The one place that generates host bindings of the WIT contract (`wit/weir.wit`). The
//! `process` world imports every host interface; the other worlds reuse its types and host
//! traits, so each interface is implemented once.

#![allow(missing_docs, clippy::all)]

/// The `process` world (and every host interface).
pub mod process {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "weir:plugin/process@0.6.0",
    });
}

macro_rules! world {
    ($module:ident, $world:literal, { $($extra:tt)* }) => {
        /// Bindings of one operator world.
        pub mod $module {
            wasmtime::component::bindgen!({
                path: "../../wit",
                world: $world,
                with: {
                    "weir:plugin/types": super::process::weir::plugin::types,
                    "weir:plugin/log": super::process::weir::plugin::log,
                    "weir:plugin/context": super::process::weir::plugin::context,
                    $($extra)*
                },
            });
        }
    };
}

world!(map, "weir:plugin/%map@0.6.0", {});
world!(filter, "weir:plugin/filter@0.6.0", {});
world!(flat_map, "weir:plugin/flat-map@0.6.0", {});
world!(key_selector, "weir:plugin/key-selector@0.6.0", {});
world!(aggregate, "weir:plugin/aggregate@0.6.0", {});
world!(window_process, "weir:plugin/window-process@0.6.0", {
    "weir:plugin/output": super::process::weir::plugin::output,
});

pub use process::weir::plugin::types::{
    Batch as FlatBatch, Error as GuestError, Failure as WitFailure, Header as WitHeader, Mapped, Record as WitRecord, TimeDomain, Timer,
    Window,
};
