//! Sources and sinks, each kind a module with its own typed config, found by name in
//! [`SOURCES`] and [`SINKS`]. A new kind is a module that implements [`SourceConfig`] or
//! [`SinkConfig`] for its config struct, and one line in a registry.

use serde::de::DeserializeOwned;
use weir_core::config::{checked, Check, FieldError};
use weir_core::operator::{Operator, Source};

pub mod collection;
pub mod discard;
pub mod file;
pub mod generator;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod print;

pub use collection::CollectionSource;
pub use discard::DiscardSink;
pub use file::{FileSink, FileSource, DEFAULT_MAX_LINE_BYTES, TOO_LONG_HEAD};
pub use generator::{Generator, GeneratorConfig};
pub use print::{PrintSink, Stream};

/// The source kinds a job file may name.
pub const SOURCES: &[SourceKind] = &[
    SourceKind { name: "collection", parallel: false, configure: typed_source::<collection::Config> },
    SourceKind { name: "file", parallel: false, configure: typed_source::<file::FileSourceConfig> },
    SourceKind { name: "generator", parallel: true, configure: typed_source::<generator::Config> },
    #[cfg(feature = "kafka")]
    SourceKind { name: "kafka", parallel: true, configure: typed_source::<kafka::KafkaSourceConfig> },
];

/// The sink kinds a job file (and `[dead-letter]`) may name.
pub const SINKS: &[SinkKind] = &[
    SinkKind { name: "print", parallel: true, configure: typed_sink::<print::Config> },
    SinkKind { name: "file", parallel: false, configure: typed_sink::<file::FileSinkConfig> },
    SinkKind { name: "discard", parallel: true, configure: typed_sink::<discard::Config> },
    #[cfg(feature = "kafka")]
    SinkKind { name: "kafka", parallel: false, configure: typed_sink::<kafka::KafkaSinkConfig> },
];

/// Where a source subtask runs.
#[derive(Debug, Clone, Copy)]
pub struct SourceAt<'a> {
    /// The job's name (a Kafka source's default consumer group).
    pub job: &'a str,
    /// The source's name in the job.
    pub name: &'a str,
    /// Whether records take their event time from the source (`event-time = { source = true }`:
    /// Kafka's record timestamps).
    pub source_time: bool,
    /// The source's index among the job's sources (it goes into each record's origin).
    pub index: u16,
    /// This subtask.
    pub subtask: usize,
    /// Subtasks of the source.
    pub parallelism: usize,
}

/// The checked settings of one source, which open its readers.
pub trait SourceConfig: Check + std::fmt::Debug + Send + Sync {
    /// A reader for one subtask.
    fn open(&self, at: SourceAt<'_>) -> anyhow::Result<Box<dyn Source>>;
    /// Whether a record whose value is not JSON goes to the dead letters at the source.
    fn requires_json(&self) -> bool {
        false
    }
    /// What names the splits of this source's records in dead letters, when it reads several.
    fn describe_split(&self) -> Option<weir_core::operator::DescribeSplit> {
        None
    }
    /// Whether records come with a time of their own (Kafka's record timestamp), which
    /// `event-time = { kafka = true }` takes as event time.
    fn timestamps(&self) -> bool {
        false
    }
}

/// A source kind: its name in `kind = "..."` and how its table becomes a config.
#[derive(Debug)]
pub struct SourceKind {
    /// `kind = "NAME"`.
    pub name: &'static str,
    /// Whether it reads with more than one subtask.
    pub parallel: bool,
    /// Reads and checks the source's own fields (the table without the fields every source
    /// has: `kind`, `parallelism`, `rate`, `event-time`, `watermark`).
    pub configure: fn(toml::Table) -> Result<Box<dyn SourceConfig>, FieldError>,
}

/// How a sink runs.
#[derive(Debug, Clone, Copy)]
pub struct SinkAt {
    /// This subtask.
    pub subtask: usize,
    /// The job's dead-letter output (print writes to standard error).
    pub dead_letter: bool,
    /// Checkpoints are on: commit in two phases where the kind can.
    pub transactional: bool,
}

/// The checked settings of one sink, which open it.
pub trait SinkConfig: Check + std::fmt::Debug + Send + Sync {
    /// The sink, as the operator at the end of a route.
    fn open(&self, at: SinkAt) -> anyhow::Result<Box<dyn Operator>>;
}

/// A sink kind.
#[derive(Debug)]
pub struct SinkKind {
    /// `kind = "NAME"`.
    pub name: &'static str,
    /// Whether it may run as one instance per subtask of its input, in its input's task: it
    /// holds no state and keeps no order across instances (print writes each batch's lines
    /// together, as Flink's print sink does at any parallelism). A file sink writes one file
    /// in order and commits it at checkpoints: it runs in a task of its own.
    pub parallel: bool,
    /// Reads and checks the sink's own fields (the table without `kind` and `input`).
    pub configure: fn(toml::Table) -> Result<Box<dyn SinkConfig>, FieldError>,
}

/// The source kind named `name`.
pub fn source_kind(name: &str) -> Option<&'static SourceKind> {
    SOURCES.iter().find(|k| k.name == name)
}

/// The sink kind named `name`.
pub fn sink_kind(name: &str) -> Option<&'static SinkKind> {
    SINKS.iter().find(|k| k.name == name)
}

fn typed_source<C: SourceConfig + DeserializeOwned + 'static>(t: toml::Table) -> Result<Box<dyn SourceConfig>, FieldError> {
    Ok(Box::new(checked::<C>(t)?))
}

fn typed_sink<C: SinkConfig + DeserializeOwned + 'static>(t: toml::Table) -> Result<Box<dyn SinkConfig>, FieldError> {
    Ok(Box::new(checked::<C>(t)?))
}
