//! Glue between the generated export traits and the operator traits. Used by the code that
//! the attribute macros generate; not part of the API.

use std::any::Any;
use std::cell::RefCell;

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

fn per_record<T: 'static, R>(batch: Vec<Record>, mut f: impl FnMut(&mut T, Record) -> Result<R>) -> Vec<Result<R>> {
    let n = batch.len();
    match with_op::<T, _>(|op| batch.into_iter().map(|r| f(op, r)).collect::<Vec<_>>()) {
        Ok(v) => v,
        Err(e) => (0..n).map(|_| Err(e.clone())).collect(),
    }
}

/// `init` of every world: parse the config and open the operator.
pub fn init<T: 'static>(config: String, open: impl FnOnce(&Config) -> Result<T>) -> Result<()> {
    let cfg = Config::parse(&config)?;
    install(open(&cfg)?);
    Ok(())
}

pub fn map<T: Map>(batch: Vec<Record>) -> Vec<Result<Record>> {
    per_record::<T, _>(batch, |op, r| op.map(r))
}

pub fn filter<T: Filter>(batch: Vec<Record>) -> Vec<Result<bool>> {
    per_record::<T, _>(batch, |op, r| op.filter(&r))
}

pub fn flat_map<T: FlatMap>(batch: Vec<Record>) -> Vec<Result<Vec<Record>>> {
    per_record::<T, _>(batch, |op, r| op.flat_map(r))
}

pub fn select_key<T: KeySelector>(batch: Vec<Record>) -> Vec<Result<Vec<u8>>> {
    per_record::<T, _>(batch, |op, r| op.select_key(&r))
}

pub fn process<T: Process>(batch: Vec<Record>) -> Vec<Result<()>> {
    let res = per_record::<T, _>(batch, |op, r| {
        CURRENT_TS.with(|c| c.set(r.timestamp));
        op.process(r)
    });
    CURRENT_TS.with(|c| c.set(None));
    res
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
