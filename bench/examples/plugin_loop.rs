//! Runs plugins over one batch in a loop and prints the time per record: a target for
//! `perf record` without criterion's setup (copies of the input) in the profile.
//!
//!     cargo build --release -p weir-bench --example plugin_loop
//!     WEIR_PERFMAP=1 perf record -g target/release/examples/plugin_loop parse
//!
//! Cases: `map+filter` (the `double` and `even` examples on integers), `parse` (the
//! log-analyzer's parse on log lines) or any map plugin of `plugins/dist` by name on the same
//! lines, such as `identity` and `passthrough` (the boundary alone, records copied back or
//! answered unchanged); 4,096 records a batch, `ITERS` batches (3,000 by default), `CONFIG`
//! the plugin's config. A second argument `off` compiles the plugins without the call
//! deadline's checks (`plugin-deadline = "off"`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use weir_host::plugin::{Instance, Plugin, PluginEngine, DEFAULT_DEADLINE};
use weir_host::record::Record;

// The allocator the `weir` binary runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const N: usize = 4096;

fn instance(name: &str, deadline: bool, config: &str) -> Instance {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist").join(format!("{name}.wasm"));
    let engine = PluginEngine::with_deadline(deadline.then_some(DEFAULT_DEADLINE)).expect("engine");
    let plugin = Plugin::load(&engine, &path).unwrap_or_else(|e| panic!("{}: {e} (run scripts/build-plugins.sh)", path.display()));
    Instance::new(Arc::new(plugin), name, 0, config.into()).expect("instance")
}

fn main() {
    let case = std::env::args().nth(1).unwrap_or_else(|| "identity".into());
    let deadline = std::env::args().nth(2).as_deref() != Some("off");
    let iters: usize = std::env::var("ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(3000);
    let config = std::env::var("CONFIG").unwrap_or_else(|_| "{}".into());
    let mut passed = 0;
    let start;
    if case == "map+filter" {
        let (mut double, mut even) = (instance("double", deadline, "{}"), instance("even", deadline, "{}"));
        let input: Vec<Record> = map_filter_logic::sample_values(N)
            .into_iter()
            .zip(0..)
            .map(|(value, i)| Record { value, timestamp: Some(i), ..Record::default() })
            .collect();
        let mut batch = input.clone();
        start = Instant::now();
        for _ in 0..iters {
            // Fresh values, in the buffers of the last round (as `map_filter_twin` does).
            for (r, i) in batch.iter_mut().zip(&input) {
                r.value.clone_from(&i.value);
            }
            let failed = double.map(&mut batch);
            let kept = if failed.iter().all(Option::is_none) {
                even.filter(&batch)
            } else {
                let mapped: Vec<Record> = batch.iter().zip(failed).filter(|(_, f)| f.is_none()).map(|(r, _)| r.clone()).collect();
                even.filter(&mapped)
            };
            passed += kept.iter().filter(|k| matches!(k, Ok(true))).count();
        }
    } else {
        let name = if case == "parse" { "log_analyzer_parse" } else { case.as_str() };
        let mut map = instance(name, deadline, &config);
        // Maps write over their input; these plugins give every line back as it is.
        let mut batch: Vec<Record> = log_analyzer_parse::sample_lines(N).into_iter().map(Record::new).collect();
        start = Instant::now();
        for _ in 0..iters {
            passed += map.map(&mut batch).iter().filter(|f| f.is_none()).count();
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / (iters * N) as f64;
    println!("{case}: {ns:.1} ns per record ({passed} records passed)");
}
