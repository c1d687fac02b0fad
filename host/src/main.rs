//! The `weir` command: run, validate and inspect.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use weir_host::job::Job;
use weir_host::plan::{Planned, RunOptions};
use weir_host::plugin::{Plugin, PluginEngine};
use weir_host::time::SystemClock;

// Records are allocated on one task's thread and freed on another's; mimalloc handles that
// pattern far better than glibc's malloc (measured in BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Commit mimalloc's arenas as they are used, not up front: less than half the peak memory at
/// the same speed (BENCHMARKS.md). Runs from `.init_array`, before the first allocation
/// reserves an arena (an environment variable would be read too late to set from `main`).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
#[used]
#[link_section = ".init_array"]
static CONFIGURE_ALLOCATOR: extern "C" fn() = {
    extern "C" fn configure() {
        extern "C" {
            fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
        }
        // mimalloc 3's `mi_option_arena_eager_commit` (mimalloc.h); 0 = commit on demand.
        const ARENA_EAGER_COMMIT: std::ffi::c_int = 4;
        if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
            // SAFETY: sets a plain integer option; called once, before any allocation.
            unsafe { mi_option_set(ARENA_EAGER_COMMIT, 0) };
        }
    }
    configure
};

/// weir: a stream processor whose operators are WebAssembly components.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a job until its sources end (bounded) or it is stopped.
    Run {
        /// The job file (TOML).
        job: PathBuf,
        /// Override any job-file field, e.g. `--set source.logs.path=in.jsonl`
        /// (like Flink's -D). Repeatable; VALUE is TOML when it parses as TOML, else a string.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Parallelism of keyed operators (same as `--set parallelism=N`).
        #[arg(long, short = 'p')]
        parallelism: Option<usize>,
        /// Write the job's counters as JSON to this file when it ends.
        #[arg(long, value_name = "FILE")]
        metrics: Option<PathBuf>,
        /// Serve the job's Prometheus metrics at http://ADDR/metrics and a dashboard at
        /// http://ADDR/ while it runs (same as `--set metrics.addr=ADDR`).
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<String>,
        /// On a terminal: no status line while the job runs and no table at the end, only
        /// the one summary line (what `weir run` prints when stderr is not a terminal).
        #[arg(long, short = 'q')]
        quiet: bool,
        /// Resume from `latest` (the newest complete checkpoint in `checkpoint.dir`) or from
        /// a checkpoint or savepoint folder.
        #[arg(long, value_name = "latest|PATH")]
        restore: Option<String>,
        /// Hot-reload an operator's plugin when its file changes (once the file stays the
        /// same for half a second; a version that does not compile or init is refused).
        #[arg(long)]
        watch: bool,
    },
    /// Check a job without running it: fields, inputs, and that every plugin exists and
    /// exports the world its operator needs.
    Validate {
        /// The job file.
        job: PathBuf,
        /// Overrides, as for `run`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Ask a running job for a savepoint (a checkpoint kept until you remove it), and
    /// optionally stop the job when it is written. Resume with `weir run JOB --restore DIR`,
    /// also at another parallelism.
    Savepoint {
        /// The job's control endpoint (its `control` field), e.g. 127.0.0.1:7070.
        #[arg(long)]
        control: std::net::SocketAddr,
        /// Folder for the savepoint (must not exist or be empty).
        dir: PathBuf,
        /// Stop the job once the savepoint is complete.
        #[arg(long)]
        stop: bool,
        /// The job's control token file (default: the one the job wrote for this address,
        /// `$XDG_RUNTIME_DIR/weir/control-IP-PORT.token` or `~/.weir/...`).
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
    },
    /// Swap one operator's plugin in a running job for another version, keeping its keyed
    /// state, timers and windows (at a checkpoint barrier; rolled back by itself if the new
    /// version fails during its probation).
    Reload {
        /// The operator (its name in the job file).
        operator: String,
        /// The new version of its plugin (.wasm).
        plugin: PathBuf,
        /// The job's control endpoint (its `control` field), e.g. 127.0.0.1:7070.
        #[arg(long)]
        control: std::net::SocketAddr,
        /// The job's control token file (default: the one the job wrote for this address).
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
    },
    /// Show a running job's operators: plugin version, when it was loaded, the last
    /// reload's outcome, and records in and out.
    Status {
        /// The job's control endpoint (its `control` field), e.g. 127.0.0.1:7070.
        #[arg(long)]
        control: std::net::SocketAddr,
        /// The job's control token file (default: the one the job wrote for this address).
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a plugin folder that builds and runs as it is: the operator (a keyed process
    /// function counting the records of each key), `build.sh`, `test.sh` (its unit tests,
    /// without weir and without Wasm) and `job.toml`.
    New {
        /// The plugin's name (lowercase letters, digits, `-`, `_`).
        name: String,
        /// The language to write it in.
        #[arg(long, value_enum, default_value = "rust")]
        lang: weir_host::scaffold::Lang,
        /// The folder to create (default: ./NAME).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The Rust SDK crate's folder, for `--lang rust` (default: the guest-sdk this weir
        /// was built from).
        #[arg(long, value_name = "DIR")]
        sdk: Option<PathBuf>,
    },
    /// Show a plugin's world, exports and imports.
    Inspect {
        /// The component (.wasm).
        plugin: PathBuf,
    },
}

fn load(
    job: &std::path::Path,
    mut sets: Vec<String>,
    parallelism: Option<usize>,
    restore: Option<String>,
    watch: bool,
) -> anyhow::Result<Planned> {
    if let Some(p) = parallelism {
        sets.push(format!("parallelism={p}"));
    }
    let job = Job::load(job, &sets)?;
    Planned::new(job, RunOptions { clock: Arc::new(SystemClock), restore, watch })
}

/// A folder removed when this is dropped.
struct Scratch(Option<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs a job, restarting it from its latest checkpoint as its restart strategy allows.
/// A rollback of a hot reload restarts the job at once from the checkpoint of the swap,
/// whatever the restart strategy (it is no failure of the job's own).
fn run_with_restarts(
    job: &std::path::Path,
    sets: Vec<String>,
    parallelism: Option<usize>,
    restore: Option<String>,
    watch: bool,
    progress: Option<&weir_host::progress::Progress>,
) -> anyhow::Result<weir_host::plan::RunReport> {
    let mut planned = load(job, sets.clone(), parallelism, restore, watch)?;
    // Checkpoints on demand (hot reloads without `[checkpoint]`) live in a folder of this
    // process, which nothing can use after it: removed when the job ends, restarts and all.
    let on_demand = weir_host::checkpoint::CheckpointConfig::on_demand().dir;
    let _scratch = Scratch(planned.job().checkpoint.as_ref().map(|c| c.dir.clone()).filter(|d| *d == on_demand));
    let restart = planned.job().restart;
    let can_resume = planned.job().checkpoint_dir.is_some();
    let mut attempt = 0;
    loop {
        let reloads = planned.reloads();
        let checkpoints = planned.job().checkpoint.as_ref().map(|c| c.dir.clone());
        if let Some(p) = progress {
            let j = planned.job();
            p.follow(planned.metrics(), j.sources.keys().cloned().collect(), j.sinks.keys().cloned().collect());
        }
        let result = planned.run();
        let Err(e) = &result else { return result };
        if let Some(rb) = reloads.rollback() {
            let from = checkpoints.as_deref().and_then(|d| weir_host::checkpoint::completed(d).first().map(|c| c.1.clone()));
            eprintln!(
                "weir: rolled back `{}`: {}; restarting from {}",
                rb.operator,
                rb.reason,
                from.as_ref().map_or("the beginning".into(), |p| p.display().to_string())
            );
            planned = load(job, sets.clone(), parallelism, from.map(|p| p.display().to_string()), watch)?;
            planned.reloads().note_rollback(&rb);
            continue;
        }
        if restart.strategy != weir_host::job::RestartStrategy::FixedDelay || attempt >= restart.attempts {
            return result;
        }
        attempt += 1;
        let delay = restart.delay;
        eprintln!("weir: job failed: {e:#}; restart {attempt} in {delay:?}");
        std::thread::sleep(delay);
        // `latest` starts from the beginning when no checkpoint completed.
        planned = load(job, sets.clone(), parallelism, can_resume.then(|| "latest".into()), watch)?;
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { job, mut sets, parallelism, metrics, metrics_addr, quiet, restore, watch } => {
            use std::io::IsTerminal as _;
            if let Some(addr) = metrics_addr {
                sets.push(format!("metrics.addr={addr}"));
            }
            // On a terminal a status line while it runs (unless print sinks write to the same
            // terminal) and a table at the end; otherwise exactly the one summary line.
            let terminal = !quiet && std::io::stderr().is_terminal();
            let progress = (terminal && !std::io::stdout().is_terminal()).then(weir_host::progress::Progress::start);
            let result = run_with_restarts(&job, sets, parallelism, restore, watch, progress.as_ref());
            if let Some(p) = progress {
                p.finish();
            }
            let report = result?;
            let m = &report.metrics;
            let json = m.to_json();
            if let Some(path) = metrics {
                std::fs::write(&path, serde_json::to_vec_pretty(&json)?)
                    .with_context(|| format!("writing metrics to {}", path.display()))?;
            }
            let get = |n: &str, k: &str| json["nodes"][n][k].as_u64().unwrap_or(0);
            let mut parts = Vec::new();
            for (n, _) in &m.nodes {
                let (i, o, d, l) = (
                    get(n, "records_in"),
                    get(n, "records_out"),
                    get(n, "dead_letters"),
                    get(n, "late_dropped") + get(n, "late_side_output"),
                );
                let mut s = format!("{n}: {i} in");
                if o > 0 {
                    s += &format!(", {o} out");
                }
                if d > 0 {
                    s += &format!(", {d} dead-lettered");
                }
                if l > 0 {
                    s += &format!(", {l} late");
                }
                parts.push(s);
            }
            if terminal {
                eprintln!("weir: job finished\n{}", weir_host::progress::table(m, report.elapsed));
            } else {
                eprintln!("weir: job finished in {:.2?}; dead letters: {}; {}", report.elapsed, m.dead_letters(), parts.join("; "));
            }
            Ok(())
        }
        Command::Validate { job, sets } => {
            let p = load(&job, sets, None, None, false)?;
            println!("ok: {} is a valid job", job.display());
            println!("tasks (×subtasks, a thread each; → operators chained into the task, + keyed operators sharing it):");
            for t in p.tasks() {
                println!("  {t}");
            }
            Ok(())
        }
        Command::Savepoint { control, dir, stop, token_file } => {
            let path = weir_host::control::request_savepoint(control, &dir, stop, token_file.as_deref())?;
            println!("savepoint written to {}{}", path.display(), if stop { "; the job is stopping" } else { "" });
            Ok(())
        }
        Command::Reload { operator, plugin, control, token_file } => {
            let v = weir_host::control::request_reload(control, &operator, &plugin, token_file.as_deref())?;
            println!(
                "reloaded `{operator}`: version {} (was {}) from checkpoint {}; on probation for {} ms (rolled back by itself if it fails more records than `reload.max-failures`)",
                v["version"].as_str().unwrap_or("?"),
                v["previous"].as_str().unwrap_or("?"),
                v["checkpoint"],
                v["probation_ms"]
            );
            Ok(())
        }
        Command::Status { control, token_file, json } => {
            let v = weir_host::control::request_status(control, token_file.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            print_status(&v);
            Ok(())
        }
        Command::New { name, lang, dir, sdk } => {
            let dir = weir_host::scaffold::create(&name, lang, dir, sdk)?;
            let d = dir.display();
            println!("created {d}: a {} process operator, build.sh, test.sh and job.toml", lang.label());
            println!("  bash {d}/test.sh                  # its unit tests");
            println!("  bash {d}/build.sh                 # {d}/{name}.wasm");
            println!("  weir run {d}/job.toml             # the generator through it");
            Ok(())
        }
        Command::Inspect { plugin } => {
            let engine = PluginEngine::shared().map_err(|e| anyhow::anyhow!("{e}"))?;
            let p = Plugin::load(&engine, &plugin)?;
            let d = p.describe();
            println!("plugin: {}", plugin.display());
            println!("world:  {}", weir_host::plugin::bindings::qualified(p.world.name()));
            println!("hash:   {}", p.hash);
            println!("exports:");
            for (n, k) in &d.exports {
                println!("  {n} ({k})");
            }
            println!("imports:");
            for (n, k) in &d.imports {
                println!("  {n} ({k})");
            }
            Ok(())
        }
    }
}

/// `weir status` as tables: the counters as `weir run` prints them at the end, then each
/// reloadable operator's plugin version and last reload.
fn print_status(v: &serde_json::Value) {
    let elapsed = std::time::Duration::from_millis(v["elapsed_ms"].as_u64().unwrap_or(0));
    println!("job: {} · running for {}", v["job"].as_str().unwrap_or("?"), weir_host::progress::span(elapsed));
    let order: Vec<String> = v["nodes"].as_array().into_iter().flatten().filter_map(|n| n.as_str().map(String::from)).collect();
    println!("{}", weir_host::progress::table_of(&v["metrics"], &order, elapsed, v["peak_memory_kb"].as_u64()));
    let ops = v["operators"].as_object().cloned().unwrap_or_default();
    if ops.is_empty() {
        return;
    }
    println!("\n{:<16} {:<18} {:<10} last reload", "operator", "plugin version", "loaded");
    for (name, o) in &ops {
        let ago = (weir_core::time::wall_ms() - o["loaded_at_ms"].as_i64().unwrap_or(0)).max(0) as u64;
        let last = match &o["last_reload"] {
            serde_json::Value::Null => "-".to_string(),
            l => {
                let mut s = l["outcome"].as_str().unwrap_or("?").to_string();
                if let Some(r) = l["reason"].as_str() {
                    s += &format!(": {r}");
                }
                s
            }
        };
        let loaded = format!("{} ago", weir_host::progress::span(std::time::Duration::from_millis(ago)));
        println!("{name:<16} {:<18} {loaded:<10} {last}", o["version"].as_str().unwrap_or("?"));
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
