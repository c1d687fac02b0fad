//! Runs a WASI command component on the host's plugin engine: the same compiler settings,
//! and with the call deadline's interruption checks unless the second argument is `off`.
//! The benchmarks run the plugins' logic this way, built for wasm32-wasip2 as a plain
//! program (`log-analyzer-parse`'s `native_twin`, `map-filter-logic`'s `map_filter_twin`), to time
//! Wasm execution without the plugin boundary:
//!
//!     cargo run --release -p weir-bench --example wasm_command -- PATH.wasm [off]
//!
//! Standard output and the environment (`ITERS`) are the command's.

use std::time::Duration;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::Store;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use weir_host::plugin::PluginEngine;

struct Command {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Command {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

fn main() -> wasmtime::Result<()> {
    let path = std::env::args().nth(1).expect("usage: wasm_command PATH.wasm [off]");
    let deadline = std::env::args().nth(2).as_deref() != Some("off");
    // Compiled code is the same for any deadline; an hour lets long loops finish.
    let engine = PluginEngine::with_deadline(deadline.then_some(Duration::from_secs(3600)))?;
    let component = Component::from_file(engine.engine(), &path)?;
    let mut linker = Linker::new(engine.engine());
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    let wasi = WasiCtx::builder().inherit_stdio().inherit_env().build();
    let mut store = Store::new(engine.engine(), Command { wasi, table: ResourceTable::new() });
    engine.arm(&mut store);
    let command = wasmtime_wasi::p2::bindings::sync::Command::instantiate(&mut store, &component, &linker)?;
    command.wasi_cli_run().call_run(&mut store)?.map_err(|()| wasmtime::Error::msg(format!("{path} exited with an error")))
}
