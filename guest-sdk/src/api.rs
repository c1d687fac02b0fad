//! The operator traits that the attribute macros export, and the calls an operator can make
//! to its host while it runs (emit, timers, logging, the current key and time).

use serde::de::DeserializeOwned;

use crate::{host, reads, Error, Level, Mapped, Record, RecordView, Result, Timer, Window};

/// An operator's `config` table from the job file, as JSON.
#[derive(Debug, Clone, Default)]
pub struct Config(pub serde_json::Value);

impl Config {
    /// Parses a config string (`{}` when the job gives none).
    pub fn parse(text: &str) -> Result<Config> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::InvalidConfig(format!("config is not JSON: {e}")))?;
        Ok(Config(v))
    }
    /// The whole config as `T`.
    pub fn get<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(self.0.clone()).map_err(|e| Error::InvalidConfig(e.to_string()))
    }
    /// Field `name` as `T`, or `default` when the field is absent.
    pub fn field_or<T: DeserializeOwned>(&self, name: &str, default: T) -> Result<T> {
        match self.0.get(name) {
            None | Some(serde_json::Value::Null) => Ok(default),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| Error::InvalidConfig(format!("field `{name}`: {e}"))),
        }
    }
}

/// A 1→1 transformation. Export with `#[weir_sdk::map]` on the impl.
pub trait Map: Sized + 'static {
    /// Builds the operator from its config; an error stops the job before any record flows.
    fn open(config: &Config) -> Result<Self>;
    /// Maps one record; an error sends it to the dead-letter output.
    fn map(&mut self, rec: Record) -> Result<Record>;
    /// Maps a record lent from the host's batch: what the host calls. The default copies the
    /// record and calls [`Map::map`]; an operator that often passes records on, or reads only
    /// part of them, overrides it (the function form on a [`RecordView`] does).
    fn map_view(&mut self, rec: RecordView<'_>) -> Result<Mapped> {
        self.map(rec.to_record()).map(Mapped::Record)
    }
}

/// A predicate. Export with `#[weir_sdk::filter]`.
pub trait Filter: Sized + 'static {
    /// As in [`Map::open`].
    fn open(config: &Config) -> Result<Self>;
    /// True keeps the record.
    fn filter(&mut self, rec: &Record) -> Result<bool>;
    /// As [`Filter::filter`] on a record lent from the host's batch: what the host calls. The
    /// default copies the record; override it to read the record where it lies.
    fn filter_view(&mut self, rec: RecordView<'_>) -> Result<bool> {
        let r = rec.to_record();
        let keep = self.filter(&r);
        crate::rt::recycle(r.value);
        keep
    }
}

/// A 1→n transformation. Export with `#[weir_sdk::flat_map]`.
pub trait FlatMap: Sized + 'static {
    /// As in [`Map::open`].
    fn open(config: &Config) -> Result<Self>;
    /// Zero or more records per input record.
    fn flat_map(&mut self, rec: Record) -> Result<Vec<Record>>;
}

/// Derives a key. Export with `#[weir_sdk::key_selector]`.
pub trait KeySelector: Sized + 'static {
    /// As in [`Map::open`].
    fn open(config: &Config) -> Result<Self>;
    /// The key of a record; equal bytes mean the same key.
    fn select_key(&mut self, rec: &Record) -> Result<Vec<u8>>;
    /// As [`KeySelector::select_key`] on a record lent from the host's batch: what the host
    /// calls. The default copies the record; override it to read the record where it lies.
    fn select_key_view(&mut self, rec: RecordView<'_>) -> Result<Vec<u8>> {
        let r = rec.to_record();
        let key = self.select_key(&r);
        crate::rt::recycle(r.value);
        key
    }
}

/// A keyed process function with state, side outputs and timers. Export with
/// `#[weir_sdk::process]`.
pub trait Process: Sized + 'static {
    /// As in [`Map::open`].
    fn open(config: &Config) -> Result<Self>;
    /// One record of the current key ([`current_key`]), with that key's state in scope.
    fn process(&mut self, rec: Record) -> Result<()>;
    /// One record lent from the host's batch: what the host calls. The default copies the
    /// record and calls [`Process::process`]; an operator that reads only part of a record
    /// overrides it and reads the record where it lies (`rec.json()` may borrow from it).
    fn process_view(&mut self, rec: RecordView<'_>) -> Result<()> {
        self.process(rec.to_record())
    }
    /// A timer of the current key fired.
    fn on_timer(&mut self, _timer: Timer) -> Result<()> {
        Ok(())
    }
}

/// State migration on a hot reload: a new version of a process operator whose state layout
/// changed implements this too, and is exported with `#[weir_sdk::process(migrate)]`. The
/// host calls [`Migrate::migrate`] after [`Process::open`], at the swap, once for each entry
/// the previous version left: a [`ValueState`]'s value, one element of a [`ListState`], or
/// the value under a [`MapState`] key (`map_key`), as the bytes the previous version's state
/// types wrote (JSON with this SDK). It answers the bytes in the new layout (encode them with
/// [`migrate::encode`], which the state types read back), `None` to drop the entry, or an
/// error, which refuses the reload and leaves the previous version running with its state.
pub trait Migrate: Process {
    /// One entry of state `state`.
    fn migrate(&mut self, state: &str, map_key: Option<&[u8]>, value: &[u8]) -> Result<Option<Vec<u8>>>;
}

/// An incremental window aggregate (Flink's AggregateFunction). Export with
/// `#[weir_sdk::aggregate]`.
pub trait Aggregate: Sized + 'static {
    /// The accumulator, stored by the host between calls.
    type Acc: serde::Serialize + DeserializeOwned + Default;
    /// As in [`Map::open`].
    fn open(config: &Config) -> Result<Self>;
    /// Adds one record to the accumulator.
    fn add(&mut self, acc: &mut Self::Acc, rec: &Record) -> Result<()>;
    /// Merges two accumulators (session windows).
    fn merge(&mut self, a: Self::Acc, b: Self::Acc) -> Result<Self::Acc>;
    /// The window's result: a JSON object whose fields join the result row.
    fn result(&mut self, acc: &Self::Acc) -> Result<serde_json::Value>;
}

/// Sees all elements of a window when it fires (Flink's ProcessWindowFunction). Export with
/// `#[weir_sdk::window_process]`.
pub trait WindowProcess: Sized + 'static {
    /// As in [`Map::open`].
    fn open(config: &Config) -> Result<Self>;
    /// `window` of the current key fired with these elements; emit results with [`emit`].
    fn process_window(&mut self, window: Window, elements: Vec<Record>) -> Result<()>;
}

/// Emits a record to the main output (process and window-process operators). A record
/// without event time gets the time of the record being processed.
pub fn emit(rec: &Record) {
    reads::flush();
    with_time(rec, host::emit)
}

/// Emits a record to side output `name` (e.g. `"late"`, `"alerts"`).
pub fn emit_to(name: &str, rec: &Record) {
    reads::flush();
    with_time(rec, |r| host::emit_to(name, r))
}

fn with_time(rec: &Record, f: impl FnOnce(&Record)) {
    match (rec.timestamp, crate::rt::current_timestamp()) {
        (None, Some(ts)) => f(&Record { timestamp: Some(ts), ..rec.clone() }),
        _ => f(rec),
    }
}

/// Asks the host to find these top-level members of each record's JSON value before the
/// operator sees the record (call it in `open`; the records lent as views get them:
/// [`Process::process_view`], [`Map::map_view`], [`Filter::filter_view`] and
/// [`KeySelector::select_key_view`]):
/// [`RecordView::field`] (and [`RecordView::field_str`], [`RecordView::field_i64`]) then
/// lend member `i` of `names` where it lies, and the operator walks no JSON itself. The
/// host finds them in its native walk, which also checks that the value is valid JSON; where
/// it did not find one (absent, repeated, not a JSON object it reads whole) the field is
/// `None` and the operator reads the value itself. A later call replaces the names.
///
/// ```ignore
/// fn open(_: &Config) -> Result<Self> {
///     weir_sdk::read_fields(&["user_id", "timestamp"]);
///     Ok(Detector)
/// }
/// fn process_view(&mut self, rec: RecordView<'_>) -> Result<()> {
///     let (user, ts) = match (rec.field_str(0), rec.field_i64(1)) {
///         (Some(u), Some(t)) => (u, t),
///         _ => { /* read it with rec.json() */ }
///     };
/// }
/// ```
pub fn read_fields(names: &[&str]) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    host::read_fields(&names);
    crate::rt::set_read_fields(names.len());
}

/// The key of the current call, when the operator is keyed.
pub fn current_key() -> Option<Vec<u8>> {
    reads::flush();
    host::current_key()
}

/// The current key as UTF-8 text (keys from a JSON string field are the string's text).
pub fn current_key_str() -> Option<String> {
    current_key().and_then(|k| String::from_utf8(k).ok())
}

/// The operator's event-time watermark (epoch ms) when the record being processed arrived
/// (in `on_timer`, the watermark that fired the timer); `i64::MIN` before the first one.
pub fn current_watermark() -> i64 {
    reads::flush();
    host::current_watermark()
}

/// The host's processing time (epoch ms).
pub fn current_processing_time() -> i64 {
    reads::flush();
    host::current_processing_time()
}

/// The index of this parallel subtask.
pub fn subtask_index() -> u32 {
    host::subtask_index()
}

/// Timers of the current key.
pub mod timers {
    use crate::{host, reads};

    /// Before a timer call: the record at hand is entered, and so is every later record of
    /// the call (the host may have to stop the call where the timer is due).
    fn set_timer() {
        reads::flush();
        reads::enter_each_record();
    }

    /// Fires `on_timer` when the watermark reaches `ts` (epoch ms). One timer per key and time.
    pub fn register_event_time(ts: i64) {
        set_timer();
        host::register_event_time(ts)
    }
    /// Deletes an event-time timer.
    pub fn delete_event_time(ts: i64) {
        set_timer();
        host::delete_event_time(ts)
    }
    /// Fires `on_timer` when processing time reaches `ts`.
    pub fn register_processing_time(ts: i64) {
        set_timer();
        host::register_processing_time(ts)
    }
    /// Deletes a processing-time timer.
    pub fn delete_processing_time(ts: i64) {
        set_timer();
        host::delete_processing_time(ts)
    }
}

/// Logs a line to the host at `level`.
pub fn log(level: Level, msg: &str) {
    host::log(level, msg)
}
