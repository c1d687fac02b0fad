//! The Wasm tax: the same stateless logic as a Wasm plugin (through the real host, the flat
//! batch boundary included) and as native Rust, per record, at several batch sizes.
//!
//!     scripts/build-plugins.sh && cargo bench -p weir-bench --bench wasm_tax
//!
//! Cases: `map+filter` (the `double` and `even` example plugins on JSON integers) and
//! `parse` (the log-analyzer's parse plugin on log lines). Native runs build the same host
//! records and run the same Rust logic, so the difference is what the plugin boundary and
//! Wasm execution cost. `wasm-no-deadline` is the same plugin compiled without the call
//! deadline's interruption checks (`plugin-deadline = "off"`). `boundary` is the `identity`
//! map on log lines: the boundary alone (no logic, so no native side), each record copied
//! into an owned `Record` and back; `wasm-unchanged` is the `passthrough` map, which reads
//! records where they lie and answers `Unchanged`, so nothing crosses back.

use std::path::PathBuf;
use std::sync::Arc;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput};

// The allocator the `weir` binary runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use weir_host::plugin::{Instance, Plugin, PluginEngine};
use weir_host::record::Record;

/// The plugin `name` compiled for an engine with the default call deadline, or with none
/// (`plugin-deadline = "off"`: no interruption checks in the code).
fn plugin(name: &str, deadline: bool) -> Arc<Plugin> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist").join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is missing: run scripts/build-plugins.sh first", path.display());
    let engine = PluginEngine::with_deadline(deadline.then_some(weir_host::plugin::DEFAULT_DEADLINE)).expect("engine");
    Arc::new(Plugin::load(&engine, &path).expect("plugin loads"))
}

fn instance(name: &str) -> Instance {
    Instance::new(plugin(name, true), name, 0, "{}".into()).expect("instance")
}

fn instance_without_deadline(name: &str) -> Instance {
    Instance::new(plugin(name, false), name, 0, "{}".into()).expect("instance")
}

/// In place, as the host's map writes a plugin's results over its input records; the factor
/// comes from the plugin's config, so the compiler does not see it here either.
fn native_double(r: &mut Record) -> Result<(), String> {
    map_filter_logic::double(&mut r.value, std::hint::black_box(2))
}

fn native_even(r: &Record) -> Result<bool, String> {
    map_filter_logic::even(&r.value)
}

const SIZES: [usize; 5] = [1, 16, 256, 1024, 4096];

fn map_filter(c: &mut Criterion) {
    let mut g = c.benchmark_group("map+filter");
    let mut sides = [
        ("wasm", instance("double"), instance("even")),
        ("wasm-no-deadline", instance_without_deadline("double"), instance_without_deadline("even")),
    ];
    for n in SIZES {
        let input: Vec<Record> = map_filter_logic::sample_values(n)
            .into_iter()
            .zip(0..)
            .map(|(value, i)| Record { value, timestamp: Some(i), ..Record::default() })
            .collect();
        g.throughput(Throughput::Elements(n as u64));
        // Each iteration gets fresh input records (made outside the timing), as an operator
        // gets its input batch.
        for (side, double, even) in &mut sides {
            g.bench_with_input(BenchmarkId::new(*side, n), &input, |b, input| {
                b.iter_batched(
                    || input.clone(),
                    |mut batch| {
                        let failed = double.map(&mut batch);
                        let mapped: Vec<Record> = batch.into_iter().zip(failed).filter(|(_, f)| f.is_none()).map(|(r, _)| r).collect();
                        let kept = even.filter(&mapped);
                        mapped.into_iter().zip(kept).filter(|(_, k)| matches!(k, Ok(true))).count()
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        g.bench_with_input(BenchmarkId::new("native", n), &input, |b, input| {
            b.iter_batched(
                || input.clone(),
                |mut batch| {
                    let failed: Vec<bool> = batch.iter_mut().map(|r| native_double(r).is_err()).collect();
                    let mapped: Vec<Record> = batch.into_iter().zip(failed).filter(|(_, f)| !f).map(|(r, _)| r).collect();
                    let kept: Vec<Result<bool, String>> = mapped.iter().map(native_even).collect();
                    mapped.into_iter().zip(kept).filter(|(_, k)| matches!(k, Ok(true))).count()
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// Times a map plugin over `input` (a fresh copy per iteration, made outside the timing).
fn wasm_map(g: &mut BenchmarkGroup<'_, WallTime>, side: &str, wasm: &mut Instance, input: &[Record]) {
    g.bench_with_input(BenchmarkId::new(side, input.len()), input, |b, input| {
        b.iter_batched(
            || input.to_vec(),
            |mut batch| wasm.map(&mut batch).into_iter().filter(Option::is_none).count(),
            BatchSize::SmallInput,
        )
    });
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    let mut wasm = instance("log_analyzer_parse");
    let mut fast = instance_without_deadline("log_analyzer_parse");
    let lines = log_analyzer_parse::sample_lines(4096);
    for n in [1usize, 256, 4096] {
        let input: Vec<Record> = lines[..n].iter().map(|l| Record::new(l.clone())).collect();
        g.throughput(Throughput::Elements(n as u64));
        wasm_map(&mut g, "wasm", &mut wasm, &input);
        wasm_map(&mut g, "wasm-no-deadline", &mut fast, &input);
        g.bench_with_input(BenchmarkId::new("native", n), &input, |b, input| {
            b.iter_batched(
                || input.clone(),
                |mut batch| {
                    batch
                        .iter_mut()
                        .map(|r| {
                            log_analyzer_parse::check(&r.value).map(|c| {
                                if let log_analyzer_parse::Checked::Reencoded(value) = c {
                                    r.value = value;
                                }
                            })
                        })
                        .filter(Result::is_ok)
                        .count()
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn boundary(c: &mut Criterion) {
    let mut g = c.benchmark_group("boundary");
    let mut wasm = instance("identity");
    let mut unchanged = instance("passthrough");
    for n in [1usize, 256, 4096] {
        let input: Vec<Record> = log_analyzer_parse::sample_lines(n).into_iter().map(Record::new).collect();
        g.throughput(Throughput::Elements(n as u64));
        wasm_map(&mut g, "wasm", &mut wasm, &input);
        wasm_map(&mut g, "wasm-unchanged", &mut unchanged, &input);
    }
    g.finish();
}

criterion_group!(benches, map_filter, parse, boundary);
criterion_main!(benches);
