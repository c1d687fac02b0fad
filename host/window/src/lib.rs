//! Keyed windows with Flink's semantics: tumbling, sliding and session windows on event or
//! processing time, count windows, allowed lateness, a late side output, and results by
//! built-in aggregates, a plugin aggregate function or a plugin process-window function.
//!
//! Window contents live in the state backend under `(key group, "w", key, window)`, behind a
//! write-back cache of decoded window states (most windows open and fire between two of its
//! flushes and are never encoded); a timer at `end - 1` fires a window (event time: when the
//! watermark reaches it), and a cleanup timer at `end - 1 + allowed_lateness` drops it.
//! On the memory backend, windows that need no timers of their own (fixed shapes on event
//! time, no allowed lateness, built-in aggregates) are held by window instead ([`panes`]),
//! and written in that same layout at each snapshot.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

mod panes;
pub mod shape;

pub use shape::{Assigner, Counting, MAX_WINDOWS_PER_RECORD, SHAPES};

use weir_core::record::{Batch, Key, Record};
use weir_plugin::bindings::Window as WitWindow;
use weir_plugin::{CallCtx, Instance};

use weir_core::json;
use weir_core::keys::{key_text_in_key, KeyGroups};
use weir_core::operator::{emit_plugin_output, restore_keyed, snapshot_keyed, Operator, Output};
use weir_core::time::{Clock, TimerQueue, MIN_WATERMARK};
use weir_state::cache::{Cache, DEFAULT_CAPACITY};
use weir_state::{append_list, decode_list, KeyCodec, MemoryBackend, StateBackend};

use panes::Panes;

/// A built-in aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum AggSpec {
    /// Number of elements.
    Count,
    /// Sum of a numeric field.
    Sum(Vec<String>),
    /// Minimum of a numeric field.
    Min(Vec<String>),
    /// Maximum of a numeric field.
    Max(Vec<String>),
    /// Average of a numeric field.
    Avg(Vec<String>),
}

impl AggSpec {
    /// Parses `count`, `sum(field)`, `min(field)`, `max(field)`, `avg(field)`.
    pub fn parse(s: &str) -> Result<AggSpec, String> {
        let s = s.trim();
        if s == "count" || s == "count()" {
            return Ok(AggSpec::Count);
        }
        let bad = || format!("`{s}` is not an aggregate; use count, sum(field), min(field), max(field) or avg(field)");
        let (f, rest) = s.split_once('(').ok_or_else(bad)?;
        let field = rest.strip_suffix(')').ok_or_else(bad)?.trim();
        if field.is_empty() {
            return Err(bad());
        }
        let path = field.split('.').map(str::to_string).collect();
        match f.trim() {
            "sum" => Ok(AggSpec::Sum(path)),
            "min" => Ok(AggSpec::Min(path)),
            "max" => Ok(AggSpec::Max(path)),
            "avg" => Ok(AggSpec::Avg(path)),
            _ => Err(bad()),
        }
    }

    /// The field the aggregate reads (`None` for `count`).
    pub fn field(&self) -> Option<&[String]> {
        match self {
            AggSpec::Count => None,
            AggSpec::Sum(p) | AggSpec::Min(p) | AggSpec::Max(p) | AggSpec::Avg(p) => Some(p),
        }
    }
}

/// Accumulator of one built-in aggregate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AggAcc {
    n: u64,
    isum: i64,
    fsum: f64,
    float: bool,
    min: Option<f64>,
    max: Option<f64>,
    /// The extreme values as JSON text, as they appeared.
    min_json: Option<String>,
    max_json: Option<String>,
}

impl AggAcc {
    fn add(&mut self, v: Option<json::Raw>) {
        let Some(raw) = v.filter(|v| matches!(v.bytes().first(), Some(b'-' | b'0'..=b'9'))) else { return };
        let text = raw.get();
        let f: f64 = text.parse().unwrap_or(0.0);
        self.n += 1;
        let int = if text.contains(['.', 'e', 'E']) { None } else { text.parse::<i64>().ok() };
        match int {
            Some(i) if !self.float => match self.isum.checked_add(i) {
                Some(s) => self.isum = s,
                None => {
                    self.float = true;
                    self.fsum = self.isum as f64 + i as f64;
                }
            },
            _ => {
                if !self.float {
                    self.float = true;
                    self.fsum = self.isum as f64;
                }
                self.fsum += f;
            }
        }
        if !self.float {
            self.fsum = self.isum as f64;
        }
        if self.min.is_none_or(|m| f < m) {
            self.min = Some(f);
            self.min_json = Some(json::normalized(raw));
        }
        if self.max.is_none_or(|m| f > m) {
            self.max = Some(f);
            self.max_json = Some(json::normalized(raw));
        }
    }

    fn merge(&mut self, o: &AggAcc) {
        self.n += o.n;
        if self.float || o.float {
            self.fsum = if self.float { self.fsum } else { self.isum as f64 } + if o.float { o.fsum } else { o.isum as f64 };
            self.float = true;
        } else {
            self.isum += o.isum;
            self.fsum = self.isum as f64;
        }
        if let Some(m) = o.min {
            if self.min.is_none_or(|s| m < s) {
                self.min = Some(m);
                self.min_json = o.min_json.clone();
            }
        }
        if let Some(m) = o.max {
            if self.max.is_none_or(|s| m > s) {
                self.max = Some(m);
                self.max_json = o.max_json.clone();
            }
        }
    }

    /// The result as JSON text.
    fn result(&self, spec: &AggSpec, count: u64) -> String {
        let v: serde_json::Value = match spec {
            AggSpec::Count => return count.to_string(),
            _ if self.n == 0 => serde_json::Value::Null,
            AggSpec::Sum(_) if self.float => self.fsum.into(),
            AggSpec::Sum(_) => return self.isum.to_string(),
            AggSpec::Min(_) => return self.min_json.clone().unwrap_or_else(|| "null".into()),
            AggSpec::Max(_) => return self.max_json.clone().unwrap_or_else(|| "null".into()),
            AggSpec::Avg(_) => (if self.float { self.fsum } else { self.isum as f64 } / self.n as f64).into(),
        };
        v.to_string()
    }
}

/// What a window's state holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct WinState {
    /// The key's fields as JSON text, one per key field (for the result row); with a
    /// key-selector plugin, the key as a JSON string. Empty when the text is the key bytes'
    /// own (see [`key_text_in_key`]): most windows then allocate nothing for it.
    key: Vec<String>,
    count: u64,
    #[serde(default)]
    aggs: Vec<AggAcc>,
    #[serde(default)]
    plugin_acc: Option<Vec<u8>>,
    /// Elements (process-window functions and count windows): encoded list of `ts(8) | value`.
    #[serde(default)]
    elements: Option<Vec<u8>>,
    /// Unused: firing depends on the watermark alone (see `add_and_trigger`). Kept so that
    /// the state layout (postcard, not self-describing) of older snapshots still reads.
    #[serde(default)]
    fired: bool,
}

impl WinState {
    /// Built-in aggregate `i` (`spec`) of the window as JSON text. No accumulator is kept
    /// for `count`, nor when none of the aggregates reads a field.
    fn result(&self, i: usize, spec: &AggSpec) -> String {
        match self.aggs.get(i) {
            Some(acc) => acc.result(spec, self.count),
            None => AggAcc::default().result(spec, self.count),
        }
    }
}

/// How a window's result is computed.
pub enum WindowFn {
    /// Built-in aggregates: `(result field, aggregate)`.
    Builtin(Vec<(String, AggSpec)>),
    /// A plugin of the `aggregate` world.
    Aggregate(Box<Instance>),
    /// A plugin of the `window-process` world.
    Process(Box<Instance>),
}

impl std::fmt::Debug for WindowFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WindowFn::Builtin(_) => "Builtin",
            WindowFn::Aggregate(_) => "Aggregate",
            WindowFn::Process(_) => "Process",
        })
    }
}

/// Everything a window operator needs.
#[derive(Debug)]
pub struct WindowConfig {
    /// Shape.
    pub assigner: Arc<dyn Assigner>,
    /// Processing time instead of event time.
    pub processing_time: bool,
    /// Allowed lateness in ms.
    pub allowed_lateness: i64,
    /// Result function.
    pub function: WindowFn,
    /// Key fields `(result name, path)` (empty for a key-selector plugin's key or the
    /// records' own key: see `key_name`).
    pub key_fields: Vec<(String, Vec<String>)>,
    /// Without key fields: the key's name in result rows (default `key`).
    pub key_name: Option<String>,
    /// Constant fields of every result row.
    pub constants: Vec<(String, serde_json::Value)>,
    /// How keys map to key groups.
    pub groups: KeyGroups,
}

/// The key's name in result rows when no key fields name it: `key_name`, else `key` (of the
/// field alone, so a row may hold it while the window function is borrowed).
fn key_row_name(key_name: &Option<String>) -> &str {
    key_name.as_deref().unwrap_or("key")
}

/// The side output that late records go to when a job routes it.
pub const LATE_OUTPUT: &str = "late";

const STATE: &str = "w";
const SESSIONS: &str = "sessions";
const COUNTS: &str = "count";
const FIRE: u8 = 0;
const CLEANUP: u8 = 1;

fn window_namespace(start: i64, end: i64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&((start as u64) ^ (1 << 63)).to_be_bytes());
    b[8..].copy_from_slice(&((end as u64) ^ (1 << 63)).to_be_bytes());
    b
}

fn window_of_namespace(b: &[u8]) -> (i64, i64) {
    let s = u64::from_be_bytes(b[..8].try_into().unwrap_or_default()) ^ (1 << 63);
    let e = u64::from_be_bytes(b[8..16].try_into().unwrap_or_default()) ^ (1 << 63);
    (s as i64, e as i64)
}

/// The backend key of state `name` of `key` in namespace `ns`, under the key's key group.
fn state_key<'a>(codec: &'a mut KeyCodec, groups: KeyGroups, name: &str, key: &[u8], ns: &[u8]) -> &'a [u8] {
    codec.key(groups.of(key), name, key, ns)
}

/// Backend keys of window contents (state `STATE` of a key, namespace the window), the
/// last one remembered: a window is looked up twice in a row, when a record is added (read,
/// then written back) and when it fires, and its key group and encoding serve both times.
#[derive(Debug, Default)]
struct WindowKeys {
    codec: KeyCodec,
    last: Option<(Key, (i64, i64))>,
}

impl WindowKeys {
    fn get(&mut self, groups: KeyGroups, key: &[u8], w: (i64, i64)) -> &[u8] {
        if !self.last.as_ref().is_some_and(|(k, lw)| *lw == w && k.as_slice() == key) {
            state_key(&mut self.codec, groups, STATE, key, &window_namespace(w.0, w.1));
            self.last = Some((Key::from_slice(key), w));
        }
        self.codec.last()
    }
}

/// The items of a key of several fields (the JSON array `runtime::key_bytes` makes), each
/// as its text: values normalized as serde_json prints them, so the text is the row's.
/// Empty when the bytes are not such an array.
fn key_items(key: &[u8]) -> json::Items<'_> {
    json::array_items(key).unwrap_or_default()
}

/// Writes the key bytes as a JSON string: the key text of a string key. Printable ASCII
/// but `"` and `\` (user ids and most keys) is its own text; anything else is written by
/// serde_json.
fn write_key_string(out: &mut Vec<u8>, key: &[u8]) {
    if key.iter().copied().all(json::is_plain_string_byte) {
        out.push(b'"');
        out.extend_from_slice(key);
        out.push(b'"');
        return;
    }
    let _ = serde_json::to_writer(out, &*String::from_utf8_lossy(key));
}

/// The row texts of a key whose text is its own ([`key_text_in_key`]): the JSON string of a
/// single key, or the items of several fields' array.
fn own_key_texts(key_fields: usize, key: &[u8]) -> Vec<String> {
    match key_fields {
        0 | 1 => vec![key_string(key)],
        _ => key_items(key).into_iter().map(|v| v.get().to_string()).collect(),
    }
}

/// [`write_key_string`] into a new string.
fn key_string(key: &[u8]) -> String {
    let mut out = Vec::with_capacity(key.len() + 2);
    write_key_string(&mut out, key);
    String::from_utf8(out).unwrap_or_default()
}

/// The key fields of `r` as JSON text (see [`WinState::key`]), for a key whose text is
/// not its own ([`key_text_in_key`]): one field's bytes that may be a non-string's JSON
/// text say it when they are not (a string), else the record's value does.
fn key_json(cfg: &WindowConfig, key_paths: &[json::Path], key: &[u8], value: &[u8]) -> Vec<String> {
    if cfg.key_fields.len() == 1 {
        match serde_json::from_slice::<serde_json::Value>(key) {
            // Not JSON, or a JSON string: the field was that string.
            Err(_) | Ok(serde_json::Value::String(_)) => return vec![key_string(key)],
            // Bytes such as `7` may be a number or the string "7": read the record.
            Ok(_) => {}
        }
    }
    let mut found = json::Found::new();
    // The key-by already checked that the value is JSON with these fields.
    let _ = json::extract(value, key_paths, &mut found);
    found.into_iter().map(|v| v.map(json::normalized).unwrap_or_else(|| "null".into())).collect()
}

/// The state of a new window of `key` whose first record is `r`, before `r` is added.
fn new_state(cfg: &WindowConfig, key_paths: &[json::Path], key: &[u8], r: &Record) -> WinState {
    let key_texts = match key_text_in_key(cfg.key_fields.len(), key) {
        true => Vec::new(),
        false => key_json(cfg, key_paths, key, &r.value),
    };
    let mut s = WinState { key: key_texts, ..WinState::default() };
    // `count` needs no accumulator (the window's count serves).
    if let WindowFn::Builtin(aggs) = &cfg.function {
        if aggs.iter().any(|(_, a)| a.field().is_some()) {
            s.aggs = vec![AggAcc::default(); aggs.len()];
        }
    }
    s
}

/// The keyed window operator of one subtask.
pub struct WindowOp {
    cfg: WindowConfig,
    state: Box<dyn StateBackend>,
    /// Window contents, session lists and count-window counters, in front of `state`.
    windows: Cache<WinState>,
    sessions: Cache<Vec<(i64, i64)>>,
    counts: Cache<u64>,
    /// How result rows of built-in aggregates are written (`None`: through [`Row`]).
    layout: Option<Vec<(Vec<u8>, Slot)>>,
    codec: KeyCodec,
    window_keys: WindowKeys,
    timers: TimerQueue,
    watermark: i64,
    clock: Arc<dyn Clock>,
    /// Paths of the key fields and of the aggregated fields (in aggregate order).
    key_paths: Vec<json::Path>,
    agg_paths: Vec<json::Path>,
    /// Constant fields of result rows as JSON text.
    constants: Vec<(String, String)>,
    /// The windows of the record at hand, reused from record to record.
    assigned: Vec<(i64, i64)>,
    /// The times `[from, until)` whose records fall into the windows in `assigned` (see
    /// [`Assigner::period`]): a record there takes them without a division.
    assigned_for: (i64, i64),
    /// The longest result row written so far: each row is written into a block of that size
    /// (see `emit`).
    row_cap: usize,
    /// `layout` with the bounds of the window that fired last written in: the rows of one
    /// window (tens to thousands as it fires) write them once.
    plan: RowPlan,
    /// Open windows held by window, where they need no timers ([`panes`]); `windows` and
    /// `timers` then hold none of them between snapshots.
    panes: Option<Panes<WinState>>,
    /// The states of the window firing and their order, reused from window to window.
    firing: (Vec<(Key, WinState)>, Vec<u32>),
}

/// A window state as the backend holds it.
fn encode_state(s: &WinState) -> Vec<u8> {
    postcard::to_allocvec(s).unwrap_or_default()
}

/// A window state from its backend bytes (`None`: unreadable, read as absent).
fn decode_state(b: &[u8]) -> Option<WinState> {
    postcard::from_bytes(b).ok()
}

/// Adds the aggregated fields of one JSON value to built-in accumulators.
fn add_fields(accs: &mut [AggAcc], aggs: &[(String, AggSpec)], paths: &[json::Path], value: &[u8]) {
    if paths.is_empty() {
        return;
    }
    let mut found = json::Found::new();
    if json::extract(value, paths, &mut found).is_err() {
        return;
    }
    let mut it = found.into_iter();
    for (acc, (_, a)) in accs.iter_mut().zip(aggs) {
        if a.field().is_some() {
            acc.add(json::non_null(it.next().flatten()));
        }
    }
}

/// A result row: fields in the order they are set, written as serde_json writes a map
/// (sorted by name; a later field replaces an earlier one of the same name).
#[derive(Default)]
struct Row<'a>(Vec<(std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>);

impl<'a> Row<'a> {
    fn set(&mut self, name: impl Into<std::borrow::Cow<'a, str>>, json: impl Into<std::borrow::Cow<'a, str>>) {
        self.0.push((name.into(), json.into()));
    }

    fn into_json(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        for (name, json) in map_order(self.0) {
            push_field_name(&mut out, &name);
            out.extend_from_slice(json.as_bytes());
        }
        if out.is_empty() {
            out.push(b'{');
        }
        out.push(b'}');
        out
    }
}

/// Fields in the order serde_json writes a map built field by field: sorted by name, and of
/// equal names only the last one set.
fn map_order<N: Ord, T>(mut fields: Vec<(N, T)>) -> Vec<(N, T)> {
    // A stable sort keeps fields of equal names in the order they were set.
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(N, T)> = Vec::with_capacity(fields.len());
    for f in fields {
        if out.last().is_some_and(|last| last.0 == f.0) {
            out.pop();
        }
        out.push(f);
    }
    out
}

/// Appends `{"name":` to an empty row, `,"name":` to one with fields.
fn push_field_name(row: &mut Vec<u8>, name: &str) {
    row.push(if row.is_empty() { b'{' } else { b',' });
    let _ = serde_json::to_writer(&mut *row, name);
    row.push(b':');
}

/// What fills one field of a result row of built-in aggregates (see [`row_layout`]).
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// `constants[i]`.
    Constant(usize),
    /// The window state's key field `i` (`null` when missing).
    Key(usize),
    Start,
    End,
    /// Built-in aggregate `i`.
    Aggregate(usize),
}

/// A row layout for one window: the texts between the key fields and aggregates (names,
/// constants, the window's bounds, the closing brace) joined, so a row is a few copies.
#[derive(Debug, Default)]
struct RowPlan {
    window: Option<(i64, i64)>,
    text: Vec<u8>,
    parts: Vec<Part>,
}

/// A piece of a [`RowPlan`]'s row.
#[derive(Debug, Clone, Copy)]
enum Part {
    /// `text[start..end]`.
    Text(usize, usize),
    /// As [`Slot::Key`].
    Key(usize),
    /// As [`Slot::Aggregate`].
    Aggregate(usize),
}

impl RowPlan {
    /// Makes this the plan of `layout` for window `w` (kept when it is the last one's).
    fn prepare(&mut self, layout: &[(Vec<u8>, Slot)], constants: &[(String, String)], w: (i64, i64)) {
        if self.window != Some(w) {
            let (text, parts) = (&mut self.text, &mut self.parts);
            text.clear();
            parts.clear();
            let mut num = itoa::Buffer::new();
            let mut from = 0;
            let mut cut = |text: &mut Vec<u8>, parts: &mut Vec<Part>, then: Part| {
                if text.len() > from {
                    parts.push(Part::Text(from, text.len()));
                }
                parts.push(then);
                from = text.len();
            };
            for (prefix, slot) in layout {
                text.extend_from_slice(prefix);
                match *slot {
                    Slot::Constant(i) => text.extend_from_slice(constants[i].1.as_bytes()),
                    Slot::Start => text.extend_from_slice(num.format(w.0).as_bytes()),
                    Slot::End => text.extend_from_slice(num.format(w.1).as_bytes()),
                    Slot::Key(i) => cut(text, parts, Part::Key(i)),
                    Slot::Aggregate(i) => cut(text, parts, Part::Aggregate(i)),
                }
            }
            text.push(b'}');
            parts.push(Part::Text(from, text.len()));
            self.window = Some(w);
        }
    }
}

/// The fields of result rows of built-in aggregates on time windows, each with its
/// `"name":` text, in the order [`Row`] writes them (sorted by name; of equal names the last
/// set wins), computed once per operator. `None` for other window functions.
fn row_layout(cfg: &WindowConfig, constants: &[(String, String)]) -> Option<Vec<(Vec<u8>, Slot)>> {
    let WindowFn::Builtin(aggs) = &cfg.function else { return None };
    if cfg.assigner.counting().is_some() {
        return None;
    }
    let mut fields: Vec<(&str, Slot)> = constants.iter().enumerate().map(|(i, (k, _))| (k.as_str(), Slot::Constant(i))).collect();
    if cfg.key_fields.is_empty() {
        fields.push((key_row_name(&cfg.key_name), Slot::Key(0)));
    } else {
        fields.extend(cfg.key_fields.iter().enumerate().map(|(i, (name, _))| (name.as_str(), Slot::Key(i))));
    }
    fields.push(("window_start", Slot::Start));
    fields.push(("window_end", Slot::End));
    fields.extend(aggs.iter().enumerate().map(|(i, (name, _))| (name.as_str(), Slot::Aggregate(i))));
    let mut written = Vec::new();
    let layout = map_order(fields)
        .into_iter()
        .map(|(name, slot)| {
            // Each field's text is what the row holds from its name up to its value.
            let from = written.len();
            push_field_name(&mut written, name);
            (written[from..].to_vec(), slot)
        })
        .collect();
    Some(layout)
}

impl std::fmt::Debug for WindowOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowOp").field("assigner", &self.cfg.assigner).finish_non_exhaustive()
    }
}

impl WindowOp {
    /// A window operator on the memory backend.
    pub fn new(cfg: WindowConfig, clock: Arc<dyn Clock>) -> WindowOp {
        Self::with_backend(cfg, clock, Box::new(MemoryBackend::default()))
    }

    /// A window operator on the given state backend.
    pub fn with_backend(cfg: WindowConfig, clock: Arc<dyn Clock>, state: Box<dyn StateBackend>) -> WindowOp {
        let key_paths = cfg.key_fields.iter().map(|(_, p)| p.clone()).collect();
        let agg_paths = match &cfg.function {
            WindowFn::Builtin(aggs) => aggs.iter().filter_map(|(_, a)| a.field().map(<[String]>::to_vec)).collect(),
            _ => Vec::new(),
        };
        let constants: Vec<(String, String)> = cfg.constants.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
        let layout = row_layout(&cfg, &constants);
        let fire_once = !cfg.processing_time
            && cfg.allowed_lateness == 0
            && !cfg.assigner.merging()
            && cfg.assigner.counting().is_none()
            && matches!(cfg.function, WindowFn::Builtin(_));
        let panes = (fire_once && state.in_memory()).then(Panes::default);
        WindowOp {
            cfg,
            state,
            windows: Cache::new(DEFAULT_CAPACITY, encode_state, decode_state),
            sessions: Cache::new(DEFAULT_CAPACITY, |v| serde_json::to_vec(v).unwrap_or_default(), |b| serde_json::from_slice(b).ok()),
            counts: Cache::new(DEFAULT_CAPACITY, |n| n.to_le_bytes().to_vec(), |b| Some(u64::from_le_bytes(b.try_into().ok()?))),
            layout,
            codec: KeyCodec::default(),
            window_keys: WindowKeys::default(),
            timers: TimerQueue::default(),
            watermark: MIN_WATERMARK,
            clock,
            key_paths,
            agg_paths,
            constants,
            assigned: Vec::new(),
            assigned_for: (0, 0),
            row_cap: 0,
            plan: RowPlan::default(),
            panes,
            firing: Default::default(),
        }
    }

    fn now(&self, r: &Record) -> Option<i64> {
        if self.cfg.processing_time {
            Some(self.clock.now_ms())
        } else {
            r.timestamp
        }
    }

    /// Window `w` of `key`, taken out of the state (see [`Cache::take`]): [`WindowOp::store`]
    /// puts it back.
    fn load(&mut self, key: &[u8], w: (i64, i64)) -> Option<WinState> {
        let k = self.window_keys.get(self.cfg.groups, key, w);
        self.windows.take(self.state.as_mut(), k)
    }

    fn store(&mut self, key: &[u8], w: (i64, i64), s: WinState) {
        let k = self.window_keys.get(self.cfg.groups, key, w);
        self.windows.put(self.state.as_mut(), k, s);
    }

    fn purge(&mut self, key: &[u8], w: (i64, i64)) {
        let k = self.window_keys.get(self.cfg.groups, key, w);
        self.windows.delete(self.state.as_mut(), k);
    }

    /// Window `w` of `key`, taken out of the state for good.
    fn load_for_good(&mut self, key: &[u8], w: (i64, i64)) -> Option<WinState> {
        let k = self.window_keys.get(self.cfg.groups, key, w);
        self.windows.remove(self.state.as_mut(), k)
    }

    /// Writes every cached change to the backend (before a snapshot or restore).
    fn flush(&mut self) {
        self.windows.flush(self.state.as_mut());
        self.sessions.flush(self.state.as_mut());
        self.counts.flush(self.state.as_mut());
    }

    /// A timer's namespace: the window, then FIRE or CLEANUP.
    fn timer_ns(w: (i64, i64), kind: u8) -> [u8; 17] {
        let mut n = [0u8; 17];
        n[..16].copy_from_slice(&window_namespace(w.0, w.1));
        n[16] = kind;
        n
    }

    fn timer(&mut self, key: &[u8], w: (i64, i64), at: i64, kind: u8) {
        self.timers.register(at, key, &Self::timer_ns(w, kind));
    }

    fn untimer(&mut self, key: &[u8], w: (i64, i64), at: i64, kind: u8) {
        self.timers.delete(at, key, &Self::timer_ns(w, kind));
    }

    /// Adds a record to window `w` of `key` (creating it), and reports plugin failures.
    /// Also says whether the window existed before.
    fn add(&mut self, key: &[u8], w: (i64, i64), r: &Record, out: &mut Output) -> (WinState, bool) {
        let loaded = self.load(key, w);
        let existed = loaded.is_some();
        let mut s = loaded.unwrap_or_else(|| new_state(&self.cfg, &self.key_paths, key, r));
        s.count += 1;
        if self.keeps_elements() {
            let mut item = r.timestamp.unwrap_or(0).to_be_bytes().to_vec();
            item.extend_from_slice(&r.value);
            append_list(s.elements.get_or_insert_with(Vec::new), &item);
        } else {
            match &mut self.cfg.function {
                WindowFn::Builtin(aggs) => {
                    add_fields(&mut s.aggs, aggs, &self.agg_paths, &r.value);
                }
                WindowFn::Aggregate(inst) => {
                    let acc = match s.plugin_acc.take() {
                        Some(a) => Ok(a),
                        None => inst.create_accumulator(),
                    };
                    match acc {
                        Ok(a) => match inst.add(&a, std::slice::from_ref(r)) {
                            Ok(next) => s.plugin_acc = Some(next),
                            Err(f) => {
                                out.dead_letter(r.clone(), format!("aggregate add: {f}"));
                                s.plugin_acc = Some(a);
                                s.count -= 1;
                            }
                        },
                        Err(f) => {
                            out.dead_letter(r.clone(), format!("aggregate create-accumulator: {f}"));
                            s.count -= 1;
                        }
                    }
                }
                WindowFn::Process(_) => {}
            }
        }
        (s, existed)
    }

    /// Whether windows keep their elements (process-window functions and count windows).
    fn keeps_elements(&self) -> bool {
        matches!(self.cfg.function, WindowFn::Process(_)) || self.cfg.assigner.counting().is_some()
    }

    /// [`WindowOp::add`] for built-in aggregates of windows that keep no elements (no plugin
    /// to fail), where the window lies in the cache: one lookup where a load and a store are
    /// two. Says whether the window existed before; `None` (and nothing added) for other
    /// windows.
    fn add_in_place(&mut self, key: &[u8], w: (i64, i64), r: &Record) -> Option<bool> {
        let WindowFn::Builtin(aggs) = &self.cfg.function else { return None };
        if self.keeps_elements() {
            return None;
        }
        let k = self.window_keys.get(self.cfg.groups, key, w);
        let slot = self.windows.slot(self.state.as_mut(), k);
        let existed = slot.is_some();
        let s = slot.get_or_insert_with(|| new_state(&self.cfg, &self.key_paths, key, r));
        s.count += 1;
        add_fields(&mut s.aggs, aggs, &self.agg_paths, &r.value);
        Some(existed)
    }

    fn elements(s: &WinState) -> Vec<Record> {
        decode_list(s.elements.as_deref().unwrap_or_default())
            .into_iter()
            .map(|b| {
                let ts = i64::from_be_bytes(b[..8].try_into().unwrap_or_default());
                Record { value: b[8..].to_vec(), timestamp: Some(ts), ..Record::default() }
            })
            .collect()
    }

    /// Emits the result of window `w` of `key`.
    fn emit(&mut self, key: &[u8], w: (i64, i64), s: &WinState, out: &mut Output) {
        let ts = Some(w.1 - 1);
        let key_fields = self.cfg.key_fields.len();
        let own_text = s.key.is_empty() && key_text_in_key(key_fields, key);
        if let (Some(layout), WindowFn::Builtin(aggs)) = (&self.layout, &self.cfg.function) {
            // Written in place into a block as long as the longest row so far: rows of one
            // operator differ by a few bytes (the key, the count; the log-analyzer's are 100
            // to 150 bytes), so a row is almost never moved while it grows, and is not
            // copied out of a scratch buffer either.
            let mut row = Vec::with_capacity(self.row_cap);
            let mut num = itoa::Buffer::new();
            self.plan.prepare(layout, &self.constants, w);
            let items = if own_text && key_fields > 1 { key_items(key) } else { Default::default() };
            for part in &self.plan.parts {
                match *part {
                    Part::Text(from, to) => row.extend_from_slice(&self.plan.text[from..to]),
                    // The key's texts as bytes: a key's items need no UTF-8 check to be copied.
                    Part::Key(i) => match (s.key.get(i).map(String::as_bytes), items.get(i).map(|v| v.bytes())) {
                        (Some(text), _) | (None, Some(text)) => row.extend_from_slice(text),
                        (None, None) if own_text && key_fields < 2 => write_key_string(&mut row, key),
                        (None, None) => row.extend_from_slice(b"null"),
                    },
                    Part::Aggregate(i) => match (&aggs[i].1, s.aggs.get(i)) {
                        (AggSpec::Count, _) => row.extend_from_slice(num.format(s.count).as_bytes()),
                        (a, _) => row.extend_from_slice(s.result(i, a).as_bytes()),
                    },
                }
            }
            self.row_cap = self.row_cap.max(row.len());
            out.emit(Record { key: Some(Key::from_slice(key)), value: row, timestamp: ts, ..Record::default() });
            return;
        }
        let key_texts: std::borrow::Cow<[String]> = match own_text {
            true => own_key_texts(key_fields, key).into(),
            false => s.key.as_slice().into(),
        };
        let mut row = Row::default();
        for (k, v) in &self.constants {
            row.set(k.as_str(), v.as_str());
        }
        if self.cfg.key_fields.is_empty() {
            row.set(key_row_name(&self.cfg.key_name), key_texts.first().map_or("null", String::as_str));
        } else {
            for ((name, _), v) in self.cfg.key_fields.iter().zip(key_texts.iter()) {
                row.set(name.as_str(), v.as_str());
            }
        }
        row.set("window_start", w.0.to_string());
        row.set("window_end", w.1.to_string());
        let is_count = self.cfg.assigner.counting().is_some();
        let agg_paths = &self.agg_paths;
        match &mut self.cfg.function {
            WindowFn::Builtin(aggs) => {
                if is_count {
                    // Count windows keep elements; aggregate them now.
                    let mut accs = vec![AggAcc::default(); aggs.len()];
                    let els = Self::elements(s);
                    for e in &els {
                        add_fields(&mut accs, aggs, agg_paths, &e.value);
                    }
                    for (acc, (name, a)) in accs.iter().zip(aggs.iter()) {
                        row.set(name.as_str(), acc.result(a, els.len() as u64));
                    }
                } else {
                    for (i, (name, a)) in aggs.iter().enumerate() {
                        row.set(name.as_str(), s.result(i, a));
                    }
                }
            }
            WindowFn::Aggregate(inst) => {
                let acc = match (&s.plugin_acc, is_count) {
                    (Some(a), false) => Ok(a.clone()),
                    _ => inst.create_accumulator().and_then(|a| inst.add(&a, &Self::elements(s))),
                };
                match acc.and_then(|a| inst.get_result(&a)) {
                    Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
                        Ok(serde_json::Value::Object(m)) => {
                            for (k, v) in m {
                                row.set(k, v.to_string());
                            }
                        }
                        Ok(other) => row.set("result", other.to_string()),
                        Err(e) => {
                            out.dead_letter(Record::new(bytes), format!("aggregate get-result returned non-JSON: {e}"));
                            return;
                        }
                    },
                    Err(f) => {
                        out.dead_letter(Record::new(row.into_json()), format!("aggregate get-result: {f}"));
                        return;
                    }
                }
            }
            WindowFn::Process(inst) => {
                let now = self.clock.now_ms();
                inst.host().call = CallCtx::keyed(key, self.cfg.groups, self.watermark, now, ts);
                let els = Self::elements(s);
                if let Err(f) = inst.process_window(WitWindow { start: w.0, end: w.1 }, els) {
                    out.dead_letter(Record::new(row.into_json()), format!("process-window: {f}"));
                }
                for (to, r) in std::mem::take(&mut inst.host().emitted) {
                    emit_plugin_output(out, to, r);
                }
                return;
            }
        }
        out.emit(Record { key: Some(Key::from_slice(key)), value: row.into_json(), timestamp: ts, ..Record::default() });
    }

    /// A record too late for all its windows: to the late side output if the job routes
    /// one (`r` makes it only then), counted and dropped otherwise.
    fn late(&mut self, key: &[u8], r: impl FnOnce() -> Record, out: &mut Output) {
        if out.has_side(LATE_OUTPUT) {
            out.metrics().late_side.fetch_add(1, Ordering::Relaxed);
            out.emit_to(LATE_OUTPUT, Record { key: Some(Key::from_slice(key)), ..r() });
        } else {
            out.metrics().late_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn is_late(&self, end: i64) -> bool {
        !self.cfg.processing_time && end - 1 + self.cfg.allowed_lateness <= self.watermark
    }

    fn on_element(&mut self, mut r: Record, out: &mut Output) {
        // The key travels beside the record; [`WindowOp::late`] gives it back.
        let key = r.key.take().unwrap_or_default();
        if let Some(Counting { count, every }) = self.cfg.assigner.counting() {
            return self.on_count_element(&key, r, count, every, out);
        }
        self.on_timed_element(&key, Cow::Owned(r), out)
    }

    /// A record of a time window under `key`, owned, or lent by its task (fixed windows
    /// only, see [`Operator::process_lent`]): a lent one is copied only where it goes on
    /// whole (a dead letter, a late side output).
    fn on_timed_element(&mut self, key: &[u8], r: Cow<'_, Record>, out: &mut Output) {
        let Some(ts) = self.now(&r) else {
            let whole = Record { key: Some(Key::from_slice(key)), ..r.into_owned() };
            out.dead_letter(whole, "window: record has no event time (set `event-time` on the source)");
            return;
        };
        let mut windows = std::mem::take(&mut self.assigned);
        if !(self.assigned_for.0 <= ts && ts < self.assigned_for.1) {
            windows.clear();
            self.cfg.assigner.assign(ts, &mut windows);
            self.assigned_for = match (self.cfg.assigner.period(), windows.first()) {
                (Some(period), Some(&(latest, _))) => (latest, latest.saturating_add(period)),
                _ => (0, 0),
            };
        }
        if self.cfg.assigner.merging() {
            self.on_merging_element(key, windows[0], r.into_owned(), out);
        } else if self.on_fixed_element(key, &windows, &r, out) {
            self.late(key, || r.into_owned(), out);
        }
        self.assigned = windows;
    }

    /// Adds `r` to window `w` and arms its timers; a window whose end the watermark passed
    /// (within the allowed lateness) fires again at once, as Flink's EventTimeTrigger does
    /// for late elements. Whether it fired before does not matter: a late record that
    /// merges into a fired session and extends it past the watermark only arms its timer.
    fn add_and_trigger(&mut self, key: &[u8], w: (i64, i64), r: &Record, out: &mut Output) {
        let existed = match self.add_in_place(key, w, r) {
            Some(existed) => existed,
            None => {
                let (s, existed) = self.add(key, w, r, out);
                self.store(key, w, s);
                existed
            }
        };
        // A window that existed has its timers (restored ones too); a merged session window
        // is stored under its new bounds just before, so it always arms them.
        let arm = !existed || self.cfg.assigner.merging();
        let fire_at = w.1 - 1;
        if !self.cfg.processing_time && fire_at <= self.watermark {
            if let Some(s) = self.load(key, w) {
                self.emit(key, w, &s, out);
                self.store(key, w, s);
            }
        } else if arm {
            self.timer(key, w, fire_at, FIRE);
        }
        if self.cfg.allowed_lateness > 0 && arm {
            self.timer(key, w, fire_at + self.cfg.allowed_lateness, CLEANUP);
        }
    }

    /// Adds `r` to window `w` of `key` where windows are held by window ([`panes`]); false
    /// (and nothing added) where they are not.
    fn add_to_pane(&mut self, key: &[u8], w: (i64, i64), r: &Record) -> bool {
        let (Some(panes), WindowFn::Builtin(aggs)) = (&mut self.panes, &self.cfg.function) else { return false };
        let s = panes.get_or_insert_with(w, key, || new_state(&self.cfg, &self.key_paths, key, r));
        s.count += 1;
        add_fields(&mut s.aggs, aggs, &self.agg_paths, &r.value);
        true
    }

    /// Fires the windows held by window whose end - 1 is at or before `upto`, in the order
    /// their timers would fire them.
    fn fire_panes(&mut self, upto: i64, out: &mut Output) {
        let (mut firing, mut order) = std::mem::take(&mut self.firing);
        while let Some(w) = self.panes.as_mut().and_then(|p| p.pop_due(upto, &mut firing, &mut order)) {
            // Room for the window's rows at once; its states read where they lie.
            out.reserve(firing.len());
            for &i in &order {
                let (key, s) = &firing[i as usize];
                self.emit(key, w, s, out);
            }
            firing.clear();
        }
        self.firing = (firing, order);
    }

    /// Adds `r` to its `windows` that are not late; true where all were (the caller sends
    /// it on as late).
    fn on_fixed_element(&mut self, key: &[u8], windows: &[(i64, i64)], r: &Record, out: &mut Output) -> bool {
        let mut skipped = true;
        for &w in windows {
            if self.is_late(w.1) {
                continue;
            }
            skipped = false;
            if !self.add_to_pane(key, w, r) {
                self.add_and_trigger(key, w, r, out);
            }
        }
        skipped
    }

    /// The session windows of `key`, taken out of the state: [`WindowOp::set_sessions`]
    /// puts them back.
    fn sessions(&mut self, key: &[u8]) -> Vec<(i64, i64)> {
        let k = state_key(&mut self.codec, self.cfg.groups, SESSIONS, key, &[]);
        self.sessions.take(self.state.as_mut(), k).unwrap_or_default()
    }

    fn set_sessions(&mut self, key: &[u8], v: Vec<(i64, i64)>) {
        let k = state_key(&mut self.codec, self.cfg.groups, SESSIONS, key, &[]);
        if v.is_empty() {
            self.sessions.delete(self.state.as_mut(), k);
        } else {
            self.sessions.put(self.state.as_mut(), k, v);
        }
    }

    fn merge_states(&mut self, a: WinState, b: WinState, out: &mut Output) -> WinState {
        let mut m = a;
        m.count += b.count;
        for (x, y) in m.aggs.iter_mut().zip(b.aggs.iter()) {
            x.merge(y);
        }
        if let Some(be) = b.elements {
            let mut items = decode_list(m.elements.as_deref().unwrap_or_default());
            items.extend(decode_list(&be));
            items.sort_by_key(|i| i64::from_be_bytes(i[..8].try_into().unwrap_or_default()));
            m.elements = Some(weir_state::encode_list(&items));
        }
        if let WindowFn::Aggregate(inst) = &mut self.cfg.function {
            m.plugin_acc = match (m.plugin_acc.take(), b.plugin_acc) {
                (Some(x), Some(y)) => match inst.merge(&x, &y) {
                    Ok(a) => Some(a),
                    Err(f) => {
                        out.dead_letter(Record::default(), format!("aggregate merge: {f}"));
                        Some(x)
                    }
                },
                (x, y) => x.or(y),
            };
        }
        m
    }

    /// Adds `r`, whose own window is `own`, to the key's windows that overlap it, merged
    /// into one (sessions).
    fn on_merging_element(&mut self, key: &[u8], own: (i64, i64), r: Record, out: &mut Output) {
        let mut sessions = self.sessions(key);
        let mut merged = own;
        let (overlapping, rest): (Vec<_>, Vec<_>) = sessions.drain(..).partition(|w| w.0 <= merged.1 && merged.0 <= w.1);
        for w in &overlapping {
            merged = (merged.0.min(w.0), merged.1.max(w.1));
        }
        if self.is_late(merged.1) {
            // Flink merges first, then drops the element when the merged window is late.
            sessions = rest.into_iter().chain(overlapping).collect();
            sessions.sort();
            self.set_sessions(key, sessions);
            self.late(key, || r, out);
            return;
        }
        let mut acc: Option<WinState> = None;
        for w in &overlapping {
            if let Some(s) = self.load(key, *w) {
                acc = Some(match acc {
                    None => s,
                    Some(a) => self.merge_states(a, s, out),
                });
            }
            self.purge(key, *w);
            self.untimer(key, *w, w.1 - 1, FIRE);
            if self.cfg.allowed_lateness > 0 {
                self.untimer(key, *w, w.1 - 1 + self.cfg.allowed_lateness, CLEANUP);
            }
        }
        if let Some(a) = acc {
            self.store(key, merged, a);
        }
        self.add_and_trigger(key, merged, &r, out);
        let mut all: Vec<(i64, i64)> = rest;
        all.push(merged);
        all.sort();
        self.set_sessions(key, all);
    }

    fn on_count_element(&mut self, key: &[u8], r: Record, count: u64, every: u64, out: &mut Output) {
        let w = (0, 0);
        let (mut s, _) = self.add(key, w, &r, out);
        let ck = state_key(&mut self.codec, self.cfg.groups, COUNTS, key, &[]);
        let seen = self.counts.take(self.state.as_mut(), ck).unwrap_or(0) + 1;
        self.counts.put(self.state.as_mut(), ck, seen);
        // Keep the last `count` elements (Flink's CountEvictor).
        let mut items = decode_list(s.elements.as_deref().unwrap_or_default());
        if items.len() as u64 > count {
            items.drain(..items.len() - count as usize);
            s.elements = Some(weir_state::encode_list(&items));
        }
        s.count = items.len() as u64;
        if seen.is_multiple_of(every) {
            let ts: Vec<i64> = items.iter().map(|i| i64::from_be_bytes(i[..8].try_into().unwrap_or_default())).collect();
            let bounds = (ts.iter().copied().min().unwrap_or(0), ts.iter().copied().max().unwrap_or(0) + 1);
            self.emit(key, bounds, &s, out);
            if every == count {
                self.purge(key, w);
                return;
            }
        }
        self.store(key, w, s);
    }

    fn fire_timers(&mut self, upto: i64, out: &mut Output) {
        while let Some(due) = self.timers.pop_due(upto) {
            let (key, n) = (due.key(), due.namespace());
            let w = window_of_namespace(n);
            let kind = n.get(16).copied().unwrap_or(FIRE);
            if kind == CLEANUP {
                self.purge(key, w);
                self.drop_session(key, w);
                continue;
            }
            if self.cfg.allowed_lateness > 0 {
                if let Some(s) = self.load(key, w) {
                    self.emit(key, w, &s, out);
                    self.store(key, w, s);
                }
            } else if let Some(s) = self.load_for_good(key, w) {
                self.emit(key, w, &s, out);
                self.drop_session(key, w);
            }
        }
    }

    fn drop_session(&mut self, key: &[u8], w: (i64, i64)) {
        if self.cfg.assigner.merging() {
            let mut s = self.sessions(key);
            s.retain(|x| *x != w);
            self.set_sessions(key, s);
        }
    }

    /// Fails when the window function's plugin ran past its deadline too often
    /// ([`weir_plugin::Instance::check_budget`]).
    fn check_budget(&self) -> anyhow::Result<()> {
        match &self.cfg.function {
            WindowFn::Aggregate(inst) | WindowFn::Process(inst) => inst.check_budget(),
            WindowFn::Builtin(_) => Ok(()),
        }
    }

    /// Pending timers (for tests and metrics); a window held by window counts as the one
    /// timer per key it stands for.
    pub fn pending_timers(&self) -> usize {
        self.timers.len() + self.panes.as_ref().map_or(0, Panes::len)
    }
}

impl Operator for WindowOp {
    fn state_size(&self) -> Option<weir_core::status::StateSize> {
        let held = self.panes.as_ref().map_or(0, Panes::len);
        let bytes = held * (std::mem::size_of::<Key>() + std::mem::size_of::<WinState>());
        Some(weir_core::status::StateSize { entries: (self.state.len() + held) as u64, bytes: self.state.size_bytes() + bytes as u64 })
    }

    fn plugin_instance(&mut self) -> Option<&mut dyn std::any::Any> {
        match &mut self.cfg.function {
            WindowFn::Aggregate(inst) | WindowFn::Process(inst) => Some(inst.as_mut()),
            WindowFn::Builtin(_) => None,
        }
    }

    fn process(&mut self, batch: Batch, out: &mut Output) -> anyhow::Result<()> {
        let mut marks = batch.marks.into_iter().peekable();
        for (i, r) in batch.records.into_iter().enumerate() {
            while let Some((_, w)) = marks.next_if(|m| m.0 as usize <= i) {
                self.advance(w, out);
            }
            self.on_element(r, out);
        }
        for (_, w) in marks {
            self.advance(w, out);
        }
        self.check_budget()
    }

    /// Fixed windows (tumbling, sliding) take lent batches: a task shared with the operator
    /// that reads the values (the log-analyzer's `detect`) then makes no copy of each record
    /// for them.
    fn process_lent(
        &mut self,
        batch: &Batch,
        key_of: &mut dyn for<'r> FnMut(&'r Record) -> Option<Cow<'r, [u8]>>,
        out: &mut Output,
    ) -> Option<anyhow::Result<()>> {
        if self.cfg.assigner.counting().is_some() || self.cfg.assigner.merging() {
            return None;
        }
        let mut marks = batch.marks.iter().peekable();
        for (i, r) in batch.records.iter().enumerate() {
            while let Some((_, w)) = marks.next_if(|m| m.0 as usize <= i) {
                self.advance(*w, out);
            }
            if let Some(key) = key_of(r) {
                self.on_timed_element(&key, Cow::Borrowed(r), out);
            }
        }
        for (_, w) in marks {
            self.advance(*w, out);
        }
        Some(self.check_budget())
    }

    fn next_processing_timer(&self) -> Option<i64> {
        if self.cfg.processing_time {
            self.timers.next()
        } else {
            None
        }
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Output) -> anyhow::Result<()> {
        self.fire_timers(now, out);
        self.check_budget()
    }

    fn snapshot(&mut self, _id: u64, dir: &std::path::Path) -> anyhow::Result<Option<weir_state::Deferred>> {
        self.flush();
        let Some(panes) = &self.panes else {
            return snapshot_keyed(dir, self.state.as_mut(), &[("timers", &self.timers)], self.watermark, self.cfg.groups);
        };
        // Windows held by window are written as the backend and timers hold the others (a
        // state and a fire timer each) for the length of the snapshot's copy.
        let mut timers = self.timers.clone();
        let mut written = Vec::with_capacity(panes.len());
        for (w, key, s) in panes.iter() {
            let k = state_key(&mut self.codec, self.cfg.groups, STATE, key, &window_namespace(w.0, w.1)).to_vec();
            self.state.put(k.clone(), encode_state(s));
            timers.register(w.1 - 1, key, &Self::timer_ns(w, FIRE));
            written.push(k);
        }
        let snapshot = snapshot_keyed(dir, self.state.as_mut(), &[("timers", &timers)], self.watermark, self.cfg.groups);
        for k in written {
            self.state.delete(&k);
        }
        snapshot
    }

    fn restore(&mut self, dirs: &[std::path::PathBuf], groups: std::ops::Range<u16>) -> anyhow::Result<()> {
        self.flush();
        let mut timers = [("timers", &mut self.timers)];
        if let Some(wm) = restore_keyed(dirs, groups, self.state.as_mut(), &mut timers)? {
            self.watermark = wm;
        }
        self.hold_restored_windows();
        Ok(())
    }

    fn close(&mut self, out: &mut Output) -> anyhow::Result<()> {
        // A bounded input ends: processing-time windows fire with what they hold, so a
        // finished job never drops data silently.
        if self.cfg.processing_time {
            self.fire_timers(i64::MAX, out);
        }
        Ok(())
    }
}

impl WindowOp {
    fn advance(&mut self, w: i64, out: &mut Output) {
        if w > self.watermark {
            self.watermark = w;
            // With per-event watermarks most advance past no window's end: checked first,
            // before either queue is taken apart.
            if !self.cfg.processing_time {
                if self.timers.next().is_some_and(|t| t <= w) {
                    self.fire_timers(w, out);
                }
                if self.panes.as_ref().is_some_and(|p| p.due(w)) {
                    self.fire_panes(w, out);
                }
            }
        }
        out.mark(w);
    }

    /// Where windows are held by window: the restored ones (a state and timers each, from a
    /// snapshot of either kind) taken out of the backend and the timers into the panes. A
    /// window that fired already and waits only for its cleanup (a snapshot of a job that
    /// allowed lateness) is dropped, as its cleanup would drop it.
    fn hold_restored_windows(&mut self) {
        let Some(panes) = &mut self.panes else { return };
        while let Some(due) = self.timers.pop_due(i64::MAX) {
            let (key, n) = (due.key(), due.namespace());
            let w = window_of_namespace(n);
            let k = state_key(&mut self.codec, self.cfg.groups, STATE, key, &window_namespace(w.0, w.1));
            let s = self.state.get(k).and_then(|b| decode_state(&b));
            self.state.delete(k);
            if let (Some(s), FIRE) = (s, n.get(16).copied().unwrap_or(FIRE)) {
                panes.insert(w, key, s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use weir_core::status::NodeMetrics;
    use weir_core::time::ManualClock;

    /// Keys written without serde_json are written as serde_json writes them.
    #[test]
    fn key_strings_are_written_as_serde_json_writes_them() {
        let keys: [&[u8]; 9] = [b"user38", b"", b"a\"b", b"a\\b", b"tab\there", b"\x7f", b"\x1f", "\u{fc}ber".as_bytes(), b"bad \xff"];
        for key in keys {
            let mut ours = Vec::new();
            write_key_string(&mut ours, key);
            let serde = serde_json::to_vec(&*String::from_utf8_lossy(key)).unwrap();
            assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&serde), "{key:?}");
        }
    }

    fn tumbling(ms: u64) -> Arc<dyn Assigner> {
        Arc::new(shape::Tumbling { size: Duration::from_millis(ms) })
    }

    fn op(assigner: Arc<dyn Assigner>, processing_time: bool, lateness: i64, clock: ManualClock) -> WindowOp {
        let cfg = WindowConfig {
            assigner,
            processing_time,
            allowed_lateness: lateness,
            function: WindowFn::Builtin(vec![("count".into(), AggSpec::Count), ("total".into(), AggSpec::Sum(vec!["v".into()]))]),
            key_fields: vec![("k".into(), vec!["k".into()])],
            key_name: None,
            constants: vec![],
            groups: KeyGroups::whole(128),
        };
        WindowOp::new(cfg, Arc::new(clock))
    }

    fn rec(k: &str, v: i64, ts: i64) -> Record {
        Record {
            key: Some(Key::from_slice(k.as_bytes())),
            value: format!("{{\"k\":\"{k}\",\"v\":{v}}}").into_bytes(),
            timestamp: Some(ts),
            ..Record::default()
        }
    }

    #[test]
    fn result_rows_from_the_layout_equal_rows_written_field_by_field() {
        // Names that collide: the later set field wins, as in a map serde_json writes.
        let constants = vec![("count".to_string(), "\"c\"".to_string()), ("zone".to_string(), "\"eu\"".to_string())];
        let cfg = WindowConfig {
            assigner: tumbling(10),
            processing_time: false,
            allowed_lateness: 0,
            function: WindowFn::Builtin(vec![("count".into(), AggSpec::Count), ("window_end".into(), AggSpec::Count)]),
            key_fields: vec![("k\"q".into(), vec!["k".into()])],
            key_name: None,
            constants: vec![],
            groups: KeyGroups::whole(128),
        };
        let layout = row_layout(&cfg, &constants).expect("built-in aggregates on a time window");
        let text = |slot: Slot| match slot {
            Slot::Constant(i) => constants[i].1.clone(),
            Slot::Key(_) => "\"u1\"".to_string(),
            Slot::Start => "0".to_string(),
            Slot::End => "10".to_string(),
            Slot::Aggregate(i) => format!("{}", 100 + i),
        };
        let mut from_layout = Vec::new();
        for (prefix, slot) in &layout {
            from_layout.extend_from_slice(prefix);
            from_layout.extend_from_slice(text(*slot).as_bytes());
        }
        from_layout.push(b'}');
        let mut row = Row::default();
        for (k, v) in &constants {
            row.set(k.as_str(), v.as_str());
        }
        row.set("k\"q", "\"u1\"");
        row.set("window_start", "0");
        row.set("window_end", "10");
        row.set("count", "100");
        row.set("window_end", "101");
        let expected = row.into_json();
        assert_eq!(String::from_utf8(from_layout).unwrap(), String::from_utf8(expected.clone()).unwrap());
        assert_eq!(String::from_utf8(expected).unwrap(), r#"{"count":100,"k\"q":"u1","window_end":101,"window_start":0,"zone":"eu"}"#);
        assert_eq!(Row::default().into_json(), b"{}");
    }

    fn out(sides: &[&str]) -> Output {
        Output::new(&sides.iter().map(|s| s.to_string()).collect::<Vec<_>>(), Arc::new(NodeMetrics::default()))
    }

    fn rows(o: &mut Output) -> Vec<serde_json::Value> {
        o.main.take().records.iter().map(|r| serde_json::from_slice(&r.value).unwrap()).collect()
    }

    fn feed(w: &mut WindowOp, o: &mut Output, recs: Vec<Record>, marks: Vec<(u32, i64)>) {
        w.process(Batch { records: recs, marks }, o).unwrap();
    }

    /// A batch lent with keys made for it gives what a copy of it holding those keys gives:
    /// the same rows, marks, late records and dead letters; sessions take no lent batches.
    #[test]
    fn lent_batches_give_what_copies_of_them_give() {
        // Re-keyed as a shared task keys them: "x" cannot be keyed here.
        let key_of = |r: &Record| match r.key.as_deref() {
            Some(b"x") => None,
            k => Some(Key::from_slice(&k.unwrap_or_default().to_ascii_uppercase())),
        };
        let recs = vec![
            rec("a", 1, 1),
            rec("b", 2, 3),
            rec("x", 3, 4),
            rec("a", 4, 12),
            Record { timestamp: None, ..rec("b", 5, 0) },
            rec("b", 6, 2), // late once the watermark passed 10
            rec("a", 7, 25),
        ];
        let marks = vec![(3, 11), (6, 20), (7, 40)];
        let said = |o: &mut Output, m: &NodeMetrics| {
            let main = o.main.take();
            let rows: Vec<(Option<Key>, String, Option<i64>)> =
                main.records.iter().map(|r| (r.key.clone(), String::from_utf8_lossy(&r.value).into_owned(), r.timestamp)).collect();
            let late: Vec<Record> = o.sides.iter_mut().flat_map(|(_, b)| b.take().records).collect();
            let dead: Vec<(Record, String)> = std::mem::take(&mut o.dead);
            (rows, main.marks, late, dead, m.late_dropped.load(Ordering::Relaxed), m.late_side.load(Ordering::Relaxed))
        };
        for sides in [&[][..], &[LATE_OUTPUT][..]] {
            let (copied, lent) = (Arc::new(NodeMetrics::default()), Arc::new(NodeMetrics::default()));
            let names: Vec<String> = sides.iter().map(|s| s.to_string()).collect();
            let (mut co, mut lo) = (Output::new(&names, copied.clone()), Output::new(&names, lent.clone()));
            let mut a = op(tumbling(10), false, 0, ManualClock::new(0));
            let copy: Vec<Record> = recs.iter().filter_map(|r| key_of(r).map(|k| Record { key: Some(k), ..r.clone() })).collect();
            // The copy's marks stand where the lent batch's do, less the record it lacks.
            a.process(Batch { records: copy, marks: vec![(2, 11), (5, 20), (6, 40)] }, &mut co).unwrap();
            let mut b = op(tumbling(10), false, 0, ManualClock::new(0));
            let batch = Batch { records: recs.clone(), marks: marks.clone() };
            b.process_lent(&batch, &mut |r| key_of(r).map(|k| Cow::Owned(k.into_vec())), &mut lo)
                .expect("tumbling windows take lent batches")
                .unwrap();
            let (c, l) = (said(&mut co, &copied), said(&mut lo, &lent));
            assert_eq!(c, l, "{sides:?}");
            assert!(!c.0.is_empty() && c.3.len() == 1 && c.4 + c.5 == 1, "every path taken: {c:?}");
        }
        let mut s = op(Arc::new(shape::Session { gap: Duration::from_millis(10) }), false, 0, ManualClock::new(0));
        let mut called = false;
        let batch = Batch::of(recs);
        assert!(s
            .process_lent(
                &batch,
                &mut |_| {
                    called = true;
                    None
                },
                &mut out(&[])
            )
            .is_none());
        assert!(!called, "declined before any key was made");
    }

    #[test]
    fn aggregates_parse() {
        assert_eq!(AggSpec::parse("sum(a.b)"), Ok(AggSpec::Sum(vec!["a".into(), "b".into()])));
        assert!(AggSpec::parse("median(x)").is_err());
        assert!(AggSpec::parse("sum()").is_err());
    }

    #[test]
    fn processing_time_tumbling_windows_fire_on_the_clock() {
        let clock = ManualClock::new(1_000);
        let mut w = op(tumbling(10_000), true, 0, clock.clone());
        let mut o = out(&[]);
        feed(&mut w, &mut o, vec![rec("a", 1, 0), rec("a", 2, 0)], vec![]);
        clock.set(12_000);
        feed(&mut w, &mut o, vec![rec("a", 4, 0)], vec![]);
        assert_eq!(w.next_processing_timer(), Some(9_999));
        w.on_processing_time(9_998, &mut o).unwrap();
        assert!(rows(&mut o).is_empty(), "not before end - 1");
        w.on_processing_time(clock.now_ms(), &mut o).unwrap();
        assert_eq!(rows(&mut o), vec![serde_json::json!({"k": "a", "window_start": 0, "window_end": 10_000, "count": 2, "total": 3})]);
        clock.set(20_000);
        w.on_processing_time(clock.now_ms(), &mut o).unwrap();
        assert_eq!(rows(&mut o)[0]["total"], 4);
        assert_eq!(w.pending_timers(), 0);
    }

    #[test]
    fn allowed_lateness_fires_again_and_then_drops() {
        let mut w = op(tumbling(10), false, 5, ManualClock::new(0));
        let mut o = out(&[LATE_OUTPUT]);
        feed(&mut w, &mut o, vec![rec("a", 1, 3)], vec![(1, 9)]);
        assert_eq!(rows(&mut o)[0]["count"], 1, "fires at end - 1");
        feed(&mut w, &mut o, vec![rec("a", 1, 4)], vec![]);
        assert_eq!(rows(&mut o)[0]["count"], 2, "a late firing within the lateness");
        feed(&mut w, &mut o, vec![], vec![(0, 14)]);
        feed(&mut w, &mut o, vec![rec("a", 1, 5)], vec![]);
        assert!(rows(&mut o).is_empty());
        let late = o.sides[0].1.take();
        assert_eq!(late.records.len(), 1, "beyond the lateness: late output");
    }

    #[test]
    fn sessions_merge_and_a_late_element_can_join_a_live_session() {
        let mut w = op(Arc::new(shape::Session { gap: Duration::from_millis(10) }), false, 0, ManualClock::new(0));
        let mut o = out(&[]);
        feed(&mut w, &mut o, vec![rec("a", 1, 100), rec("a", 1, 118), rec("a", 1, 109)], vec![]);
        // [100, 110) and [118, 128) were separate until [109, 119) bridged them.
        feed(&mut w, &mut o, vec![], vec![(0, 126)]);
        assert!(rows(&mut o).is_empty());
        feed(&mut w, &mut o, vec![], vec![(0, 127)]);
        assert_eq!(rows(&mut o), vec![serde_json::json!({"k": "a", "window_start": 100, "window_end": 128, "count": 3, "total": 3})]);
        feed(&mut w, &mut o, vec![rec("a", 1, 200)], vec![(1, 205)]);
        feed(&mut w, &mut o, vec![rec("a", 1, 194)], vec![]);
        feed(&mut w, &mut o, vec![], vec![(0, i64::MAX)]);
        assert_eq!(rows(&mut o)[0]["window_start"], 194, "joined although [194, 204) alone was late");
    }

    #[test]
    fn count_windows_tumble_and_slide() {
        let mut w = op(Arc::new(shape::Count { count: 3, every: Some(3) }), false, 0, ManualClock::new(0));
        let mut o = out(&[]);
        feed(&mut w, &mut o, (1..=7).map(|i| rec("a", i, i)).collect(), vec![]);
        let r = rows(&mut o);
        assert_eq!(r.iter().map(|x| x["total"].as_i64().unwrap()).collect::<Vec<_>>(), vec![6, 15]);
        let mut w = op(Arc::new(shape::Count { count: 3, every: Some(1) }), false, 0, ManualClock::new(0));
        feed(&mut w, &mut o, (1..=4).map(|i| rec("a", i, i)).collect(), vec![]);
        let r = rows(&mut o);
        assert_eq!(r.iter().map(|x| x["total"].as_i64().unwrap()).collect::<Vec<_>>(), vec![1, 3, 6, 9]);
    }

    /// A window operator of `op`'s config on the memory backend (windows held by window where
    /// they can be) or on a cache in front of it (state and timers, as on RocksDB).
    fn op_on(assigner: Arc<dyn Assigner>, lateness: i64, panes: bool) -> WindowOp {
        let w = op(assigner, false, lateness, ManualClock::new(0));
        let state: Box<dyn StateBackend> = match panes {
            true => Box::new(MemoryBackend::default()),
            false => Box::new(weir_state::cache::Cached::new(MemoryBackend::default(), 4)),
        };
        WindowOp::with_backend(w.cfg, w.clock, state)
    }

    fn snapshot_to(w: &mut WindowOp, dir: &std::path::Path) {
        if let Some(write) = w.snapshot(1, dir).unwrap() {
            write().unwrap();
        }
    }

    #[test]
    fn windows_held_by_window_fire_as_their_timers_would_and_restore_either_way() {
        let sliding: Arc<dyn Assigner> = Arc::new(shape::Sliding { size: Duration::from_millis(10), slide: Duration::from_millis(5) });
        // (shape, allowed lateness before the restore, after it): a job that allowed lateness
        // restored without it holds its windows by window, and drops those that only waited
        // for their cleanup.
        for (assigner, lateness, lateness_after) in [(tumbling(10), 0, 0), (sliding, 0, 0), (tumbling(10), 5, 5), (tumbling(10), 12, 0)] {
            let (mut a, mut b) = (op_on(assigner.clone(), lateness, true), op_on(assigner.clone(), lateness, false));
            assert_eq!(a.panes.is_some(), lateness == 0, "held by window only without lateness");
            assert!(b.panes.is_none());
            let (mut oa, mut ob) = (out(&[]), out(&[]));
            let mut seed = 7u64;
            let mut next = move |n: u64| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (seed >> 33) % n
            };
            let mut rows_seen = 0;
            for i in 0..60i64 {
                if i == 30 {
                    // Each restores from the other's snapshot, at another key-group split.
                    assert!(a.pending_timers() > 0 && a.pending_timers() == b.pending_timers() || lateness > 0);
                    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
                    snapshot_to(&mut a, da.path());
                    snapshot_to(&mut b, db.path());
                    if a.panes.is_some() {
                        assert_eq!(a.state.len(), 0, "the backend holds windows held by window only for the snapshot's copy");
                    }
                    let mut restored = Vec::new();
                    for (panes, from) in [(true, db.path()), (false, da.path())] {
                        let mut halves = Vec::new();
                        for groups in [0..64u16, 64..128] {
                            let mut w = op_on(assigner.clone(), lateness_after, panes);
                            assert_eq!(w.panes.is_some(), panes && lateness_after == 0);
                            w.restore(&[from.to_path_buf()], groups).unwrap();
                            halves.push(w);
                        }
                        restored.push(halves);
                    }
                    // Both halves go on as one: the key groups of a record pick its half.
                    let groups = KeyGroups::whole(128);
                    let split = |ops: &mut Vec<WindowOp>, o: &mut Output, recs: Vec<Record>, wm: i64| {
                        let (lo, hi): (Vec<Record>, Vec<Record>) =
                            recs.into_iter().partition(|r| groups.of(r.key.as_deref().unwrap_or_default()) < 64);
                        for (w, part) in ops.iter_mut().zip([lo, hi]) {
                            let n = part.len() as u32;
                            feed(w, o, part, vec![(n, wm)]);
                        }
                    };
                    let (mut ra, mut rb) = (restored.remove(0), restored.remove(0));
                    for j in 30..60i64 {
                        let recs: Vec<Record> =
                            (0..25).map(|_| rec(&format!("k{}", next(12)), next(9) as i64, j * 5 + next(30) as i64)).collect();
                        split(&mut ra, &mut oa, recs.clone(), j * 5 - 10);
                        split(&mut rb, &mut ob, recs, j * 5 - 10);
                    }
                    split(&mut ra, &mut oa, Vec::new(), i64::MAX);
                    split(&mut rb, &mut ob, Vec::new(), i64::MAX);
                    break;
                }
                let recs: Vec<Record> = (0..25).map(|_| rec(&format!("k{}", next(12)), next(9) as i64, i * 5 + next(30) as i64)).collect();
                feed(&mut a, &mut oa, recs.clone(), vec![(25, i * 5 - 10)]);
                feed(&mut b, &mut ob, recs, vec![(25, i * 5 - 10)]);
                let (ra, rb) = (oa.main.take().records, ob.main.take().records);
                let values = |rs: &[Record]| rs.iter().map(|r| String::from_utf8(r.value.clone()).unwrap()).collect::<Vec<_>>();
                assert_eq!(values(&ra), values(&rb), "batch {i}");
                rows_seen += ra.len();
            }
            // After the restore the halves interleave; each half's rows keep their order.
            let sorted = |o: &mut Output| {
                let mut v: Vec<String> = o.main.take().records.iter().map(|r| String::from_utf8(r.value.clone()).unwrap()).collect();
                v.sort();
                v
            };
            let (ra, rb) = (sorted(&mut oa), sorted(&mut ob));
            assert_eq!(ra, rb);
            assert!(rows_seen > 50 && ra.len() > 50, "{rows_seen} rows before the restore, {} after", ra.len());
        }
    }

    #[test]
    fn sliding_windows_count_an_element_late_for_one_in_the_next() {
        let mut w = op(
            Arc::new(shape::Sliding { size: Duration::from_millis(10), slide: Duration::from_millis(5) }),
            false,
            0,
            ManualClock::new(0),
        );
        let mut o = out(&[]);
        // Watermark 9 fires [0,10); an element at 7 is late there but counts in [5,15).
        feed(&mut w, &mut o, vec![rec("a", 1, 6)], vec![(1, 9)]);
        feed(&mut w, &mut o, vec![rec("a", 1, 7)], vec![(1, i64::MAX)]);
        let r: Vec<(i64, i64)> = rows(&mut o).iter().map(|x| (x["window_start"].as_i64().unwrap(), x["count"].as_i64().unwrap())).collect();
        assert_eq!(r, vec![(0, 1), (5, 2)]);
    }

    #[test]
    fn a_string_keys_text_comes_from_the_key_and_stored_texts_still_serve() {
        let count_of = |key_fields: Vec<(String, Vec<String>)>| WindowConfig {
            assigner: tumbling(10),
            processing_time: false,
            allowed_lateness: 0,
            function: WindowFn::Builtin(vec![("n".into(), AggSpec::Count)]),
            key_fields,
            key_name: None,
            constants: vec![],
            groups: KeyGroups::whole(128),
        };
        for (key_fields, name) in [(vec![("k".to_string(), vec!["k".to_string()])], "k"), (vec![], "key")] {
            // Windows in the backend's layout (a cache in front of memory: no panes), which
            // is also what a snapshot holds.
            let cached = Box::new(weir_state::cache::Cached::new(MemoryBackend::default(), 4));
            let mut w = WindowOp::with_backend(count_of(key_fields), Arc::new(ManualClock::new(0)), cached);
            let mut o = out(&[]);
            feed(&mut w, &mut o, vec![rec("a\"b", 1, 1), rec("a\"b", 2, 2)], vec![]);
            // Neither a key text nor an accumulator for `count` was stored.
            let s = w.load(b"a\"b", (0, 10)).expect("the window");
            assert!(s.key.is_empty() && s.aggs.is_empty() && s.count == 2, "{s:?}");
            // A window stored with its key text (as earlier versions wrote it) reads the same.
            w.store(b"a\"b", (0, 10), WinState { key: vec![r#""a\"b""#.into()], ..s.clone() });
            feed(&mut w, &mut o, vec![rec("c", 1, 3)], vec![]);
            feed(&mut w, &mut o, vec![], vec![(0, 20)]);
            let mut got = rows(&mut o);
            got.sort_by_key(|r| r[name].to_string());
            assert_eq!(
                got,
                vec![
                    serde_json::json!({name: "a\"b", "n": 2, "window_start": 0, "window_end": 10}),
                    serde_json::json!({name: "c", "n": 1, "window_start": 0, "window_end": 10}),
                ]
            );
        }
    }

    #[test]
    fn the_texts_of_several_key_fields_come_from_the_key_without_the_record() {
        // The key as `runtime::key_bytes` makes it of a string with an escape, a float
        // and an object; the record arrives without its value (the route dropped it).
        let user = serde_json::json!("u\"1");
        let key = br#"["u\"1",1.5,{"a":[1,2]}]"#;
        let fields = |names: &[&str]| names.iter().map(|n| (n.to_string(), vec![n.to_string()])).collect::<Vec<_>>();
        assert!(key_text_in_key(3, key) && !key_text_in_key(3, b"u1"));
        // A time window writes rows from its layout; a count window field by field.
        let count: Arc<dyn Assigner> = Arc::new(shape::Count { count: 2, every: Some(2) });
        for assigner in [tumbling(10), count] {
            let cfg = WindowConfig {
                assigner,
                processing_time: false,
                allowed_lateness: 0,
                function: WindowFn::Builtin(vec![("n".into(), AggSpec::Count)]),
                key_fields: fields(&["user", "score", "meta"]),
                key_name: None,
                constants: vec![],
                groups: KeyGroups::whole(128),
            };
            let mut w = WindowOp::new(cfg, Arc::new(ManualClock::new(0)));
            let mut o = out(&[]);
            let bare = |ts| Record { key: Some(Key::from_slice(key)), timestamp: Some(ts), ..Record::default() };
            feed(&mut w, &mut o, vec![bare(1), bare(2)], vec![(2, 20)]);
            let got = rows(&mut o);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0]["user"], user);
            assert_eq!(got[0]["score"], serde_json::json!(1.5));
            assert_eq!(got[0]["meta"], serde_json::json!({"a": [1, 2]}));
            assert_eq!(got[0]["n"], serde_json::json!(2));
        }
    }
}
