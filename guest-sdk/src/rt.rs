//! Glue between the generated export traits and the operator traits. Used by the code that
//! the attribute macros generate; not part of the API.

use std::any::Any;
use std::cell::RefCell;

use crate::wit::weir::plugin::types::{Batch, Failure, Filtered, FlatMapped, Header, Keys, Mapped};
use crate::{Aggregate, Config, Error, Filter, FlatMap, KeySelector, Map, Process, Record, Result, Timer, Window, WindowProcess};

thread_local! {
    static OPERATOR: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    /// Event time of the record being processed: what an emitted record without one gets.
    static CURRENT_TS: std::cell::Cell<Option<i64>> = const { std::cell::Cell::new(None) };
}

/// The event time of the record being processed, if any.
pub(crate) fn current_timestamp() -> Option<i64> {
    CURRENT_TS.with(|c| c.get())
}

fn install<T: 'static>(op: T) {
    OPERATOR.with(|o| *o.borrow_mut() = Some(Box::new(op)));
}

fn with_op<T: 'static, R>(f: impl FnOnce(&mut T) -> R) -> Result<R> {
    OPERATOR.with(|o| {
        let mut slot = o.borrow_mut();
        let op = slot.as_mut().and_then(|b| b.downcast_mut::<T>()).ok_or_else(|| Error::Other("operator called before init".into()))?;
        Ok(f(op))
    })
}

/// `init` of every world: parse the config and open the operator.
pub fn init<T: 'static>(config: String, open: impl FnOnce(&Config) -> Result<T>) -> Result<()> {
    let cfg = Config::parse(&config)?;
    install(open(&cfg)?);
    Ok(())
}

/// Calls `f` on each record of a flat batch, as an owned [`Record`]; a batch whose lists
/// disagree (a host bug) fails as a whole. `f` may hand back a byte buffer it is done with:
/// the next record's value is built in it, so a batch allocates no value per record.
fn each_record<T: 'static>(input: Batch, mut f: impl FnMut(&mut T, u32, Record) -> Option<Vec<u8>>) -> Vec<Failure> {
    let checked = weir_batch::Parts::new(&input.data, &input.ends, &input.timestamps, &input.flags)
        .and_then(|p| weir_batch::check_header_indexes(input.headers.iter().map(|h| h.index), p.len()).map(|()| p));
    let parts = match checked {
        Ok(p) => p,
        Err(e) => return (0..input.flags.len() as u32).map(|index| Failure { index, error: Error::Other(e.to_string()) }).collect(),
    };
    let mut headers = input.headers.into_iter().peekable();
    let res = with_op::<T, _>(|op| {
        let mut spare = Vec::new();
        for (i, r) in parts.iter().enumerate() {
            let i = i as u32;
            let mut own = Vec::new();
            while let Some(h) = headers.next_if(|h| h.index == i) {
                own.push((h.name, h.value));
            }
            let mut value = std::mem::take(&mut spare);
            value.clear();
            value.extend_from_slice(r.value);
            let rec = Record { key: r.key.map(<[u8]>::to_vec), value, timestamp: r.timestamp, headers: own };
            if let Some(buf) = f(op, i, rec) {
                spare = buf;
            }
        }
    });
    match res {
        Ok(()) => Vec::new(),
        Err(e) => (0..parts.len() as u32).map(|index| Failure { index, error: e.clone() }).collect(),
    }
}

/// Output records of one call, in the flat layout.
#[derive(Default)]
struct Out {
    lists: weir_batch::Builder,
    headers: Vec<Header>,
}

impl Out {
    /// Copies `r` in; gives its value buffer back for reuse.
    fn push(&mut self, r: Record) -> Vec<u8> {
        let index = self.lists.push(r.key.as_deref(), &r.value, r.timestamp);
        self.headers.extend(r.headers.into_iter().map(|(name, value)| Header { index, name, value }));
        r.value
    }
    fn into_batch(self) -> Batch {
        let l = self.lists;
        Batch { data: l.data, ends: l.ends, timestamps: l.timestamps, flags: l.flags, headers: self.headers }
    }
}

pub fn map<T: Map>(input: Batch) -> Mapped {
    let mut out = Out::default();
    let mut failed = Vec::new();
    let early = each_record::<T>(input, |op, index, r| match op.map(r) {
        Ok(o) => Some(out.push(o)),
        Err(error) => {
            failed.push(Failure { index, error });
            None
        }
    });
    if !early.is_empty() {
        return Mapped { out: Out::default().into_batch(), failed: early };
    }
    Mapped { out: out.into_batch(), failed }
}

pub fn filter<T: Filter>(input: Batch) -> Filtered {
    let mut keep = Vec::with_capacity(input.flags.len());
    let mut failed = Vec::new();
    let early = each_record::<T>(input, |op, index, r| {
        match op.filter(&r) {
            Ok(k) => keep.push(u8::from(k)),
            Err(error) => {
                keep.push(0);
                failed.push(Failure { index, error });
            }
        }
        Some(r.value)
    });
    if !early.is_empty() {
        return Filtered { keep: vec![0; early.len()], failed: early };
    }
    Filtered { keep, failed }
}

pub fn flat_map<T: FlatMap>(input: Batch) -> FlatMapped {
    let mut out = Out::default();
    let mut counts = Vec::with_capacity(input.flags.len());
    let mut failed = Vec::new();
    let early = each_record::<T>(input, |op, index, r| match op.flat_map(r) {
        Ok(v) => {
            counts.push(v.len() as u32);
            v.into_iter().map(|o| out.push(o)).last()
        }
        Err(error) => {
            counts.push(0);
            failed.push(Failure { index, error });
            None
        }
    });
    if !early.is_empty() {
        return FlatMapped { out: Out::default().into_batch(), counts: vec![0; early.len()], failed: early };
    }
    FlatMapped { out: out.into_batch(), counts, failed }
}

pub fn select_key<T: KeySelector>(input: Batch) -> Keys {
    let mut data = Vec::new();
    let mut ends = Vec::with_capacity(input.flags.len());
    let mut failed = Vec::new();
    let early = each_record::<T>(input, |op, index, r| {
        match op.select_key(&r) {
            Ok(k) => data.extend_from_slice(&k),
            Err(error) => failed.push(Failure { index, error }),
        }
        ends.push(data.len() as u32);
        Some(r.value)
    });
    if !early.is_empty() {
        return Keys { data: Vec::new(), ends: vec![0; early.len()], failed: early };
    }
    Keys { data, ends, failed }
}

/// Records of many keys: each handled in its own context (`context.enter`), until the host
/// says stop.
pub fn process<T: Process>(batch: Vec<Record>) -> Vec<Result<()>> {
    let n = batch.len();
    let res = with_op::<T, _>(|op| {
        let mut out = Vec::with_capacity(n);
        for (i, r) in batch.into_iter().enumerate() {
            if !crate::host::enter(i as u32) {
                break;
            }
            CURRENT_TS.with(|c| c.set(r.timestamp));
            out.push(op.process(r));
        }
        out
    });
    CURRENT_TS.with(|c| c.set(None));
    res.unwrap_or_else(|e| (0..n).map(|_| Err(e.clone())).collect())
}

pub fn on_timer<T: Process>(fired: Vec<Timer>) -> Result<()> {
    with_op::<T, _>(|op| fired.into_iter().try_for_each(|t| op.on_timer(t)))?
}

fn acc_decode<A: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<A> {
    if bytes.is_empty() {
        return Ok(A::default());
    }
    serde_json::from_slice(bytes).map_err(|e| Error::Other(format!("accumulator does not decode: {e}")))
}

fn acc_encode<A: serde::Serialize>(acc: &A) -> Result<Vec<u8>> {
    serde_json::to_vec(acc).map_err(|e| Error::Other(format!("accumulator does not encode: {e}")))
}

pub fn create_accumulator<T: Aggregate>() -> Vec<u8> {
    acc_encode(&T::Acc::default()).unwrap_or_default()
}

pub fn add<T: Aggregate>(acc: Vec<u8>, batch: Vec<Record>) -> Result<Vec<u8>> {
    let mut a: T::Acc = acc_decode(&acc)?;
    with_op::<T, _>(|op| batch.iter().try_for_each(|r| op.add(&mut a, r)))??;
    acc_encode(&a)
}

pub fn merge<T: Aggregate>(a: Vec<u8>, b: Vec<u8>) -> Result<Vec<u8>> {
    let (a, b): (T::Acc, T::Acc) = (acc_decode(&a)?, acc_decode(&b)?);
    let m = with_op::<T, _>(|op| op.merge(a, b))??;
    acc_encode(&m)
}

pub fn get_result<T: Aggregate>(acc: Vec<u8>) -> Result<Vec<u8>> {
    let a: T::Acc = acc_decode(&acc)?;
    let v = with_op::<T, _>(|op| op.result(&a))??;
    serde_json::to_vec(&v).map_err(|e| Error::Other(e.to_string()))
}

pub fn process_window<T: WindowProcess>(window: Window, elements: Vec<Record>) -> Result<()> {
    with_op::<T, _>(|op| op.process_window(window, elements))?
}
