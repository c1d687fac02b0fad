//! The host side of the WIT imports: logging, context, output, keyed state and timers.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::process::weir::plugin::{context, log, output, state, timers, types};
use weir_core::keys::KeyGroups;
use weir_core::record::{read_spans, Key, Record};
use weir_core::time::{TimerQueue, MIN_WATERMARK};
use weir_state::{append_list, decode_list, encode_list, KeyCodec, MemoryBackend, StateBackend};

/// What the host knows about the current call.
#[derive(Debug, Clone)]
pub struct CallCtx {
    /// The key of the current call (keyed operators); a process call keeps one per record.
    pub key: Option<Key>,
    /// The key group of `key`.
    pub key_group: u16,
    /// The operator's watermark.
    pub watermark: i64,
    /// Processing time now.
    pub processing_time: i64,
    /// Event time of the record or timer being processed (emitted records inherit it).
    pub timestamp: Option<i64>,
}

/// What the host knows about the `process` call in progress.
#[derive(Debug, Default)]
pub struct ProcessCall {
    /// The context of each record of the batch (its key, the watermark it arrived at, its
    /// event time), which `enter` makes current.
    pub records: Vec<CallCtx>,
    /// Watermarks that arrived between the batch's records: `(i, w)` arrived just before
    /// record `i` (increasing).
    pub marks: Vec<(usize, i64)>,
    /// For each record entered, how many records had been emitted before it.
    pub entered: Vec<usize>,
    /// `enter` says stop from this record on (a timer registered in the call is due at the
    /// watermark that arrived before it).
    pub stop_at: usize,
}

impl ProcessCall {
    /// After a timer at `t` is registered while record `current` is processed: stop before
    /// the first later record whose arrival watermark reaches `t` (marks rise in both
    /// position and watermark, so two binary searches find it).
    fn timer_registered(&mut self, current: usize, t: i64) {
        let later = &self.marks[self.marks.partition_point(|(i, _)| *i <= current)..];
        if let Some((i, _)) = later.get(later.partition_point(|(_, w)| *w < t)) {
            self.stop_at = self.stop_at.min(*i);
        }
    }
}

impl CallCtx {
    /// The context of a record or timer of `key`.
    pub fn keyed(key: &[u8], groups: KeyGroups, watermark: i64, processing_time: i64, timestamp: Option<i64>) -> CallCtx {
        let key_group = groups.of(key);
        CallCtx { key: Some(Key::from_slice(key)), key_group, watermark, processing_time, timestamp }
    }
}

impl Default for CallCtx {
    fn default() -> Self {
        CallCtx { key: None, key_group: 0, watermark: MIN_WATERMARK, processing_time: 0, timestamp: None }
    }
}

/// The data of one plugin instance's store.
pub struct HostCtx {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: super::fault::Limits,
    /// The tail of what the guest wrote to its standard error (a panic's message).
    pub(crate) stderr: super::fault::StderrTail,
    /// Operator name, for log lines.
    pub name: Arc<str>,
    /// Parallel subtask index.
    pub subtask: u32,
    /// The current call.
    pub call: CallCtx,
    /// Records emitted during the current call: `(side output or None for main, record)`.
    pub emitted: Vec<(Option<String>, Record)>,
    /// The `process` call in progress (empty outside one).
    pub process: ProcessCall,
    /// Keyed state of this subtask.
    pub state: Box<dyn StateBackend>,
    /// Event-time timers: `(time, key, "")`.
    pub event_timers: TimerQueue,
    /// Processing-time timers.
    pub processing_timers: TimerQueue,
    /// Time-to-live of state, by state name.
    pub ttl: HashMap<String, Ttl>,
    /// The top-level members of each record's value this plugin asked for (`read-fields`):
    /// its own, not handed over to a new instance, whose `init` asks again.
    pub read_fields: Vec<String>,
    /// In a call on a batch (`process`, `map`, `filter`, `flat-map`, `select-key`): where
    /// those members lie in the batch's values, two entries per record and member
    /// (`field-spans`), and how many members each value has (`member-counts`).
    pub spans: (Vec<u32>, Vec<u32>),
    /// Why a log of held-back state writes (`enter-with-writes`, `apply-writes`) did not
    /// read, in the call on: the call then fails.
    pub bad_writes: Option<String>,
    codec: KeyCodec,
}

/// Time-to-live of one state (Flink's StateTtlConfig, processing time, expired values are
/// never returned).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ttl {
    /// How long a value lives after it was written (or read, with `refresh_on_read`), ms.
    pub ms: i64,
    /// Reading a value also extends its life (Flink's `OnReadAndWrite`).
    pub refresh_on_read: bool,
}

/// One stored entry of keyed state, as a state migration sees it.
pub(crate) struct Cell {
    /// The state's name.
    pub name: String,
    /// The key inside a map state.
    pub map_key: Option<Vec<u8>>,
    /// A list state (`values` are its elements, in order).
    pub list: bool,
    /// `(expiry when the state has a TTL, value)`.
    pub values: Vec<(Option<i64>, Vec<u8>)>,
    /// Where it is stored.
    pub key: Vec<u8>,
}

/// Values of a state with TTL carry their expiry time (8 bytes, big-endian) in front.
fn stamp(expires: i64, v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + v.len());
    out.extend_from_slice(&expires.to_be_bytes());
    out.extend_from_slice(v);
    out
}

/// Splits a stamped value into (expiry, value).
fn unstamp(v: &[u8]) -> (i64, &[u8]) {
    if v.len() < 8 {
        return (i64::MIN, &[]);
    }
    (i64::from_be_bytes(v[..8].try_into().unwrap_or_default()), &v[8..])
}

impl std::fmt::Debug for HostCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostCtx").field("name", &self.name).field("subtask", &self.subtask).finish_non_exhaustive()
    }
}

impl HostCtx {
    /// A fresh context with an empty memory state backend, `memory_limit` bytes of linear
    /// memory per instance, and what `grants` lets the plugin reach.
    pub fn new(name: Arc<str>, subtask: u32, memory_limit: usize, grants: &super::Grants) -> HostCtx {
        let stderr = super::fault::StderrTail::default();
        HostCtx {
            // No files, no network, no environment, no wall clock unless granted: a plugin
            // sees only what weir hands it. Its standard error is kept (the tail) to name
            // the cause of a trap.
            wasi: grants.wasi(&name, stderr.clone()),
            table: ResourceTable::new(),
            limits: super::fault::Limits::new(memory_limit),
            stderr,
            name,
            subtask,
            call: CallCtx::default(),
            emitted: Vec::new(),
            process: ProcessCall::default(),
            state: Box::new(MemoryBackend::default()),
            event_timers: TimerQueue::default(),
            processing_timers: TimerQueue::default(),
            ttl: HashMap::new(),
            read_fields: Vec::new(),
            spans: Default::default(),
            bad_writes: None,
            codec: KeyCodec::default(),
        }
    }

    fn ttl_of(&self, name: &str) -> Option<Ttl> {
        // Most operators set none: no name to hash on every state call.
        if self.ttl.is_empty() {
            return None;
        }
        self.ttl.get(name).copied()
    }

    fn expiry(&self, t: Ttl) -> i64 {
        self.call.processing_time.saturating_add(t.ms)
    }

    /// Reads a possibly stamped value: `None` when absent or expired (expired values are
    /// deleted); refreshes on read when configured.
    fn read_cell(&mut self, name: &str, k: Vec<u8>) -> Option<Vec<u8>> {
        let raw = self.state.get(&k)?;
        let Some(t) = self.ttl_of(name) else { return Some(raw) };
        let (exp, v) = unstamp(&raw);
        if exp <= self.call.processing_time {
            self.state.delete(&k);
            return None;
        }
        let v = v.to_vec();
        if t.refresh_on_read {
            let e = self.expiry(t);
            self.state.put(k, stamp(e, &v));
        }
        Some(v)
    }

    /// Writes `v` as state `name` (namespace `ns`) of the current key, stamped with its
    /// expiry when the state has a TTL: in place where the store can.
    fn write_cell(&mut self, name: &str, ns: &[u8], v: &[u8]) {
        let stamped = self.ttl_of(name).map(|t| stamp(self.expiry(t), v));
        let (k, state) = self.skey_in_place(name, ns);
        state.put_slice(k, stamped.as_deref().unwrap_or(v))
    }

    /// Removes every expired value of states with a TTL (run before a snapshot, so no
    /// checkpoint carries expired state: Flink's cleanup in full snapshot).
    pub fn cleanup_expired(&mut self) {
        if self.ttl.is_empty() {
            return;
        }
        let now = self.call.processing_time;
        for (k, v) in self.state.scan_prefix(&[]) {
            let Some((name, ns)) = parse_state_key(&k) else { continue };
            if !self.ttl.contains_key(name) {
                continue;
            }
            if ns == LIST_NS {
                let items = decode_list(&v);
                let live: Vec<Vec<u8>> = items.iter().filter(|i| unstamp(i).0 > now).cloned().collect();
                if live.is_empty() {
                    self.state.delete(&k);
                } else if live.len() < items.len() {
                    self.state.put(k.clone(), encode_list(&live));
                }
            } else if unstamp(&v).0 <= now {
                self.state.delete(&k);
            }
        }
    }

    /// Every stored entry of keyed state, for a migration: a value state's value, a list
    /// state's elements, a map state's entry; values without their TTL stamps.
    pub(crate) fn state_cells(&mut self) -> Vec<Cell> {
        let mut cells = Vec::new();
        for (key, v) in self.state.scan_prefix(&[]) {
            let Some((name, ns)) = parse_state_key(&key) else { continue };
            let ttl = self.ttl.contains_key(name);
            let open = |v: &[u8]| match ttl {
                true => {
                    let (exp, v) = unstamp(v);
                    (Some(exp), v.to_vec())
                }
                false => (None, v.to_vec()),
            };
            let (list, map_key, values) = match ns {
                LIST_NS => (true, None, decode_list(&v).iter().map(|e| open(e)).collect()),
                [MAP_NS, k @ ..] => (false, Some(k.to_vec()), vec![open(&v)]),
                _ => (false, None, vec![open(&v)]),
            };
            cells.push(Cell { name: name.to_string(), map_key, list, values, key });
        }
        cells
    }

    /// Stores a cell's migrated values (stamped again with their expiry) under its storage
    /// key; none left deletes it.
    pub(crate) fn put_cell(&mut self, key: Vec<u8>, list: bool, values: Vec<(Option<i64>, Vec<u8>)>) {
        let seal = |(exp, v): (Option<i64>, Vec<u8>)| match exp {
            Some(e) => stamp(e, &v),
            None => v,
        };
        if values.is_empty() {
            return self.state.delete(&key);
        }
        let v = match list {
            true => encode_list(&values.into_iter().map(seal).collect::<Vec<_>>()),
            false => values.into_iter().next().map(seal).unwrap_or_default(),
        };
        self.state.put(key, v)
    }

    fn key(&self) -> &[u8] {
        self.call.key.as_deref().unwrap_or(&[])
    }

    fn skey(&mut self, name: &str, ns: &[u8]) -> Vec<u8> {
        self.skey_in_place(name, ns).0.to_vec()
    }

    /// The storage key of state `name` (namespace `ns`) of the current key, where the codec
    /// wrote it, beside the store: a write looks it up without a copy of its own.
    fn skey_in_place(&mut self, name: &str, ns: &[u8]) -> (&[u8], &mut dyn StateBackend) {
        let k = self.codec.key(self.call.key_group, name, self.call.key.as_deref().unwrap_or_default(), ns);
        (k, self.state.as_mut())
    }

    fn sprefix(&mut self, name: &str) -> Vec<u8> {
        self.codec.prefix(self.call.key_group, name, self.call.key.as_deref().unwrap_or_default()).to_vec()
    }

    fn emit_record(&mut self, to: Option<String>, rec: types::Record) {
        let mut r = from_wit(rec);
        if r.timestamp.is_none() {
            r.timestamp = self.call.timestamp;
        }
        self.emitted.push((to, r));
    }
}

/// Namespaces inside a state name separate the three state shapes.
const VALUE_NS: &[u8] = b"v";
const LIST_NS: &[u8] = b"l";
const MAP_NS: u8 = b'm';

impl WasiView for HostCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for HostCtx {}

impl log::Host for HostCtx {
    fn log(&mut self, level: log::Level, message: String) {
        let lvl = match level {
            log::Level::Trace => "TRACE",
            log::Level::Debug => "DEBUG",
            log::Level::Info => "INFO",
            log::Level::Warn => "WARN",
            log::Level::Error => "ERROR",
        };
        if matches!(level, log::Level::Trace | log::Level::Debug) && std::env::var_os("WEIR_DEBUG").is_none() {
            return;
        }
        eprintln!("[{lvl} {}#{}] {message}", self.name, self.subtask);
    }
}

impl context::Host for HostCtx {
    fn current_key(&mut self) -> Option<Vec<u8>> {
        self.call.key.as_deref().map(<[u8]>::to_vec)
    }
    fn current_watermark(&mut self) -> i64 {
        self.call.watermark
    }
    fn current_processing_time(&mut self) -> i64 {
        self.call.processing_time
    }
    fn subtask_index(&mut self) -> u32 {
        self.subtask
    }
    fn enter(&mut self, index: u32) -> bool {
        self.enter_record(index as usize)
    }
    fn enter_with_writes(&mut self, index: u32, writes: Vec<u8>) -> bool {
        self.apply_writes(&writes);
        context::Host::enter(self, index)
    }
    fn read_fields(&mut self, names: Vec<String>) {
        self.read_fields = names;
    }
    fn field_spans(&mut self) -> Vec<u32> {
        // Copied, so that a second call in the same batch call answers the same.
        self.spans.0.clone()
    }
    fn member_counts(&mut self) -> Vec<u32> {
        self.spans.1.clone()
    }
}

impl HostCtx {
    /// The spans `field-spans` answers for `batch`: where the members of `read_fields` lie
    /// in each record's value (none without `read_fields`), and how many members each value
    /// has (`member-counts`). Read from `Record::prekeys` where a walk upstream read them
    /// ahead under the id of `read_ahead`, for names that include these; found here
    /// otherwise.
    pub(crate) fn spans_of(&self, batch: &[Record], read_ahead: Option<&(u16, Vec<String>)>) -> (Vec<u32>, Vec<u32>) {
        let k = self.read_fields.len();
        if k == 0 {
            return Default::default();
        }
        let (mut spans, mut counts) = (vec![0; 2 * k * batch.len()], vec![0; batch.len()]);
        // Where each member this plugin reads is in the set read ahead (which serves every
        // plugin the walk feeds).
        let ahead = read_ahead.and_then(|(id, names)| {
            let at: Option<Vec<usize>> = self.read_fields.iter().map(|n| names.iter().position(|m| m == n)).collect();
            at.map(|at| (*id, names.len(), at))
        });
        let mut all = Vec::new();
        for ((r, out), count) in batch.iter().zip(spans.chunks_exact_mut(2 * k)).zip(&mut counts) {
            if let Some((id, n, at)) = &ahead {
                if let Some((_, entry)) = r.prekeys.iter().find(|(p, _)| p == id) {
                    all.resize(2 * n, 0);
                    // Made from this very value; checked all the same.
                    if let Some(members) = read_spans(entry, &mut all) {
                        at.iter().zip(out.chunks_exact_mut(2)).for_each(|(&j, o)| o.copy_from_slice(&all[2 * j..2 * j + 2]));
                        if out.chunks_exact(2).all(|s| s[0] <= s[1] && s[1] as usize <= r.value.len()) {
                            *count = members;
                            continue;
                        }
                    }
                }
            }
            // A value it gives up on leaves its spans and count 0: the plugin reads it itself.
            out.fill(0);
            *count = weir_json::members(&r.value, &self.read_fields, out).unwrap_or(0);
        }
        (spans, counts)
    }
}

impl output::Host for HostCtx {
    fn emit(&mut self, rec: types::Record) {
        self.emit_record(None, rec)
    }
    fn emit_to(&mut self, output: String, rec: types::Record) {
        self.emit_record(Some(output), rec)
    }
}

impl HostCtx {
    fn set_value(&mut self, name: &str, value: &[u8]) {
        self.write_cell(name, VALUE_NS, value)
    }
    fn clear_value(&mut self, name: &str) {
        let (k, state) = self.skey_in_place(name, VALUE_NS);
        state.delete(k)
    }
    fn add_to_list(&mut self, name: &str, value: &[u8]) {
        let stamped = self.ttl_of(name).map(|t| stamp(self.expiry(t), value));
        let (k, state) = self.skey_in_place(name, LIST_NS);
        state.append(k, stamped.as_deref().unwrap_or(value))
    }
    fn update_list<'v>(&mut self, name: &str, values: impl IntoIterator<Item = &'v [u8]>) {
        let k = self.skey(name, LIST_NS);
        let mut list = Vec::new();
        match self.ttl_of(name) {
            Some(t) => {
                let e = self.expiry(t);
                values.into_iter().for_each(|v| append_list(&mut list, &stamp(e, v)));
            }
            None => values.into_iter().for_each(|v| append_list(&mut list, v)),
        }
        match list.is_empty() {
            true => self.state.delete(&k),
            false => self.state.put(k, list),
        }
    }
    fn clear_list(&mut self, name: &str) {
        let (k, state) = self.skey_in_place(name, LIST_NS);
        state.delete(k)
    }

    /// Makes record `i` of the `process` call current, unless the host says stop there
    /// (false). Records go in order, each once; records skipped on the way (a guest enters
    /// only those that need the host for more than their writes) made no emits, and their
    /// writes come under their index in a later log (`weir_batch::writes::RECORD`).
    fn enter_record(&mut self, i: usize) -> bool {
        let p = &mut self.process;
        if i >= p.records.len() || i >= p.stop_at || i < p.entered.len() {
            return false;
        }
        p.entered.resize(i + 1, self.emitted.len());
        // Each record is entered once: its context moves, its key not copied.
        self.call = std::mem::take(&mut p.records[i]);
        true
    }

    /// Applies a log of held-back writes (`weir_batch::writes`) in the current context, or
    /// that of the record a `RECORD` entry names; one that does not read is noted in
    /// `bad_writes` (the call fails) after the writes before it were applied.
    fn apply_writes(&mut self, log: &[u8]) {
        use weir_batch::writes::{read, Write};
        for w in read(log) {
            match w {
                // The writes that follow are record `i`'s: it is current from here on.
                Ok(Write::Record(i)) if self.process.entered.len() == i as usize + 1 => {}
                Ok(Write::Record(i)) => {
                    if !self.enter_record(i as usize) {
                        self.bad_writes
                            .get_or_insert_with(|| format!("state write log: writes of record {i}, which cannot be entered now"));
                        return;
                    }
                }
                Ok(Write::ValueSet(name, v)) => self.set_value(name, v),
                Ok(Write::ValueClear(name)) => self.clear_value(name),
                Ok(Write::ListAdd(name, v)) => self.add_to_list(name, v),
                Ok(Write::ListUpdate(name, vs)) => self.update_list(name, vs.iter()),
                Ok(Write::ListClear(name)) => self.clear_list(name),
                Err(e) => {
                    self.bad_writes.get_or_insert_with(|| format!("state write log: {} at byte {}", e.0, e.1));
                }
            }
        }
    }
}

impl state::Host for HostCtx {
    fn value_get(&mut self, name: String) -> Option<Vec<u8>> {
        let k = self.skey(&name, VALUE_NS);
        self.read_cell(&name, k)
    }
    fn value_set(&mut self, name: String, value: Vec<u8>) {
        self.set_value(&name, &value)
    }
    fn apply_writes(&mut self, writes: Vec<u8>) {
        HostCtx::apply_writes(self, &writes)
    }
    fn value_clear(&mut self, name: String) {
        self.clear_value(&name)
    }
    fn list_get(&mut self, name: String) -> Vec<Vec<u8>> {
        let k = self.skey(&name, LIST_NS);
        let items = self.state.get(&k).map(|b| decode_list(&b)).unwrap_or_default();
        let Some(t) = self.ttl_of(&name) else { return items };
        // Each element lives on its own (Flink's list TTL is per element).
        let now = self.call.processing_time;
        let live: Vec<Vec<u8>> = items.iter().filter(|i| unstamp(i).0 > now).map(|i| unstamp(i).1.to_vec()).collect();
        if t.refresh_on_read || live.len() < items.len() {
            let e = self.expiry(t);
            let kept: Vec<Vec<u8>> = if t.refresh_on_read {
                live.iter().map(|v| stamp(e, v)).collect()
            } else {
                items.into_iter().filter(|i| unstamp(i).0 > now).collect()
            };
            if kept.is_empty() {
                self.state.delete(&k);
            } else {
                self.state.put(k, encode_list(&kept));
            }
        }
        live
    }
    fn list_add(&mut self, name: String, value: Vec<u8>) {
        self.add_to_list(&name, &value)
    }
    fn list_update(&mut self, name: String, values: Vec<Vec<u8>>) {
        self.update_list(&name, values.iter().map(Vec::as_slice))
    }
    fn list_clear(&mut self, name: String) {
        self.clear_list(&name)
    }
    fn map_get(&mut self, name: String, key: Vec<u8>) -> Option<Vec<u8>> {
        let k = self.skey(&name, &map_ns(&key));
        self.read_cell(&name, k)
    }
    fn map_put(&mut self, name: String, key: Vec<u8>, value: Vec<u8>) {
        self.write_cell(&name, &map_ns(&key), &value)
    }
    fn map_remove(&mut self, name: String, key: Vec<u8>) {
        let k = self.skey(&name, &map_ns(&key));
        self.state.delete(&k)
    }
    fn map_contains(&mut self, name: String, key: Vec<u8>) -> bool {
        let k = self.skey(&name, &map_ns(&key));
        self.read_cell(&name, k).is_some()
    }
    fn map_entries(&mut self, name: String) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut p = self.sprefix(&name);
        p.push(MAP_NS);
        let plen = p.len();
        let entries = self.state.scan_prefix(&p);
        if self.ttl_of(&name).is_none() {
            return entries.into_iter().map(|(k, v)| (k[plen..].to_vec(), v)).collect();
        }
        entries.into_iter().filter_map(|(k, _)| Some((k[plen..].to_vec(), self.read_cell(&name, k)?))).collect()
    }
    fn map_clear(&mut self, name: String) {
        let mut p = self.sprefix(&name);
        p.push(MAP_NS);
        self.state.delete_prefix(&p)
    }
}

/// `(state name, namespace)` of an encoded state key (see [`KeyCodec`]).
fn parse_state_key(k: &[u8]) -> Option<(&str, &[u8])> {
    let nlen = usize::from(*k.get(2)?);
    let name = std::str::from_utf8(k.get(3..3 + nlen)?).ok()?;
    let klen_at = 3 + nlen;
    let klen = u32::from_be_bytes(k.get(klen_at..klen_at + 4)?.try_into().ok()?) as usize;
    Some((name, k.get(klen_at + 4 + klen..)?))
}

fn map_ns(key: &[u8]) -> Vec<u8> {
    let mut ns = Vec::with_capacity(key.len() + 1);
    ns.push(MAP_NS);
    ns.extend_from_slice(key);
    ns
}

impl timers::Host for HostCtx {
    fn register_event_time(&mut self, timestamp: i64) {
        let k = self.key().to_vec();
        self.event_timers.register(timestamp, &k, &[]);
        if let Some(current) = self.process.entered.len().checked_sub(1) {
            self.process.timer_registered(current, timestamp);
        }
    }
    fn delete_event_time(&mut self, timestamp: i64) {
        let k = self.key().to_vec();
        self.event_timers.delete(timestamp, &k, &[]);
    }
    fn register_processing_time(&mut self, timestamp: i64) {
        let k = self.key().to_vec();
        self.processing_timers.register(timestamp, &k, &[]);
    }
    fn delete_processing_time(&mut self, timestamp: i64) {
        let k = self.key().to_vec();
        self.processing_timers.delete(timestamp, &k, &[]);
    }
}

/// Host record → WIT record (moves the buffers).
pub fn to_wit(r: Record) -> types::Record {
    types::Record { key: r.key.map(Key::into_vec), value: r.value, timestamp: r.timestamp, headers: r.headers }
}

/// WIT record → host record.
pub fn from_wit(r: types::Record) -> Record {
    Record { key: r.key.map(Key::from_vec), value: r.value, timestamp: r.timestamp, headers: r.headers, ..Record::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write log's `RECORD` entries make their record current before its writes: records
    /// skipped on the way are entered with nothing emitted, and a record behind the current
    /// one, or past the batch, cannot be: the log is bad, the writes after it not applied.
    #[test]
    fn writes_under_a_record_go_to_its_key_and_records_go_in_order() {
        use weir_batch::writes::{push_record, push_value, VALUE_SET};
        let mut host = HostCtx::new("op".into(), 0, 1 << 20, &super::super::Grants::none());
        let groups = weir_core::keys::KeyGroups::whole(128);
        let ctx = |k: &str| CallCtx::keyed(k.as_bytes(), groups, 0, 0, None);
        host.process = ProcessCall { records: vec![ctx("a"), ctx("b"), ctx("c"), ctx("d")], stop_at: usize::MAX, ..Default::default() };
        assert!(context::Host::enter(&mut host, 0));
        let mut log = Vec::new();
        push_value(&mut log, VALUE_SET, "n", b"0");
        push_record(&mut log, 2);
        push_value(&mut log, VALUE_SET, "n", b"2");
        host.emitted.push((None, Record::new(b"x".to_vec())));
        assert!(context::Host::enter_with_writes(&mut host, 3, log));
        assert_eq!(host.process.entered, [0, 1, 1, 1], "record 0 emitted once; 1 and 2, skipped, emitted nothing");
        let value_of = |host: &mut HostCtx, k: &str| {
            host.call = ctx(k);
            state::Host::value_get(host, "n".into())
        };
        assert_eq!(value_of(&mut host, "a"), Some(b"0".to_vec()));
        assert_eq!(value_of(&mut host, "b"), None);
        assert_eq!(value_of(&mut host, "c"), Some(b"2".to_vec()));
        assert!(host.bad_writes.is_none());
        // Back to record 1, or to one past the batch: refused, and nothing after it applied.
        for behind in [1, 9] {
            let mut log = Vec::new();
            push_record(&mut log, behind);
            push_value(&mut log, VALUE_SET, "n", b"late");
            host.bad_writes = None;
            state::Host::apply_writes(&mut host, log);
            assert!(host.bad_writes.as_deref().is_some_and(|w| w.contains(&format!("record {behind}"))), "{:?}", host.bad_writes);
            assert_eq!(value_of(&mut host, "b"), None);
        }
    }

    /// Spans read ahead upstream are taken for the names they were read for; for others, or
    /// where they do not fit the value, the host finds the members itself.
    #[test]
    fn spans_are_taken_from_a_walk_upstream_or_found_here() {
        let mut host = HostCtx::new("op".into(), 0, 1 << 20, &super::super::Grants::none());
        host.read_fields = vec!["a".into(), "b".into()];
        let value = br#"{"b": 1, "a": "x"}"#.to_vec();
        let with = |spans: &[(u32, u32)], members| {
            let entry = weir_core::record::spans_entry(spans.iter().copied(), members);
            Record { value: value.clone(), prekeys: smallvec::smallvec![(7, entry)], ..Record::default() }
        };
        let ahead = |s: [u32; 4]| with(&[(s[0], s[1]), (s[2], s[3])], 9);
        let found_here = (vec![14, 17, 6, 7], vec![2]);
        let names = |ns: &[&str]| (7, ns.iter().map(|n| n.to_string()).collect::<Vec<_>>());
        // Read ahead (whatever they say, as long as they fit: here, made up), for these
        // names in any order, or for more names than these.
        assert_eq!(host.spans_of(&[ahead([1, 2, 3, 4])], Some(&names(&["a", "b"]))), (vec![1, 2, 3, 4], vec![9]));
        assert_eq!(host.spans_of(&[ahead([1, 2, 3, 4])], Some(&names(&["b", "a"]))), (vec![3, 4, 1, 2], vec![9]));
        let three = with(&[(1, 2), (3, 4), (5, 6)], 3);
        assert_eq!(host.spans_of(std::slice::from_ref(&three), Some(&names(&["c", "b", "a"]))), (vec![5, 6, 3, 4], vec![3]));
        // Read ahead for names that miss one of these, as many spans as other names, past
        // the value's end, or not at all: found here.
        assert_eq!(host.spans_of(&[ahead([1, 2, 3, 4])], Some(&names(&["a", "c"]))), found_here);
        assert_eq!(host.spans_of(&[three], Some(&names(&["a", "b"]))), found_here);
        assert_eq!(host.spans_of(&[ahead([1, 99, 3, 4])], Some(&names(&["a", "b"]))), found_here);
        assert_eq!(host.spans_of(&[Record::new(value.clone())], Some(&names(&["a", "b"]))), found_here);
        assert_eq!(
            host.spans_of(&[Record::new(value.clone()), Record::new(b"[".to_vec())], None),
            (vec![14, 17, 6, 7, 0, 0, 0, 0], vec![2, 0])
        );
        host.read_fields.clear();
        assert_eq!(host.spans_of(&[Record::new(value)], None), (vec![], vec![]));
    }

    /// A write log applies in order to the current key, as the single calls would; one that
    /// does not read applies up to the bad entry and fails the call.
    #[test]
    fn write_logs_apply_like_the_calls_they_stand_for() {
        use weir_batch::writes::{push_clear, push_value, push_values, LIST_ADD, LIST_CLEAR, VALUE_CLEAR, VALUE_SET};
        let groups = KeyGroups::whole(128);
        let mut host = HostCtx::new("op".into(), 0, 1 << 20, &super::super::Grants::none());
        host.call = CallCtx::keyed(b"u1", groups, 0, 0, None);
        let mut log = Vec::new();
        push_value(&mut log, VALUE_SET, "n", b"1");
        push_value(&mut log, LIST_ADD, "l", b"a");
        push_value(&mut log, LIST_ADD, "l", b"b");
        push_values(&mut log, "m", &[b"x".to_vec(), b"y".to_vec()]);
        push_value(&mut log, VALUE_SET, "gone", b"1");
        push_clear(&mut log, VALUE_CLEAR, "gone");
        host.apply_writes(&log);
        assert_eq!(host.bad_writes, None);
        assert_eq!(state::Host::value_get(&mut host, "n".into()), Some(b"1".to_vec()));
        assert_eq!(state::Host::list_get(&mut host, "l".into()), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(state::Host::list_get(&mut host, "m".into()), vec![b"x".to_vec(), b"y".to_vec()]);
        assert_eq!(state::Host::value_get(&mut host, "gone".into()), None);
        // Another key sees none of it.
        host.call = CallCtx::keyed(b"u2", groups, 0, 0, None);
        assert_eq!(state::Host::value_get(&mut host, "n".into()), None);
        // A cut entry: the writes before it apply, the call is marked failed.
        let mut cut = Vec::new();
        push_clear(&mut cut, LIST_CLEAR, "l");
        push_value(&mut cut, VALUE_SET, "n", b"2");
        push_value(&mut cut, VALUE_SET, "n", b"3");
        host.call = CallCtx::keyed(b"u1", groups, 0, 0, None);
        host.apply_writes(&cut[..cut.len() - 1]);
        assert!(host.bad_writes.take().is_some_and(|why| why.contains("does not read")));
        assert_eq!(state::Host::list_get(&mut host, "l".into()), Vec::<Vec<u8>>::new());
        assert_eq!(state::Host::value_get(&mut host, "n".into()), Some(b"2".to_vec()));
    }
}
