//! The state write log of `context.enter-with-writes` and `state.apply-writes`.
//!
//! Inside a `process` call a guest may hold back the value and list writes of the record at
//! hand and hand them to the host in one list, with the `enter` of the next record (or, for
//! the last one, in one `apply-writes`): one crossing for the record instead of one per
//! write. The host applies them in order, in the context of the record that made them,
//! before it makes the next record current. A record whose call traps has then changed no
//! state at all.
//!
//! Each write is an op byte, the state name (u32 LE length, UTF-8 bytes), and then: for
//! [`VALUE_SET`] and [`LIST_ADD`] one value (u32 LE length, bytes); for [`LIST_UPDATE`] a
//! u32 LE count and that many values; for [`VALUE_CLEAR`] and [`LIST_CLEAR`] nothing.
//!
//! A [`RECORD`] entry (the op byte and a u32 LE record index, no name) says that the writes
//! after it belong to that record of the call's batch: a guest that enters only the records
//! that need the host for something else (a read it has not kept, an emit, a timer) hands
//! the writes of the others over in the log of a later crossing, each under its record.

use alloc::vec::Vec;

use crate::LayoutError;

/// `value-set(name, value)`.
pub const VALUE_SET: u8 = 1;
/// `value-clear(name)`.
pub const VALUE_CLEAR: u8 = 2;
/// `list-add(name, value)`.
pub const LIST_ADD: u8 = 3;
/// `list-update(name, values)`.
pub const LIST_UPDATE: u8 = 4;
/// `list-clear(name)`.
pub const LIST_CLEAR: u8 = 5;
/// The writes after it belong to record `index` of the call's batch.
pub const RECORD: u8 = 6;

/// One write of a log, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write<'a> {
    /// `value-set`.
    ValueSet(&'a str, &'a [u8]),
    /// `value-clear`.
    ValueClear(&'a str),
    /// `list-add`.
    ListAdd(&'a str, &'a [u8]),
    /// `list-update`: the values, read with [`Values`].
    ListUpdate(&'a str, Values<'a>),
    /// `list-clear`.
    ListClear(&'a str),
    /// The writes after it belong to this record of the call's batch.
    Record(u32),
}

/// The values of a [`Write::ListUpdate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Values<'a> {
    count: u32,
    bytes: &'a [u8],
}

impl<'a> Values<'a> {
    /// How many values there are.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The values in order (checked when the log was read).
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut at = 0;
        let bytes = self.bytes;
        (0..self.count).map(move |_| {
            let (v, next) = bytes_at(bytes, at).expect("checked when read");
            at = next;
            v
        })
    }
}

fn put(log: &mut Vec<u8>, bytes: &[u8]) {
    log.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    log.extend_from_slice(bytes);
}

/// Appends a write without values ([`VALUE_CLEAR`], [`LIST_CLEAR`]).
pub fn push_clear(log: &mut Vec<u8>, op: u8, name: &str) {
    log.push(op);
    put(log, name.as_bytes());
}

/// Appends a write of one value ([`VALUE_SET`], [`LIST_ADD`]).
pub fn push_value(log: &mut Vec<u8>, op: u8, name: &str, value: &[u8]) {
    push_clear(log, op, name);
    put(log, value);
}

/// Appends a [`RECORD`]: the writes after it belong to record `index`.
pub fn push_record(log: &mut Vec<u8>, index: u32) {
    log.push(RECORD);
    log.extend_from_slice(&index.to_le_bytes());
}

/// Appends a [`LIST_UPDATE`].
pub fn push_values<V: AsRef<[u8]>>(log: &mut Vec<u8>, name: &str, values: &[V]) {
    push_clear(log, LIST_UPDATE, name);
    log.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for v in values {
        put(log, v.as_ref());
    }
}

fn u32_at(log: &[u8], at: usize) -> Option<(u32, usize)> {
    let b = log.get(at..at.checked_add(4)?)?;
    Some((u32::from_le_bytes([b[0], b[1], b[2], b[3]]), at + 4))
}

fn bytes_at(log: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let (len, at) = u32_at(log, at)?;
    let end = at.checked_add(len as usize)?;
    Some((log.get(at..end)?, end))
}

/// The writes of `log` in order, each checked whole before it is given; the first that does
/// not read gives an error (with its offset) and ends the walk.
pub fn read(log: &[u8]) -> impl Iterator<Item = Result<Write<'_>, LayoutError>> + '_ {
    let mut at = 0usize;
    core::iter::from_fn(move || {
        if at >= log.len() {
            return None;
        }
        let start = at;
        let w = read_one(log, &mut at);
        if w.is_none() {
            at = log.len();
        }
        Some(w.ok_or(LayoutError("state write log entry does not read", start)))
    })
}

fn read_one<'a>(log: &'a [u8], at: &mut usize) -> Option<Write<'a>> {
    let op = *log.get(*at)?;
    if op == RECORD {
        let (index, next) = u32_at(log, *at + 1)?;
        *at = next;
        return Some(Write::Record(index));
    }
    let (name, next) = bytes_at(log, *at + 1)?;
    let name = core::str::from_utf8(name).ok()?;
    let (w, next) = match op {
        VALUE_SET | LIST_ADD => {
            let (v, next) = bytes_at(log, next)?;
            (if op == VALUE_SET { Write::ValueSet(name, v) } else { Write::ListAdd(name, v) }, next)
        }
        VALUE_CLEAR => (Write::ValueClear(name), next),
        LIST_CLEAR => (Write::ListClear(name), next),
        LIST_UPDATE => {
            let (count, first) = u32_at(log, next)?;
            let mut end = first;
            for _ in 0..count {
                end = bytes_at(log, end)?.1;
            }
            (Write::ListUpdate(name, Values { count, bytes: &log[first..end] }), end)
        }
        _ => return None,
    };
    *at = next;
    Some(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn a_log_reads_back_what_was_written_in_order() {
        let mut log = Vec::new();
        push_value(&mut log, VALUE_SET, "last_login", b"17");
        push_clear(&mut log, LIST_CLEAR, "fails");
        push_value(&mut log, LIST_ADD, "fails", b"");
        push_values(&mut log, "fails", &[b"1".to_vec(), b"22".to_vec()]);
        push_values::<&[u8]>(&mut log, "none", &[]);
        push_clear(&mut log, VALUE_CLEAR, "flagged");
        push_record(&mut log, 7);
        push_record(&mut log, u32::MAX);
        push_clear(&mut log, LIST_CLEAR, "fails");
        let got: Vec<_> = read(&log).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 9);
        assert_eq!(got[6..], [Write::Record(7), Write::Record(u32::MAX), Write::ListClear("fails")]);
        assert_eq!(got[0], Write::ValueSet("last_login", b"17"));
        assert_eq!(got[1], Write::ListClear("fails"));
        assert_eq!(got[2], Write::ListAdd("fails", b""));
        let Write::ListUpdate("fails", vs) = got[3] else { panic!("{:?}", got[3]) };
        assert_eq!(vs.iter().collect::<Vec<_>>(), vec![&b"1"[..], b"22"]);
        let Write::ListUpdate("none", none) = got[4] else { panic!("{:?}", got[4]) };
        assert!(none.is_empty());
        assert_eq!(got[5], Write::ValueClear("flagged"));
    }

    #[test]
    fn a_cut_or_unknown_entry_is_an_error_after_the_good_ones() {
        let mut log = Vec::new();
        push_value(&mut log, VALUE_SET, "a", b"1");
        let good = log.len();
        push_values(&mut log, "b", &[b"xy".to_vec()]);
        for cut in good + 1..log.len() {
            let got: Vec<_> = read(&log[..cut]).collect();
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert_eq!(got[0], Ok(Write::ValueSet("a", b"1")));
            assert_eq!(got[1], Err(LayoutError("state write log entry does not read", good)));
        }
        let mut unknown = log.clone();
        unknown[good] = 9;
        assert_eq!(read(&unknown).filter(Result::is_err).count(), 1);
        // A record entry cut short.
        let mut record = Vec::new();
        push_record(&mut record, 3);
        assert_eq!(read(&record[..4]).collect::<Vec<_>>(), [Err(LayoutError("state write log entry does not read", 0))]);
        // A name that is not UTF-8.
        let mut bad = Vec::new();
        push_clear(&mut bad, LIST_CLEAR, "n");
        bad[5] = 0xff;
        assert!(read(&bad).next().unwrap().is_err());
    }
}
