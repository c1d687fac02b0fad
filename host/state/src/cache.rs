//! A typed write-back cache in front of a state backend, for operators that touch each key a
//! few times in a short while (windows: read and written on every record, read and deleted
//! when the window fires). Recent values stay decoded in a hash map under their backend
//! keys; changes reach the backend, encoded, when the map is full and at every snapshot. A
//! window that opens and fires between two flushes is never encoded and costs the backend
//! one lookup (bloom-filtered on RocksDB) instead of four operations. [`Cached`] is the
//! same cache for raw bytes, as a [`StateBackend`] in front of RocksDB (a process plugin's
//! keyed state: a host call per access that would otherwise be a RocksDB call).

use std::ops::Range;
use std::path::Path;

use hashbrown::hash_map::EntryRef;
use hashbrown::HashMap;

use super::{Deferred, StateBackend};

/// Entries kept before a flush.
pub const DEFAULT_CAPACITY: usize = 1 << 16;

#[derive(Debug)]
struct Entry<T> {
    /// The current value; `None` once taken or deleted.
    value: Option<T>,
    /// Changed since read from the backend.
    dirty: bool,
    /// The backend may hold the key (so a delete must reach it).
    in_backend: bool,
}

/// Decoded values of one kind of state, by backend key, in front of a [`StateBackend`]
/// (passed to each call, so one backend can serve several caches).
pub struct Cache<T> {
    map: HashMap<Vec<u8>, Entry<T>, foldhash::fast::FixedState>,
    capacity: usize,
    encode: fn(&T) -> Vec<u8>,
    decode: fn(&[u8]) -> Option<T>,
}

impl<T> std::fmt::Debug for Cache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("entries", &self.map.len()).field("capacity", &self.capacity).finish()
    }
}

impl<T> Cache<T> {
    /// Caches up to `capacity` entries; values reach the backend as `encode` writes them and
    /// are read back with `decode` (a value it cannot decode reads as absent).
    pub fn new(capacity: usize, encode: fn(&T) -> Vec<u8>, decode: fn(&[u8]) -> Option<T>) -> Self {
        Cache { map: HashMap::with_hasher(foldhash::fast::FixedState::default()), capacity: capacity.max(1), encode, decode }
    }

    /// The entry of `key`, read from the backend when not cached. One hash of the key (the
    /// map is hashbrown's for `entry_ref`: std's entry API wants an owned key up front).
    fn entry(&mut self, backend: &mut dyn StateBackend, key: &[u8]) -> &mut Entry<T> {
        self.make_room(backend, key);
        let decode = self.decode;
        match self.map.entry_ref(key) {
            EntryRef::Occupied(o) => o.into_mut(),
            EntryRef::Vacant(v) => {
                let value = backend.get(key).and_then(|b| decode(&b));
                let in_backend = value.is_some();
                v.insert(Entry { value, dirty: false, in_backend })
            }
        }
    }

    /// The value under `key`, moved out: the key reads as absent until [`Cache::put`] writes
    /// it again (a take without a put deletes the value).
    pub fn take(&mut self, backend: &mut dyn StateBackend, key: &[u8]) -> Option<T> {
        let e = self.entry(backend, key);
        let v = e.value.take();
        e.dirty |= v.is_some();
        v
    }

    /// The value under `key`, deleted: [`Cache::take`] and [`Cache::delete`] in one lookup
    /// (a window that fires for good).
    pub fn remove(&mut self, backend: &mut dyn StateBackend, key: &[u8]) -> Option<T> {
        self.make_room(backend, key);
        match self.map.entry_ref(key) {
            EntryRef::Occupied(o) if !o.get().in_backend => o.remove().value,
            EntryRef::Occupied(mut o) => {
                let e = o.get_mut();
                e.dirty = true;
                e.value.take()
            }
            EntryRef::Vacant(v) => {
                let stored = backend.get(key)?;
                // The backend holds it: the flush must delete it there.
                v.insert(Entry { value: None, dirty: true, in_backend: true });
                (self.decode)(&stored)
            }
        }
    }

    /// The value under `key`, to change in place: what the slot holds after the call is the
    /// value (`None` deletes it). One lookup where a [`Cache::take`] and a [`Cache::put`]
    /// are two.
    pub fn slot(&mut self, backend: &mut dyn StateBackend, key: &[u8]) -> &mut Option<T> {
        let e = self.entry(backend, key);
        e.dirty = true;
        &mut e.value
    }

    /// The value under `key`.
    pub fn get(&mut self, backend: &mut dyn StateBackend, key: &[u8]) -> Option<&T> {
        self.entry(backend, key).value.as_ref()
    }

    /// Writes `value` under `key`; the backend sees it at the next flush.
    pub fn put(&mut self, backend: &mut dyn StateBackend, key: &[u8], value: T) {
        self.make_room(backend, key);
        match self.map.entry_ref(key) {
            EntryRef::Occupied(mut o) => {
                let e = o.get_mut();
                e.value = Some(value);
                e.dirty = true;
            }
            // Not read first: the backend may hold an older value.
            EntryRef::Vacant(v) => _ = v.insert(Entry { value: Some(value), dirty: true, in_backend: true }),
        }
    }

    /// Deletes the value under `key`.
    pub fn delete(&mut self, backend: &mut dyn StateBackend, key: &[u8]) {
        self.make_room(backend, key);
        match self.map.entry_ref(key) {
            EntryRef::Occupied(o) if !o.get().in_backend => _ = o.remove(),
            EntryRef::Occupied(mut o) => {
                let e = o.get_mut();
                e.value = None;
                e.dirty = true;
            }
            EntryRef::Vacant(v) => _ = v.insert(Entry { value: None, dirty: true, in_backend: true }),
        }
    }

    /// Writes every change to the backend and empties the cache (before a snapshot, and
    /// before a new key would make it hold more than its capacity).
    pub fn flush(&mut self, backend: &mut dyn StateBackend) {
        for (k, e) in self.map.drain() {
            match (e.dirty, e.value) {
                (true, Some(v)) => backend.put(k, (self.encode)(&v)),
                (true, None) if e.in_backend => backend.delete(&k),
                _ => {}
            }
        }
    }

    /// Flushes before `key` would make the cache hold more than its capacity.
    fn make_room(&mut self, backend: &mut dyn StateBackend, key: &[u8]) {
        if self.map.len() >= self.capacity && !self.map.contains_key(key) {
            self.flush(backend);
        }
    }
}

impl<T> Cache<T> {
    /// Cached changes under keys that start with `prefix`: `(key, Some(value))` written,
    /// `(key, None)` deleted (the backend may still hold them).
    fn changes_under<'a>(&'a self, prefix: &'a [u8]) -> impl Iterator<Item = (&'a [u8], Option<&'a T>)> {
        self.map.iter().filter(move |(k, e)| e.dirty && k.starts_with(prefix)).map(|(k, e)| (k.as_slice(), e.value.as_ref()))
    }

    /// Cached values the backend does not hold.
    fn new_values(&self) -> usize {
        self.map.values().filter(|e| e.value.is_some() && !e.in_backend).count()
    }
}

/// A [`StateBackend`] with a write-back [`Cache`] of raw values in front of another one.
pub struct Cached<B: StateBackend> {
    inner: B,
    cache: Cache<Vec<u8>>,
}

impl<B: StateBackend> std::fmt::Debug for Cached<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached").field("cache", &self.cache).finish_non_exhaustive()
    }
}

impl<B: StateBackend> Cached<B> {
    /// Caches up to `capacity` values in front of `inner`.
    pub fn new(inner: B, capacity: usize) -> Self {
        Cached { inner, cache: Cache::new(capacity, Vec::clone, |b| Some(b.to_vec())) }
    }
}

impl<B: StateBackend> StateBackend for Cached<B> {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache.get(&mut self.inner, key).cloned()
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.cache.put(&mut self.inner, &key, value)
    }

    fn delete(&mut self, key: &[u8]) {
        self.cache.delete(&mut self.inner, key)
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut merged: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = self.inner.scan_prefix(prefix).into_iter().collect();
        for (k, v) in self.cache.changes_under(prefix) {
            match v {
                Some(v) => merged.insert(k.to_vec(), v.clone()),
                None => merged.remove(k),
            };
        }
        merged.into_iter().collect()
    }

    fn delete_prefix(&mut self, prefix: &[u8]) {
        self.cache.flush(&mut self.inner);
        self.inner.delete_prefix(prefix);
    }

    /// The backend's count plus cached values it does not hold yet (an estimate, as the
    /// RocksDB backend's own count is).
    fn len(&self) -> usize {
        self.inner.len() + self.cache.new_values()
    }

    /// The backend's bytes (values only in the cache are not counted until flushed).
    fn size_bytes(&self) -> u64 {
        self.inner.size_bytes()
    }

    fn snapshot(&mut self, dir: &Path) -> anyhow::Result<Deferred> {
        self.cache.flush(&mut self.inner);
        self.inner.snapshot(dir)
    }

    fn restore(&mut self, snapshots: &[&Path], groups: Range<u16>) -> anyhow::Result<()> {
        self.cache.flush(&mut self.inner);
        self.inner.restore(snapshots, groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryBackend;

    fn cache() -> Cache<u32> {
        Cache::new(8, |v| v.to_le_bytes().to_vec(), |b| Some(u32::from_le_bytes(b.try_into().ok()?)))
    }

    /// Every operation goes to both a cached store and a plain one; they must agree, and the
    /// backend behind the cache must equal the plain one after each flush.
    #[test]
    fn reads_see_writes_and_flushes_reach_the_backend() {
        let mut plain = MemoryBackend::default();
        let mut backend = MemoryBackend::default();
        let mut cached = cache();
        let key = |i: u32| format!("k{:03}", i % 37).into_bytes();
        for i in 0..4000u32 {
            let k = key(i * 7);
            match i % 7 {
                0 | 1 => {
                    plain.put(k.clone(), i.to_le_bytes().to_vec());
                    cached.put(&mut backend, &k, i);
                }
                6 => {
                    // Read and delete at once.
                    let want = plain.get(&k).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
                    assert_eq!(cached.remove(&mut backend, &k), want, "remove {i}");
                    plain.delete(&k);
                }
                2 => {
                    plain.delete(&k);
                    cached.delete(&mut backend, &k);
                }
                3 => {
                    let want = plain.get(&k).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
                    assert_eq!(cached.get(&mut backend, &k).copied(), want, "get {i}");
                }
                4 => {
                    // Take, then put back one more.
                    let want = plain.get(&k).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
                    let got = cached.take(&mut backend, &k);
                    assert_eq!(got, want, "take {i}");
                    if let Some(v) = got {
                        plain.put(k.clone(), (v + 1).to_le_bytes().to_vec());
                        cached.put(&mut backend, &k, v + 1);
                    }
                }
                _ if i % 3 == 0 => {
                    // A take without a put deletes.
                    if cached.take(&mut backend, &k).is_some() {
                        plain.delete(&k);
                    }
                }
                _ => {
                    // In place: one more, or a new value; or emptied, which deletes.
                    let want = plain.get(&k).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
                    let slot = cached.slot(&mut backend, &k);
                    assert_eq!(*slot, want, "slot {i}");
                    *slot = match i % 3 {
                        1 => Some(slot.map_or(i, |v| v + 1)),
                        _ => None,
                    };
                    match *slot {
                        Some(v) => plain.put(k.clone(), v.to_le_bytes().to_vec()),
                        None => plain.delete(&k),
                    }
                }
            }
            if i % 301 == 0 {
                cached.flush(&mut backend);
                assert_eq!(backend.scan_prefix(b""), plain.scan_prefix(b""), "after the flush at {i}");
            }
        }
        cached.flush(&mut backend);
        assert_eq!(backend.scan_prefix(b""), plain.scan_prefix(b""));
    }

    /// The byte-level wrapper against a plain store, scans and snapshots included.
    #[test]
    fn cached_backend_reads_its_writes_and_scans_merge_the_cache() {
        let mut plain = MemoryBackend::default();
        let mut cached = Cached::new(MemoryBackend::default(), 8);
        let key = |i: u32| format!("k{:03}", i % 37).into_bytes();
        for i in 0..2000u32 {
            let k = key(i * 7);
            match i % 5 {
                0 | 1 => {
                    plain.put(k.clone(), i.to_le_bytes().to_vec());
                    cached.put(k, i.to_le_bytes().to_vec());
                }
                2 => {
                    plain.delete(&k);
                    cached.delete(&k);
                }
                3 => assert_eq!(cached.get(&k), plain.get(&k), "get {i}"),
                _ => assert_eq!(cached.scan_prefix(b"k01"), plain.scan_prefix(b"k01"), "scan {i}"),
            }
            if i % 301 == 0 {
                let dir = tempfile::tempdir().unwrap();
                cached.snapshot(dir.path()).unwrap()().unwrap();
                assert_eq!(cached.inner.scan_prefix(b""), plain.scan_prefix(b""), "after the snapshot at {i}");
            }
        }
        cached.delete_prefix(b"k02");
        plain.delete_prefix(b"k02");
        assert_eq!(cached.scan_prefix(b""), plain.scan_prefix(b""));
        assert_eq!(cached.len(), plain.len());
    }

    #[test]
    fn a_removed_key_leaves_the_backend_at_the_next_flush() {
        let mut backend = MemoryBackend::default();
        let mut cached = cache();
        for k in [b"a", b"b"] {
            cached.put(&mut backend, k, 7);
        }
        cached.flush(&mut backend);
        assert_eq!(backend.len(), 2);
        // `a` read first (cached clean), `b` not cached at all.
        assert_eq!(cached.get(&mut backend, b"a"), Some(&7));
        assert_eq!(cached.remove(&mut backend, b"a"), Some(7));
        assert_eq!(cached.remove(&mut backend, b"b"), Some(7));
        assert_eq!(cached.get(&mut backend, b"a"), None);
        assert_eq!(cached.get(&mut backend, b"b"), None);
        cached.flush(&mut backend);
        assert_eq!(backend.len(), 0);
    }

    #[test]
    fn a_key_born_and_deleted_between_flushes_never_reaches_the_backend() {
        let mut backend = MemoryBackend::default();
        let mut cached = Cache::<u32>::new(100, |v| v.to_le_bytes().to_vec(), |b| Some(u32::from_le_bytes(b.try_into().ok()?)));
        assert_eq!(cached.take(&mut backend, b"w"), None);
        cached.put(&mut backend, b"w", 1);
        assert_eq!(cached.take(&mut backend, b"w"), Some(1));
        cached.put(&mut backend, b"w", 2);
        cached.delete(&mut backend, b"w");
        assert!(cached.map.is_empty());
        assert_eq!(cached.take(&mut backend, b"v"), None);
        cached.put(&mut backend, b"v", 3);
        assert_eq!(cached.remove(&mut backend, b"v"), Some(3));
        assert_eq!(cached.remove(&mut backend, b"u"), None);
        assert!(cached.map.is_empty(), "nothing is left of keys the backend never saw");
        cached.flush(&mut backend);
        assert_eq!(backend.len(), 0);
    }
}
