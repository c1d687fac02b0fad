//! The flat batch layout of `wit/weir.wit` (`record batch`), in one place for both sides.
//!
//! A batch of `n` records is four flat lists: `data` (keys and values back to back),
//! `ends` (two offsets per record: end of key, end of value), `timestamps` and `flags` (one
//! entry per record). Each list crosses the Wasm boundary as one copy, so a call costs a
//! handful of copies whatever the number of records. Headers travel beside, as a list of
//! `(record index, name, value)`; they are rare and stay in the generated types.
//!
//! [`Builder`] writes the layout, [`Parts`] reads and checks it.

#![no_std]
extern crate alloc;

pub mod writes;

use alloc::vec::Vec;
use core::fmt;

/// `flags` bit: the record has a key.
pub const HAS_KEY: u8 = 1;
/// `flags` bit: the record has an event time.
pub const HAS_TIMESTAMP: u8 = 2;
/// `flags` bit, only in a `map` answer: the record keeps the value and headers of the input
/// record it answers for; `data` holds none of its value, only its key. What crosses back is
/// the key and event time: a map that reads fields out of a record and hands them to the host
/// (key, event time) sends back a few bytes instead of the value.
pub const VALUE_AS_IS: u8 = 4;

/// One record of a batch, borrowed from its lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The key, when the record has one.
    pub key: Option<&'a [u8]>,
    /// The value.
    pub value: &'a [u8],
    /// Event time in epoch ms, when the record has one.
    pub timestamp: Option<i64>,
    /// The value and headers are the input record's ([`VALUE_AS_IS`]); `value` is empty.
    pub value_as_is: bool,
}

/// Why lists do not form a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutError(pub &'static str, pub usize);

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed batch: {} (record {})", self.0, self.1)
    }
}

/// The lists of a batch, checked: every record can be read without a further check.
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    data: &'a [u8],
    ends: &'a [u32],
    timestamps: &'a [i64],
    flags: &'a [u8],
}

impl<'a> Parts<'a> {
    /// Checks that the lists agree: one flag and timestamp and two ends per record, ends
    /// increasing and within `data`.
    pub fn new(data: &'a [u8], ends: &'a [u32], timestamps: &'a [i64], flags: &'a [u8]) -> Result<Self, LayoutError> {
        let n = flags.len();
        if timestamps.len() != n {
            return Err(LayoutError("timestamps and flags differ in length", n));
        }
        if ends.len() != 2 * n {
            return Err(LayoutError("ends must hold two offsets per record", n));
        }
        let mut at = 0u32;
        for (i, &e) in ends.iter().enumerate() {
            if e < at {
                return Err(LayoutError("ends decrease", i / 2));
            }
            at = e;
        }
        if at as usize > data.len() {
            return Err(LayoutError("ends point past the data", n.saturating_sub(1)));
        }
        for (i, &f) in flags.iter().enumerate() {
            if f & VALUE_AS_IS != 0 && ends[2 * i] != ends[2 * i + 1] {
                return Err(LayoutError("a record with its value as it is holds value bytes", i));
            }
        }
        Ok(Parts { data, ends, timestamps, flags })
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// Record `i` (`i < len()`).
    pub fn get(&self, i: usize) -> RecordRef<'a> {
        let start = if i == 0 { 0 } else { self.ends[2 * i - 1] as usize };
        let key_end = self.ends[2 * i] as usize;
        let end = self.ends[2 * i + 1] as usize;
        let f = self.flags[i];
        RecordRef {
            key: (f & HAS_KEY != 0).then(|| &self.data[start..key_end]),
            value: &self.data[key_end..end],
            timestamp: (f & HAS_TIMESTAMP != 0).then(|| self.timestamps[i]),
            value_as_is: f & VALUE_AS_IS != 0,
        }
    }

    /// The records in order (walking the lists side by side: fewer bounds checks than
    /// [`Self::get`] per record).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = RecordRef<'a>> + '_ {
        let data = self.data;
        let mut start = 0;
        self.ends.chunks_exact(2).zip(self.flags).zip(self.timestamps).map(move |((e, &f), &t)| {
            let (key_end, end) = (e[0] as usize, e[1] as usize);
            let key = (f & HAS_KEY != 0).then(|| &data[start..key_end]);
            let value = &data[key_end..end];
            start = end;
            RecordRef { key, value, timestamp: (f & HAS_TIMESTAMP != 0).then_some(t), value_as_is: f & VALUE_AS_IS != 0 }
        })
    }
}

/// Checks the record indexes of a batch's headers: in order and below `n` (the number of
/// records), so headers can be handed out record by record in one pass.
pub fn check_header_indexes(indexes: impl IntoIterator<Item = u32>, n: usize) -> Result<(), LayoutError> {
    let mut last = 0;
    for i in indexes {
        if i < last {
            return Err(LayoutError("headers out of order", i as usize));
        }
        if i as usize >= n {
            return Err(LayoutError("a header past the last record", i as usize));
        }
        last = i;
    }
    Ok(())
}

/// Writes records into the flat lists; reuse one to keep its capacity.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Builder {
    /// Keys and values.
    pub data: Vec<u8>,
    /// Two ends per record.
    pub ends: Vec<u32>,
    /// One event time per record (0 when absent).
    pub timestamps: Vec<i64>,
    /// One flag byte per record.
    pub flags: Vec<u8>,
}

impl Builder {
    /// Empties the lists, keeping their capacity.
    pub fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
        self.timestamps.clear();
        self.flags.clear();
    }

    /// Appends a record; returns its index.
    ///
    /// # Panics
    /// When the batch's data passes 4 GiB (offsets are `u32`); callers cut batches far
    /// smaller.
    #[inline(always)]
    pub fn push(&mut self, key: Option<&[u8]>, value: &[u8], timestamp: Option<i64>) -> u32 {
        let index = self.flags.len() as u32;
        if let Some(k) = key {
            self.data.extend_from_slice(k);
        }
        self.ends.push(offset(self.data.len()));
        self.data.extend_from_slice(value);
        self.ends.push(offset(self.data.len()));
        self.timestamps.push(timestamp.unwrap_or(0));
        self.flags.push(if key.is_some() { HAS_KEY } else { 0 } | if timestamp.is_some() { HAS_TIMESTAMP } else { 0 });
        index
    }

    /// Appends a record that keeps the value and headers of the input record it answers for
    /// (only in a `map` answer, see [`VALUE_AS_IS`]); returns its index.
    #[inline(always)]
    pub fn push_value_as_is(&mut self, key: Option<&[u8]>, timestamp: Option<i64>) -> u32 {
        let index = self.push(key, &[], timestamp);
        self.flags[index as usize] |= VALUE_AS_IS;
        index
    }

    /// Makes room for `records` more records holding `bytes` of keys and values in all.
    pub fn reserve(&mut self, records: usize, bytes: usize) {
        self.data.reserve(bytes);
        self.ends.reserve(2 * records);
        self.timestamps.reserve(records);
        self.flags.reserve(records);
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// Whether no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// A checked view (always valid for what `push` wrote).
    pub fn parts(&self) -> Parts<'_> {
        Parts { data: &self.data, ends: &self.ends, timestamps: &self.timestamps, flags: &self.flags }
    }
}

fn offset(n: usize) -> u32 {
    u32::try_from(n).expect("a batch holds less than 4 GiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_records() {
        let mut b = Builder::default();
        assert_eq!(b.push(Some(b"k"), b"v1", Some(-5)), 0);
        assert_eq!(b.push(None, b"", None), 1);
        assert_eq!(b.push(Some(b""), b"value", Some(7)), 2);
        assert_eq!(b.push_value_as_is(Some(b"u1"), Some(9)), 3);
        let p = Parts::new(&b.data, &b.ends, &b.timestamps, &b.flags).unwrap();
        let got: Vec<RecordRef> = p.iter().collect();
        assert_eq!(
            got,
            [
                RecordRef { key: Some(b"k"), value: b"v1", timestamp: Some(-5), value_as_is: false },
                RecordRef { key: None, value: b"", timestamp: None, value_as_is: false },
                RecordRef { key: Some(b""), value: b"value", timestamp: Some(7), value_as_is: false },
                RecordRef { key: Some(b"u1"), value: b"", timestamp: Some(9), value_as_is: true },
            ]
        );
        assert_eq!((0..4).map(|i| p.get(i)).collect::<Vec<_>>(), got);
        b.clear();
        assert!(b.parts().is_empty());
    }

    #[test]
    fn rejects_lists_that_disagree() {
        let data = b"abc";
        assert_eq!(Parts::new(data, &[1, 2], &[0, 0], &[0, 0]).unwrap_err().0, "ends must hold two offsets per record");
        assert_eq!(Parts::new(data, &[1, 2, 2, 1], &[0, 0], &[0, 0]).unwrap_err(), LayoutError("ends decrease", 1));
        assert_eq!(Parts::new(data, &[1, 4], &[0], &[0]).unwrap_err().0, "ends point past the data");
        assert_eq!(Parts::new(data, &[1, 3], &[0, 1], &[0]).unwrap_err().0, "timestamps and flags differ in length");
        assert!(Parts::new(data, &[1, 3], &[0], &[3]).is_ok());
        assert!(Parts::new(data, &[1, 1], &[0], &[VALUE_AS_IS]).is_ok());
        assert_eq!(
            Parts::new(data, &[1, 3], &[0], &[VALUE_AS_IS]).unwrap_err(),
            LayoutError("a record with its value as it is holds value bytes", 0)
        );
    }

    #[test]
    fn header_indexes_must_be_in_order_and_in_range() {
        assert!(check_header_indexes([0, 0, 2], 3).is_ok());
        assert!(check_header_indexes([], 0).is_ok());
        assert_eq!(check_header_indexes([1, 0], 3), Err(LayoutError("headers out of order", 0)));
        assert_eq!(check_header_indexes([0, 3], 3), Err(LayoutError("a header past the last record", 3)));
    }
}
