//! The parse plugin's logic compiled natively with the plugin's own build settings (the
//! plugins workspace's release profile: LTO, one codegen unit, and `plugins/.cargo/config.toml`),
//! timed over the same 4,096 log lines as `bench/examples/plugin_loop.rs parse`: the native
//! side of a Wasm-tax comparison where only the target differs. Built for wasm32-wasip2 and
//! run by `bench/examples/wasm_command.rs`, it times the same code in Wasm without the plugin
//! boundary.
//!
//!     cd plugins && cargo run --release -p log-analyzer-parse --example native_twin
//!     cargo build --release -p log-analyzer-parse --example native_twin --target wasm32-wasip2
//!     (cd .. && cargo run --release -p weir-bench --example wasm_command -- PATH.wasm)

use std::time::Instant;

fn main() {
    let iters: usize = std::env::var("ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(3000);
    let lines = log_analyzer_parse::sample_lines(4096);
    let start = Instant::now();
    let mut passed = 0;
    for _ in 0..iters {
        for line in &lines {
            passed += usize::from(std::hint::black_box(log_analyzer_parse::check(std::hint::black_box(line))).is_ok());
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / (iters * lines.len()) as f64;
    println!("parse, native twin: {ns:.1} ns per record ({passed} records passed)");
}
