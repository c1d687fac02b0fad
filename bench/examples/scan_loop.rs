//! The host's field reader (`weir_host::json::extract`) on the log-analyzer's lines: the
//! event time and the key, as the flagship job's source reads them.
//!
//!     cargo run --release -p weir-bench --example scan_loop

use std::time::Instant;

fn main() {
    let iters: usize = std::env::var("ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let lines = log_analyzer_parse::sample_lines(4096);
    let paths: Vec<weir_host::json::Path> = vec![vec!["timestamp".into()], vec!["user_id".into()]];
    let mut found = weir_host::json::Found::new();
    let start = Instant::now();
    let mut n = 0usize;
    for _ in 0..iters {
        for line in &lines {
            weir_host::json::extract(std::hint::black_box(line), &paths, &mut found).expect("valid");
            n += found.iter().flatten().count();
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / (iters * lines.len()) as f64;
    println!("extract: {ns:.1} ns per record ({n} fields found)");
}
