//! Records and batches: what flows between operators.
//!
//! A [`Batch`] carries records plus in-band watermark marks: `(i, w)` says the watermark
//! advances to `w` just before record `i` (`i == len` means after the last one). With
//! per-event watermarks this keeps Flink's exact interleaving of records and watermarks
//! while data still moves in large batches.

/// Where a record came from, for dead-letter reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Origin {
    /// Index of the source in the job (declaration order).
    pub source: u16,
    /// 1-based line (file), index (collection), sequence number (generator) or offset (Kafka);
    /// 0 when unknown.
    pub position: u64,
    /// The part of the source it came from, whose event time advances on its own (a Kafka
    /// partition); 0 for sources of one part.
    pub split: u32,
    /// When the record entered the job ([`crate::time::mono_ns`]); 0 when unknown. Records
    /// derived from it (map, process emits) keep it, so sinks can measure latency.
    pub ingest_ns: u64,
}

/// One record of a stream.
#[derive(Debug, Default, PartialEq)]
pub struct Record {
    /// The key set by the last key-by, if any.
    pub key: Option<Key>,
    /// The payload; JSON unless the job says otherwise.
    pub value: Vec<u8>,
    /// Event time in epoch milliseconds.
    pub timestamp: Option<i64>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Where the record entered the job.
    pub origin: Origin,
    /// What the source (or an operator reading event time from a field) read ahead in its
    /// walk over the value, for operators downstream: keys, `(key-by id, key bytes)`, and
    /// where the members the plugins downstream read lie, `(`[`SPAN_SET`]`, spans)`; kept
    /// only while the value stays byte-for-byte the same.
    pub prekeys: Prekeys,
}

/// [`Record::prekeys`]: the first two live in the record itself, and (see [`Key`]) so do
/// their bytes when short: a record is made on one thread and freed on another, and such
/// frees are among the dearest work mimalloc does.
pub type Prekeys = smallvec::SmallVec<[(u16, Key); 2]>;

/// A copy of `prekeys`, each key copied at once (see [`Record`]'s `Clone`).
pub fn copy_prekeys<'a>(prekeys: impl IntoIterator<Item = &'a (u16, Key)>) -> Prekeys {
    prekeys.into_iter().map(|(id, k)| (*id, Key::from_slice(k))).collect()
}

/// Copies keys at once: a `SmallVec`'s own `clone` (and its `From<&[u8]>`) pushes them byte
/// by byte, which cost the log-analyzer's keyed threads 8 % of their time where records and
/// keys were copied per record (BENCHMARKS.md, session 20). Copy a lone [`Key`] with
/// `Key::from_slice` for the same reason.
impl Clone for Record {
    fn clone(&self) -> Record {
        Record {
            key: self.key.as_deref().map(Key::from_slice),
            value: self.value.clone(),
            timestamp: self.timestamp,
            headers: self.headers.clone(),
            origin: self.origin,
            prekeys: copy_prekeys(&self.prekeys),
        }
    }
}

/// The bit of a [`Record::prekeys`] id that marks spans rather than a key: for each member
/// the plugins fed by a walk ask for (`read-fields`), in order, where its value lies in the
/// record's value, or `(0, 0)` where the walk did not find it once (`field-spans`); then
/// how many members the value has (`member-counts`).
pub const SPAN_SET: u16 = 0x8000;

/// The bytes of a [`SPAN_SET`] entry: each `(start, end)` as the start and the length, then
/// the count of `members`, each a LEB128 varint. A log line's seven members then take about
/// 18 bytes, which a [`Key`] holds inline: the entry allocates nothing where it is made and
/// frees nothing on the thread that drops the record (as four-byte offsets it would take 60).
pub fn spans_entry(spans: impl IntoIterator<Item = (u32, u32)>, members: u32) -> Key {
    let mut entry = Key::new();
    let mut put = |mut x: u32| {
        while x >= 0x80 {
            entry.push(x as u8 | 0x80);
            x >>= 7;
        }
        entry.push(x as u8);
    };
    for (start, end) in spans {
        put(start);
        put(end.saturating_sub(start));
    }
    put(members);
    entry
}

/// The offsets a [`SPAN_SET`] entry holds, into `out` (two per member, start and end), and
/// the count of members it gives; `None`, and `out` unusable, when the entry does not hold
/// exactly as many.
pub fn read_spans(entry: &[u8], out: &mut [u32]) -> Option<u32> {
    let mut at = 0;
    let mut next = || -> Option<u32> {
        let mut x = 0u32;
        for shift in [0, 7, 14, 21, 28] {
            let b = *entry.get(at)?;
            at += 1;
            if shift == 28 && b > 0x0f {
                return None; // more than 32 bits
            }
            x |= u32::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(x);
            }
        }
        None
    };
    if !out.len().is_multiple_of(2) {
        return None;
    }
    for pair in out.chunks_exact_mut(2) {
        let (start, len) = (next()?, next()?);
        (pair[0], pair[1]) = (start, start.checked_add(len)?);
    }
    let members = next()?;
    (at == entry.len()).then_some(members)
}

/// A record's key bytes: up to 24 bytes (user ids, session ids, most field values) live in
/// the record itself. A key is made where a record is keyed (often the source's thread) and
/// freed where the record ends (a window's), and a heap block made on one thread and freed
/// on another is among the dearest things an allocator does: on the flagship job the key's
/// allocation had been a sixth of the source thread's time.
pub type Key = smallvec::SmallVec<[u8; 24]>;

/// Asks the processor to load the first cache lines of `bytes` (up to 256 bytes) ahead of
/// their use: a record's value is written on one thread and first read on another, and a
/// loop over a batch that reads each value otherwise waits on memory for every record in
/// turn. A hint only: where there is no prefetch instruction, nothing happens.
#[inline(always)]
#[allow(unsafe_code)]
pub fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64).take(4) {
        // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 processor has; it is a hint
        // that reads nothing the program sees and cannot fault, here given an address inside
        // `bytes`.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

impl Record {
    /// A record with a value and nothing else.
    pub fn new(value: Vec<u8>) -> Record {
        Record { value, ..Record::default() }
    }
}

/// A watermark mark inside a batch: before record `index`, the watermark becomes `watermark`.
pub type Mark = (u32, i64);

/// Records with their in-band watermark marks (sorted by index, increasing watermarks).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The records.
    pub records: Vec<Record>,
    /// Watermark marks, sorted by index.
    pub marks: Vec<Mark>,
}

impl Batch {
    /// A batch without marks.
    pub fn of(records: Vec<Record>) -> Batch {
        Batch { records, marks: Vec::new() }
    }

    /// Whether the batch carries neither records nor marks.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.marks.is_empty()
    }

    /// The last watermark in the batch, if any.
    pub fn last_watermark(&self) -> Option<i64> {
        self.marks.last().map(|m| m.1)
    }
}

/// Adds a mark before record `at` as [`BatchBuilder::mark`] does (one no higher than the
/// last mark is dropped), for code that fills a batch's records in place.
pub fn add_mark(marks: &mut Vec<Mark>, at: usize, wm: i64) {
    if marks.last().is_none_or(|last| last.1 < wm) {
        marks.push((at as u32, wm));
    }
}

/// Builds an output batch while an operator walks its input: records and marks are appended
/// in order, so marks land at the right output index whatever the operator drops or adds.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    batch: Batch,
}

impl BatchBuilder {
    /// A builder with room for `records` records.
    pub fn with_capacity(records: usize) -> BatchBuilder {
        BatchBuilder { batch: Batch { records: Vec::with_capacity(records), marks: Vec::new() } }
    }
    /// Appends a record.
    pub fn push(&mut self, r: Record) {
        self.batch.records.push(r);
    }
    /// Makes room for `n` more records.
    pub fn reserve(&mut self, n: usize) {
        self.batch.records.reserve(n);
    }
    /// Appends a watermark mark after the records pushed so far; one no higher than the
    /// last mark is dropped. Marks at the same position stay apart, so an operator that
    /// reads no record between two watermarks still advances through both, as a Flink
    /// subtask does (timers due at the first fire seeing it as the watermark).
    pub fn mark(&mut self, wm: i64) {
        add_mark(&mut self.batch.marks, self.batch.records.len(), wm);
    }
    /// Appends a whole batch, its marks after the records before them as [`Self::mark`]
    /// places them. Into an empty builder the batch moves as it is: no record is moved.
    pub fn append(&mut self, batch: Batch) {
        if self.batch.is_empty() {
            self.batch = batch;
            return;
        }
        let mut marks = batch.marks.into_iter().peekable();
        for (i, r) in batch.records.into_iter().enumerate() {
            while let Some((_, w)) = marks.next_if(|m| m.0 as usize <= i) {
                self.mark(w);
            }
            self.push(r);
        }
        marks.for_each(|(_, w)| self.mark(w));
    }
    /// Number of records so far.
    pub fn len(&self) -> usize {
        self.batch.records.len()
    }
    /// Whether nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }
    /// The finished batch.
    pub fn finish(self) -> Batch {
        self.batch
    }
    /// Takes what was built so far, leaving the builder empty.
    pub fn take(&mut self) -> Batch {
        std::mem::take(&mut self.batch)
    }
}

/// Messages on a channel between tasks.
#[derive(Debug)]
pub enum Message {
    /// Records with in-band watermarks.
    Data(Batch),
    /// A watermark on its own (periodic emission, idleness ends, end of input).
    Watermark(i64),
    /// The sending input became idle (true) or active again (false).
    Idle(bool),
    /// Checkpoint barrier `id`: snapshot into the given checkpoint folder when it passed.
    Barrier(u64, std::sync::Arc<std::path::Path>),
    /// The sender has no more data.
    End,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_is_equal_with_short_and_long_keys() {
        let long = Key::from_slice(&[7; 40]);
        let r = Record {
            key: Some(Key::from_slice(b"user38")),
            value: b"{}".to_vec(),
            timestamp: Some(5),
            headers: vec![("h".into(), b"v".to_vec())],
            origin: Origin { source: 1, position: 2, split: 3, ingest_ns: 4 },
            prekeys: smallvec::smallvec![(1, Key::from_slice(b"a")), (SPAN_SET, long.clone()), (3, long)],
        };
        assert_eq!(r.clone(), r);
        assert_eq!(Record { key: None, ..Record::default() }.clone(), Record::default());
    }

    #[test]
    fn span_entries_read_back_what_was_written_and_nothing_else() {
        let spans = [(0, 0), (1, 127), (12, 140), (200, 70_000), (0, u32::MAX), (u32::MAX, u32::MAX), (16_383, 16_384)];
        let entry = spans_entry(spans, 9);
        let mut out = [0u32; 14];
        assert_eq!(read_spans(&entry, &mut out), Some(9));
        assert_eq!(out.chunks_exact(2).map(|p| (p[0], p[1])).collect::<Vec<_>>(), spans);
        // A log line's seven members stay inline.
        let line = [(12, 20), (36, 50), (62, 68), (83, 93), (110, 120), (136, 164), (178, 186)];
        assert!(!spans_entry(line, 7).spilled());
        // Too few, too many, cut short, or more than 32 bits: refused.
        assert_eq!(read_spans(&entry, &mut [0; 12]), None);
        assert_eq!(read_spans(&entry, &mut [0; 16]), None);
        assert_eq!(read_spans(&entry[..entry.len() - 1], &mut out), None);
        assert_eq!(read_spans(&[0, 0xff, 0xff, 0xff, 0xff, 0x1f, 0], &mut [0; 2]), None);
        assert_eq!(read_spans(&[0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0], &mut [0; 2]), Some(0));
        // An end past u32::MAX is refused too.
        assert_eq!(read_spans(&[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0], &mut [0; 2]), None);
    }

    #[test]
    fn builder_keeps_every_rising_mark_and_drops_the_others() {
        let mut b = BatchBuilder::default();
        b.mark(1);
        b.mark(2);
        b.mark(2);
        b.push(Record::new(vec![]));
        b.mark(1);
        b.mark(3);
        let b = b.finish();
        assert_eq!(b.marks, vec![(0, 1), (0, 2), (1, 3)]);
    }

    #[test]
    fn append_moves_into_an_empty_builder_and_places_marks_after_earlier_records() {
        let batch =
            |vals: &[&str], marks: Vec<Mark>| Batch { records: vals.iter().map(|v| Record::new(v.as_bytes().to_vec())).collect(), marks };
        let values = |b: &Batch| b.records.iter().map(|r| String::from_utf8(r.value.clone()).unwrap()).collect::<Vec<_>>();
        let mut b = BatchBuilder::default();
        b.append(batch(&["a", "b"], vec![(1, 5), (2, 6)]));
        b.append(batch(&["c"], vec![(0, 6), (0, 7), (1, 8)]));
        b.append(Batch { records: Vec::new(), marks: vec![(0, 9)] });
        let b = b.finish();
        assert_eq!(values(&b), ["a", "b", "c"]);
        // 6 again is dropped; the second batch's marks land after the first batch's records.
        assert_eq!(b.marks, vec![(1, 5), (2, 6), (2, 7), (3, 8), (3, 9)]);
    }
}
