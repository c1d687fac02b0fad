//! Open windows held by window, for the windows that need no timer of their own: fixed
//! shapes (tumbling, sliding) on event time with no allowed lateness, on the memory backend.
//!
//! Such a window fires once, when the watermark reaches its end, and is then gone; all of a
//! window's keys fire together. So instead of a state entry under `(key group, "w", key,
//! window)` and a timer per key and window, each open window holds a table of its keys'
//! states, and the tables are kept in end order: a record costs one hash of its key in its
//! window's table (no key group, no state key, no timer), and a watermark takes whole
//! tables off the front (BENCHMARKS.md, session 17, has what it saves).
//!
//! Snapshots do not change: at a barrier the open windows are written as the backend and
//! the timers would hold them, and a restore takes them back from there, so a job can
//! restore from either kind of snapshot, on either backend, at any parallelism.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use hashbrown::HashTable;
use weir_core::record::Key;

/// One window's states: `(key, state)` in the order the keys came, and an index of them by
/// key. When the window fires its states are taken whole (the list swapped out, no state
/// moved): a state with its key is 144 bytes, and moving each out of a hash table was
/// about 3 % of the log-analyzer's keyed threads in real time (`perf`).
#[derive(Debug)]
struct Table<T> {
    entries: Vec<(Key, T)>,
    /// Positions in `entries`, found by the hash of the key.
    index: HashTable<u32>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table { entries: Vec::new(), index: HashTable::new() }
    }
}

/// The hash of a key in a [`Table`].
fn hash(key: &[u8]) -> u64 {
    foldhash::fast::FixedState::default().hash_one(key)
}

/// Emptied tables kept for the next windows to open (each has grown to its window's keys).
const SPARE_TABLES: usize = 8;

/// The open windows' states by window, then key.
#[derive(Debug)]
pub(crate) struct Panes<T> {
    /// Tables by `(end, start)`: the first one fires first.
    open: BTreeMap<(i64, i64), Table<T>>,
    spare: Vec<Table<T>>,
    len: usize,
    /// The firing window's keys as [`timer_place`]s with their positions, reused.
    places: Vec<(u128, u32)>,
}

impl<T> Default for Panes<T> {
    fn default() -> Self {
        Panes { open: BTreeMap::new(), spare: Vec::new(), len: 0, places: Vec::new() }
    }
}

/// A key's place in timer order (by length, then bytes) as one number: its length, then its
/// first 15 bytes; all keys of 255 bytes or more get the same number. Keys of different
/// numbers are in the numbers' order; keys of the same number (long ones with a common
/// start) are ordered by length and bytes. Sorting the numbers costs no byte comparisons,
/// which were most of a firing window's sort (each a call to `memcmp`, with branches that
/// are hard to predict).
fn timer_place(key: &[u8]) -> u128 {
    let mut b = [u8::MAX; 16];
    if key.len() < 255 {
        b = [0; 16];
        b[0] = key.len() as u8;
        let n = key.len().min(15);
        b[1..1 + n].copy_from_slice(&key[..n]);
    }
    u128::from_be_bytes(b)
}

impl<T> Panes<T> {
    /// The state of `key` in window `w` (`(start, end)`), made by `new` when the window has
    /// none for it yet.
    pub fn get_or_insert_with(&mut self, w: (i64, i64), key: &[u8], new: impl FnOnce() -> T) -> &mut T {
        let spare = &mut self.spare;
        let table = self.open.entry((w.1, w.0)).or_insert_with(|| spare.pop().unwrap_or_default());
        let entries = &mut table.entries;
        let h = hash(key);
        let at = match table.index.find(h, |&i| weir_json::equal(&entries[i as usize].0, key)) {
            Some(&i) => i as usize,
            None => {
                let i = entries.len();
                table.index.insert_unique(h, i as u32, |&j| hash(&entries[j as usize].0));
                // Copied at once (see `Record`'s `Clone`).
                entries.push((Key::from_slice(key), new()));
                self.len += 1;
                i
            }
        };
        &mut entries[at].1
    }

    /// Puts `state` as the state of `key` in window `w` (a restore).
    pub fn insert(&mut self, w: (i64, i64), key: &[u8], state: T) {
        let mut state = Some(state);
        let slot = self.get_or_insert_with(w, key, || state.take().expect("taken once"));
        if let Some(s) = state {
            *slot = s;
        }
    }

    /// Whether a window's end - 1 is at or before `upto` ([`Panes::pop_due`] has one).
    pub fn due(&self, upto: i64) -> bool {
        self.open.first_key_value().is_some_and(|(&(end, _), _)| end - 1 <= upto)
    }

    /// Takes the earliest window whose end - 1 is at or before `upto` out, its states into
    /// `into` (the window's own list, swapped with what `into` held) and their positions
    /// there into `order` in key order (by length, then bytes: the order its timers fired
    /// in), and says which window it was. Positions are sorted, not the states: a state
    /// with its key is 144 bytes, and moving them was most of a sort's cost.
    pub fn pop_due(&mut self, upto: i64, into: &mut Vec<(Key, T)>, order: &mut Vec<u32>) -> Option<(i64, i64)> {
        let entry = self.open.first_entry().filter(|e| e.key().0 - 1 <= upto)?;
        let (end, start) = *entry.key();
        let mut table = entry.remove();
        into.clear();
        std::mem::swap(into, &mut table.entries);
        table.index.clear();
        let places = &mut self.places;
        places.clear();
        places.extend(into.iter().enumerate().map(|(i, (k, _))| (timer_place(k), i as u32)));
        // The keys' bytes are compared only where their numbers are the same.
        let key = |i: u32| into[i as usize].0.as_slice();
        places.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| (key(a.1).len(), key(a.1)).cmp(&(key(b.1).len(), key(b.1)))));
        order.clear();
        order.extend(places.iter().map(|p| p.1));
        self.len -= into.len();
        if self.spare.len() < SPARE_TABLES {
            self.spare.push(table);
        }
        Some((start, end))
    }

    /// Every open window's states: `(window, key, state)`.
    pub fn iter(&self) -> impl Iterator<Item = ((i64, i64), &Key, &T)> {
        self.open.iter().flat_map(|(&(end, start), t)| t.entries.iter().map(move |(k, s)| ((start, end), k, s)))
    }

    /// States held, over all windows.
    pub fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_fire_in_end_order_with_their_keys_in_timer_order() {
        let mut p: Panes<u32> = Panes::default();
        for (w, k) in [((10, 20), "bb"), ((0, 10), "b"), ((10, 20), "a"), ((0, 10), "aa"), ((0, 10), "c"), ((10, 20), "a")] {
            *p.get_or_insert_with(w, k.as_bytes(), || 0) += 1;
        }
        assert_eq!(p.len(), 5);
        let (mut got, mut order) = (Vec::new(), Vec::new());
        let in_order = |got: &[(Key, u32)], order: &[u32]| -> Vec<(Vec<u8>, u32)> {
            assert_eq!(order.len(), got.len());
            order.iter().map(|&i| (got[i as usize].0.to_vec(), got[i as usize].1)).collect()
        };
        assert!(!p.due(8) && p.due(9), "end - 1 = 9 is due from 9 on");
        assert_eq!(p.pop_due(8, &mut got, &mut order), None, "end - 1 = 9 is not due at 8");
        assert_eq!(p.pop_due(9, &mut got, &mut order), Some((0, 10)));
        assert_eq!(in_order(&got, &order), vec![(b"b".to_vec(), 1), (b"c".to_vec(), 1), (b"aa".to_vec(), 1)]);
        assert_eq!(p.pop_due(9, &mut got, &mut order), None);
        assert_eq!(p.len(), 2);
        p.insert((10, 20), b"a", 7);
        assert_eq!(p.len(), 2, "insert replaces");
        assert_eq!(p.pop_due(i64::MAX, &mut got, &mut order), Some((10, 20)));
        assert_eq!(in_order(&got, &order), vec![(b"a".to_vec(), 7), (b"bb".to_vec(), 1)]);
        assert_eq!(p.len(), 0);
        assert_eq!(p.iter().count(), 0);
        assert!(!p.due(i64::MAX), "nothing open");
    }

    #[test]
    fn keys_sharing_their_first_bytes_fire_in_timer_order() {
        let long = |tail: &str| format!("[\"user38\",\"login_{tail}\"]");
        let mut keys: Vec<String> = ["failed", "success", "fail", "faileb", "failec", "", "s"].iter().map(|t| long(t)).collect();
        keys.extend(["a".repeat(300), "a".repeat(256), "b".repeat(255), format!("{}b", "a".repeat(299)), String::new(), "z".into()]);
        let mut p: Panes<u32> = Panes::default();
        for k in &keys {
            p.get_or_insert_with((0, 10), k.as_bytes(), || 0);
        }
        let (mut got, mut order) = (Vec::new(), Vec::new());
        assert_eq!(p.pop_due(9, &mut got, &mut order), Some((0, 10)));
        let fired: Vec<&[u8]> = order.iter().map(|&i| got[i as usize].0.as_slice()).collect();
        let mut expected: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        expected.sort_by(|a, b| (a.len(), a).cmp(&(b.len(), b)));
        assert_eq!(fired, expected);
    }
}
