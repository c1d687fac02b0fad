//! A native, in-memory host for unit-testing operators without wasm or a weir runtime.
//!
//! State, timers and side outputs behave as in the real host: state is scoped to the current
//! key, event-time timers fire when the watermark passes them (one per key and time), and
//! processing time is a simulated clock that only moves when the test moves it.
//!
//! ```ignore
//! let mut h = weir_sdk::testing::ProcessHarness::<Detector>::new(serde_json::json!({}))?;
//! h.process("user1", Record::from_json(&event)?)?;
//! assert_eq!(h.take_output().len(), 1);
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use crate::{Config, Filter, FlatMap, Level, Map, Process, Record, Result, TimeDomain, Timer, Window, WindowProcess};

/// State cells: `(key, state name, shape)` → entries.
type Cells = BTreeMap<(Vec<u8>, String, &'static [u8]), BTreeMap<Vec<u8>, Vec<u8>>>;

/// The in-memory host behind the SDK's host calls in a native build.
#[derive(Debug, Default)]
pub struct TestHost {
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) watermark: i64,
    pub(crate) processing_time: i64,
    pub(crate) logs: Vec<(Level, String)>,
    /// The members the operator asked for with `read_fields`.
    pub(crate) read_fields: Vec<String>,
    state: Cells,
    outputs: BTreeMap<Option<String>, Vec<Record>>,
    timers: BTreeSet<(u8, i64, Vec<u8>)>,
    current_ts: Option<i64>,
}

thread_local! {
    static HOST: RefCell<TestHost> = RefCell::new(TestHost { watermark: i64::MIN, ..TestHost::default() });
}

pub(crate) fn with_host<R>(f: impl FnOnce(&mut TestHost) -> R) -> R {
    HOST.with(|h| f(&mut h.borrow_mut()))
}

fn domain_ord(d: TimeDomain) -> u8 {
    match d {
        TimeDomain::EventTime => 0,
        TimeDomain::ProcessingTime => 1,
    }
}

impl TestHost {
    pub(crate) fn cell(&mut self, name: &str, kind: &'static [u8]) -> &mut BTreeMap<Vec<u8>, Vec<u8>> {
        let key = self.key.clone().unwrap_or_default();
        self.state.entry((key, name.to_string(), kind)).or_default()
    }
    pub(crate) fn emit(&mut self, to: Option<&str>, mut rec: Record) {
        if rec.timestamp.is_none() {
            rec.timestamp = self.current_ts;
        }
        self.outputs.entry(to.map(str::to_string)).or_default().push(rec);
    }
    pub(crate) fn set_timer(&mut self, d: TimeDomain, ts: i64, on: bool) {
        let t = (domain_ord(d), ts, self.key.clone().unwrap_or_default());
        if on {
            self.timers.insert(t);
        } else {
            self.timers.remove(&t);
        }
    }
}

/// Runs a map operator over records, as the host would in one batch (through
/// [`Map::map_view`], the method the host calls, with the members the operator asks for
/// found as the host finds them).
pub fn run_map<T: Map>(config: serde_json::Value, records: Vec<Record>) -> Result<Vec<Result<Record>>> {
    let mut op = T::open(&fresh(config))?;
    Ok(records.into_iter().map(|r| op.map_view(lent(&r, &found(&r))).map(|m| m.apply(r))).collect())
}

/// Runs a filter operator over records (through [`Filter::filter_view`], with the members
/// the operator asks for as [`run_map`] lends them).
pub fn run_filter<T: Filter>(config: serde_json::Value, records: Vec<Record>) -> Result<Vec<Result<bool>>> {
    let mut op = T::open(&fresh(config))?;
    Ok(records.iter().map(|r| op.filter_view(lent(r, &found(r)))).collect())
}

/// Runs a flat-map operator over records.
pub fn run_flat_map<T: FlatMap>(config: serde_json::Value, records: Vec<Record>) -> Result<Vec<Result<Vec<Record>>>> {
    let mut op = T::open(&fresh(config))?;
    Ok(records.into_iter().map(|r| op.flat_map(r)).collect())
}

/// The config of a stateless operator about to open, on a host with no members asked for
/// yet (an operator opened before on this thread asked for its own).
fn fresh(config: serde_json::Value) -> Config {
    with_host(|h| h.read_fields.clear());
    Config(config)
}

/// Where the members the operator asked for (`read_fields`) lie in `rec`'s value, and how
/// many members it has, found as the host finds them: what the host lends each record.
fn found(rec: &Record) -> (Vec<u32>, u32) {
    let names = with_host(|h| h.read_fields.clone());
    let mut spans = vec![0; 2 * names.len()];
    let members = crate::json::members(&rec.value, &names, &mut spans).unwrap_or(0);
    (spans, members)
}

/// `rec` lent as a view with what the host found of it.
fn lent<'a>(rec: &'a Record, (spans, members): &'a (Vec<u32>, u32)) -> crate::RecordView<'a> {
    rec.view().with_fields(spans, *members)
}

/// Drives a keyed process operator: records per key, watermarks, processing time.
#[derive(Debug)]
pub struct ProcessHarness<T> {
    op: T,
}

impl<T: Process> ProcessHarness<T> {
    /// Opens the operator with `config` on a fresh host.
    pub fn new(config: serde_json::Value) -> Result<Self> {
        with_host(|h| *h = TestHost { watermark: i64::MIN, ..TestHost::default() });
        Ok(ProcessHarness { op: T::open(&Config(config))? })
    }

    /// Processes one record under `key`.
    pub fn process(&mut self, key: impl AsRef<[u8]>, rec: Record) -> Result<()> {
        with_host(|h| {
            h.key = Some(key.as_ref().to_vec());
            h.current_ts = rec.timestamp;
        });
        // What the host calls: the record lent as a view, with the members it asked for.
        self.op.process_view(lent(&rec, &found(&rec)))
    }

    /// Advances the watermark to `wm`, firing due event-time timers in time order.
    pub fn advance_watermark(&mut self, wm: i64) -> Result<()> {
        with_host(|h| h.watermark = h.watermark.max(wm));
        self.fire(0, wm)
    }

    /// Advances the simulated processing-time clock, firing due processing-time timers.
    pub fn advance_processing_time(&mut self, now: i64) -> Result<()> {
        with_host(|h| h.processing_time = h.processing_time.max(now));
        self.fire(1, now)
    }

    fn fire(&mut self, domain: u8, upto: i64) -> Result<()> {
        loop {
            let next = with_host(|h| {
                let t = h.timers.iter().find(|(d, ts, _)| *d == domain && *ts <= upto).cloned()?;
                h.timers.remove(&t);
                h.key = Some(t.2.clone());
                h.current_ts = Some(t.1);
                Some(t)
            });
            let Some((d, ts, _)) = next else { return Ok(()) };
            let domain = if d == 0 { TimeDomain::EventTime } else { TimeDomain::ProcessingTime };
            self.op.on_timer(Timer { timestamp: ts, domain })?;
        }
    }

    /// Takes the records emitted to the main output so far.
    pub fn take_output(&mut self) -> Vec<Record> {
        with_host(|h| h.outputs.remove(&None).unwrap_or_default())
    }

    /// Takes the records emitted to side output `name` so far.
    pub fn take_side_output(&mut self, name: &str) -> Vec<Record> {
        with_host(|h| h.outputs.remove(&Some(name.to_string())).unwrap_or_default())
    }

    /// The pending timers as `(domain, timestamp, key)`.
    pub fn pending_timers(&self) -> Vec<(TimeDomain, i64, Vec<u8>)> {
        with_host(|h| {
            h.timers
                .iter()
                .map(|(d, ts, k)| (if *d == 0 { TimeDomain::EventTime } else { TimeDomain::ProcessingTime }, *ts, k.clone()))
                .collect()
        })
    }

    /// The log lines written so far.
    pub fn logs(&self) -> Vec<(Level, String)> {
        with_host(|h| h.logs.clone())
    }
}

/// Runs a window-process operator on one window of one key; returns what it emitted.
pub fn run_window_process<T: WindowProcess>(
    config: serde_json::Value,
    key: &[u8],
    window: Window,
    elements: Vec<Record>,
) -> Result<Vec<Record>> {
    with_host(|h| {
        *h = TestHost { watermark: i64::MIN, ..TestHost::default() };
        h.key = Some(key.to_vec());
        h.current_ts = Some(window.end - 1);
    });
    let mut op = T::open(&Config(config))?;
    op.process_window(window, elements)?;
    Ok(with_host(|h| h.outputs.remove(&None).unwrap_or_default()))
}
