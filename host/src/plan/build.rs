//! What each subtask runs: operators (plugins, windows, sinks), sources with their event
//! time and watermarks, state backends, and the walk that reads event time and keys ahead.

use std::path::PathBuf;
use std::sync::Arc;

use weir_connectors::{SinkAt, SourceAt};
use weir_core::json;
use weir_core::operator::{Assign, Identity, Operator, Source};
use weir_core::record::{spans_entry, Record, SPAN_SET};
use weir_core::time::WatermarkGenerator;
use weir_job::{Backend, EventTime, Function, KeyBy, PluginDef, Stamp, TimeField, TimeUnit, WindowFunction};
use weir_plugin::{Instance, World};
use weir_runtime::route::KeyExtractor;
use weir_runtime::task::SourceTime;
use weir_state::{Cached, MemoryBackend, RocksBackend, StateBackend};
use weir_window::{WindowConfig, WindowFn, WindowOp};

use super::{NodeKind, Planned};
use crate::operators::{ProcessOp, Stamped, Stateless, StatelessOp};
use crate::reload::Reloadable;

impl Planned {
    pub(super) fn key_extractor(&self, node: usize) -> anyhow::Result<KeyExtractor> {
        let name = &self.nodes[node].name;
        match self.operator(node).and_then(|op| op.key_by.as_ref()) {
            Some(KeyBy::Selector(p)) => {
                let inst = Instance::new(self.plugin(p), &format!("{name}.key-by"), 0, p.config.clone())?;
                Ok(KeyExtractor::Selector(Box::new(inst)))
            }
            Some(KeyBy::RecordKey(_)) => Ok(KeyExtractor::RecordKey),
            Some(KeyBy::Fields(_)) => {
                let paths = self.key_fields(node).unwrap_or_default();
                let id = self.key_sets().iter().position(|s| *s == paths).map(|id| id as u16);
                Ok(KeyExtractor::Fields(paths, id))
            }
            None => anyhow::bail!("`{name}` is not keyed"),
        }
    }

    /// The state store of a keyed operator subtask. `write_back` puts a byte cache in front
    /// of RocksDB (for process plugins' state: a window operator caches decoded states
    /// itself).
    fn backend(&self, node: &str, subtask: usize, write_back: bool) -> anyhow::Result<Box<dyn StateBackend>> {
        Ok(match self.job.state.backend {
            Backend::Memory => Box::new(MemoryBackend::default()),
            Backend::Rocksdb => {
                let rocks = RocksBackend::open(&self.state_dir().join(format!("{node}-{subtask}")))?;
                match write_back {
                    true => Box::new(Cached::new(rocks, weir_state::cache::DEFAULT_CAPACITY)),
                    false => Box::new(rocks),
                }
            }
        })
    }

    pub(super) fn state_dir(&self) -> PathBuf {
        self.job.state.dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("weir-state-{}", std::process::id())))
    }

    /// An instance of plugin `p` for subtask `subtask` of operator `name`, `init` run.
    /// The plugin is the version the operator runs now (a restore may run another than the
    /// job file's: see `Reloads::restore_versions`).
    pub(super) fn instance(&self, p: &PluginDef, name: &str, subtask: usize) -> anyhow::Result<Instance> {
        let plugin = self.running(p, name);
        let mut inst = Instance::with_grants(plugin, name, subtask as u32, p.config.clone(), Arc::new(p.grants.clone()))?;
        inst.set_deadline_budget(self.job.plugin_deadline_budget);
        if let Some(node) = self.metrics.get(name) {
            inst.count_faults_into(node);
        }
        Ok(inst)
    }

    pub(super) fn make_operator(&self, i: usize, subtask: usize) -> anyhow::Result<Box<dyn Operator>> {
        let node = &self.nodes[i];
        let transactional = self.job.checkpoint.is_some();
        match node.kind {
            NodeKind::Source => Ok(Box::new(Identity)),
            NodeKind::Sink | NodeKind::DeadLetter => {
                let at = SinkAt { subtask, dead_letter: node.kind == NodeKind::DeadLetter, transactional };
                match node.kind {
                    NodeKind::Sink => self.job.sinks[&node.name].connector.open(at),
                    _ => self.job.dead_letter.open(at),
                }
            }
            NodeKind::Operator => {
                let op = self.make_function(i, subtask)?;
                Ok(match self.reloads.slot(&node.name) {
                    Some(slot) => Box::new(Reloadable::new(op, slot.clone())),
                    None => op,
                })
            }
        }
    }

    /// The operator of node `i`'s function (a plugin's, a window's), as subtask `subtask`.
    fn make_function(&self, i: usize, subtask: usize) -> anyhow::Result<Box<dyn Operator>> {
        let node = &self.nodes[i];
        {
            {
                let op = &self.job.operators[&node.name];
                let clock = self.opts.clock.clone();
                // A plugin that reads members (`read-fields`) takes them from the walk before it.
                let instance = |p: &PluginDef| -> anyhow::Result<Instance> {
                    let mut inst = self.instance(p, &node.name, subtask)?;
                    if let Some(names) = self.read_ahead_for(i) {
                        inst.read_ahead(SPAN_SET, names);
                    }
                    Ok(inst)
                };
                let stateless = |kind, p: &PluginDef| -> anyhow::Result<Box<dyn Operator>> {
                    let inner = Box::new(StatelessOp::new(kind, instance(p)?));
                    self.stamped(i, op.stamp.as_ref(), inner)
                };
                Ok(match &op.function {
                    Function::Map(p) => stateless(Stateless::Map, p)?,
                    Function::Filter(p) => stateless(Stateless::Filter, p)?,
                    Function::FlatMap(p) => stateless(Stateless::FlatMap, p)?,
                    Function::Process { plugin, state_ttl } => {
                        let mut inst = instance(plugin)?;
                        inst.host().state = self.backend(&node.name, subtask, true)?;
                        for (name, t) in state_ttl {
                            let ttl = weir_plugin::Ttl { ms: t.ttl.as_millis() as i64, refresh_on_read: t.refresh_on_read };
                            inst.host().ttl.insert(name.clone(), ttl);
                        }
                        Box::new(ProcessOp::new(inst, self.key_groups(i), clock))
                    }
                    Function::Window(w) => {
                        let function = match &w.function {
                            WindowFunction::Plugin(p) => {
                                let inst = self.instance(p, &node.name, subtask)?;
                                match inst.plugin().world {
                                    World::Aggregate => WindowFn::Aggregate(Box::new(inst)),
                                    _ => WindowFn::Process(Box::new(inst)),
                                }
                            }
                            WindowFunction::Aggregates(aggs) => WindowFn::Builtin(aggs.clone()),
                        };
                        let key_fields = match &op.key_by {
                            Some(KeyBy::Fields(fs)) => fs.iter().map(|f| (f.clone(), f.split('.').map(str::to_string).collect())).collect(),
                            _ => vec![],
                        };
                        let key_name = match &op.key_by {
                            Some(KeyBy::RecordKey(name)) => Some(name.clone()),
                            _ => None,
                        };
                        let cfg = WindowConfig {
                            assigner: w.assigner.clone(),
                            processing_time: w.processing_time,
                            allowed_lateness: w.allowed_lateness.as_millis() as i64,
                            function,
                            key_fields,
                            key_name,
                            constants: w.constants.clone(),
                            groups: self.key_groups(i),
                        };
                        Box::new(WindowOp::with_backend(cfg, clock, self.backend(&node.name, subtask, false)?))
                    }
                })
            }
        }
    }

    /// Subtask `subtask` of source node `i`: its reader, how it stamps event time and makes
    /// watermarks, and its rate.
    pub(super) fn source(&self, i: usize, subtask: usize) -> anyhow::Result<(Box<dyn Source>, SourceTime, Option<f64>)> {
        let name = &self.nodes[i].name;
        let s = &self.job.sources[name];
        let index = self.job.sources.get_index_of(name).unwrap_or(0) as u16;
        let at = SourceAt {
            job: &self.job.name,
            name,
            source_time: s.event_time == Some(EventTime::Source),
            index,
            subtask,
            parallelism: self.nodes[i].parallelism,
        };
        let source = s.connector.open(at)?;
        let clock = self.opts.clock.clone();
        let ingestion = s.event_time == Some(EventTime::Ingestion);
        let source_time = s.event_time == Some(EventTime::Source);
        let time_field = match &s.event_time {
            Some(EventTime::Field(f)) => Some(f.clone()),
            _ => None,
        };
        let (prekeys, spans) = match self.leaves_read_ahead(&self.layout(), i) {
            true => (Vec::new(), None),
            false => (self.prekeys_of(i), self.spans_of(i)),
        };
        let mut walk = field_walk(time_field, prekeys, spans, s.connector.requires_json());
        let assign = move |r: &mut Record| -> Result<(), String> {
            if ingestion {
                r.timestamp = Some(clock.now_ms());
            }
            if source_time && r.timestamp.is_none() {
                return Err("event time: the record came without a time from its source".into());
            }
            walk(r)
        };
        let time = SourceTime {
            assign: Some(Box::new(assign)),
            generator: s.event_time.as_ref().map(|_| WatermarkGenerator::bounded(s.watermarks.bound)),
            interval: s.watermarks.interval,
            idle_timeout: s.watermarks.idle_timeout,
        };
        Ok((source, time, s.rate))
    }

    /// `inner` with the event time and watermarks of its operator's `stamp`, when it has one.
    fn stamped(&self, i: usize, stamp: Option<&Stamp>, inner: Box<dyn Operator>) -> anyhow::Result<Box<dyn Operator>> {
        let Some(stamp) = stamp else { return Ok(inner) };
        let assign: Assign = match &stamp.field {
            // One walk reads the event time and the key-bys downstream (see `walks`).
            Some(field) => Box::new(field_walk(Some(field.clone()), self.prekeys_of(i), self.spans_of(i), false)),
            None => Box::new(|r: &mut Record| match r.timestamp {
                Some(_) => Ok(()),
                None => {
                    Err("event time: the record has none (the plugin sets none; or give the operator `event-time = { field = \"...\" }`)"
                        .into())
                }
            }),
        };
        let w = &stamp.watermarks;
        Ok(Box::new(Stamped::new(inner, assign, WatermarkGenerator::bounded(w.bound), w.interval)))
    }
}

/// One walk over each record's JSON value, as a source or an operator with an `event-time`
/// field makes it: the event time from `time_field`, and read ahead into `Record::prekeys`
/// the key-by fields of `prekeys` and where the members of `spans` lie (for the plugins
/// that read them, see `Planned::span_readers`). A value that is not JSON fails the record
/// when an event time is to be read or `check_json` says so; when only keys or spans were to be
/// read ahead, the key-by or the plugin reports it.
pub(super) fn field_walk(
    time_field: Option<TimeField>,
    prekeys: Vec<(u16, Vec<json::Path>)>,
    spans: Option<Vec<String>>,
    check_json: bool,
) -> impl FnMut(&mut Record) -> Result<(), String> + Send + 'static {
    // Each path walked for once, however many read it (up to four cost no allocation).
    let mut paths: Vec<json::Path> = Vec::new();
    let mut index = |p: json::Path| match paths.iter().position(|have| *have == p) {
        Some(i) => i,
        None => {
            paths.push(p);
            paths.len() - 1
        }
    };
    let time_at = time_field.as_ref().map(|f| index(f.path.split('.').map(str::to_string).collect()));
    let prekeys: Vec<(u16, Vec<usize>)> = prekeys.into_iter().map(|(id, ps)| (id, ps.into_iter().map(&mut index).collect())).collect();
    let spans: Option<Vec<usize>> = spans.map(|names| names.into_iter().map(|n| index(vec![n])).collect());
    // The source's lines mostly share their layout: the walk checks each against the last's.
    let mut shape = json::Shape::default();
    move |r: &mut Record| -> Result<(), String> {
        // Nothing to read that the record does not hold already (read ahead upstream, or
        // nothing asked for): no walk.
        let has = |id: u16| r.prekeys.iter().any(|(have, _)| *have == id);
        let keys_wanted = prekeys.iter().any(|(id, _)| !has(*id));
        if time_field.is_none() && !check_json && !keys_wanted && (spans.is_none() || has(SPAN_SET)) {
            return Ok(());
        }
        let mut found = json::Found::new();
        let noted = match json::extract_in(Some(&mut shape), &r.value, &paths, &mut found) {
            Ok(noted) => noted,
            Err(e) => {
                return match time_field.is_some() || check_json {
                    true => Err(format!("not JSON: {e}")),
                    false => Ok(()),
                }
            }
        };
        if let (Some(field), Some(at)) = (&time_field, time_at) {
            r.timestamp = Some(event_time_of(found[at], &field.path, field.unit)?);
        }
        let mut vals: smallvec::SmallVec<[json::Raw; 4]> = smallvec::SmallVec::new();
        for (id, at) in &prekeys {
            if r.prekeys.iter().any(|(have, _)| have == id) {
                // Read ahead upstream already (another branch of the job reads it there).
                continue;
            }
            vals.clear();
            vals.extend(at.iter().map_while(|i| json::non_null(found[*i])));
            if vals.len() == at.len() {
                r.prekeys.push((*id, weir_core::keys::key_bytes(&vals)));
            }
        }
        if let Some(at) = spans.as_ref().filter(|_| !r.prekeys.iter().any(|(have, _)| *have == SPAN_SET)) {
            let entry = spans_entry(at.iter().map(|&i| json::span(&r.value, &found, noted.repeated, i)), noted.members);
            r.prekeys.push((SPAN_SET, entry));
        }
        Ok(())
    }
}

/// [`field_walk`] as a task walks its input records for the keys and members its source
/// left to it (`Planned::read_ahead_in`). It reads no event time and checks nothing, so no
/// record fails it: one whose value is not JSON goes on without them, and the key-by or
/// the plugin reports it, as after a source's walk.
pub(super) fn read_ahead(prekeys: Vec<(u16, Vec<json::Path>)>, spans: Option<Vec<String>>) -> weir_runtime::ReadAhead {
    let mut walk = field_walk(None, prekeys, spans, false);
    Box::new(move |r: &mut Record| {
        let _ = walk(r);
    })
}

/// A record's event time in ms from the raw value of its event-time `field` (in `unit`).
fn event_time_of(raw: Option<json::Raw>, field: &str, unit: TimeUnit) -> Result<i64, String> {
    let raw = raw.ok_or_else(|| format!("event time: missing field `{field}`"))?;
    let t = json::raw_i64(raw).ok_or_else(|| format!("event time: field `{field}` must be an integer, found {}", json::value(raw)))?;
    match unit {
        TimeUnit::Millis => Ok(t),
        TimeUnit::Seconds => t.checked_mul(1000).ok_or_else(|| format!("event time: `{field}` = {t} s overflows")),
    }
}
