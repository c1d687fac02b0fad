//! `kind = "kafka"`: a source that reads topics with partitions spread over its subtasks,
//! offsets kept in weir's checkpoints (and committed back to the consumer group when one
//! completes, for lag tools), a watermark per partition; and a sink that produces to a topic,
//! flushing at each checkpoint (at least once, with the idempotent producer).
//!
//! Both use librdkafka's synchronous clients: a source subtask polls on its own thread, as
//! every weir source does, and a sink is an operator on its task's thread.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Deserialize;
use weir_core::config::{Check, FieldError};
use weir_core::json;
use weir_core::operator::{Operator, Output, Source};
use weir_core::record::{Batch, Key, Origin, Record};

use crate::file::Format;

/// librdkafka settings a source starts from (a job's `properties` override them). librdkafka
/// 2 waits `fetch.queue.backoff.ms` (1 s) before fetching again once its local queue was full:
/// a pipeline that drains the queue faster than that sat idle the rest of each second
/// (BENCHMARKS.md).
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[("fetch.queue.backoff.ms", "10"), ("statistics.interval.ms", "1000")];

/// How long a source or sink waits for a broker to answer at start, unless the job says.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One topic, several, or every topic whose name matches a pattern.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Topics {
    /// One topic.
    One(String),
    /// Several topics.
    Many(Vec<String>),
    /// `{ pattern = "logs-.*" }`: the topics whose whole name matches, when the job starts.
    Pattern {
        /// A regular expression (Rust's `regex` syntax), matched against whole names.
        pattern: String,
    },
}

impl Topics {
    /// The topics named (none for a pattern: see [`Topics::matching`]).
    fn list(&self) -> Vec<String> {
        match self {
            Topics::One(t) => vec![t.clone()],
            Topics::Many(v) => v.clone(),
            Topics::Pattern { .. } => Vec::new(),
        }
    }

    /// A pattern's regular expression, anchored to whole names.
    fn regex(&self) -> Option<Result<regex::Regex, regex::Error>> {
        match self {
            Topics::Pattern { pattern } => Some(regex::Regex::new(&format!("^(?:{pattern})$"))),
            _ => None,
        }
    }

    /// The topics to read among `existing` (a broker's), sorted: those named, or those a
    /// pattern matches (internal topics, `__...`, left out as Kafka's own consumers do).
    fn matching(&self, existing: &[String]) -> Vec<String> {
        match self.regex() {
            Some(Ok(re)) => {
                let mut names: Vec<String> = existing.iter().filter(|t| !t.starts_with("__") && re.is_match(t)).cloned().collect();
                names.sort();
                names
            }
            _ => self.list(),
        }
    }
}

/// Where a source starts reading a partition that has no offset in the checkpoint it
/// restores from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Start {
    /// `earliest`, `latest` or `committed`.
    Named(StartAt),
    /// The first record at or after this time (epoch ms).
    Time(i64),
    /// Not given: `committed`, else `earliest`.
    #[serde(skip)]
    #[default]
    Default,
}

/// Named start positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartAt {
    /// The first offset the broker keeps.
    Earliest,
    /// After the last record at start.
    Latest,
    /// The consumer group's committed offset (`earliest` where it has none).
    Committed,
}

/// `kind = "kafka"` as a source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KafkaSourceConfig {
    /// `host:port[,host:port...]`.
    pub bootstrap: String,
    /// The topic, a list of topics, or `{ pattern = "..." }`.
    pub topic: Topics,
    /// The topics read, in split-id order, once a subtask has opened (the same in all).
    #[serde(skip)]
    resolved: Arc<OnceLock<Vec<String>>>,
    /// The consumer group offsets are committed to (default: the job's name).
    #[serde(default)]
    pub group: Option<String>,
    /// `earliest`, `latest`, `committed` (default; `earliest` where the group has none) or
    /// epoch milliseconds.
    #[serde(default)]
    pub start: Start,
    /// Stop at the offsets that were the latest when the job started (Flink's `setBounded`).
    #[serde(default)]
    pub bounded: bool,
    /// `json` (a value that is not JSON goes to the dead letters) or `text`.
    #[serde(default)]
    pub format: Format,
    /// librdkafka properties passed as they are (`"security.protocol" = "ssl"`).
    #[serde(default)]
    pub properties: BTreeMap<String, toml::Value>,
    /// How long to wait for a broker at start (default 30s).
    #[serde(default, deserialize_with = "weir_core::config::opt_duration")]
    pub connect_timeout: Option<Duration>,
}

/// The text of a property value (`1000`, `true` and `"x"` alike).
fn property_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A client's settings: weir's `defaults`, then the job's `properties` (which win).
fn client_config(bootstrap: &str, defaults: &[(&str, &str)], properties: &BTreeMap<String, toml::Value>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    for (k, v) in defaults {
        c.set(*k, *v);
    }
    for (k, v) in properties {
        c.set(k, property_text(v));
    }
    c
}

fn check_common(bootstrap: &str, properties: &BTreeMap<String, toml::Value>) -> Result<(), FieldError> {
    if bootstrap.trim().is_empty() {
        return Err(FieldError::new("bootstrap", "name at least one broker, e.g. \"127.0.0.1:9092\""));
    }
    if properties.contains_key("bootstrap.servers") {
        return Err(FieldError::new("properties", "set the brokers with `bootstrap`, not `bootstrap.servers`"));
    }
    Ok(())
}

impl Check for KafkaSourceConfig {
    fn check(&self) -> Result<(), FieldError> {
        check_common(&self.bootstrap, &self.properties)?;
        match self.topic.regex() {
            Some(Err(e)) => return Err(FieldError::new("topic.pattern", format!("not a regular expression: {e}"))),
            Some(Ok(_)) => {}
            None if self.topic.list().iter().any(|t| t.is_empty()) || self.topic.list().is_empty() => {
                return Err(FieldError::new("topic", "name a topic, a list of topics, or { pattern = \"REGEX\" }"));
            }
            None => {}
        }
        Ok(())
    }
}

impl crate::SourceConfig for KafkaSourceConfig {
    fn open(&self, at: crate::SourceAt<'_>) -> anyhow::Result<Box<dyn Source>> {
        Ok(Box::new(KafkaSource::open(self, at)?))
    }

    fn requires_json(&self) -> bool {
        self.format == Format::Json
    }

    fn timestamps(&self) -> bool {
        true
    }

    fn describe_split(&self) -> Option<weir_core::operator::DescribeSplit> {
        let (resolved, named) = (self.resolved.clone(), self.topic.list());
        Some(std::sync::Arc::new(move |split| {
            let (topic, partition) = split_parts(split);
            let mut m = serde_json::Map::new();
            let name = resolved.get().unwrap_or(&named).get(topic).cloned().unwrap_or_default();
            m.insert("topic".into(), name.into());
            m.insert("partition".into(), partition.into());
            m
        }))
    }
}

/// A split's id: the topic's index in the source's `topic` list and the partition.
fn split_id(topic: usize, partition: i32) -> u32 {
    ((topic as u32) << PARTITION_BITS) | (partition as u32 & ((1 << PARTITION_BITS) - 1))
}

/// `(topic index, partition)` of a split id.
fn split_parts(split: u32) -> (usize, i32) {
    ((split >> PARTITION_BITS) as usize, (split & ((1 << PARTITION_BITS) - 1)) as i32)
}

/// Bits of a split id that hold the partition (topics have fewer than a million).
const PARTITION_BITS: u32 = 20;

/// One partition a source subtask reads.
#[derive(Debug, Clone)]
struct Split {
    id: u32,
    topic: String,
    partition: i32,
    /// The next offset to read.
    next: i64,
    /// Bounded: the offset it ends at (the latest at start).
    end: Option<i64>,
    ended: bool,
    /// Where this run started reading it (for progress).
    first: i64,
    /// The newest offset the broker reported at start.
    high: i64,
}

/// The newest offset of each partition a consumer reads (`topic:partition`), as
/// librdkafka's statistics report it every `statistics.interval.ms` (the source sets a
/// second): what the consumer lag is measured against, without a request to the broker.
#[derive(Debug, Clone, Default)]
struct Highs(Arc<Mutex<BTreeMap<String, i64>>>);

impl ClientContext for Highs {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut highs = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (name, topic) in statistics.topics {
            for (partition, p) in topic.partitions.into_iter().filter(|(p, s)| *p >= 0 && s.hi_offset >= 0) {
                highs.insert(split_key(&name, partition), p.hi_offset);
            }
        }
    }
}

impl ConsumerContext for Highs {}

/// A Kafka source subtask.
pub struct KafkaSource {
    consumer: BaseConsumer<Highs>,
    /// The newest offset of each partition (`split_key`), from librdkafka's statistics.
    highs: Highs,
    splits: Vec<Split>,
    index: u16,
    source_time: bool,
    bounded: bool,
    name: String,
    /// Splits that ended since [`Source::take_ended_splits`] last took them.
    ended_now: Vec<u32>,
    /// Positions of checkpoints not yet complete, to commit when they are.
    pending: Vec<(u64, Offsets)>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource").field("name", &self.name).field("splits", &self.splits).finish_non_exhaustive()
    }
}

/// `(topic, partition, next offset)` of each split.
type Offsets = Vec<(String, i32, i64)>;

fn split_key(topic: &str, partition: i32) -> String {
    format!("{topic}:{partition}")
}

impl KafkaSource {
    fn open(cfg: &KafkaSourceConfig, at: crate::SourceAt<'_>) -> anyhow::Result<KafkaSource> {
        let timeout = cfg.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let group = cfg.group.clone().unwrap_or_else(|| at.job.to_string());
        let highs = Highs::default();
        let consumer: BaseConsumer<Highs> = client_config(&cfg.bootstrap, CONSUMER_DEFAULTS, &cfg.properties)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("allow.auto.create.topics", "false")
            .create_with_context(highs.clone())
            .with_context(|| format!("kafka source `{}`: cannot make a consumer", at.name))?;
        // Every partition of every topic, in one order all subtasks agree on.
        let topics = match &cfg.topic {
            Topics::Pattern { pattern } => {
                let meta = consumer.fetch_metadata(None, timeout).map_err(|e| {
                    anyhow::anyhow!(
                        "kafka source `{}`: no broker at {} answered within {timeout:?} (`connect-timeout`): {e}",
                        at.name,
                        cfg.bootstrap
                    )
                })?;
                let existing: Vec<String> = meta.topics().iter().map(|t| t.name().to_string()).collect();
                let topics = cfg.topic.matching(&existing);
                anyhow::ensure!(
                    !topics.is_empty(),
                    "kafka source `{}`: no topic on {} matches `{pattern}` (create one first, or change `topic.pattern`)",
                    at.name,
                    cfg.bootstrap
                );
                topics
            }
            _ => cfg.topic.list(),
        };
        let _ = cfg.resolved.set(topics.clone());
        let mut all = Vec::new();
        for (ti, topic) in topics.into_iter().enumerate() {
            let meta = consumer.fetch_metadata(Some(&topic), timeout).map_err(|e| {
                anyhow::anyhow!(
                    "kafka source `{}`: no broker at {} answered within {timeout:?} (`connect-timeout`): {e}",
                    at.name,
                    cfg.bootstrap
                )
            })?;
            let t = meta.topics().iter().find(|t| t.name() == topic);
            let partitions: Vec<i32> = t.map(|t| t.partitions().iter().map(|p| p.id()).collect()).unwrap_or_default();
            if partitions.is_empty() || t.is_some_and(|t| t.error().is_some()) {
                anyhow::bail!("kafka source `{}`: topic `{topic}` does not exist on {} (create it first)", at.name, cfg.bootstrap);
            }
            let mut partitions = partitions;
            partitions.sort_unstable();
            all.extend(partitions.into_iter().map(|p| (ti, topic.clone(), p)));
        }
        let mut splits = Vec::new();
        for (i, (ti, topic, partition)) in all.into_iter().enumerate() {
            if i % at.parallelism != at.subtask {
                continue;
            }
            let (low, high) = consumer
                .fetch_watermarks(&topic, partition, timeout)
                .with_context(|| format!("kafka source `{}`: offsets of {topic}/{partition}", at.name))?;
            let next = match cfg.start {
                Start::Named(StartAt::Earliest) => low,
                Start::Named(StartAt::Latest) => high,
                Start::Named(StartAt::Committed) | Start::Default => {
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition(&topic, partition);
                    let committed = consumer.committed_offsets(tpl, timeout).ok();
                    let offset = committed.and_then(|c| c.find_partition(&topic, partition).map(|p| p.offset()));
                    match offset {
                        Some(Offset::Offset(o)) => o.clamp(low, high),
                        _ => low,
                    }
                }
                Start::Time(ms) => {
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition_offset(&topic, partition, Offset::Offset(ms))?;
                    let found = consumer.offsets_for_times(tpl, timeout)?;
                    match found.find_partition(&topic, partition).map(|p| p.offset()) {
                        Some(Offset::Offset(o)) => o,
                        _ => high,
                    }
                }
            };
            let end = cfg.bounded.then_some(high);
            let id = split_id(ti, partition);
            splits.push(Split { id, topic, partition, next, end, ended: end.is_some_and(|e| next >= e), first: next, high });
        }
        let mut source = KafkaSource {
            consumer,
            highs,
            splits,
            index: at.index,
            source_time: at.source_time,
            bounded: cfg.bounded,
            name: at.name.to_string(),
            ended_now: Vec::new(),
            pending: Vec::new(),
        };
        source.ended_now = source.splits.iter().filter(|s| s.ended).map(|s| s.id).collect();
        source.assign()?;
        Ok(source)
    }

    /// Assigns the splits that have not ended, at their next offsets.
    fn assign(&self) -> anyhow::Result<()> {
        let mut tpl = TopicPartitionList::new();
        for s in self.splits.iter().filter(|s| !s.ended) {
            tpl.add_partition_offset(&s.topic, s.partition, Offset::Offset(s.next))?;
        }
        self.consumer.assign(&tpl).with_context(|| format!("kafka source `{}`: assigning partitions", self.name))
    }

    fn end_split(&mut self, at: usize) {
        if !self.splits[at].ended {
            self.splits[at].ended = true;
            self.ended_now.push(self.splits[at].id);
        }
    }
}

impl Source for KafkaSource {
    fn poll(&mut self, max: usize) -> anyhow::Result<Option<(Vec<Record>, Duration)>> {
        if self.splits.iter().all(|s| s.ended) && (self.bounded || self.splits.is_empty()) {
            return Ok(None);
        }
        let mut out = Vec::new();
        let started = Instant::now();
        while out.len() < max {
            let wait = if out.is_empty() { Duration::from_millis(100) } else { Duration::ZERO };
            let Some(m) = self.consumer.poll(wait) else { break };
            let m = match m {
                Ok(m) => m,
                // Transport errors are retried by librdkafka itself (a broker that restarts
                // is reconnected to); a fatal one ends the job.
                Err(KafkaError::MessageConsumption(code)) if !is_fatal(code) => break,
                Err(e) => return Err(anyhow::anyhow!("kafka source `{}`: {e}", self.name)),
            };
            let Some(at) = self.splits.iter().position(|s| s.partition == m.partition() && s.topic == m.topic()) else { continue };
            let split = &mut self.splits[at];
            if split.ended || m.offset() < split.next {
                continue;
            }
            split.next = m.offset() + 1;
            let mut r = Record {
                key: m.key().map(Key::from_slice),
                value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                origin: Origin { source: self.index, position: m.offset() as u64, split: split.id, ..Origin::default() },
                ..Record::default()
            };
            if self.source_time {
                r.timestamp = m.timestamp().to_millis();
            }
            if let Some(h) = m.headers() {
                r.headers = h.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec).unwrap_or_default())).collect();
            }
            let done = split.end.is_some_and(|e| split.next >= e);
            out.push(r);
            if done {
                // Stop fetching it; the other partitions keep what librdkafka has fetched.
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(&self.splits[at].topic, self.splits[at].partition);
                self.consumer.pause(&tpl).with_context(|| format!("kafka source `{}`: pausing an ended partition", self.name))?;
                self.end_split(at);
            }
            if started.elapsed() > Duration::from_millis(200) {
                break;
            }
        }
        Ok(Some((out, Duration::ZERO)))
    }

    fn position(&self) -> serde_json::Value {
        let offsets: serde_json::Map<String, serde_json::Value> =
            self.splits.iter().map(|s| (split_key(&s.topic, s.partition), s.next.into())).collect();
        serde_json::json!({ "offsets": offsets })
    }

    fn seek(&mut self, position: &serde_json::Value) -> anyhow::Result<()> {
        self.seek_all(std::slice::from_ref(position))
    }

    fn seek_all(&mut self, positions: &[serde_json::Value]) -> anyhow::Result<()> {
        let mut offsets = serde_json::Map::new();
        for p in positions {
            let part = p["offsets"].as_object().ok_or_else(|| anyhow::anyhow!("a kafka position without `offsets`"))?;
            offsets.extend(part.clone());
        }
        for at in 0..self.splits.len() {
            let s = &mut self.splits[at];
            if let Some(o) = offsets.get(&split_key(&s.topic, s.partition)).and_then(|o| o.as_i64()) {
                s.next = o;
                s.first = o;
                s.ended = false;
                if s.end.is_some_and(|e| o >= e) {
                    self.end_split(at);
                }
            }
        }
        self.assign()
    }

    /// Records read of what a bounded run reads, and the consumer lag: the newest offset
    /// librdkafka last heard of (from its fetches; no request is made) minus the next one
    /// to read, over this reader's partitions.
    fn progress(&self) -> Option<weir_core::status::SourceProgress> {
        let highs = self.highs.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (mut done, mut total, mut lag) = (0, Some(0u64), 0);
        for s in &self.splits {
            done += (s.next - s.first).max(0) as u64;
            total = total.zip(s.end).map(|(t, e)| t + (e - s.first).max(0) as u64);
            let high = highs.get(&split_key(&s.topic, s.partition)).map_or(s.high, |h| (*h).max(s.high));
            lag += (high - s.next).max(0) as u64;
        }
        Some(weir_core::status::SourceProgress { done, total, lag: Some(lag), ..Default::default() })
    }

    fn splits(&self) -> Vec<u32> {
        self.splits.iter().map(|s| s.id).collect()
    }

    fn take_ended_splits(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.ended_now)
    }

    fn snapshotted(&mut self, id: u64) {
        self.pending.push((id, self.splits.iter().map(|s| (s.topic.clone(), s.partition, s.next)).collect()));
    }

    fn checkpoint_complete(&mut self, id: u64) -> anyhow::Result<()> {
        let Some(at) = self.pending.iter().position(|(p, _)| *p == id) else { return Ok(()) };
        let (_, offsets) = self.pending.swap_remove(at);
        self.pending.retain(|(p, _)| *p > id);
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, next) in offsets {
            tpl.add_partition_offset(&topic, partition, Offset::Offset(next))?;
        }
        // Offsets go to the group for lag tools; a failed commit loses nothing (the
        // checkpoint holds them), so it is not waited for.
        let _ = self.consumer.commit(&tpl, CommitMode::Async);
        Ok(())
    }
}

/// Errors of a consumer that do not end the job: librdkafka goes on by itself.
fn is_fatal(code: rdkafka::types::RDKafkaErrorCode) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    !matches!(
        code,
        C::PartitionEOF | C::BrokerTransportFailure | C::AllBrokersDown | C::OperationTimedOut | C::NotCoordinator | C::NetworkException
    )
}

/// How a Kafka sink delivers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// The idempotent producer, flushed at each checkpoint: every record at least once.
    #[default]
    AtLeastOnce,
}

/// `kind = "kafka"` as a sink.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KafkaSinkConfig {
    /// `host:port[,host:port...]`.
    pub bootstrap: String,
    /// The topic records go to.
    pub topic: String,
    /// A field of the record (dotted path) whose value becomes the Kafka key; absent: the
    /// record's own key.
    #[serde(default)]
    pub key: Option<String>,
    /// `at-least-once` (the default).
    #[serde(default)]
    pub delivery: Delivery,
    /// librdkafka properties passed as they are.
    #[serde(default)]
    pub properties: BTreeMap<String, toml::Value>,
    /// How long to wait for a broker at start (default 30s).
    #[serde(default, deserialize_with = "weir_core::config::opt_duration")]
    pub connect_timeout: Option<Duration>,
}

impl Check for KafkaSinkConfig {
    fn check(&self) -> Result<(), FieldError> {
        check_common(&self.bootstrap, &self.properties)?;
        if self.topic.is_empty() {
            return Err(FieldError::new("topic", "name the topic records go to"));
        }
        if self.key.as_deref() == Some("") {
            return Err(FieldError::new("key", "name a field, or leave `key` out to use the record's key"));
        }
        Ok(())
    }
}

impl crate::SinkConfig for KafkaSinkConfig {
    fn open(&self, _at: crate::SinkAt) -> anyhow::Result<Box<dyn Operator>> {
        Ok(Box::new(KafkaSink::open(self)?))
    }
}

/// Remembers the first delivery that failed.
#[derive(Debug, Default, Clone)]
struct Deliveries {
    failed: Arc<Mutex<Option<String>>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            let mut failed = self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            failed.get_or_insert_with(|| e.to_string());
        }
    }
}

/// A Kafka sink.
pub struct KafkaSink {
    producer: ThreadedProducer<Deliveries>,
    deliveries: Deliveries,
    topic: String,
    key: Option<json::Path>,
    timeout: Duration,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl KafkaSink {
    fn open(cfg: &KafkaSinkConfig) -> anyhow::Result<KafkaSink> {
        let timeout = cfg.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let deliveries = Deliveries::default();
        let producer: ThreadedProducer<Deliveries> = client_config(&cfg.bootstrap, &[], &cfg.properties)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create_with_context(deliveries.clone())
            .context("kafka sink: cannot make a producer")?;
        let meta = producer.client().fetch_metadata(Some(&cfg.topic), timeout).map_err(|e| {
            anyhow::anyhow!("kafka sink: no broker at {} answered within {timeout:?} (`connect-timeout`): {e}", cfg.bootstrap)
        })?;
        let exists = meta.topics().iter().any(|t| t.name() == cfg.topic && t.error().is_none() && !t.partitions().is_empty());
        anyhow::ensure!(exists, "kafka sink: topic `{}` does not exist on {} (create it first)", cfg.topic, cfg.bootstrap);
        let key = cfg.key.as_ref().map(|k| k.split('.').map(str::to_string).collect());
        Ok(KafkaSink { producer, deliveries, topic: cfg.topic.clone(), key, timeout })
    }

    fn failed(&self) -> anyhow::Result<()> {
        match self.deliveries.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            Some(e) => Err(anyhow::anyhow!("kafka sink: a record to `{}` was not delivered: {e}", self.topic)),
            None => Ok(()),
        }
    }

    /// Waits until every record sent is acknowledged.
    fn flush(&self) -> anyhow::Result<()> {
        self.producer.flush(self.timeout).with_context(|| format!("kafka sink: flushing `{}`", self.topic))?;
        self.failed()
    }

    /// The Kafka key of `r`: the configured field's text, or the record's key.
    fn key_of<'r>(&self, r: &'r Record) -> Option<std::borrow::Cow<'r, [u8]>> {
        let Some(path) = &self.key else { return r.key.as_deref().map(std::borrow::Cow::Borrowed) };
        let mut found = json::Found::new();
        json::extract(&r.value, std::slice::from_ref(path), &mut found).ok()?;
        json::non_null(found[0]).map(|v| std::borrow::Cow::Owned(weir_core::keys::key_bytes(&[v]).to_vec()))
    }
}

impl Operator for KafkaSink {
    fn process(&mut self, batch: Batch, _out: &mut Output) -> anyhow::Result<()> {
        self.failed()?;
        for r in &batch.records {
            let key = self.key_of(r);
            let headers = (!r.headers.is_empty())
                .then(|| r.headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| h.insert(Header { key: k, value: Some(v) })));
            loop {
                let mut rec = BaseRecord::to(&self.topic).payload(&r.value);
                if let Some(h) = &headers {
                    rec = rec.headers(h.clone());
                }
                if let Some(k) = &key {
                    rec = rec.key(k.as_ref());
                }
                if let Some(ts) = r.timestamp {
                    rec = rec.timestamp(ts);
                }
                match self.producer.send(rec) {
                    Ok(()) => break,
                    // The producer's queue is full: wait for deliveries to make room.
                    Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), _)) => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => anyhow::bail!("kafka sink: producing to `{}`: {e}", self.topic),
                }
            }
        }
        Ok(())
    }

    fn snapshot(&mut self, _id: u64, _dir: &std::path::Path) -> anyhow::Result<Option<weir_state::Deferred>> {
        // Everything before the barrier is acknowledged before the checkpoint can complete.
        self.flush()?;
        Ok(None)
    }

    fn close(&mut self, _out: &mut Output) -> anyhow::Result<()> {
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_name_what_is_wrong() {
        let source = |t: &str| weir_core::config::checked::<KafkaSourceConfig>(t.parse().expect("a table"));
        let ok = source("bootstrap = '127.0.0.1:9092'\ntopic = ['a', 'b']\nstart = 1700000000000\nbounded = true").expect("valid");
        assert_eq!((ok.topic.list().len(), ok.start, ok.bounded), (2, Start::Time(1_700_000_000_000), true));
        assert_eq!(source("bootstrap = 'h:1'\ntopic = 't'\nstart = 'committed'").expect("valid").start, Start::Named(StartAt::Committed));
        assert_eq!(source("bootstrap = 'h:1'\ntopic = ''").unwrap_err().field, "topic");
        assert_eq!(source("bootstrap = 'h:1'\ntopic = 't'\nproperties = { 'bootstrap.servers' = 'x' }").unwrap_err().field, "properties");
        assert!(source("bootstrap = 'h:1'\ntopic = 't'\nstart = 'soon'").is_err());
        // Dead letters name a split's topic and partition.
        let describe = crate::SourceConfig::describe_split(&ok).expect("kafka names its splits");
        assert_eq!(serde_json::Value::Object(describe(split_id(1, 7))), serde_json::json!({ "topic": "b", "partition": 7 }));
        // A pattern matches whole names, leaves internal topics out, and sorts what it finds.
        let pattern = source("bootstrap = 'h:1'\ntopic = { pattern = 'logs-[ab]|__.*' }").expect("valid");
        let existing = ["logs-b", "logs-bb", "x-logs-a", "logs-a", "__consumer_offsets"].map(String::from);
        assert_eq!(pattern.topic.matching(&existing), ["logs-a", "logs-b"]);
        assert_eq!(source("bootstrap = 'h:1'\ntopic = { pattern = 'logs-(' }").unwrap_err().field, "topic.pattern");
        let sink = |t: &str| weir_core::config::checked::<KafkaSinkConfig>(t.parse().expect("a table"));
        assert!(sink("bootstrap = 'h:1'\ntopic = 't'\nkey = 'user_id'").is_ok());
        assert!(sink("bootstrap = 'h:1'\ntopic = 't'\ndelivery = 'at-most-once'").is_err());
    }

    /// A source against librdkafka's mock cluster: partitions spread over subtasks, bounded
    /// at the offsets of the start, keys and timestamps kept, positions that resume.
    #[test]
    fn a_bounded_source_reads_its_partitions_to_their_end_and_resumes_from_a_position() {
        let mock = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
        mock.create_topic("logs", 3, 1).expect("topic");
        let producer: rdkafka::producer::BaseProducer =
            ClientConfig::new().set("bootstrap.servers", mock.bootstrap_servers()).create().expect("producer");
        for i in 0..30 {
            let (key, value) = ([b'k', i as u8], [b'v', i as u8]);
            let rec = BaseRecord::to("logs").key(&key[..]).payload(&value[..]).partition(i % 3).timestamp(1000 + i64::from(i));
            producer.send(rec).map_err(|(e, _)| e).expect("sent");
        }
        producer.flush(Duration::from_secs(10)).expect("flushed");
        let cfg = weir_core::config::checked::<KafkaSourceConfig>(
            format!("bootstrap = '{}'\ntopic = 'logs'\nstart = 'earliest'\nbounded = true", mock.bootstrap_servers())
                .parse()
                .expect("table"),
        )
        .expect("valid");
        let at = |subtask| crate::SourceAt { job: "j", name: "logs", source_time: true, index: 0, subtask, parallelism: 2 };
        let drain = |s: &mut KafkaSource| {
            let mut all = Vec::new();
            while let Some((b, _)) = s.poll(7).expect("polled") {
                all.extend(b);
            }
            all
        };
        let mut first = KafkaSource::open(&cfg, at(0)).expect("opened");
        let mut second = KafkaSource::open(&cfg, at(1)).expect("opened");
        assert_eq!((first.splits(), second.splits()), (vec![0, 2], vec![1]));
        let progress = |s: &KafkaSource| s.progress().map(|p| (p.done, p.total, p.lag)).expect("progress");
        assert_eq!(progress(&first), (0, Some(20), Some(20)), "nothing read: all of it is lag");
        let (a, b) = (drain(&mut first), drain(&mut second));
        assert_eq!((progress(&first), progress(&second)), ((20, Some(20), Some(0)), (10, Some(10), Some(0))));
        assert_eq!((a.len(), b.len()), (20, 10));
        assert!(a.iter().chain(&b).all(|r| r.timestamp == Some(1000 + i64::from(r.value[1]))));
        assert!(b.iter().all(|r| r.origin.split == 1 && r.key.as_deref() == Some(&[b'k', r.value[1]][..])));
        assert_eq!(first.position(), serde_json::json!({ "offsets": { "logs:0": 10, "logs:2": 10 } }));
        // From a checkpoint's position: only what came after it.
        let mut again = KafkaSource::open(&cfg, at(0)).expect("opened");
        again.seek(&serde_json::json!({ "offsets": { "logs:0": 7, "logs:2": 10 } })).expect("sought");
        assert_eq!(progress(&again), (0, Some(3), Some(3)), "a restored reader reads what is left");
        assert_eq!(drain(&mut again).len(), 3);
    }
}
