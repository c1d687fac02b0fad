//! The map+filter logic over the benchmarks' 4,096 values in a loop, printing the time per
//! record. Built natively and for wasm32-wasip2 from inside `plugins/` (the plugins' own
//! build settings), it times the same code on both sides with no plugin boundary:
//!
//!     cd plugins && cargo run --release -p map-filter-logic --example map_filter_twin
//!     cargo build --release -p map-filter-logic --example map_filter_twin --target wasm32-wasip2
//!     (cd .. && cargo run --release -p weir-bench --example wasm_command -- PATH.wasm)

use std::time::Instant;

fn main() {
    let iters: usize = std::env::var("ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(3000);
    let factor = std::hint::black_box(2);
    let input = map_filter_logic::sample_values(4096);
    let mut batch = input.clone();
    let mut passed = 0;
    let start = Instant::now();
    for _ in 0..iters {
        // Fresh values, in the buffers of the last round: no allocation.
        batch.clone_from(&input);
        for v in &mut batch {
            passed += usize::from(map_filter_logic::double(v, factor).is_ok() && map_filter_logic::even(v) == Ok(true));
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / (iters * input.len()) as f64;
    println!("map+filter, twin: {ns:.1} ns per record ({passed} records passed)");
}
