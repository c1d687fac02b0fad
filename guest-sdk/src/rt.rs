//! Glue between the generated export traits and the operator traits. Used by the code that
//! the attribute macros generate; not part of the API.

use std::any::Any;
use std::cell::RefCell;

use crate::wit::weir::plugin::types::{Batch, Failure, Filtered, FlatMapped, Header, Keys, Mapped as WitMapped};
use crate::{
    Aggregate, Config, Error, Filter, FlatMap, KeySelector, Map, Mapped, Process, Record, RecordView, Result, Timer, Window, WindowProcess,
};

thread_local! {
    static OPERATOR: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    /// Event time of the record being processed: what an emitted record without one gets.
    static CURRENT_TS: std::cell::Cell<Option<i64>> = const { std::cell::Cell::new(None) };
    /// How many members the operator asked the host to find in each record (`read_fields`).
    static READ_FIELDS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// A value buffer handed back for the next record ([`spare_buffer`], [`recycle`]).
    static SPARE: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
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

/// The operator asked the host to find `n` members of each record (`crate::read_fields`).
pub(crate) fn set_read_fields(n: usize) {
    READ_FIELDS.with(|f| f.set(n));
}

/// A cleared byte buffer: the one last handed back with [`recycle`], or a new one.
#[inline]
pub fn spare_buffer() -> Vec<u8> {
    let mut v = SPARE.with(std::cell::Cell::take);
    v.clear();
    v
}

/// Hands a byte buffer back for the next [`spare_buffer`]: records copied or built one after
/// another reuse one allocation.
#[inline]
pub fn recycle(buf: Vec<u8>) {
    if buf.capacity() > 0 {
        SPARE.with(|s| s.set(buf));
    }
}

/// Calls `f` on each record of a flat batch, lent where it lies, with the spans of the
/// members the operator reads (`read_fields`); a batch whose lists disagree (a host bug)
/// fails as a whole.
fn each_view<T: 'static>(input: &Batch, mut f: impl FnMut(&mut T, u32, RecordView<'_>)) -> Vec<Failure> {
    let checked = weir_batch::Parts::new(&input.data, &input.ends, &input.timestamps, &input.flags)
        .and_then(|p| weir_batch::check_header_indexes(input.headers.iter().map(|h| h.index), p.len()).map(|()| p));
    let parts = match checked {
        Ok(p) => p,
        Err(e) => return (0..input.flags.len() as u32).map(|index| Failure { index, error: Error::Other(e.to_string()) }).collect(),
    };
    // Where the host found the members the operator reads, two offsets each per record, and
    // how many members each record has; lists of other lengths (none asked for) lend none.
    let n = parts.len();
    let k = 2 * READ_FIELDS.with(std::cell::Cell::get);
    let (spans, counts) = if k > 0 { (crate::host::field_spans(), crate::host::member_counts()) } else { Default::default() };
    let lent = spans.len() == k * n && counts.len() == n;
    let found = |i: usize| match lent {
        true => (&spans[k * i..k * (i + 1)], counts[i]),
        false => (&[][..], 0),
    };
    let res = with_op::<T, _>(|op| {
        let mut h = 0;
        for (i, r) in parts.iter().enumerate() {
            let from = h;
            while input.headers.get(h).is_some_and(|x| x.index == i as u32) {
                h += 1;
            }
            let (spans, members) = found(i);
            f(op, i as u32, RecordView::of_batch(r, &input.headers[from..h]).with_fields(spans, members));
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
    /// Copies `r` in; hands its value buffer back for reuse.
    #[inline(always)]
    fn push(&mut self, r: Record) {
        let index = self.lists.push(r.key.as_deref(), &r.value, r.timestamp);
        self.headers.extend(r.headers.into_iter().map(|(name, value)| Header { index, name, value }));
        recycle(r.value);
    }
    /// Copies in the record `rec` with its value replaced by `value`.
    #[inline(always)]
    fn push_value(&mut self, rec: RecordView<'_>, value: Vec<u8>) {
        let index = self.lists.push(rec.key, &value, rec.timestamp);
        self.headers.extend(rec.headers().map(|(name, value)| Header { index, name: name.to_string(), value: value.to_vec() }));
        recycle(value);
    }
    fn into_batch(self) -> Batch {
        let l = self.lists;
        Batch { data: l.data, ends: l.ends, timestamps: l.timestamps, flags: l.flags, headers: self.headers }
    }
}

/// `map` of an operator that reads records where they lie ([`Map::map_view`]).
pub fn map<T: Map>(input: Batch) -> WitMapped {
    map_with::<T>(input, |op, r| op.map_view(r))
}

/// `map` of an operator written on owned records (the function form on a [`Record`]):
/// [`Map::map`] called directly, on a copy built in a reused buffer.
pub fn map_owned<T: Map>(input: Batch) -> WitMapped {
    map_with::<T>(input, |op, r| op.map(r.to_record()).map(Mapped::Record))
}

fn map_with<T: Map>(input: Batch, mut f: impl FnMut(&mut T, RecordView<'_>) -> Result<Mapped>) -> WitMapped {
    let n = input.flags.len();
    let mut out = Out::default();
    let mut same = Vec::new();
    let mut failed = Vec::new();
    // The first record sent back makes room for the rest of the batch at once (a map that
    // passes records on unchanged allocates nothing).
    let room = |out: &mut Out, index: u32| {
        if out.lists.is_empty() {
            let left = n - index as usize;
            out.lists.reserve(left, input.data.len() / n.max(1) * left);
        }
    };
    let early = each_view::<T>(&input, |op, index, r| match f(op, r) {
        Ok(Mapped::Unchanged) => {
            if same.is_empty() {
                same.resize(n, 0);
            }
            same[index as usize] = 1;
        }
        Ok(Mapped::Value(v)) => {
            room(&mut out, index);
            out.push_value(r, v)
        }
        Ok(Mapped::Record(o)) => {
            room(&mut out, index);
            out.push(o)
        }
        Ok(Mapped::ValueAsIs { key, timestamp }) => {
            out.lists.push_value_as_is(key.as_deref(), timestamp);
            if let Some(key) = key {
                recycle(key);
            }
        }
        Err(error) => failed.push(Failure { index, error }),
    });
    if !early.is_empty() {
        return WitMapped { out: Out::default().into_batch(), same: Vec::new(), failed: early };
    }
    WitMapped { out: out.into_batch(), same, failed }
}

pub fn filter<T: Filter>(input: Batch) -> Filtered {
    let mut keep = Vec::with_capacity(input.flags.len());
    let mut failed = Vec::new();
    let early = each_view::<T>(&input, |op, index, r| match op.filter_view(r) {
        Ok(k) => keep.push(u8::from(k)),
        Err(error) => {
            keep.push(0);
            failed.push(Failure { index, error });
        }
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
    let early = each_view::<T>(&input, |op, index, r| match op.flat_map(r.to_record()) {
        Ok(v) => {
            counts.push(v.len() as u32);
            v.into_iter().for_each(|o| out.push(o));
        }
        Err(error) => {
            counts.push(0);
            failed.push(Failure { index, error });
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
    let early = each_view::<T>(&input, |op, index, r| {
        match op.select_key_view(r) {
            Ok(k) => data.extend_from_slice(&k),
            Err(error) => failed.push(Failure { index, error }),
        }
        ends.push(data.len() as u32);
    });
    if !early.is_empty() {
        return Keys { data: Vec::new(), ends: vec![0; early.len()], failed: early };
    }
    Keys { data, ends, failed }
}

/// Records of many keys, lent where they lie in the host's batch: each handled in its own
/// context (entered when it needs the host: see `reads`), until the host says stop.
pub fn process<T: Process>(input: Batch) -> Vec<Result<()>> {
    let n = input.flags.len();
    let mut out = Vec::with_capacity(n);
    let mut stopped = false;
    crate::reads::begin();
    let failed = each_view::<T>(&input, |op, i, r| {
        if stopped || !crate::reads::next_record(i) {
            stopped = true;
            return;
        }
        crate::reads::enter(r.key.unwrap_or_default());
        CURRENT_TS.with(|c| c.set(r.timestamp));
        out.push(op.process_view(r));
    });
    crate::reads::end();
    CURRENT_TS.with(|c| c.set(None));
    if failed.is_empty() {
        out
    } else {
        // A batch that does not add up, or no operator: every record fails alike.
        failed.into_iter().map(|f| Err(f.error)).collect()
    }
}

pub fn on_timer<T: Process>(fired: Vec<Timer>) -> Result<()> {
    // Reads are kept within a `process` call only (one a trap ended may have left some).
    crate::reads::reset();
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

/// `migrate-state` of the optional `migrate` interface (`#[weir_sdk::process(migrate)]`).
pub fn migrate_state<T: crate::Migrate>(
    name: String,
    map_key: Option<Vec<u8>>,
    value: Vec<u8>,
) -> std::result::Result<Option<Vec<u8>>, String> {
    with_op::<T, _>(|op| op.migrate(&name, map_key.as_deref(), &value)).and_then(|r| r).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers by value: `"same"` unchanged, `"bad"` an error, `"whole"` a new record,
    /// anything else a new value.
    struct Mixed;

    impl Map for Mixed {
        fn open(_: &Config) -> Result<Self> {
            Ok(Mixed)
        }
        fn map(&mut self, rec: Record) -> Result<Record> {
            self.map_view(rec.view()).map(|m| m.apply(rec))
        }
        fn map_view(&mut self, rec: RecordView<'_>) -> Result<Mapped> {
            match rec.value {
                b"same" => Ok(Mapped::Unchanged),
                b"bad" => Err(Error::invalid_input("bad")),
                b"whole" => Ok(Mapped::Record(Record::from_bytes("new").with_timestamp(9))),
                b"stamp" => Ok(Mapped::value_as_is(Some(b"u7"), Some(70))),
                v => Mapped::json(&format!("{}+{}", String::from_utf8_lossy(v), rec.header("h").map_or(0, <[u8]>::len))),
            }
        }
    }

    fn batch(records: &[(&str, &[&str])]) -> Batch {
        let mut b = weir_batch::Builder::default();
        let mut headers = Vec::new();
        for (value, hs) in records {
            let index = b.push(Some(b"k"), value.as_bytes(), Some(5));
            headers.extend(hs.iter().map(|h| Header { index, name: "h".into(), value: h.as_bytes().to_vec() }));
        }
        Batch { data: b.data, ends: b.ends, timestamps: b.timestamps, flags: b.flags, headers }
    }

    #[test]
    fn map_answers_unchanged_records_by_flag_and_others_in_out() {
        init::<Mixed>("{}".into(), Mixed::open).unwrap();
        let m = map::<Mixed>(batch(&[
            ("same", &["x"]),
            ("a", &["xyz", "w"]),
            ("bad", &[]),
            ("whole", &["x"]),
            ("same", &[]),
            ("stamp", &["s"]),
        ]));
        assert_eq!(m.same, [1, 0, 0, 0, 1, 0]);
        assert_eq!(m.failed.iter().map(|f| f.index).collect::<Vec<_>>(), [2]);
        let out = weir_batch::Parts::new(&m.out.data, &m.out.ends, &m.out.timestamps, &m.out.flags).unwrap();
        let got: Vec<_> = out.iter().map(|r| (r.key, String::from_utf8_lossy(r.value).into_owned(), r.timestamp, r.value_as_is)).collect();
        // A new value keeps the input's key, time and headers; a whole record is as made; a
        // value as it is sends back only key and time (and no headers: the host keeps them).
        assert_eq!(
            got,
            [
                (Some(&b"k"[..]), "\"a+3\"".to_string(), Some(5), false),
                (None, "new".to_string(), Some(9), false),
                (Some(&b"u7"[..]), String::new(), Some(70), true)
            ]
        );
        let hs: Vec<_> = m.out.headers.iter().map(|h| (h.index, h.value.clone())).collect();
        assert_eq!(hs, [(0, b"xyz".to_vec()), (0, b"w".to_vec())]);

        // No record unchanged: `same` stays empty.
        assert!(map::<Mixed>(batch(&[("a", &[]), ("bad", &[])])).same.is_empty());
    }

    #[test]
    fn a_view_copies_into_the_record_it_views() {
        let r = Record { key: Some(b"k".to_vec()), value: b"v".to_vec(), timestamp: None, headers: vec![("a".into(), b"1".to_vec())] };
        let c = r.view().to_record();
        assert_eq!((c.key, c.value, c.timestamp, c.headers), (r.key.clone(), r.value.clone(), r.timestamp, r.headers.clone()));
        let b = batch(&[("one", &["p", "q"]), ("two", &[])]);
        let parts = weir_batch::Parts::new(&b.data, &b.ends, &b.timestamps, &b.flags).unwrap();
        let v = RecordView::of_batch(parts.get(0), &b.headers[..2]);
        assert_eq!(v.headers().collect::<Vec<_>>(), [("h", &b"p"[..]), ("h", &b"q"[..])]);
        assert_eq!(v.to_record().headers, [("h".to_string(), b"p".to_vec()), ("h".to_string(), b"q".to_vec())]);
        assert_eq!(Mapped::Value(b"x".to_vec()).apply(r.clone()).value, b"x");
        assert_eq!(Mapped::Unchanged.apply(r.clone()).value, b"v");
        let stamped = Mapped::value_as_is(Some(b"u"), None).apply(r.clone());
        assert_eq!(
            (stamped.key, stamped.value, stamped.timestamp, stamped.headers),
            (Some(b"u".to_vec()), r.value, r.timestamp, r.headers)
        );
    }
}
