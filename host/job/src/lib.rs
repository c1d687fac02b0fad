//! Job files: read once, with `--set` overrides, into checked types ([`Job`]) whose errors
//! name the file, the line, the field and the fix. What runs reads only these types: durations
//! are [`Duration`]s, kinds are enums or configs carrying their own fields.
//!
//! [`file`] is the syntax (the TOML tables as written); [`check`] turns it into a [`Job`];
//! [`error`] finds where a refused value is written.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;
use weir_connectors::{SinkConfig, SourceConfig};
use weir_runtime::checkpoint::CheckpointConfig;
use weir_window::{AggSpec, Assigner};

pub mod check;
pub mod error;
pub mod file;

pub use error::{apply_overrides, JobError};

/// The largest `batch-size`: a source reserves room for a batch up front.
pub const MAX_BATCH_SIZE: usize = 1 << 20;

/// A checked job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Name shown in logs and checkpoints (`job` when the file gives none).
    pub name: String,
    /// Default parallelism of keyed operators and of operators after a shuffle.
    pub parallelism: usize,
    /// Number of key groups (fixed for the life of a job's state).
    pub max_parallelism: u32,
    /// Records per batch at sources.
    pub batch_size: usize,
    /// Sources by name, in declaration order.
    pub sources: IndexMap<String, SourceDef>,
    /// Operators by name, in declaration order.
    pub operators: IndexMap<String, OperatorDef>,
    /// Sinks by name.
    pub sinks: IndexMap<String, SinkDef>,
    /// Where malformed records and plugin failures go.
    pub dead_letter: Arc<dyn SinkConfig>,
    /// The keyed-state backend.
    pub state: StateDef,
    /// Checkpoint settings, when checkpoints are on or savepoints possible (`control`).
    pub checkpoint: Option<CheckpointConfig>,
    /// The checkpoint folder the job file names (`file://` stripped).
    pub checkpoint_dir: Option<PathBuf>,
    /// What happens when the job fails.
    pub restart: Restart,
    /// Probation of hot-reloaded plugins.
    pub reload: Reload,
    /// Loopback address of the control endpoint.
    pub control: Option<SocketAddr>,
    /// The Prometheus metrics endpoint, when `[metrics] addr` is set.
    pub metrics: Option<MetricsEndpoint>,
    /// How long a plugin call may run (`None`: no limit).
    pub plugin_deadline: Option<Duration>,
    /// Calls of one operator subtask that may exceed the deadline before the job fails.
    pub plugin_deadline_budget: u32,
    /// The folder plugin paths are relative to.
    pub dir: PathBuf,
    /// Where the values came from, for errors found later (when a plugin is loaded).
    pub origin: error::Origin,
}

/// `[metrics]`: where the job's counters are served while it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsEndpoint {
    /// The HTTP address (`/metrics`).
    pub addr: SocketAddr,
    /// How long it keeps answering after the job ends.
    pub linger: Duration,
}

/// A source.
#[derive(Debug, Clone)]
pub struct SourceDef {
    /// Its kind (`kind = "..."`).
    pub kind: &'static str,
    /// The kind's checked fields; it opens the readers.
    pub connector: Arc<dyn SourceConfig>,
    /// Parallel readers.
    pub parallelism: usize,
    /// Records per second (`None`: as fast as possible).
    pub rate: Option<f64>,
    /// Where event time comes from (`None`: records have none).
    pub event_time: Option<EventTime>,
    /// How watermarks follow event time.
    pub watermarks: Watermarks,
}

/// Where a source's event time comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventTime {
    /// A field of the record's JSON value.
    Field(TimeField),
    /// The processing time at the source (Flink's ingestion time).
    Ingestion,
    /// The time each record comes with from its source (Kafka's record timestamp).
    Source,
}

/// A JSON field holding event time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeField {
    /// Dotted path.
    pub path: String,
    /// Its unit.
    pub unit: TimeUnit,
}

/// Unit of an event-time field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum TimeUnit {
    /// Milliseconds.
    #[default]
    #[serde(rename = "ms")]
    Millis,
    /// Seconds.
    #[serde(rename = "s")]
    Seconds,
}

/// How watermarks follow event time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watermarks {
    /// The bound B: watermark = max event time − B − 1 ms (0 for ascending timestamps).
    pub bound: Duration,
    /// Periodic emission (`None`: after every record).
    pub interval: Option<Duration>,
    /// An input without records for this long stops holding the watermark back (sources).
    pub idle_timeout: Option<Duration>,
}

/// An operator.
#[derive(Debug, Clone)]
pub struct OperatorDef {
    /// Its inputs (a union when several).
    pub inputs: Vec<Input>,
    /// Parallel instances (`None`: the job's for keyed operators, else the input's).
    pub parallelism: Option<usize>,
    /// Whether it may run in its input's task (`chain = false` gives it a task of its own).
    pub chain: bool,
    /// Partitioning by key before it.
    pub key_by: Option<KeyBy>,
    /// Event time and watermarks of its output (map, filter, flat-map).
    pub stamp: Option<Stamp>,
    /// What it computes.
    pub function: Function,
}

/// An input: a node's main output, or one of its side outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The source or operator.
    pub node: String,
    /// The side output (`NAME.SIDE`), or the main one.
    pub side: Option<String>,
}

impl Input {
    fn parse(s: &str) -> Input {
        match s.split_once('.') {
            Some((node, side)) => Input { node: node.to_string(), side: Some(side.to_string()) },
            None => Input { node: s.to_string(), side: None },
        }
    }
}

/// What an operator computes.
#[derive(Debug, Clone)]
pub enum Function {
    /// A map plugin.
    Map(PluginDef),
    /// A filter plugin.
    Filter(PluginDef),
    /// A flat-map plugin.
    FlatMap(PluginDef),
    /// A keyed process plugin with the time-to-live of its states.
    Process {
        /// The plugin.
        plugin: PluginDef,
        /// `(state name, ttl)`.
        state_ttl: Vec<(String, Ttl)>,
    },
    /// A keyed window.
    Window(WindowDef),
}

impl Function {
    /// The plugin that computes it, when one does.
    pub fn plugin(&self) -> Option<&PluginDef> {
        match self {
            Function::Map(p) | Function::Filter(p) | Function::FlatMap(p) | Function::Process { plugin: p, .. } => Some(p),
            Function::Window(w) => match &w.function {
                WindowFunction::Plugin(p) => Some(p),
                WindowFunction::Aggregates(_) => None,
            },
        }
    }

    /// Map, filter and flat-map: record by record, no state.
    pub fn is_stateless(&self) -> bool {
        matches!(self, Function::Map(_) | Function::Filter(_) | Function::FlatMap(_))
    }
}

/// A plugin and its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginDef {
    /// The component, resolved against the job file's folder.
    pub path: PathBuf,
    /// The config passed to `init`, as JSON text (`{}` without one).
    pub config: String,
    /// What the plugin may reach besides weir's interfaces (`grants`; nothing by default).
    pub grants: weir_plugin::Grants,
}

/// How long a state value lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl {
    /// Time to live.
    pub ttl: Duration,
    /// Reads restart the clock too (`update = "on-read-and-write"`).
    pub refresh_on_read: bool,
}

/// A window.
#[derive(Debug, Clone)]
pub struct WindowDef {
    /// Its shape.
    pub assigner: Arc<dyn Assigner>,
    /// Processing time instead of event time.
    pub processing_time: bool,
    /// How late a record may be and still update a fired window.
    pub allowed_lateness: Duration,
    /// What a fired window computes.
    pub function: WindowFunction,
    /// Constant fields of every result row.
    pub constants: Vec<(String, serde_json::Value)>,
}

/// What a fired window computes.
#[derive(Debug, Clone)]
pub enum WindowFunction {
    /// An aggregate or window-process plugin.
    Plugin(PluginDef),
    /// Built-in aggregates `(result field, aggregate)` (`count` when none are named).
    Aggregates(Vec<(String, AggSpec)>),
}

/// How records are keyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyBy {
    /// JSON fields (dotted paths): one field's text, or the JSON array of several.
    Fields(Vec<String>),
    /// A key-selector plugin.
    Selector(PluginDef),
    /// The key each record already carries, with its name in result rows.
    RecordKey(String),
}

/// Event time and watermarks an operator gives its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// The field to read event time from (`None`: the event time each record carries).
    pub field: Option<TimeField>,
    /// How watermarks follow.
    pub watermarks: Watermarks,
}

/// A sink.
#[derive(Debug, Clone)]
pub struct SinkDef {
    /// Its kind (`kind = "..."`).
    pub kind: &'static str,
    /// The kind's checked fields; it opens the sink.
    pub connector: Arc<dyn SinkConfig>,
    /// Its inputs.
    pub inputs: Vec<Input>,
    /// Whether it runs in its inputs' task, one instance per subtask, where its kind allows
    /// ([`weir_connectors::SinkKind::parallel`]) and its inputs are in one task: `chain =
    /// false` gives it a task of its own.
    pub chain: bool,
}

/// `[state]`.
#[derive(Debug, Clone, Default)]
pub struct StateDef {
    /// The backend.
    pub backend: Backend,
    /// Working folder of the RocksDB backend (`None`: a folder under the system temp dir,
    /// removed when the run ends).
    pub dir: Option<PathBuf>,
}

/// State backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// In memory.
    #[default]
    Memory,
    /// Embedded RocksDB on local disk.
    Rocksdb,
}

/// `[reload]`: after a hot reload the new version is on probation; failing more than
/// `max_failures` records in it rolls the operator back to the previous version, from the
/// checkpoint taken at the swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reload {
    /// How long the probation lasts (no checkpoint completes meanwhile, so nothing the new
    /// version writes to a transactional sink is committed before it passes).
    pub probation: Duration,
    /// Failed records (errors or traps) the new version may have during probation.
    pub max_failures: u32,
}

/// `[restart]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restart {
    /// The strategy.
    pub strategy: RestartStrategy,
    /// Restarts before giving up.
    pub attempts: u32,
    /// Pause before a restart.
    pub delay: Duration,
}

/// Restart strategies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartStrategy {
    /// A failed job stays failed.
    #[default]
    None,
    /// Restart from the latest checkpoint after a fixed delay, a fixed number of times.
    FixedDelay,
}

impl Job {
    /// Reads, overrides, parses and checks a job file.
    pub fn load(file: &Path, sets: &[String]) -> Result<Job, JobError> {
        let fname = file.display().to_string();
        let err = |field: &str, message: String| JobError { file: fname.clone(), line: None, set: None, field: field.to_string(), message };
        let raw = std::fs::read_to_string(file).map_err(|e| err("(file)", format!("cannot read the job file: {e}")))?;
        let text = apply_overrides(&raw, sets).map_err(|m| err("(--set)", m))?;
        let spec: file::JobFile = toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| error::line_at(&text, s.start));
            // A line of the overridden text that is not the file's own came from a `--set`.
            let set = line.and_then(|l| {
                let here = text.lines().nth(l - 1).unwrap_or_default();
                if raw.lines().nth(l - 1) == Some(here) {
                    None
                } else {
                    error::set_on_line(sets, here)
                }
            });
            let line = if set.is_some() { None } else { line };
            JobError { file: fname.clone(), line, set, field: "job file".into(), message: e.message().trim().to_string() }
        })?;
        let origin = error::Origin { file: file.to_path_buf(), text, sets: sets.to_vec() };
        check::Checker { spec: &spec, origin: &origin, dir: file.parent().map(Path::to_path_buf).unwrap_or_default() }.job()
    }

    /// An error at `field` (dotted path), with the line of that field when it can be found.
    pub fn error(&self, field: &str, message: impl Into<String>) -> JobError {
        self.origin.error(field, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, sets: &[&str]) -> Result<Job, JobError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("job.toml");
        std::fs::write(&p, text).expect("job written");
        Job::load(&p, &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    const OK: &str = "[source.logs]\nkind = \"file\"\npath = \"in.jsonl\"\n\n[sink.out]\nkind = \"print\"\ninput = \"logs\"\n";

    #[test]
    fn set_overrides_any_field() {
        let j = load(OK, &["source.logs.path=other.jsonl", "parallelism=4", "sink.out.kind=file", "sink.out.path=o.jsonl"]).expect("valid");
        assert!(format!("{:?}", j.sources["logs"].connector).contains("other.jsonl"));
        assert_eq!(j.parallelism, 4);
        assert_eq!(j.sinks["out"].kind, "file");
    }

    #[test]
    fn unknown_fields_and_kinds_name_file_line_and_what_is_allowed() {
        let e = load("[source.logs]\nkind = \"file\"\npth = \"x\"\n", &[]).unwrap_err().to_string();
        assert!(e.contains("job.toml:3") && e.contains("source.logs.pth"), "{e}");
        assert!(e.contains("unknown field `pth`") && e.contains("path"), "{e}");
        let e = load(OK, &["source.logs.kind=pulsar"]).unwrap_err();
        assert_eq!(e.field, "source.logs.kind");
        assert!(e.message.contains("known: collection, file, generator, kafka"), "{e}");
        let e = load(OK, &["source.logs.kind=kafka"]).unwrap_err();
        assert!(e.message.contains("kind = \"kafka\" needs `bootstrap`"), "{e}");
        let e = load(OK, &["sink.out.kind=file"]).unwrap_err();
        assert_eq!((e.field.as_str(), e.message.contains("kind = \"file\" needs `path`")), ("sink.out", true), "{e}");
    }

    #[test]
    fn values_are_read_once_into_types() {
        let job = "[source.logs]\nkind = \"generator\"\nparallelism = 2\nevent-time = { field = \"ts\", unit = \"s\" }\nwatermark = { max-out-of-orderness = \"5s\", interval = \"200ms\" }\n\n\
                   [operator.w]\nkind = \"window\"\ninput = \"logs\"\nkey-by = [\"u\", \"a\"]\nwindow = { type = \"sliding\", size = \"10s\", slide = \"5s\" }\nallowed-lateness = \"1m\"\n\n\
                   [sink.out]\nkind = \"discard\"\ninput = \"w.late\"\n\n[restart]\nstrategy = \"fixed-delay\"\ndelay = \"2s\"\n";
        let j = load(job, &[]).expect("valid");
        let s = &j.sources["logs"];
        assert_eq!((s.kind, s.parallelism), ("generator", 2));
        assert_eq!(s.event_time, Some(EventTime::Field(TimeField { path: "ts".into(), unit: TimeUnit::Seconds })));
        assert_eq!(s.watermarks.bound, Duration::from_secs(5));
        assert_eq!(s.watermarks.interval, Some(Duration::from_millis(200)));
        let op = &j.operators["w"];
        assert_eq!(op.key_by, Some(KeyBy::Fields(vec!["u".into(), "a".into()])));
        let Function::Window(w) = &op.function else { panic!("a window") };
        assert_eq!(w.allowed_lateness, Duration::from_secs(60));
        let mut windows = Vec::new();
        w.assigner.assign(12_000, &mut windows);
        assert_eq!(windows, [(10_000, 20_000), (5_000, 15_000)]);
        assert!(matches!(&w.function, WindowFunction::Aggregates(a) if a == &[("count".to_string(), AggSpec::Count)]));
        assert_eq!(j.sinks["out"].inputs, [Input { node: "w".into(), side: Some("late".into()) }]);
        assert_eq!(j.restart, Restart { strategy: RestartStrategy::FixedDelay, attempts: 3, delay: Duration::from_secs(2) });
        assert!(j.checkpoint.is_none());
    }

    #[test]
    fn state_ttl_is_checked() {
        let base = "[source.logs]\nkind = \"file\"\npath = \"x\"\n\n[operator.p]\nkind = \"process\"\ninput = \"logs\"\nkey-by = \"u\"\nplugin = \"p.wasm\"\n";
        let j = load(&format!("{base}state-ttl = {{ a = \"5m\", b = {{ ttl = \"1d\", update = \"on-read-and-write\" }} }}\n"), &[])
            .expect("valid");
        let Function::Process { state_ttl, plugin } = &j.operators["p"].function else { panic!("a process operator") };
        assert_eq!(
            state_ttl,
            &[
                ("a".to_string(), Ttl { ttl: Duration::from_secs(300), refresh_on_read: false }),
                ("b".to_string(), Ttl { ttl: Duration::from_secs(86_400), refresh_on_read: true })
            ]
        );
        assert!(plugin.path.is_absolute() && plugin.config == "{}", "{plugin:?}");
        let e = load(&format!("{base}state-ttl = {{ a = \"soon\" }}\n"), &[]).unwrap_err();
        assert_eq!(e.field, "operator.p.state-ttl.a");
        let e = load(base, &["control=10.0.0.1:7070"]).unwrap_err();
        assert!(e.message.contains("loopback"), "{e}");
    }

    #[test]
    fn cycles_empty_inputs_and_bounds_are_refused() {
        let ops = "[source.s]\nkind = \"file\"\npath = \"x\"\n\n[operator.a]\nkind = \"window\"\ninput = \"s\"\nkey-by = \"u\"\nwindow = { type = \"tumbling\", size = \"1s\" }\n\n[operator.b]\nkind = \"window\"\ninput = \"a\"\nkey-by = \"u\"\nwindow = { type = \"tumbling\", size = \"1s\" }\n";
        assert!(load(ops, &[]).is_ok());
        let e = load(ops, &["operator.a.input=b.late"]).unwrap_err();
        assert!(e.message.contains("cycle (a → b → a)") || e.message.contains("cycle (b → a → b)"), "{e}");
        assert_eq!(e.set.as_deref(), Some("operator.a.input=b.late"), "{e}");
        let e = load(ops, &["operator.b.input=[\"s\", \"b\"]"]).unwrap_err();
        assert!(e.message.contains("cycle (b → b)"), "{e}");
        let e = load(ops, &["operator.a.input=[]"]).unwrap_err();
        assert_eq!(e.field, "operator.a.input");
        let e = load(ops, &["parallelism=200"]).unwrap_err();
        assert!(e.message.contains("more than `max-parallelism` (128)"), "{e}");
        let e = load(ops, &["operator.b.parallelism=129"]).unwrap_err();
        assert_eq!(e.field, "operator.b.parallelism");
        let e = load(ops, &["operator.b.window={ type = \"sliding\", size = \"10s\", slide = \"1ms\" }"]).unwrap_err();
        assert!(e.message.contains("10000 windows"), "{e}");
        assert_eq!(e.field, "operator.b.window.slide");
        assert!(
            load(ops, &["operator.b.window={ type = \"sliding\", size = \"1s\", slide = \"1ms\" }"]).is_ok(),
            "1,000 windows a record is the bound"
        );
        let e = load(ops, &["operator.b.window={ type = \"hopping\", size = \"1s\" }"]).unwrap_err();
        assert!(e.message.contains("known: tumbling, sliding, session, count"), "{e}");
        let e = load(ops, &["parallelism=x"]).unwrap_err();
        assert_eq!((e.line, e.set.as_deref()), (None, Some("parallelism=x")), "{e}");
        assert!(e.to_string().contains("job.toml (--set parallelism=x): job file:"), "{e}");
    }

    #[test]
    fn semantic_errors_name_field_and_fix() {
        let e = load("[source.logs]\nkind = \"file\"\n\n[sink.out]\nkind = \"print\"\ninput = \"logs\"\n", &[]).unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("source.logs", Some(1)));
        assert!(e.message.contains("needs `path`"), "{e}");
        let e = load(OK, &["sink.out.input=nope"]).unwrap_err();
        assert!(e.to_string().contains("`nope` names no source or operator"), "{e}");
        // A kind switched on the command line leaves out the fields only the old kind knows.
        let generator = "[source.logs]\nkind = \"generator\"\ncount = 5\nseed = 1\n\n[sink.out]\nkind = \"print\"\ninput = \"logs\"\n";
        let j = load(generator, &["source.logs.kind=file", "source.logs.path=x"]).expect("valid");
        assert_eq!(j.sources["logs"].kind, "file");
        let e = load(generator, &["source.logs.path=x"]).unwrap_err();
        assert!(e.message.contains("unknown field `path`"), "{e}");
        let e = load(OK, &["source.logs.parallelism=2"]).unwrap_err();
        assert!(e.message.contains("sources that read in parallel: generator"), "{e}");
    }
}
