//! One subtask of the flagship job's window (key by user, 10 s tumbling count, per-event
//! watermarks 10 s behind) on one thread, records as the keyed route delivers them: key and
//! event time, no value (`Planned::reads_only_keys`). Times the window operator alone.
//!
//!     cargo run --release -p weir-bench --example window_loop -- /tmp/weir-bench/logs-2000000.jsonl

use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_host::operator::{Operator, Output};
use weir_host::record::{add_mark, Batch, Key, Record};
use weir_host::status::NodeMetrics;
use weir_host::time::{SystemClock, WatermarkGenerator, MAX_WATERMARK};
use weir_host::window::{shape, AggSpec, WindowConfig, WindowFn, WindowOp};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let path = std::env::args().nth(1).expect("usage: window_loop LOG.jsonl");
    let text = std::fs::read_to_string(&path).expect("readable input");
    let mut events: Vec<(Key, i64)> = Vec::new();
    let paths: Vec<weir_host::json::Path> = vec![vec!["user_id".into()], vec!["timestamp".into()]];
    let mut found = weir_host::json::Found::new();
    for line in text.lines() {
        weir_host::json::extract(line.as_bytes(), &paths, &mut found).expect("JSON lines");
        let (Some(user), Some(ts)) = (found[0], found[1].and_then(weir_host::json::raw_i64)) else { continue };
        events.push((weir_host::keys::key_bytes(&[user]), ts * 1000));
    }
    let cfg = WindowConfig {
        assigner: std::sync::Arc::new(shape::Tumbling { size: std::time::Duration::from_secs(10) }),
        processing_time: false,
        allowed_lateness: 0,
        function: WindowFn::Builtin(vec![("count".into(), AggSpec::Count)]),
        key_fields: vec![("user_id".into(), vec!["user_id".into()])],
        key_name: None,
        constants: vec![("kind".into(), serde_json::json!("tumble10s"))],
        groups: weir_host::keys::KeyGroups::whole(128),
    };
    let mut op = WindowOp::new(cfg, Arc::new(SystemClock));
    let mut out = Output::new(&[], Arc::new(NodeMetrics::default()));
    let start = Instant::now();
    // Per-event watermarks, bounded out-of-orderness 10 s, as the source makes them.
    let mut watermarks = WatermarkGenerator::bounded(Duration::from_secs(10));
    let mut rows = 0usize;
    for chunk in events.chunks(1024) {
        let mut batch = Batch::default();
        for (key, ts) in chunk {
            batch.records.push(Record { key: Some(key.clone()), timestamp: Some(*ts), ..Record::default() });
            watermarks.observe(*ts);
            if let Some(w) = watermarks.advance() {
                add_mark(&mut batch.marks, batch.records.len(), w);
            }
        }
        op.process(batch, &mut out).expect("processed");
        rows += out.main.take().records.len();
    }
    // End of input: the final watermark fires what is left, as in the job.
    op.process(Batch { records: Vec::new(), marks: vec![(0, MAX_WATERMARK)] }, &mut out).expect("processed");
    rows += out.main.take().records.len();
    let ns = start.elapsed().as_nanos() as f64 / events.len() as f64;
    println!("window: {ns:.1} ns per record ({} records, {rows} rows)", events.len());
}
