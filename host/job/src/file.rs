//! The job file's syntax: the TOML tables as written, before any check. [`crate::Job`] is
//! what they mean, checked once.

use std::path::PathBuf;

use indexmap::IndexMap;
use serde::Deserialize;

/// A whole job file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JobFile {
    /// Name shown in logs.
    #[serde(default)]
    pub name: Option<String>,
    /// Default parallelism of keyed operators and of operators after a shuffle.
    #[serde(default = "one")]
    pub parallelism: usize,
    /// Number of key groups (fixed for the life of a job's state).
    #[serde(default = "max_parallelism")]
    pub max_parallelism: u32,
    /// Records per batch at sources.
    #[serde(default = "batch_size")]
    pub batch_size: usize,
    /// Sources by name.
    #[serde(default)]
    pub source: IndexMap<String, SourceSpec>,
    /// Operators by name, in declaration order.
    #[serde(default)]
    pub operator: IndexMap<String, OperatorSpec>,
    /// Sinks by name.
    #[serde(default)]
    pub sink: IndexMap<String, SinkSpec>,
    /// Where malformed records and plugin failures go.
    #[serde(default)]
    pub dead_letter: DeadLetterSpec,
    /// The keyed-state backend.
    #[serde(default)]
    pub state: StateSpec,
    /// Checkpoints (off unless `interval` is set).
    #[serde(default)]
    pub checkpoint: CheckpointSpec,
    /// What happens when the job fails.
    #[serde(default)]
    pub restart: RestartSpec,
    /// How a hot-reloaded plugin is watched after its swap.
    #[serde(default)]
    pub reload: ReloadSpec,
    /// Loopback address of the control endpoint (`weir savepoint`), e.g. `127.0.0.1:7070`.
    #[serde(default)]
    pub control: Option<String>,
    /// The HTTP endpoint with the job's Prometheus metrics.
    #[serde(default)]
    pub metrics: MetricsSpec,
    /// Longest a plugin call may run before it is stopped as a trap (`10s`), or `off`.
    #[serde(default)]
    pub plugin_deadline: Option<String>,
    /// Calls of one operator subtask that may exceed the deadline before the job fails.
    #[serde(default)]
    pub plugin_deadline_budget: Option<u32>,
}

fn one() -> usize {
    1
}
fn max_parallelism() -> u32 {
    weir_state::DEFAULT_MAX_PARALLELISM
}
fn batch_size() -> usize {
    1024
}

/// `[state]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StateSpec {
    /// `memory` (default) or `rocksdb`.
    #[serde(default)]
    pub backend: crate::Backend,
    /// Working folder of the RocksDB backend (default: a folder under the system temp dir).
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

/// `[checkpoint]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CheckpointSpec {
    /// Time between checkpoints; absent: no checkpoints.
    #[serde(default)]
    pub interval: Option<String>,
    /// `exactly-once` (default) or `at-least-once`.
    #[serde(default)]
    pub mode: weir_runtime::checkpoint::Mode,
    /// Where checkpoints go: `file:///path` or a path.
    #[serde(default)]
    pub dir: Option<String>,
    /// Minimum pause between checkpoints (default 0).
    #[serde(default)]
    pub min_pause: Option<String>,
    /// Checkpoints in flight at once (default 1).
    #[serde(default)]
    pub max_concurrent: Option<usize>,
    /// Abort a checkpoint not complete after this long (default 10m).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Completed checkpoints to keep (default 3).
    #[serde(default)]
    pub retain: Option<usize>,
    /// Failed checkpoints tolerated before the job fails (default 0, as Flink).
    #[serde(default)]
    pub tolerable_failures: Option<u32>,
}

/// `[restart]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RestartSpec {
    /// `none` (default) or `fixed-delay`.
    #[serde(default)]
    pub strategy: crate::RestartStrategy,
    /// Restarts before giving up (fixed-delay; default 3).
    #[serde(default)]
    pub attempts: Option<u32>,
    /// Pause before a restart (default 1s).
    #[serde(default)]
    pub delay: Option<String>,
}

/// `[reload]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ReloadSpec {
    /// How long a new version is on probation after its swap (default 10s).
    #[serde(default)]
    pub probation: Option<String>,
    /// Records the new version may fail during probation before weir rolls it back
    /// (default 10).
    #[serde(default)]
    pub max_failures: Option<u32>,
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MetricsSpec {
    /// Address of the HTTP endpoint (`/metrics`), e.g. `127.0.0.1:9249`; none: no endpoint.
    #[serde(default)]
    pub addr: Option<String>,
    /// How long the endpoint keeps answering after the job ends (default 0s).
    #[serde(default)]
    pub linger: Option<String>,
}

/// A source: the fields every source has, and its kind's own (`fields`), which the kind's
/// connector reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SourceSpec {
    /// A kind of `weir_connectors::SOURCES`.
    pub kind: String,
    /// Parallel instances (kinds that read in parallel only).
    #[serde(default)]
    pub parallelism: Option<usize>,
    /// Records per second (absent: as fast as possible).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Where event time comes from.
    #[serde(default)]
    pub event_time: Option<EventTimeSpec>,
    /// How watermarks are generated.
    #[serde(default)]
    pub watermark: Option<WatermarkSpec>,
    /// The kind's own fields.
    #[serde(flatten)]
    pub fields: toml::Table,
}

/// Event time of a source or of an operator's output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EventTimeSpec {
    /// JSON field (dotted path) holding the event time.
    #[serde(default)]
    pub field: Option<String>,
    /// Unit of `field`: `ms` (default) or `s`.
    #[serde(default)]
    pub unit: crate::TimeUnit,
    /// Stamp records with the processing time at the source (Flink's ingestion time).
    #[serde(default)]
    pub ingestion: bool,
    /// Take the time each record comes with from its source (Kafka's record timestamp).
    #[serde(default)]
    pub kafka: bool,
}

/// Watermark strategy of a source or of an operator's output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WatermarkSpec {
    /// `bounded-out-of-orderness` (default) or `ascending`.
    #[serde(default)]
    pub strategy: WatermarkStrategy,
    /// The bound B: watermark = max event time − B − 1 ms.
    #[serde(default)]
    pub max_out_of_orderness: Option<String>,
    /// `0ms` (default): a watermark after every event; otherwise periodic.
    #[serde(default)]
    pub interval: Option<String>,
    /// An input without records for this long stops holding the watermark back.
    #[serde(default)]
    pub idle_timeout: Option<String>,
}

/// Watermark strategies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WatermarkStrategy {
    /// Bounded out-of-orderness.
    #[default]
    BoundedOutOfOrderness,
    /// Ascending timestamps (bound 0).
    Ascending,
}

/// Kinds of operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OperatorKind {
    /// Plugin map.
    Map,
    /// Plugin filter.
    Filter,
    /// Plugin flat-map.
    FlatMap,
    /// Plugin keyed process function.
    Process,
    /// Built-in keyed window with a built-in or plugin function.
    Window,
}

impl OperatorKind {
    /// The name in `kind = "..."`.
    pub fn name(self) -> &'static str {
        match self {
            OperatorKind::Map => "map",
            OperatorKind::Filter => "filter",
            OperatorKind::FlatMap => "flat-map",
            OperatorKind::Process => "process",
            OperatorKind::Window => "window",
        }
    }
}

/// `key-by`: a field, several fields, a key-selector plugin, or the records' own key.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "`key-by` must be \"field\", [\"field\", \"field\"], { plugin = \"selector.wasm\", config = {...} } or { record-key = \"name\" }"
)]
pub enum KeyBySpec {
    /// One JSON field (dotted path).
    Field(String),
    /// Several fields; the key is the JSON array of their values.
    Fields(Vec<String>),
    /// A key-selector plugin.
    Plugin(PluginRef),
    /// The key each record already carries, named for result rows.
    RecordKey(RecordKeyRef),
}

/// `key-by = { record-key = "NAME" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RecordKeyRef {
    /// The key's name in result rows (a window writes `"NAME": "<key>"`).
    pub record_key: String,
}

/// A plugin with its config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginRef {
    /// Path of the component, relative to the job file.
    pub plugin: PathBuf,
    /// Passed to `init` as JSON.
    #[serde(default)]
    pub config: Option<toml::Value>,
}

/// An operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OperatorSpec {
    /// What it is.
    pub kind: OperatorKind,
    /// Upstream: `name` or `name.side-output`, or a list of them (union).
    #[serde(default)]
    pub input: Option<Inputs>,
    /// The component (map, filter, flat-map, process; window: aggregate or window-process).
    #[serde(default)]
    pub plugin: Option<PathBuf>,
    /// Passed to the plugin's `init` as JSON.
    #[serde(default)]
    pub config: Option<toml::Value>,
    /// Partition by key before this operator (process and window need it).
    #[serde(default)]
    pub key_by: Option<KeyBySpec>,
    /// map, filter, flat-map: event time of the output records.
    #[serde(default)]
    pub event_time: Option<EventTimeSpec>,
    /// map, filter, flat-map: how watermarks of the output are generated.
    #[serde(default)]
    pub watermark: Option<WatermarkSpec>,
    /// Parallel instances.
    #[serde(default)]
    pub parallelism: Option<usize>,
    /// `false` runs this operator in a task (thread) of its own (Flink's `disableChaining`).
    #[serde(default)]
    pub chain: Option<bool>,
    /// window: the window.
    #[serde(default)]
    pub window: Option<WindowSpec>,
    /// window: built-in aggregates, `result-field = "count" | "sum(f)" | "min(f)" | "max(f)" | "avg(f)"`.
    #[serde(default)]
    pub aggregates: IndexMap<String, String>,
    /// window: how late a record may be and still update a fired window.
    #[serde(default)]
    pub allowed_lateness: Option<String>,
    /// window: constant fields added to every result row.
    #[serde(default)]
    pub fields: IndexMap<String, toml::Value>,
    /// process: time-to-live per state name, `"300s"` or `{ ttl = "1d", update = "on-read-and-write" }`.
    #[serde(default)]
    pub state_ttl: IndexMap<String, TtlSpec>,
    /// What the operator's plugin may reach besides weir's interfaces (nothing by default).
    #[serde(default)]
    pub grants: Option<GrantsSpec>,
}

/// An operator's capability grants: `grants = { read = ["data/geo"], env = ["GEO_REGION"], clock = true }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GrantsSpec {
    /// Directories the plugin may read (relative to the job file), by the path as written.
    #[serde(default)]
    pub read: Vec<PathBuf>,
    /// Environment variables it sees (weir's values).
    #[serde(default)]
    pub env: Vec<String>,
    /// The wall clock runs (else it reads the epoch).
    #[serde(default)]
    pub clock: bool,
}

/// TTL of one state.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TtlSpec {
    /// Expire this long after the last write.
    After(String),
    /// With the update type.
    Full {
        /// How long a value lives.
        ttl: String,
        /// `on-create-and-write` (default) or `on-read-and-write`.
        #[serde(default)]
        update: TtlUpdate,
    },
}

/// When a TTL clock restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TtlUpdate {
    /// On writes.
    #[default]
    OnCreateAndWrite,
    /// On reads and writes.
    OnReadAndWrite,
}

/// One or several inputs.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Inputs {
    /// One input.
    One(String),
    /// A union of inputs.
    Many(Vec<String>),
}

impl Inputs {
    /// The inputs as a list.
    pub fn list(&self) -> Vec<String> {
        match self {
            Inputs::One(s) => vec![s.clone()],
            Inputs::Many(v) => v.clone(),
        }
    }
}

/// A window: its shape's name and time domain, and the shape's own fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct WindowSpec {
    /// A shape of `weir_window::SHAPES`.
    #[serde(rename = "type")]
    pub shape: String,
    /// `event` (default) or `processing` time.
    #[serde(default)]
    pub time: TimeKind,
    /// The shape's own fields.
    #[serde(flatten)]
    pub fields: toml::Table,
}

/// Time domain of a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeKind {
    /// Event time (watermarks).
    #[default]
    Event,
    /// Processing time (the host clock).
    Processing,
}

/// A sink: its kind, its input, and the kind's own fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SinkSpec {
    /// A kind of `weir_connectors::SINKS`.
    pub kind: String,
    /// Upstream: `name`, `name.side-output`, or a list.
    #[serde(default)]
    pub input: Option<Inputs>,
    /// `false` runs a print or discard sink in a task (thread) of its own instead of in its
    /// inputs' task.
    #[serde(default)]
    pub chain: Option<bool>,
    /// The kind's own fields.
    #[serde(flatten)]
    pub fields: toml::Table,
}

/// The dead-letter output: a sink without an input.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DeadLetterSpec {
    /// `print` (to standard error, the default), `file` or `discard` (still counted).
    #[serde(default = "print")]
    pub kind: String,
    /// The kind's own fields.
    #[serde(flatten)]
    pub fields: toml::Table,
}

fn print() -> String {
    "print".into()
}

impl Default for DeadLetterSpec {
    fn default() -> Self {
        DeadLetterSpec { kind: print(), fields: toml::Table::new() }
    }
}
