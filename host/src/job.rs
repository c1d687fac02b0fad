//! Job files: TOML parsing, `--set` overrides, and checks whose errors name the file, the
//! line, the field and the fix.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;

use crate::time::parse_duration;

/// A job-file error: where, what, and how to fix it.
#[derive(Debug, thiserror::Error)]
#[error(
    "{file}{}{}: {field}: {message}",
    line.map(|l| format!(":{l}")).unwrap_or_default(),
    set.as_ref().map(|s| format!(" (--set {s})")).unwrap_or_default()
)]
pub struct JobError {
    /// The job file.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The `--set KEY=VALUE` the value came from, when it came from one (then `line` is
    /// `None`: the field is not on a line of the file).
    pub set: Option<String>,
    /// Dotted path of the field (`source.logs.path`).
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

/// A whole job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JobSpec {
    /// Name shown in logs.
    #[serde(default)]
    pub name: Option<String>,
    /// Default parallelism of keyed operators and of operators after a shuffle.
    #[serde(default = "one")]
    pub parallelism: usize,
    /// Number of key groups (fixed for the life of a job's state).
    #[serde(default = "max_par")]
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
    /// Loopback address of the control endpoint (`weir savepoint`), e.g. `127.0.0.1:7070`.
    #[serde(default)]
    pub control: Option<String>,
    /// Longest a plugin call may run before it is stopped as a trap (`10s`), or `off`.
    #[serde(default)]
    pub plugin_deadline: Option<String>,
    /// Calls of one operator subtask that may exceed the deadline before the job fails
    /// (default [`crate::plugin::DEFAULT_DEADLINE_BUDGET`]).
    #[serde(default)]
    pub plugin_deadline_budget: Option<u32>,
}

/// `[state]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StateSpec {
    /// `memory` (default) or `rocksdb`.
    #[serde(default)]
    pub backend: BackendKind,
    /// Working folder of the RocksDB backend (default: a folder under the system temp dir).
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

/// State backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// In memory.
    #[default]
    Memory,
    /// Embedded RocksDB on local disk.
    Rocksdb,
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
    pub mode: crate::checkpoint::Mode,
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
    pub strategy: RestartStrategy,
    /// Restarts before giving up (fixed-delay; default 3).
    #[serde(default)]
    pub attempts: Option<u32>,
    /// Pause before a restart (default 1s).
    #[serde(default)]
    pub delay: Option<String>,
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

fn one() -> usize {
    1
}
fn max_par() -> u32 {
    crate::state::DEFAULT_MAX_PARALLELISM
}
fn batch_size() -> usize {
    1024
}

/// Kinds of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// Inline values (Flink's `from_collection`).
    Collection,
    /// JSON lines from a file (bounded).
    File,
    /// The built-in log generator.
    Generator,
}

/// A source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SourceSpec {
    /// `collection`, `file` or `generator`.
    pub kind: SourceKind,
    /// collection: the values (each becomes one JSON record).
    #[serde(default)]
    pub values: Vec<toml::Value>,
    /// file: path of the JSON-lines file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// file: `json` (each line must be JSON; others go to dead-letter) or `text`.
    #[serde(default)]
    pub format: Format,
    /// generator: number of events (absent: unbounded).
    #[serde(default)]
    pub count: Option<u64>,
    /// generator and file: records per second (absent: as fast as possible).
    #[serde(default)]
    pub rate: Option<f64>,
    /// generator: seed (the same seed gives the same stream).
    #[serde(default)]
    pub seed: Option<u64>,
    /// generator: number of distinct users.
    #[serde(default)]
    pub users: Option<u32>,
    /// generator: epoch seconds of the first event (default 2025-01-01T00:00:00Z).
    #[serde(default)]
    pub start: Option<i64>,
    /// Parallel instances (generator only; file and collection read with one).
    #[serde(default)]
    pub parallelism: Option<usize>,
    /// file: the longest line read as a record, in bytes (default
    /// [`crate::connectors::DEFAULT_MAX_LINE_BYTES`]); a longer one goes to the dead letters
    /// with its first bytes and its length.
    #[serde(default)]
    pub max_line_bytes: Option<u64>,
    /// Where event time comes from.
    #[serde(default)]
    pub event_time: Option<EventTimeSpec>,
    /// How watermarks are generated.
    #[serde(default)]
    pub watermark: Option<WatermarkSpec>,
}

/// Payload format of a source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Each line must be JSON.
    #[default]
    Json,
    /// Lines as they are.
    Text,
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
    pub unit: TimeUnit,
    /// Stamp records with the processing time at the source (Flink's ingestion time).
    #[serde(default)]
    pub ingestion: bool,
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
    /// The key each record already carries (set by a plugin upstream, e.g. a map answering
    /// `Mapped::ValueAsIs`), named for result rows.
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
    /// map, filter, flat-map: event time of the output records (read from a field; without
    /// `field`, the event time each record carries). With it or with `watermark`, this
    /// operator's output gets its own watermarks (Flink's `assignTimestampsAndWatermarks`).
    #[serde(default)]
    pub event_time: Option<EventTimeSpec>,
    /// map, filter, flat-map: how watermarks of the output are generated.
    #[serde(default)]
    pub watermark: Option<WatermarkSpec>,
    /// Parallel instances.
    #[serde(default)]
    pub parallelism: Option<usize>,
    /// `false` runs this operator in a task (thread) of its own instead of chaining it into
    /// its input's task (Flink's `disableChaining`): a pipeline stage that spreads a heavy
    /// chain over more cores while keeping record order (a throughput gain that costs
    /// latency: one more thread hand-off per record). Default `true`.
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

impl TtlSpec {
    /// `(ttl, refresh on read)`.
    pub fn parse(&self) -> Result<(std::time::Duration, bool), String> {
        match self {
            TtlSpec::After(d) => Ok((parse_duration(d)?, false)),
            TtlSpec::Full { ttl, update } => Ok((parse_duration(ttl)?, *update == TtlUpdate::OnReadAndWrite)),
        }
    }
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

/// A window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WindowSpec {
    /// `tumbling`, `sliding`, `session` or `count`.
    #[serde(rename = "type")]
    pub kind: WindowKind,
    /// `event` (default) or `processing` time.
    #[serde(default)]
    pub time: TimeKind,
    /// tumbling, sliding: length (`10s`).
    #[serde(default)]
    pub size: Option<String>,
    /// sliding: slide (`5s`).
    #[serde(default)]
    pub slide: Option<String>,
    /// session: inactivity gap (`5m`).
    #[serde(default)]
    pub gap: Option<String>,
    /// count: elements per window.
    #[serde(default)]
    pub count: Option<u64>,
    /// count: fire every this many elements (sliding count window); default `count`.
    #[serde(default)]
    pub every: Option<u64>,
}

/// Window shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WindowKind {
    /// Fixed, non-overlapping.
    Tumbling,
    /// Fixed size, overlapping by slide.
    Sliding,
    /// Closed by a gap of inactivity.
    Session,
    /// Every N elements of a key.
    Count,
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

/// Kinds of sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SinkKind {
    /// Standard output, one record per line, with an optional prefix.
    Print,
    /// A JSON-lines file.
    File,
    /// Counts and drops.
    Discard,
}

/// A sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SinkSpec {
    /// `print`, `file` or `discard`.
    pub kind: SinkKind,
    /// Upstream: `name`, `name.side-output`, or a list.
    #[serde(default)]
    pub input: Option<Inputs>,
    /// file: where to write.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// print: the prefix, as Flink's `print("Security Alerts")` (`Security Alerts> ...`).
    #[serde(default)]
    pub prefix: Option<String>,
}

/// The dead-letter output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DeadLetterSpec {
    /// `print` (to standard error, the default), `file` or `discard` (still counted).
    #[serde(default = "dl_kind")]
    pub kind: SinkKind,
    /// file: where to write.
    #[serde(default)]
    pub path: Option<PathBuf>,
}

fn dl_kind() -> SinkKind {
    SinkKind::Print
}

impl Default for DeadLetterSpec {
    fn default() -> Self {
        DeadLetterSpec { kind: SinkKind::Print, path: None }
    }
}

/// A loaded job: the spec, its file, its folder (plugin paths are relative to it).
#[derive(Debug, Clone)]
pub struct Job {
    /// The checked spec.
    pub spec: JobSpec,
    /// The job file.
    pub file: PathBuf,
    /// The folder plugin paths are relative to.
    pub dir: PathBuf,
    text: String,
    /// The `--set KEY=VALUE` overrides, as given.
    sets: Vec<String>,
}

/// The largest `batch-size`: a source reserves room for a batch up front.
pub const MAX_BATCH_SIZE: usize = 1 << 20;

/// The most windows one record may fall into (sliding windows: `size / slide`). Each is a
/// state update per record; Flink sets no bound, and 10,000 made 2,000 lines run for minutes.
pub const MAX_WINDOWS_PER_RECORD: u64 = 1000;

/// Applies `KEY=VALUE` overrides to TOML text. VALUE is read as a TOML value when it is one
/// (`4`, `true`, `"x"`, `[1, 2]`) and as a string otherwise.
pub fn apply_overrides(text: &str, sets: &[String]) -> Result<String, String> {
    if sets.is_empty() {
        return Ok(text.to_string());
    }
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| e.to_string())?;
    for s in sets {
        let (path, value) =
            s.split_once('=').ok_or_else(|| format!("--set {s}: expected KEY=VALUE, e.g. --set source.logs.path=in.jsonl"))?;
        let keys: Vec<&str> = path.trim().split('.').collect();
        if keys.iter().any(|k| k.is_empty()) {
            return Err(format!("--set {s}: `{path}` is not a dotted key path"));
        }
        let parsed =
            format!("v = {value}").parse::<toml_edit::DocumentMut>().ok().and_then(|d| d.get("v").and_then(|i| i.as_value()).cloned());
        let v = parsed.unwrap_or_else(|| toml_edit::Value::from(value));
        let mut item = doc.as_item_mut();
        for k in &keys[..keys.len() - 1] {
            let tbl = item.as_table_like_mut().ok_or_else(|| format!("--set {s}: `{k}` is inside a value that is not a table"))?;
            if tbl.get(k).is_none() {
                tbl.insert(k, toml_edit::Item::Table(toml_edit::Table::new()));
            }
            item = tbl.get_mut(k).expect("just inserted");
        }
        let last = keys[keys.len() - 1];
        let tbl = item.as_table_like_mut().ok_or_else(|| format!("--set {s}: the parent of `{last}` is not a table"))?;
        tbl.insert(last, toml_edit::Item::Value(v));
    }
    Ok(doc.to_string())
}

impl Job {
    /// Reads, overrides, parses and checks a job file.
    pub fn load(file: &Path, sets: &[String]) -> Result<Job, JobError> {
        let fname = file.display().to_string();
        let err = |field: &str, message: String| JobError { file: fname.clone(), line: None, set: None, field: field.to_string(), message };
        let raw = std::fs::read_to_string(file).map_err(|e| err("(file)", format!("cannot read the job file: {e}")))?;
        let text = apply_overrides(&raw, sets).map_err(|m| err("(--set)", m))?;
        let spec: JobSpec = toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| line_at(&text, s.start));
            // A line of the overridden text that is not the file's own came from a `--set`.
            let set = line.and_then(|l| {
                let here = text.lines().nth(l - 1).unwrap_or_default();
                if raw.lines().nth(l - 1) == Some(here) {
                    None
                } else {
                    set_on_line(sets, here)
                }
            });
            let line = if set.is_some() { None } else { line };
            JobError { file: fname.clone(), line, set, field: "job file".into(), message: e.message().trim().to_string() }
        })?;
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let job = Job { spec, file: file.to_path_buf(), dir, text, sets: sets.to_vec() };
        job.check()?;
        Ok(job)
    }

    /// Resolves a plugin path against the job file's folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    /// An error at `field` (dotted path), with the line of that field when it can be found.
    pub fn error(&self, field: &str, message: impl Into<String>) -> JobError {
        let set = self.set_of(field);
        let line = if set.is_some() { None } else { self.line_of(field) };
        JobError { file: self.file.display().to_string(), line, set, field: field.to_string(), message: message.into() }
    }

    /// The last `--set` whose key is `field`, inside it or holds it: the value the error is
    /// about came from the command line, not from a line of the file.
    fn set_of(&self, field: &str) -> Option<String> {
        let within = |a: &str, b: &str| a == b || a.strip_prefix(b).is_some_and(|r| r.starts_with('.'));
        self.sets.iter().rev().find(|s| s.split_once('=').is_some_and(|(k, _)| within(k.trim(), field) || within(field, k.trim()))).cloned()
    }

    fn line_of(&self, field: &str) -> Option<usize> {
        let Ok(doc) = toml_edit::Document::parse(self.text.clone()) else {
            // toml_edit refuses what the parser took (an integer above i64::MAX): find a
            // top-level `field =` line by its text.
            let top = self.text.lines().take_while(|l| !l.trim_start().starts_with('['));
            let at = top.into_iter().position(|l| l.split_once('=').is_some_and(|(k, _)| k.trim() == field))?;
            return Some(at + 1);
        };
        let mut item = doc.as_item();
        let mut span = None;
        for k in field.split('.') {
            let tbl = item.as_table_like()?;
            let (key, it) = tbl.get_key_value(k)?;
            span = key.span().or(it.span()).or(span);
            item = it;
        }
        span.map(|s| line_at(&self.text, s.start))
    }

    /// How long a plugin call may run (`None`: no limit); default
    /// [`crate::plugin::DEFAULT_DEADLINE`].
    pub fn plugin_deadline(&self) -> Result<Option<std::time::Duration>, String> {
        use crate::plugin::{DEFAULT_DEADLINE, EPOCH_TICK};
        match self.spec.plugin_deadline.as_deref().map(str::trim) {
            None => Ok(Some(DEFAULT_DEADLINE)),
            Some("off") => Ok(None),
            Some(s) => match crate::time::parse_duration(s) {
                Ok(d) if d >= EPOCH_TICK => Ok(Some(d)),
                Ok(_) => Err(format!("`{s}` is too short: the deadline is checked every {EPOCH_TICK:?}; write e.g. `1s`, or `off`")),
                Err(e) => Err(format!("{e}, or `off` for no deadline")),
            },
        }
    }

    fn check(&self) -> Result<(), JobError> {
        let s = &self.spec;
        if s.parallelism == 0 {
            return Err(self.error("parallelism", "must be at least 1"));
        }
        if s.max_parallelism == 0 || s.max_parallelism > crate::state::MAX_KEY_GROUPS {
            return Err(self.error("max-parallelism", format!("must be between 1 and {}", crate::state::MAX_KEY_GROUPS)));
        }
        if s.parallelism > s.max_parallelism as usize {
            return Err(self.error(
                "parallelism",
                format!("{} is more than `max-parallelism` ({}): no subtask may be left without key groups; lower it or raise `max-parallelism`", s.parallelism, s.max_parallelism),
            ));
        }
        if s.batch_size == 0 || s.batch_size > MAX_BATCH_SIZE {
            return Err(self.error("batch-size", format!("must be between 1 and {MAX_BATCH_SIZE} records")));
        }
        if let Err(e) = self.plugin_deadline() {
            return Err(self.error("plugin-deadline", e));
        }
        if s.plugin_deadline_budget == Some(0) {
            return Err(self.error("plugin-deadline-budget", "must be at least 1 (calls past the deadline an operator subtask tolerates)"));
        }
        if s.source.is_empty() {
            return Err(self.error("source", "a job needs at least one source, e.g. [source.logs] kind = \"file\""));
        }
        let mut names = std::collections::BTreeSet::new();
        let all = s
            .source
            .keys()
            .map(|n| ("source", n))
            .chain(s.operator.keys().map(|n| ("operator", n)))
            .chain(s.sink.keys().map(|n| ("sink", n)));
        for (sec, n) in all {
            if n.is_empty() || n.contains('.') || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(self.error(&format!("{sec}.{n}"), "names use letters, digits, `-` and `_` (a `.` separates a side output)"));
            }
            if !names.insert(n.clone()) {
                return Err(self.error(&format!("{sec}.{n}"), "this name is used twice; sources, operators and sinks share one namespace"));
            }
        }
        for (n, src) in &s.source {
            let f = format!("source.{n}");
            match src.kind {
                SourceKind::File if src.path.is_none() => {
                    return Err(self.error(&f, "kind = \"file\" needs `path` (or --set source.NAME.path=FILE)"))
                }
                SourceKind::Collection if src.values.is_empty() => {
                    return Err(self.error(&f, "kind = \"collection\" needs `values = [...]`"))
                }
                _ => {}
            }
            self.check_parallelism(&f, src.parallelism)?;
            if src.parallelism.is_some_and(|p| p > 1) && src.kind != SourceKind::Generator {
                return Err(
                    self.error(&format!("{f}.parallelism"), "only a generator source reads in parallel; file and collection sources use 1")
                );
            }
            match src.max_line_bytes {
                Some(_) if src.kind != SourceKind::File => {
                    return Err(self.error(&format!("{f}.max-line-bytes"), "only a file source reads lines; remove it"));
                }
                Some(0) => return Err(self.error(&format!("{f}.max-line-bytes"), "must be at least 1 (bytes)")),
                _ => {}
            }
            if let Some(r) = src.rate {
                if r.is_nan() || r <= 0.0 {
                    return Err(self.error(&format!("{f}.rate"), "must be a positive number of records per second"));
                }
            }
            if let Some(et) = &src.event_time {
                if et.field.is_some() == et.ingestion {
                    return Err(
                        self.error(&format!("{f}.event-time"), "set exactly one of `field = \"...\"` (with `unit`) or `ingestion = true`")
                    );
                }
            }
            if let Some(w) = &src.watermark {
                self.check_watermark(&f, w)?;
                if src.event_time.is_none() {
                    return Err(self.error(
                        &format!("{f}.watermark"),
                        "watermarks need event time: add `event-time = { field = \"ts\", unit = \"s\" }`",
                    ));
                }
            }
        }
        for (n, op) in &s.operator {
            self.check_operator(n, op)?;
        }
        self.check_acyclic()?;
        for (n, sink) in &s.sink {
            let f = format!("sink.{n}");
            if sink.kind == SinkKind::File && sink.path.is_none() {
                return Err(self.error(&f, "kind = \"file\" needs `path` (or --set sink.NAME.path=FILE)"));
            }
            self.check_inputs(&f, sink.input.as_ref())?;
        }
        if s.dead_letter.kind == SinkKind::File && s.dead_letter.path.is_none() {
            return Err(self.error("dead-letter", "kind = \"file\" needs `path`"));
        }
        let c = &s.checkpoint;
        for (k, v) in [("interval", &c.interval), ("min-pause", &c.min_pause), ("timeout", &c.timeout)] {
            if let Some(v) = v {
                parse_duration(v).map_err(|m| self.error(&format!("checkpoint.{k}"), m))?;
            }
        }
        if c.interval.is_some() && c.dir.is_none() {
            return Err(self.error("checkpoint", "`interval` needs `dir = \"file:///path/to/checkpoints\"`"));
        }
        if c.max_concurrent == Some(0) {
            return Err(self.error("checkpoint.max-concurrent", "must be at least 1"));
        }
        if let Some(a) = &s.control {
            let addr: std::net::SocketAddr =
                a.parse().map_err(|_| self.error("control", format!("`{a}` is not an address; write e.g. \"127.0.0.1:7070\"")))?;
            if !addr.ip().is_loopback() {
                return Err(self.error("control", "the control endpoint listens on loopback only (127.0.0.1 or [::1])"));
            }
        }
        if let Some(d) = &s.restart.delay {
            parse_duration(d).map_err(|m| self.error("restart.delay", m))?;
        }
        Ok(())
    }

    /// The checkpoint settings, when checkpoints are on (or savepoints possible: `control`).
    pub fn checkpoint_config(&self) -> Option<crate::checkpoint::CheckpointConfig> {
        let c = &self.spec.checkpoint;
        let d = |v: &Option<String>, def: std::time::Duration| v.as_deref().and_then(|s| parse_duration(s).ok()).unwrap_or(def);
        let interval = c.interval.as_deref().and_then(|s| parse_duration(s).ok());
        if interval.is_none() && self.spec.control.is_none() {
            return None;
        }
        let dir = self.checkpoint_dir().unwrap_or_else(|| std::env::temp_dir().join(format!("weir-checkpoints-{}", std::process::id())));
        Some(crate::checkpoint::CheckpointConfig {
            interval,
            mode: c.mode,
            dir,
            min_pause: d(&c.min_pause, std::time::Duration::ZERO),
            max_concurrent: c.max_concurrent.unwrap_or(1),
            timeout: d(&c.timeout, std::time::Duration::from_secs(600)),
            retain: c.retain.unwrap_or(3),
            tolerable_failures: c.tolerable_failures.unwrap_or(0),
        })
    }

    /// The checkpoint folder (`file://` stripped), when set.
    pub fn checkpoint_dir(&self) -> Option<PathBuf> {
        self.spec.checkpoint.dir.as_deref().map(|d| PathBuf::from(d.strip_prefix("file://").unwrap_or(d)))
    }

    /// A node's `parallelism`: at least 1, at most `max-parallelism` (a subtask per key
    /// group at most, and a thread each: 65,536 overflowed the stack).
    fn check_parallelism(&self, f: &str, p: Option<usize>) -> Result<(), JobError> {
        let max = self.spec.max_parallelism as usize;
        match p {
            Some(0) => Err(self.error(&format!("{f}.parallelism"), "must be at least 1")),
            Some(p) if p > max => Err(self.error(
                &format!("{f}.parallelism"),
                format!("{p} is more than `max-parallelism` ({max}); lower it or raise `max-parallelism`"),
            )),
            _ => Ok(()),
        }
    }

    /// Inputs must not form a cycle (a record would go round forever, and the job hung).
    fn check_acyclic(&self) -> Result<(), JobError> {
        let ops = &self.spec.operator;
        let upstream = |n: &str| -> Vec<String> {
            let list = ops.get(n).and_then(|op| op.input.as_ref()).map(Inputs::list).unwrap_or_default();
            list.into_iter().map(|i| i.split_once('.').map(|(a, _)| a.to_string()).unwrap_or(i)).filter(|u| ops.contains_key(u)).collect()
        };
        // Depth-first over operators; `path` is the walk from the start, `done` what has no cycle.
        let mut done = std::collections::HashSet::new();
        for start in ops.keys() {
            let mut path: Vec<(String, Vec<String>)> = vec![(start.clone(), upstream(start))];
            while let Some((node, ups)) = path.last_mut() {
                let node = node.clone();
                let Some(next) = ups.pop() else {
                    done.insert(node);
                    path.pop();
                    continue;
                };
                if done.contains(&next) {
                    continue;
                }
                if let Some(at) = path.iter().position(|(n, _)| *n == next) {
                    // Name the cycle in the direction records flow, from the node whose input closes it.
                    let mut names: Vec<&str> = vec![next.as_str()];
                    names.extend(path[at + 1..].iter().rev().map(|(n, _)| n.as_str()));
                    names.push(next.as_str());
                    return Err(self.error(
                        &format!("operator.{next}.input"),
                        format!("the inputs form a cycle ({}); a record would go round forever", names.join(" → ")),
                    ));
                }
                let ups = upstream(&next);
                path.push((next, ups));
            }
        }
        Ok(())
    }

    fn check_inputs(&self, f: &str, input: Option<&Inputs>) -> Result<(), JobError> {
        let Some(input) = input else {
            return Err(self.error(f, "needs `input = \"NAME\"` (a source or operator; `NAME.OUTPUT` for a side output)"));
        };
        if input.list().is_empty() {
            return Err(self.error(&format!("{f}.input"), "an empty list; name at least one source or operator"));
        }
        for i in input.list() {
            let node = i.split_once('.').map(|(a, _)| a).unwrap_or(&i);
            let known = self.spec.source.contains_key(node) || self.spec.operator.contains_key(node);
            if !known {
                let names: Vec<&String> = self.spec.source.keys().chain(self.spec.operator.keys()).collect();
                return Err(self.error(&format!("{f}.input"), format!("`{i}` names no source or operator; known: {names:?}")));
            }
        }
        Ok(())
    }

    /// The durations of a `watermark` table.
    fn check_watermark(&self, f: &str, w: &WatermarkSpec) -> Result<(), JobError> {
        for (k, v) in [("max-out-of-orderness", &w.max_out_of_orderness), ("interval", &w.interval), ("idle-timeout", &w.idle_timeout)] {
            if let Some(v) = v {
                parse_duration(v).map_err(|m| self.error(&format!("{f}.watermark.{k}"), m))?;
            }
        }
        Ok(())
    }

    /// An operator's own event time and watermarks.
    fn check_operator_time(&self, f: &str, op: &OperatorSpec) -> Result<(), JobError> {
        let (field, what) = match (&op.event_time, &op.watermark) {
            (Some(_), _) => ("event-time", "event time"),
            (None, Some(_)) => ("watermark", "watermarks"),
            (None, None) => return Ok(()),
        };
        if !matches!(op.kind, OperatorKind::Map | OperatorKind::Filter | OperatorKind::FlatMap) {
            return Err(self.error(
                &format!("{f}.{field}"),
                format!("only a map, filter or flat-map operator assigns {what} to its output; put it on the operator upstream or on the source"),
            ));
        }
        if let Some(et) = &op.event_time {
            if et.ingestion {
                return Err(self.error(
                    &format!("{f}.event-time.ingestion"),
                    "ingestion time is stamped at the source: move `event-time = { ingestion = true }` there",
                ));
            }
        }
        if let Some(w) = &op.watermark {
            self.check_watermark(f, w)?;
            if w.idle_timeout.is_some() {
                return Err(self.error(&format!("{f}.watermark.idle-timeout"), "idleness is a source's: set `idle-timeout` on the source"));
            }
        }
        Ok(())
    }

    fn check_operator(&self, n: &str, op: &OperatorSpec) -> Result<(), JobError> {
        let f = format!("operator.{n}");
        self.check_operator_time(&f, op)?;
        self.check_inputs(&f, op.input.as_ref())?;
        self.check_parallelism(&f, op.parallelism)?;
        let needs_plugin = !matches!(op.kind, OperatorKind::Window);
        if needs_plugin && op.plugin.is_none() {
            return Err(self.error(&f, format!("kind = \"{:?}\" needs `plugin = \"path/to/component.wasm\"`", op.kind).to_lowercase()));
        }
        let keyed = matches!(op.kind, OperatorKind::Process | OperatorKind::Window);
        if keyed && op.key_by.is_none() {
            return Err(self.error(&f, "a keyed operator needs `key-by = \"field\"` (or a list of fields, or { plugin = ... })"));
        }
        match &op.key_by {
            Some(KeyBySpec::Fields(v)) if v.is_empty() => {
                return Err(self.error(&format!("{f}.key-by"), "an empty list of fields; name at least one"));
            }
            Some(KeyBySpec::RecordKey(r)) if r.record_key.is_empty() => {
                return Err(
                    self.error(&format!("{f}.key-by.record-key"), "an empty name; write the key's name in result rows, e.g. \"user_id\"")
                );
            }
            _ => {}
        }
        for (name, t) in &op.state_ttl {
            let f2 = format!("{f}.state-ttl.{name}");
            if op.kind != OperatorKind::Process {
                return Err(self.error(&f2, "only a process operator has keyed state with a TTL"));
            }
            let (d, _) = t.parse().map_err(|m| self.error(&f2, m))?;
            if d.is_zero() {
                return Err(self.error(&f2, "a TTL must be longer than 0"));
            }
        }
        if op.kind == OperatorKind::Window {
            let Some(w) = &op.window else {
                return Err(self.error(&f, "kind = \"window\" needs `window = { type = \"tumbling\", size = \"10s\" }`"));
            };
            let wf = format!("{f}.window");
            let dur = |k: &str, v: &Option<String>| -> Result<u64, JobError> {
                let v = v.as_ref().ok_or_else(|| self.error(&wf, format!("type = \"{:?}\" needs `{k}`", w.kind).to_lowercase()))?;
                let d = parse_duration(v).map_err(|m| self.error(&format!("{wf}.{k}"), m))?;
                if d.as_millis() == 0 {
                    return Err(self.error(&format!("{wf}.{k}"), "must be longer than 0"));
                }
                Ok(d.as_millis() as u64)
            };
            match w.kind {
                WindowKind::Tumbling => {
                    dur("size", &w.size)?;
                }
                WindowKind::Sliding => {
                    let (size, slide) = (dur("size", &w.size)?, dur("slide", &w.slide)?);
                    if slide > size {
                        return Err(self.error(&format!("{wf}.slide"), "a slide longer than the size skips records; use a slide ≤ size"));
                    }
                    if size.div_ceil(slide) > MAX_WINDOWS_PER_RECORD {
                        return Err(self.error(
                            &format!("{wf}.slide"),
                            format!(
                                "each record would fall into {} windows (size / slide); at most {MAX_WINDOWS_PER_RECORD}: use a longer slide",
                                size.div_ceil(slide)
                            ),
                        ));
                    }
                }
                WindowKind::Session => {
                    dur("gap", &w.gap)?;
                }
                WindowKind::Count => {
                    if w.count.unwrap_or(0) == 0 {
                        return Err(self.error(&wf, "type = \"count\" needs `count` ≥ 1"));
                    }
                    if w.every == Some(0) {
                        return Err(self.error(&format!("{wf}.every"), "must be at least 1"));
                    }
                }
            }
            if let Some(l) = &op.allowed_lateness {
                parse_duration(l).map_err(|m| self.error(&format!("{f}.allowed-lateness"), m))?;
            }
            for (name, agg) in &op.aggregates {
                crate::window::AggSpec::parse(agg).map_err(|m| self.error(&format!("{f}.aggregates.{name}"), m))?;
            }
            if op.plugin.is_some() && !op.aggregates.is_empty() {
                return Err(self.error(&f, "use either `aggregates` or a `plugin` (aggregate or window-process), not both"));
            }
        } else {
            for (k, set) in [
                ("window", op.window.is_some()),
                ("aggregates", !op.aggregates.is_empty()),
                ("allowed-lateness", op.allowed_lateness.is_some()),
                ("fields", !op.fields.is_empty()),
            ] {
                if set {
                    return Err(self.error(&format!("{f}.{k}"), "only a window operator takes this field"));
                }
            }
        }
        Ok(())
    }
}

/// The `--set` whose key ends in the key of a TOML line (`parallelism = "x"`), or the last
/// `--set` when none matches.
fn set_on_line(sets: &[String], line: &str) -> Option<String> {
    let key = line.split('=').next().unwrap_or_default().trim().trim_matches(|c| c == '"' || c == '\'');
    sets.iter().rev().find(|s| s.split_once('=').is_some_and(|(k, _)| k.trim().rsplit('.').next() == Some(key))).or(sets.last()).cloned()
}

/// The 1-based line of byte offset `at`.
fn line_at(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// A TOML value as JSON (configs are handed to plugins as JSON).
pub fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => (*i).into(),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map(serde_json::Value::Number).unwrap_or(serde_json::Value::Null),
        toml::Value::Boolean(b) => (*b).into(),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(a) => serde_json::Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => serde_json::Value::Object(t.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, sets: &[&str]) -> Result<Job, JobError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("job.toml");
        std::fs::write(&p, text).unwrap();
        Job::load(&p, &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    const OK: &str = "[source.logs]\nkind = \"file\"\npath = \"in.jsonl\"\n\n[sink.out]\nkind = \"print\"\ninput = \"logs\"\n";

    #[test]
    fn set_overrides_any_field() {
        let j = load(OK, &["source.logs.path=other.jsonl", "parallelism=4", "sink.out.kind=file", "sink.out.path=o.jsonl"]).unwrap();
        assert_eq!(j.spec.source["logs"].path.as_deref(), Some(Path::new("other.jsonl")));
        assert_eq!(j.spec.parallelism, 4);
        assert_eq!(j.spec.sink["out"].kind, SinkKind::File);
    }

    #[test]
    fn unknown_field_names_file_line_and_allowed_fields() {
        let e = load("[source.logs]\nkind = \"file\"\npth = \"x\"\n", &[]).unwrap_err().to_string();
        assert!(e.contains("job.toml:3"), "{e}");
        assert!(e.contains("unknown field `pth`") && e.contains("path"), "{e}");
    }

    #[test]
    fn state_ttl_is_checked() {
        let base = "[source.logs]\nkind = \"file\"\npath = \"x\"\n\n[operator.p]\nkind = \"process\"\ninput = \"logs\"\nkey-by = \"u\"\nplugin = \"p.wasm\"\n";
        let j =
            load(&format!("{base}state-ttl = {{ a = \"5m\", b = {{ ttl = \"1d\", update = \"on-read-and-write\" }} }}\n"), &[]).unwrap();
        let ttl = &j.spec.operator["p"].state_ttl;
        assert_eq!(ttl["a"].parse(), Ok((std::time::Duration::from_secs(300), false)));
        assert_eq!(ttl["b"].parse(), Ok((std::time::Duration::from_secs(86_400), true)));
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
        assert!(
            load(ops, &["operator.b.window={ type = \"sliding\", size = \"1s\", slide = \"1ms\" }"]).is_ok(),
            "1,000 windows a record is the bound"
        );
        let e = load(ops, &["parallelism=x"]).unwrap_err();
        assert_eq!((e.line, e.set.as_deref()), (None, Some("parallelism=x")), "{e}");
        assert!(e.to_string().contains("job.toml (--set parallelism=x): job file:"), "{e}");
    }

    #[test]
    fn semantic_errors_name_field_and_fix() {
        let e = load("[source.logs]\nkind = \"file\"\n\n[sink.out]\nkind = \"print\"\ninput = \"logs\"\n", &[]).unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("source.logs", Some(1)));
        assert!(e.message.contains("needs `path`"));
        let e = load(OK, &["sink.out.input=nope"]).unwrap_err();
        assert!(e.to_string().contains("`nope` names no source or operator"), "{e}");
    }
}
