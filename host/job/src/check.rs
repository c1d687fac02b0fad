//! From the job file's syntax to a checked [`Job`]: each value is checked and converted once,
//! and a refused one gives an error naming its field and the fix.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use weir_core::config::{toml_to_json, FieldError};
use weir_core::time::parse_duration;
use weir_plugin::{DEFAULT_DEADLINE, DEFAULT_DEADLINE_BUDGET, EPOCH_TICK};
use weir_runtime::checkpoint::CheckpointConfig;
use weir_window::AggSpec;

use crate::error::Origin;
use crate::file::{
    EventTimeSpec, GrantsSpec, Inputs, JobFile, KeyBySpec, OperatorKind, OperatorSpec, SourceSpec, TimeKind, TtlSpec, TtlUpdate,
    WatermarkSpec, WatermarkStrategy,
};
use crate::{
    EventTime, Function, Input, Job, JobError, KeyBy, MetricsEndpoint, OperatorDef, PluginDef, Reload, Restart, SinkDef, SourceDef, Stamp,
    StateDef, TimeField, Ttl, Watermarks, WindowDef, WindowFunction, MAX_BATCH_SIZE,
};

/// Checks one job file.
pub(crate) struct Checker<'a> {
    pub(crate) spec: &'a JobFile,
    pub(crate) origin: &'a Origin,
    /// The folder plugin paths are relative to.
    pub(crate) dir: PathBuf,
}

type Checked<T> = Result<T, JobError>;

/// A kind's refusal of its own fields, at `table` (`source.logs`): a missing field says which
/// kind needs it.
fn kind_error(origin: &Origin, table: &str, what: &str, e: FieldError) -> JobError {
    let at = if e.field.is_empty() { table.to_string() } else { format!("{table}.{}", e.field) };
    match e.message.strip_prefix("missing field `").and_then(|r| r.strip_suffix('`')) {
        Some(f) => origin.error(&at, format!("{what} needs `{f}` (or --set {table}.{f}=...)")),
        None => origin.error(&at, e.message),
    }
}

fn duration(origin: &Origin, field: &str, v: &Option<String>) -> Checked<Option<Duration>> {
    v.as_deref().map(|s| parse_duration(s).map_err(|m| origin.error(field, m))).transpose()
}

impl Checker<'_> {
    fn error(&self, field: &str, message: impl Into<String>) -> JobError {
        self.origin.error(field, message)
    }

    pub(crate) fn job(&self) -> Checked<Job> {
        let s = self.spec;
        if s.parallelism == 0 {
            return Err(self.error("parallelism", "must be at least 1"));
        }
        if s.max_parallelism == 0 || s.max_parallelism > weir_state::MAX_KEY_GROUPS {
            return Err(self.error("max-parallelism", format!("must be between 1 and {}", weir_state::MAX_KEY_GROUPS)));
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
        let plugin_deadline = self.plugin_deadline()?;
        if s.plugin_deadline_budget == Some(0) {
            return Err(self.error("plugin-deadline-budget", "must be at least 1 (calls past the deadline an operator subtask tolerates)"));
        }
        if s.source.is_empty() {
            return Err(self.error("source", "a job needs at least one source, e.g. [source.logs] kind = \"file\""));
        }
        self.check_names()?;
        let mut sources = IndexMap::new();
        for (n, src) in &s.source {
            sources.insert(n.clone(), self.source(n, src)?);
        }
        let mut operators = IndexMap::new();
        for (n, op) in &s.operator {
            operators.insert(n.clone(), self.operator(n, op)?);
        }
        self.check_acyclic()?;
        let mut sinks = IndexMap::new();
        for (n, sink) in &s.sink {
            let f = format!("sink.{n}");
            let inputs = self.inputs(&f, sink.input.as_ref())?;
            let (kind, connector) = self.sink(&f, &sink.kind, &sink.fields)?;
            let chain = sink.chain != Some(false) && weir_connectors::sink_kind(kind).is_some_and(|k| k.parallel);
            sinks.insert(n.clone(), SinkDef { kind, connector, inputs, chain });
        }
        let (_, dead_letter) = self.sink("dead-letter", &s.dead_letter.kind, &s.dead_letter.fields)?;
        let control = match &s.control {
            None => None,
            Some(a) => {
                let addr: std::net::SocketAddr =
                    a.parse().map_err(|_| self.error("control", format!("`{a}` is not an address; write e.g. \"127.0.0.1:7070\"")))?;
                if !addr.ip().is_loopback() {
                    return Err(self.error("control", "the control endpoint listens on loopback only (127.0.0.1 or [::1])"));
                }
                Some(addr)
            }
        };
        let metrics = match &s.metrics.addr {
            None => {
                if s.metrics.linger.is_some() {
                    return Err(
                        self.error("metrics.linger", "there is no endpoint to keep: set `metrics.addr` too (e.g. \"127.0.0.1:9249\")")
                    );
                }
                None
            }
            Some(a) => Some(MetricsEndpoint {
                addr: a.parse().map_err(|_| {
                    self.error("metrics.addr", format!("`{a}` is not an address; write e.g. \"127.0.0.1:9249\" (port 0: any free port)"))
                })?,
                linger: duration(self.origin, "metrics.linger", &s.metrics.linger)?.unwrap_or(Duration::ZERO),
            }),
        };
        let checkpoint_dir = s.checkpoint.dir.as_deref().map(|d| PathBuf::from(d.strip_prefix("file://").unwrap_or(d)));
        let checkpoint = self.checkpoint(checkpoint_dir.clone(), control.is_some())?;
        let restart = Restart {
            strategy: s.restart.strategy,
            attempts: s.restart.attempts.unwrap_or(3),
            delay: duration(self.origin, "restart.delay", &s.restart.delay)?.unwrap_or(Duration::from_secs(1)),
        };
        let reload = Reload {
            probation: duration(self.origin, "reload.probation", &s.reload.probation)?.unwrap_or(Duration::from_secs(10)),
            max_failures: s.reload.max_failures.unwrap_or(10),
        };
        Ok(Job {
            name: s.name.clone().unwrap_or_else(|| "job".into()),
            parallelism: s.parallelism,
            max_parallelism: s.max_parallelism,
            batch_size: s.batch_size,
            sources,
            operators,
            sinks,
            dead_letter,
            state: StateDef { backend: s.state.backend, dir: s.state.dir.clone() },
            checkpoint,
            checkpoint_dir,
            restart,
            reload,
            control,
            metrics,
            plugin_deadline,
            plugin_deadline_budget: s.plugin_deadline_budget.unwrap_or(DEFAULT_DEADLINE_BUDGET),
            dir: self.dir.clone(),
            origin: self.origin.clone(),
        })
    }

    /// How long a plugin call may run (`None`: no limit).
    fn plugin_deadline(&self) -> Checked<Option<Duration>> {
        let refuse = |m: String| self.error("plugin-deadline", m);
        match self.spec.plugin_deadline.as_deref().map(str::trim) {
            None => Ok(Some(DEFAULT_DEADLINE)),
            Some("off") => Ok(None),
            Some(s) => match parse_duration(s) {
                Ok(d) if d >= EPOCH_TICK => Ok(Some(d)),
                Ok(_) => {
                    Err(refuse(format!("`{s}` is too short: the deadline is checked every {EPOCH_TICK:?}; write e.g. `1s`, or `off`")))
                }
                Err(e) => Err(refuse(format!("{e}, or `off` for no deadline"))),
            },
        }
    }

    /// Sources, operators and sinks share one namespace of plain names.
    fn check_names(&self) -> Checked<()> {
        let s = self.spec;
        let mut names = BTreeSet::new();
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
        Ok(())
    }

    fn source(&self, n: &str, src: &SourceSpec) -> Checked<SourceDef> {
        let f = format!("source.{n}");
        let Some(kind) = weir_connectors::source_kind(&src.kind) else {
            let known: Vec<&str> = weir_connectors::SOURCES.iter().map(|k| k.name).collect();
            return Err(self.error(&format!("{f}.kind"), format!("`{}` is not a source kind; known: {}", src.kind, known.join(", "))));
        };
        let connector = self.configure(&f, kind.name, &src.fields, kind.configure)?;
        self.check_parallelism(&f, src.parallelism)?;
        if src.parallelism.is_some_and(|p| p > 1) && !kind.parallel {
            let parallel: Vec<&str> = weir_connectors::SOURCES.iter().filter(|k| k.parallel).map(|k| k.name).collect();
            return Err(self.error(
                &format!("{f}.parallelism"),
                format!("a {} source reads with one subtask; sources that read in parallel: {}", kind.name, parallel.join(", ")),
            ));
        }
        if let Some(r) = src.rate {
            if r.is_nan() || r <= 0.0 {
                return Err(self.error(&format!("{f}.rate"), "must be a positive number of records per second"));
            }
        }
        let event_time = match &src.event_time {
            None => None,
            Some(et) if usize::from(et.field.is_some()) + usize::from(et.ingestion) + usize::from(et.kafka) != 1 => {
                return Err(self.error(
                    &format!("{f}.event-time"),
                    "set exactly one of `field = \"...\"` (with `unit`), `ingestion = true` or `kafka = true`",
                ))
            }
            Some(EventTimeSpec { ingestion: true, .. }) => Some(EventTime::Ingestion),
            Some(EventTimeSpec { kafka: true, .. }) if !connector.timestamps() => {
                return Err(self.error(
                    &format!("{f}.event-time.kafka"),
                    format!("a {} source's records come without a time of their own; read it from a field", kind.name),
                ))
            }
            Some(EventTimeSpec { kafka: true, .. }) => Some(EventTime::Source),
            Some(et) => Some(EventTime::Field(TimeField { path: et.field.clone().unwrap_or_default(), unit: et.unit })),
        };
        if src.watermark.is_some() && event_time.is_none() {
            return Err(
                self.error(&format!("{f}.watermark"), "watermarks need event time: add `event-time = { field = \"ts\", unit = \"s\" }`")
            );
        }
        Ok(SourceDef {
            kind: kind.name,
            connector: Arc::from(connector),
            parallelism: src.parallelism.unwrap_or(1),
            rate: src.rate,
            event_time,
            watermarks: self.watermarks(&f, src.watermark.as_ref())?,
        })
    }

    fn sink(&self, f: &str, kind: &str, fields: &toml::Table) -> Checked<(&'static str, Arc<dyn weir_connectors::SinkConfig>)> {
        let Some(k) = weir_connectors::sink_kind(kind) else {
            let known: Vec<&str> = weir_connectors::SINKS.iter().map(|k| k.name).collect();
            return Err(self.error(&format!("{f}.kind"), format!("`{kind}` is not a sink kind; known: {}", known.join(", "))));
        };
        let connector = self.configure(f, k.name, fields, k.configure)?;
        Ok((k.name, Arc::from(connector)))
    }

    /// The connector config of table `f` of kind `kind`. When the kind came from a `--set`
    /// (`--set source.logs.kind=file` on a job written for a generator), the table's fields
    /// the new kind does not know are left out, and said so on standard error.
    fn configure<C: ?Sized>(
        &self,
        f: &str,
        kind: &str,
        fields: &toml::Table,
        configure: fn(toml::Table) -> Result<Box<C>, FieldError>,
    ) -> Checked<Box<C>> {
        let switched = self.origin.sets.iter().any(|s| s.split_once('=').is_some_and(|(k, _)| k.trim() == format!("{f}.kind")));
        let mut fields = fields.clone();
        let mut left_out = Vec::new();
        loop {
            match configure(fields.clone()) {
                Ok(c) => {
                    if !left_out.is_empty() {
                        eprintln!("weir: {f}: {} left out: not fields of kind = \"{kind}\" (set by --set)", left_out.join(", "));
                    }
                    return Ok(c);
                }
                Err(e) if switched && e.message.starts_with("unknown field") && fields.remove(&e.field).is_some() => {
                    left_out.push(format!("`{}`", e.field));
                }
                Err(e) => return Err(kind_error(self.origin, f, &format!("kind = \"{kind}\""), e)),
            }
        }
    }

    /// A `watermark` table at `f`.
    fn watermarks(&self, f: &str, w: Option<&WatermarkSpec>) -> Checked<Watermarks> {
        let Some(w) = w else { return Ok(Watermarks::default()) };
        let at = |k: &str| format!("{f}.watermark.{k}");
        let bound = duration(self.origin, &at("max-out-of-orderness"), &w.max_out_of_orderness)?.unwrap_or_default();
        Ok(Watermarks {
            bound: if w.strategy == WatermarkStrategy::BoundedOutOfOrderness { bound } else { Duration::ZERO },
            interval: duration(self.origin, &at("interval"), &w.interval)?.filter(|d| !d.is_zero()),
            idle_timeout: duration(self.origin, &at("idle-timeout"), &w.idle_timeout)?,
        })
    }

    fn checkpoint(&self, dir: Option<PathBuf>, control: bool) -> Checked<Option<CheckpointConfig>> {
        let c = &self.spec.checkpoint;
        let at = |k: &str| format!("checkpoint.{k}");
        let interval = duration(self.origin, &at("interval"), &c.interval)?;
        let min_pause = duration(self.origin, &at("min-pause"), &c.min_pause)?;
        let timeout = duration(self.origin, &at("timeout"), &c.timeout)?;
        if interval.is_some() && dir.is_none() {
            return Err(self.error("checkpoint", "`interval` needs `dir = \"file:///path/to/checkpoints\"`"));
        }
        if c.max_concurrent == Some(0) {
            return Err(self.error("checkpoint.max-concurrent", "must be at least 1"));
        }
        if interval.is_none() && !control {
            return Ok(None);
        }
        Ok(Some(CheckpointConfig {
            interval,
            mode: c.mode,
            dir: dir.unwrap_or_else(|| CheckpointConfig::on_demand().dir),
            min_pause: min_pause.unwrap_or_default(),
            max_concurrent: c.max_concurrent.unwrap_or(1),
            timeout: timeout.unwrap_or(Duration::from_secs(600)),
            retain: c.retain.unwrap_or(3),
            tolerable_failures: c.tolerable_failures.unwrap_or(0),
        }))
    }

    /// A node's `parallelism`: at least 1, at most `max-parallelism` (a subtask per key
    /// group at most, and a thread each: 65,536 overflowed the stack).
    fn check_parallelism(&self, f: &str, p: Option<usize>) -> Checked<()> {
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
    fn check_acyclic(&self) -> Checked<()> {
        let ops = &self.spec.operator;
        let upstream = |n: &str| -> Vec<String> {
            let list = ops.get(n).and_then(|op| op.input.as_ref()).map(Inputs::list).unwrap_or_default();
            list.into_iter().map(|i| Input::parse(&i).node).filter(|u| ops.contains_key(u)).collect()
        };
        // Depth-first over operators; `path` is the walk from the start, `done` what has no cycle.
        let mut done = HashSet::new();
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

    fn inputs(&self, f: &str, input: Option<&Inputs>) -> Checked<Vec<Input>> {
        let Some(input) = input else {
            return Err(self.error(f, "needs `input = \"NAME\"` (a source or operator; `NAME.OUTPUT` for a side output)"));
        };
        let list: Vec<Input> = input.list().iter().map(|i| Input::parse(i)).collect();
        if list.is_empty() {
            return Err(self.error(&format!("{f}.input"), "an empty list; name at least one source or operator"));
        }
        for i in &list {
            if !(self.spec.source.contains_key(&i.node) || self.spec.operator.contains_key(&i.node)) {
                let names: Vec<&String> = self.spec.source.keys().chain(self.spec.operator.keys()).collect();
                let written = match &i.side {
                    Some(side) => format!("{}.{side}", i.node),
                    None => i.node.clone(),
                };
                return Err(self.error(&format!("{f}.input"), format!("`{written}` names no source or operator; known: {names:?}")));
            }
        }
        Ok(list)
    }

    fn plugin(&self, path: &Path, config: &Option<toml::Value>) -> PluginDef {
        PluginDef {
            path: self.resolve(path),
            config: config.as_ref().map(toml_to_json).unwrap_or_else(|| serde_json::json!({})).to_string(),
            grants: weir_plugin::Grants::none(),
        }
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.dir.join(path)
        }
    }

    /// An operator's `grants`: directories that exist, variable names that can be set.
    fn grants(&self, f: &str, spec: &GrantsSpec) -> Checked<weir_plugin::Grants> {
        let mut read = Vec::new();
        for (i, dir) in spec.read.iter().enumerate() {
            let field = format!("{f}.grants.read[{i}]");
            let host = self.resolve(dir);
            if !host.is_dir() {
                return Err(self.error(
                    &field,
                    match host == *dir {
                        true => format!("`{}` is not a directory; grant a directory that exists (relative to the job file)", dir.display()),
                        false => format!(
                            "`{}` ({}) is not a directory; grant a directory that exists (relative to the job file)",
                            dir.display(),
                            host.display()
                        ),
                    },
                ));
            }
            // The plugin opens it by the path as written, without `./` or a trailing `/`.
            let written = dir.to_string_lossy();
            let guest = written.trim_start_matches("./").trim_end_matches('/');
            read.push((host, if guest.is_empty() { ".".to_string() } else { guest.to_string() }));
        }
        for (i, name) in spec.env.iter().enumerate() {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(self.error(&format!("{f}.grants.env[{i}]"), format!("`{name}` is not an environment variable's name")));
            }
        }
        Ok(weir_plugin::Grants { read, env: spec.env.clone(), clock: spec.clock })
    }

    /// An operator's own event time and watermarks.
    fn stamp(&self, f: &str, op: &OperatorSpec) -> Checked<Option<Stamp>> {
        let (field, what) = match (&op.event_time, &op.watermark) {
            (Some(_), _) => ("event-time", "event time"),
            (None, Some(_)) => ("watermark", "watermarks"),
            (None, None) => return Ok(None),
        };
        if !matches!(op.kind, OperatorKind::Map | OperatorKind::Filter | OperatorKind::FlatMap) {
            return Err(self.error(
                &format!("{f}.{field}"),
                format!("only a map, filter or flat-map operator assigns {what} to its output; put it on the operator upstream or on the source"),
            ));
        }
        if op.event_time.as_ref().is_some_and(|et| et.kafka) {
            return Err(self.error(&format!("{f}.event-time.kafka"), "a record's Kafka time is its source's: set it on the source"));
        }
        if op.event_time.as_ref().is_some_and(|et| et.ingestion) {
            return Err(self.error(
                &format!("{f}.event-time.ingestion"),
                "ingestion time is stamped at the source: move `event-time = { ingestion = true }` there",
            ));
        }
        if op.watermark.as_ref().is_some_and(|w| w.idle_timeout.is_some()) {
            return Err(self.error(&format!("{f}.watermark.idle-timeout"), "idleness is a source's: set `idle-timeout` on the source"));
        }
        Ok(Some(Stamp {
            field: op.event_time.as_ref().and_then(|et| et.field.clone().map(|path| TimeField { path, unit: et.unit })),
            watermarks: self.watermarks(f, op.watermark.as_ref())?,
        }))
    }

    fn operator(&self, n: &str, op: &OperatorSpec) -> Checked<OperatorDef> {
        let f = format!("operator.{n}");
        let stamp = self.stamp(&f, op)?;
        let inputs = self.inputs(&f, op.input.as_ref())?;
        self.check_parallelism(&f, op.parallelism)?;
        let mut plugin = match (&op.plugin, op.kind) {
            (Some(p), _) => Some(self.plugin(p, &op.config)),
            (None, OperatorKind::Window) => None,
            (None, kind) => {
                return Err(self.error(&f, format!("kind = \"{}\" needs `plugin = \"path/to/component.wasm\"`", kind.name())));
            }
        };
        if let Some(spec) = &op.grants {
            let Some(p) = plugin.as_mut() else {
                return Err(self.error(
                    &format!("{f}.grants"),
                    "only a plugin is granted anything, and this window runs built-in aggregates; remove `grants`",
                ));
            };
            p.grants = self.grants(&f, spec)?;
        }
        let keyed = matches!(op.kind, OperatorKind::Process | OperatorKind::Window);
        if keyed && op.key_by.is_none() {
            return Err(self.error(&f, "a keyed operator needs `key-by = \"field\"` (or a list of fields, or { plugin = ... })"));
        }
        let key_by = match &op.key_by {
            None => None,
            Some(KeyBySpec::Field(field)) => Some(KeyBy::Fields(vec![field.clone()])),
            Some(KeyBySpec::Fields(v)) if v.is_empty() => {
                return Err(self.error(&format!("{f}.key-by"), "an empty list of fields; name at least one"));
            }
            Some(KeyBySpec::Fields(v)) => Some(KeyBy::Fields(v.clone())),
            Some(KeyBySpec::RecordKey(r)) if r.record_key.is_empty() => {
                return Err(
                    self.error(&format!("{f}.key-by.record-key"), "an empty name; write the key's name in result rows, e.g. \"user_id\"")
                );
            }
            Some(KeyBySpec::RecordKey(r)) => Some(KeyBy::RecordKey(r.record_key.clone())),
            Some(KeyBySpec::Plugin(r)) => Some(KeyBy::Selector(self.plugin(&r.plugin, &r.config))),
        };
        let mut state_ttl = Vec::new();
        for (name, t) in &op.state_ttl {
            let f2 = format!("{f}.state-ttl.{name}");
            if op.kind != OperatorKind::Process {
                return Err(self.error(&f2, "only a process operator has keyed state with a TTL"));
            }
            let (ttl, update) = match t {
                TtlSpec::After(d) => (d, TtlUpdate::OnCreateAndWrite),
                TtlSpec::Full { ttl, update } => (ttl, *update),
            };
            let ttl = parse_duration(ttl).map_err(|m| self.error(&f2, m))?;
            if ttl.is_zero() {
                return Err(self.error(&f2, "a TTL must be longer than 0"));
            }
            state_ttl.push((name.clone(), Ttl { ttl, refresh_on_read: update == TtlUpdate::OnReadAndWrite }));
        }
        if op.kind != OperatorKind::Window {
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
        let function = match (op.kind, plugin) {
            (OperatorKind::Map, Some(p)) => Function::Map(p),
            (OperatorKind::Filter, Some(p)) => Function::Filter(p),
            (OperatorKind::FlatMap, Some(p)) => Function::FlatMap(p),
            (OperatorKind::Process, Some(p)) => Function::Process { plugin: p, state_ttl },
            (_, plugin) => Function::Window(self.window(&f, op, plugin)?),
        };
        Ok(OperatorDef { inputs, parallelism: op.parallelism, chain: op.chain != Some(false), key_by, stamp, function })
    }

    fn window(&self, f: &str, op: &OperatorSpec, plugin: Option<PluginDef>) -> Checked<WindowDef> {
        let Some(w) = &op.window else {
            return Err(self.error(f, "kind = \"window\" needs `window = { type = \"tumbling\", size = \"10s\" }`"));
        };
        let wf = format!("{f}.window");
        let Some(shape) = weir_window::shape::shape(&w.shape) else {
            let known: Vec<&str> = weir_window::SHAPES.iter().map(|s| s.name).collect();
            return Err(self.error(&format!("{wf}.type"), format!("`{}` is not a window type; known: {}", w.shape, known.join(", "))));
        };
        let assigner =
            (shape.configure)(w.fields.clone()).map_err(|e| kind_error(self.origin, &wf, &format!("type = \"{}\"", shape.name), e))?;
        let allowed_lateness = duration(self.origin, &format!("{f}.allowed-lateness"), &op.allowed_lateness)?.unwrap_or_default();
        let mut aggregates = Vec::new();
        for (name, agg) in &op.aggregates {
            aggregates.push((name.clone(), AggSpec::parse(agg).map_err(|m| self.error(&format!("{f}.aggregates.{name}"), m))?));
        }
        let function = match plugin {
            Some(_) if !aggregates.is_empty() => {
                return Err(self.error(f, "use either `aggregates` or a `plugin` (aggregate or window-process), not both"));
            }
            Some(p) => WindowFunction::Plugin(p),
            None if aggregates.is_empty() => WindowFunction::Aggregates(vec![("count".into(), AggSpec::Count)]),
            None => WindowFunction::Aggregates(aggregates),
        };
        Ok(WindowDef {
            assigner,
            processing_time: w.time == TimeKind::Processing,
            allowed_lateness,
            function,
            constants: op.fields.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect(),
        })
    }
}
