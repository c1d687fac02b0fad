//! A typed write-back cache in front of a state backend, for operators that touch each key a
//! few times in a short while (windows: read and written on every record, read and deleted
//! when the window fires). Recent values stay decoded in a hash map under their backend
//! keys; changes reach the backend, encoded, when the map is full and at every snapshot. A
//! window that opens and fires between two flushes is never encoded and costs the backend
//! one lookup (bloom-filtered on RocksDB) instead of four operations.

use std::collections::HashMap;

use super::StateBackend;

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
        Cache { map: HashMap::default(), capacity: capacity.max(1), encode, decode }
    }

    fn entry(&mut self, backend: &mut dyn StateBackend, key: &[u8]) -> &mut Entry<T> {
        if !self.map.contains_key(key) {
            self.flush_if_full(backend);
            let value = backend.get(key).and_then(|b| (self.decode)(&b));
            let in_backend = value.is_some();
            self.map.insert(key.to_vec(), Entry { value, dirty: false, in_backend });
        }
        self.map.get_mut(key).expect("inserted above")
    }

    /// The value under `key`, moved out: the key reads as absent until [`Cache::put`] writes
    /// it again (a take without a put deletes the value).
    pub fn take(&mut self, backend: &mut dyn StateBackend, key: &[u8]) -> Option<T> {
        let e = self.entry(backend, key);
        let v = e.value.take();
        e.dirty |= v.is_some();
        v
    }

    /// The value under `key`, in place.
    pub fn get_mut(&mut self, backend: &mut dyn StateBackend, key: &[u8]) -> Option<&mut T> {
        let e = self.entry(backend, key);
        e.dirty |= e.value.is_some();
        e.value.as_mut()
    }

    /// Writes `value` under `key`; the backend sees it at the next flush.
    pub fn put(&mut self, backend: &mut dyn StateBackend, key: &[u8], value: T) {
        match self.map.get_mut(key) {
            Some(e) => {
                e.value = Some(value);
                e.dirty = true;
            }
            None => {
                // Not read first: the backend may hold an older value.
                self.flush_if_full(backend);
                self.map.insert(key.to_vec(), Entry { value: Some(value), dirty: true, in_backend: true });
            }
        }
    }

    /// Deletes the value under `key`.
    pub fn delete(&mut self, backend: &mut dyn StateBackend, key: &[u8]) {
        match self.map.get_mut(key) {
            Some(e) if !e.in_backend => {
                self.map.remove(key);
            }
            Some(e) => {
                e.value = None;
                e.dirty = true;
            }
            None => {
                self.flush_if_full(backend);
                self.map.insert(key.to_vec(), Entry { value: None, dirty: true, in_backend: true });
            }
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

    fn flush_if_full(&mut self, backend: &mut dyn StateBackend) {
        if self.map.len() >= self.capacity {
            self.flush(backend);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryBackend;

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
            match i % 6 {
                0 | 1 => {
                    plain.put(k.clone(), i.to_le_bytes().to_vec());
                    cached.put(&mut backend, &k, i);
                }
                2 => {
                    plain.delete(&k);
                    cached.delete(&mut backend, &k);
                }
                3 => {
                    let want = plain.get(&k).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
                    assert_eq!(cached.get_mut(&mut backend, &k).copied(), want, "get {i}");
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
                _ => {
                    // A take without a put deletes.
                    if cached.take(&mut backend, &k).is_some() {
                        plain.delete(&k);
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
        cached.flush(&mut backend);
        assert_eq!(backend.len(), 0);
    }
}
