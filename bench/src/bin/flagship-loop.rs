//! The flagship computation as a hand-written single-thread Rust loop: the baseline weir's
//! flagship job is measured against (BENCHMARKS.md).
//!
//! JSON lines → LogEvent (serde_json, borrowed, the parse plugin's reader run natively) → event time `timestamp * 1000` → per-event
//! watermark `max - 10 s - 1` → 10 s tumbling count per `user_id` (late events dropped) →
//! result rows as JSON, discarded. Prints events/s and the row and late counts, which must
//! equal weir's `tumble10s` figures for the same file.
//!
//!     flagship-loop FILE

use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;
use std::time::Instant;

use log_analyzer_parse::LogEventRef;

const SIZE: i64 = 10_000;
const BOUND: i64 = 10_000;

fn main() -> std::io::Result<()> {
    let path = std::env::args().nth(1).expect("usage: flagship-loop FILE");
    let t0 = Instant::now();
    let mut reader = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&path)?);
    let mut line = Vec::new();
    let mut counts: HashMap<(String, i64), u64> = HashMap::new();
    let mut timers: BTreeSet<(i64, String)> = BTreeSet::new();
    let (mut events, mut rows, mut late, mut malformed, mut bytes) = (0u64, 0u64, 0u64, 0u64, 0usize);
    let mut max_ts = i64::MIN;
    let mut watermark = i64::MIN;
    let mut row: Vec<u8> = Vec::with_capacity(256);
    let mut fire = |upto: i64, counts: &mut HashMap<(String, i64), u64>, timers: &mut BTreeSet<(i64, String)>| {
        while let Some(first) = timers.first() {
            if first.0 > upto {
                break;
            }
            let (end, user) = timers.pop_first().expect("checked");
            let start = end + 1 - SIZE;
            let slot = (user, start);
            let count = counts.remove(&slot).unwrap_or(0);
            let user = slot.0;
            // The row weir writes: {"count":..,"kind":"tumble10s","user_id":..,"window_end":..,"window_start":..}
            row.clear();
            row.extend_from_slice(b"{\"count\":");
            row.extend_from_slice(count.to_string().as_bytes());
            row.extend_from_slice(b",\"kind\":\"tumble10s\",\"user_id\":");
            serde_json::to_writer(&mut row, &user).expect("a string serializes");
            row.extend_from_slice(format!(",\"window_end\":{},\"window_start\":{start}}}", start + SIZE).as_bytes());
            bytes += row.len();
            rows += 1;
        }
    };
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        events += 1;
        // The same check as weir's parse plugin (its fast path, natively).
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        let Some(e) = LogEventRef::read(&line) else {
            malformed += 1;
            continue;
        };
        let ts = e.timestamp * 1000;
        let start = ts - ts.rem_euclid(SIZE);
        if start + SIZE - 1 <= watermark {
            late += 1;
        } else {
            let slot = counts.entry((e.user_id.to_string(), start)).or_insert(0);
            if *slot == 0 {
                timers.insert((start + SIZE - 1, e.user_id.into_owned()));
            }
            *slot += 1;
        }
        max_ts = max_ts.max(ts);
        let wm = max_ts - BOUND - 1;
        if wm > watermark {
            watermark = wm;
            fire(watermark, &mut counts, &mut timers);
        }
    }
    fire(i64::MAX, &mut counts, &mut timers);
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "flagship-loop events={events} rows={rows} late={late} malformed={malformed} row_bytes={bytes} wall_s={secs:.3} events_per_s={:.0}",
        events as f64 / secs
    );
    Ok(())
}
