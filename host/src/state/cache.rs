//! A write-back cache in front of a disk backend, for operators that touch each key a few
//! times in a short while (windows: read and write on every record, read and delete when the
//! window fires). Recent entries stay in a hash map; changes reach the backend when the map
//! is full and at every snapshot, so a window that opens and fires between two flushes
//! costs the disk store one (bloom-filtered) lookup instead of four operations.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use super::{Deferred, StateBackend};

/// Entries kept before a flush.
pub const DEFAULT_CAPACITY: usize = 1 << 16;

#[derive(Debug)]
struct Entry {
    /// The current value; `None` once deleted.
    value: Option<Vec<u8>>,
    /// Changed since read from the backend.
    dirty: bool,
    /// The backend may hold the key (so a delete must reach it).
    in_backend: bool,
}

/// [`StateBackend`] with a write-back cache in front of another one.
#[derive(Debug)]
pub struct Cached<B: StateBackend> {
    inner: B,
    cache: RefCell<HashMap<Vec<u8>, Entry>>,
    capacity: usize,
}

impl<B: StateBackend> Cached<B> {
    /// Caches up to `capacity` entries in front of `inner`.
    pub fn new(inner: B, capacity: usize) -> Self {
        Cached { inner, cache: RefCell::new(HashMap::new()), capacity: capacity.max(1) }
    }

    /// Writes every change to the backend and empties the cache.
    pub fn flush(&mut self) {
        for (k, e) in self.cache.get_mut().drain() {
            match (e.dirty, e.value) {
                (true, Some(v)) => self.inner.put(k, v),
                (true, None) if e.in_backend => self.inner.delete(&k),
                _ => {}
            }
        }
    }

    fn flush_if_full(&mut self) {
        if self.cache.get_mut().len() >= self.capacity {
            self.flush();
        }
    }
}

impl<B: StateBackend> StateBackend for Cached<B> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        if let Some(e) = self.cache.borrow().get(key) {
            return e.value.clone();
        }
        let v = self.inner.get(key);
        let mut cache = self.cache.borrow_mut();
        if cache.len() < self.capacity {
            cache.insert(key.to_vec(), Entry { value: v.clone(), dirty: false, in_backend: v.is_some() });
        }
        v
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        match self.cache.get_mut().get_mut(&key) {
            Some(e) => {
                e.value = Some(value);
                e.dirty = true;
            }
            None => {
                // Not read first: the backend may hold an older value.
                self.cache.get_mut().insert(key, Entry { value: Some(value), dirty: true, in_backend: true });
                self.flush_if_full();
            }
        }
    }

    fn delete(&mut self, key: &[u8]) {
        let cache = self.cache.get_mut();
        match cache.get_mut(key) {
            Some(e) if !e.in_backend => {
                cache.remove(key);
            }
            Some(e) => {
                e.value = None;
                e.dirty = true;
            }
            None => {
                cache.insert(key.to_vec(), Entry { value: None, dirty: true, in_backend: true });
                self.flush_if_full();
            }
        }
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut merged: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = self.inner.scan_prefix(prefix).into_iter().collect();
        for (k, e) in self.cache.borrow().iter().filter(|(k, e)| k.starts_with(prefix) && (e.dirty || e.value.is_some())) {
            match &e.value {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        merged.into_iter().collect()
    }

    fn delete_prefix(&mut self, prefix: &[u8]) {
        self.flush();
        self.inner.delete_prefix(prefix);
    }

    /// The backend's count plus cached entries it does not hold yet (an estimate, as the
    /// RocksDB backend's own count is).
    fn len(&self) -> usize {
        self.inner.len() + self.cache.borrow().values().filter(|e| e.value.is_some() && !e.in_backend).count()
    }

    fn snapshot(&mut self, dir: &Path) -> anyhow::Result<Deferred> {
        self.flush();
        self.inner.snapshot(dir)
    }

    fn restore(&mut self, snapshots: &[&Path], groups: Range<u16>) -> anyhow::Result<()> {
        self.flush();
        self.inner.restore(snapshots, groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryBackend;

    /// Every operation goes to both a cached store and a plain one; they must agree, and the
    /// cached one's backend must equal the plain one after a flush.
    #[test]
    fn reads_see_writes_and_flushes_reach_the_backend() {
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
        cached.flush();
        assert_eq!(cached.inner.scan_prefix(b""), plain.scan_prefix(b""));
    }

    #[test]
    fn a_key_born_and_deleted_between_flushes_never_reaches_the_backend() {
        let mut cached = Cached::new(MemoryBackend::default(), 100);
        assert_eq!(cached.get(b"w"), None);
        cached.put(b"w".to_vec(), b"1".to_vec());
        assert_eq!(cached.get(b"w"), Some(b"1".to_vec()));
        cached.delete(b"w");
        assert!(cached.cache.get_mut().is_empty());
        cached.flush();
        assert_eq!(cached.inner.len(), 0);
    }
}
