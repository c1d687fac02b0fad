//! The one place that generates host bindings of the WIT contract (`wit/weir.wit`), from one
//! table of operator worlds ([`worlds!`] below): each row gives a world's bindings module, its
//! [`World`] variant, the export that identifies it, and the typed pre-instance ([`Prepared`]) and
//! instance ([`Bound`]) the host calls. A new world is a row here and its calls in
//! `instance.rs`. The `process` world imports every host interface; the others reuse its
//! types and host traits, so each interface is implemented once.

#![allow(missing_docs, clippy::all)]

use wasmtime::component::InstancePre;
use wasmtime::Store;

use crate::HostCtx;

/// The contract's package and version, read from the WIT file itself, so it is written once.
pub fn wit_package() -> &'static str {
    const WIT: &str = include_str!("../../../wit/weir.wit");
    WIT.lines().find_map(|l| l.trim().strip_prefix("package ")).map(|p| p.trim_end_matches(';')).unwrap_or("weir:plugin")
}

/// An item of the contract's package, `weir:plugin/NAME@VERSION`.
pub fn qualified(name: &str) -> String {
    match wit_package().split_once('@') {
        Some((package, version)) => format!("{package}/{name}@{version}"),
        None => format!("{}/{name}", wit_package()),
    }
}

/// The `process` world (and every host interface).
pub mod process {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "process",
    });
}

macro_rules! worlds {
    ($(
        $variant:ident => $module:ident, $wit:literal, marker $marker:literal, $pre:ident, $bound:ident, { $($extra:tt)* };
    )*) => {
        worlds!(@modules $( $module, $wit, { $($extra)* }; )*);

        /// The operator worlds of `wit/weir.wit`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum World {
            $( $variant, )*
        }

        impl World {
            /// Every world.
            pub const ALL: &'static [World] = &[$( World::$variant, )*];

            /// The world's WIT name (`%` escapes a keyword in WIT).
            pub fn name(self) -> &'static str {
                match self { $( World::$variant => $wit, )* }.trim_start_matches('%')
            }

            /// The export that identifies the world.
            pub fn marker(self) -> &'static str {
                match self { $( World::$variant => $marker, )* }
            }
        }

        /// A pre-instantiated plugin, typed by world.
        pub enum Prepared {
            $( $variant($module::$pre<HostCtx>), )*
        }

        /// An instance of a plugin, typed by world.
        pub enum Bound {
            $( $variant($module::$bound), )*
        }

        impl Prepared {
            /// Checks `pre` against world `world`'s imports and exports.
            pub fn new(world: World, pre: InstancePre<HostCtx>) -> wasmtime::Result<Prepared> {
                Ok(match world { $( World::$variant => Prepared::$variant($module::$pre::new(pre)?), )* })
            }

            /// A new instance in `store`: typed, and as it is (for optional exports such as
            /// `migrate`).
            pub fn instantiate(&self, store: &mut Store<HostCtx>) -> wasmtime::Result<(Bound, wasmtime::component::Instance)> {
                Ok(match self {
                    $( Prepared::$variant(p) => {
                        let raw = p.instance_pre().instantiate(&mut *store)?;
                        (Bound::$variant($module::$bound::new(&mut *store, &raw)?), raw)
                    } )*
                })
            }
        }

        impl Bound {
            /// Calls the guest's `init(config)`, which every world exports.
            pub fn call_init(&self, store: &mut Store<HostCtx>, config: &str) -> wasmtime::Result<Result<(), GuestError>> {
                match self { $( Bound::$variant(b) => b.call_init(store, config), )* }
            }
        }
    };
    (@modules $( $module:ident, $wit:literal, { $($extra:tt)* }; )*) => {
        $( worlds!(@module $module, $wit, { $($extra)* }); )*
    };
    (@module process, $wit:literal, { $($extra:tt)* }) => {};
    (@module $module:ident, $wit:literal, { $($extra:tt)* }) => {
        /// Bindings of one operator world.
        pub mod $module {
            wasmtime::component::bindgen!({
                path: "../../wit",
                world: $wit,
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

worlds! {
    Map => map, "%map", marker "map", MapPre, Map, {};
    Filter => filter, "filter", marker "filter", FilterPre, Filter, {};
    FlatMap => flat_map, "flat-map", marker "flat-map", FlatMapPre, FlatMap, {};
    KeySelector => key_selector, "key-selector", marker "select-key", KeySelectorPre, KeySelector, {};
    Process => process, "process", marker "on-timer", ProcessPre, Process, {};
    Aggregate => aggregate, "aggregate", marker "create-accumulator", AggregatePre, Aggregate, {};
    WindowProcess => window_process, "window-process", marker "process-window", WindowProcessPre, WindowProcess, {
        "weir:plugin/output": super::process::weir::plugin::output,
    };
}

pub use process::weir::plugin::types::{
    Batch as FlatBatch, Error as GuestError, Failure as WitFailure, Header as WitHeader, Mapped, Record as WitRecord, TimeDomain, Timer,
    Window,
};
