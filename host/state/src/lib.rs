//! Keyed state: bytes under structured keys `(key group, state name, key, namespace)`.
//!
//! One byte layout serves every backend: the encoded key starts with the key group (2 bytes,
//! big-endian), so a subtask's state is a set of contiguous ranges and moving whole key
//! groups (restore at another parallelism) is a range copy. The memory backend is an ordered
//! map; a RocksDB backend implements the same trait over the same layout.

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::ops::Range;
use std::path::Path;

use twox_hash::XxHash64;

pub mod cache;
mod rocks;
pub use cache::{Cache, Cached};
pub use rocks::RocksBackend;

/// Default number of key groups (Flink's max parallelism).
pub const DEFAULT_MAX_PARALLELISM: u32 = 128;

/// The most key groups a job may have (Flink's bound): a key group is a `u16` in state keys.
pub const MAX_KEY_GROUPS: u32 = 32768;

/// The key group of a key: a stable hash (xxHash64, seed 0) modulo `max_parallelism`.
pub fn key_group(key: &[u8], max_parallelism: u32) -> u16 {
    let h = XxHash64::oneshot(0, key);
    let m = u64::from(max_parallelism);
    // The same remainder: a mask where the count is a power of two (the default 128), which
    // spares a 64-bit division on every keyed record, several times over in a shared task.
    match m.is_power_of_two() {
        true => (h & (m - 1)) as u16,
        false => (h % m) as u16,
    }
}

/// The subtask that owns a key group (Flink's `keyGroup * parallelism / maxParallelism`).
pub fn subtask_of(key_group: u16, parallelism: usize, max_parallelism: u32) -> usize {
    (usize::from(key_group) * parallelism) / max_parallelism as usize
}

/// The key groups owned by `subtask` of `parallelism` (the inverse of [`subtask_of`]).
pub fn key_groups_of(subtask: usize, parallelism: usize, max_parallelism: u32) -> Range<u16> {
    let m = max_parallelism as usize;
    let start = (subtask * m).div_ceil(parallelism);
    let end = ((subtask + 1) * m).div_ceil(parallelism);
    start as u16..end as u16
}

/// The ordered byte-state store of one operator subtask.
pub trait StateBackend: Send {
    /// The value under `key` (`&mut`: a cached store may remember what it read).
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>>;
    /// Puts `value` under `key`.
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>);
    /// [`Self::put`] of borrowed bytes: a store that has the key already may write the
    /// value where the old one lies, with nothing made or freed.
    fn put_slice(&mut self, key: &[u8], value: &[u8]) {
        self.put(key.to_vec(), value.to_vec())
    }
    /// Appends `item` to the list under `key` (the [`append_list`] encoding; an absent key
    /// holds the empty list): a store may do it in place.
    fn append(&mut self, key: &[u8], item: &[u8]) {
        let mut list = self.get(key).unwrap_or_default();
        append_list(&mut list, item);
        self.put(key.to_vec(), list)
    }
    /// Deletes `key`; a no-op when absent.
    fn delete(&mut self, key: &[u8]);
    /// All entries whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)>;
    /// Deletes every entry whose key starts with `prefix`.
    fn delete_prefix(&mut self, prefix: &[u8]);
    /// Number of entries (for metrics and tests).
    fn len(&self) -> usize;
    /// Bytes of the keys and values held (an estimate where the store keeps no exact
    /// count), for metrics.
    fn size_bytes(&self) -> u64;
    /// Whether the store is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether the store is the process's memory: an operator may then hold its state in a
    /// shape of its own between snapshots (windows by window), since nothing larger than
    /// memory was asked for. False for RocksDB and for caches in front of a store.
    fn in_memory(&self) -> bool {
        false
    }
    /// Takes a consistent snapshot now, for the (new, empty) folder `dir`; the returned
    /// step finishes writing it and may run on another thread, so the stream goes on.
    fn snapshot(&mut self, dir: &Path) -> anyhow::Result<Deferred>;
    /// Adds the entries of key groups `groups` from snapshots written by [`Self::snapshot`]
    /// of any backend kind (restore, also at another parallelism).
    fn restore(&mut self, snapshots: &[&Path], groups: Range<u16>) -> anyhow::Result<()> {
        for dir in snapshots {
            for (k, v) in read_snapshot(dir, groups.clone())? {
                self.put(k, v);
            }
        }
        Ok(())
    }
}

/// The part of a snapshot that runs after the barrier passed (writing files).
pub type Deferred = Box<dyn FnOnce() -> anyhow::Result<()> + Send>;

/// File name of a memory-format state snapshot inside a snapshot folder.
pub const KV_FILE: &str = "state.kv";

/// Whether an encoded state key belongs to `groups`.
pub fn in_groups(key: &[u8], groups: &Range<u16>) -> bool {
    key.len() >= 2 && groups.contains(&u16::from_be_bytes([key[0], key[1]]))
}

/// Writes entries as `len(4) key len(4) value` frames.
pub fn write_kv<'a>(path: &Path, entries: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> anyhow::Result<()> {
    let mut w = BufWriter::new(std::fs::File::create(path)?);
    for (k, v) in entries {
        w.write_all(&(k.len() as u32).to_le_bytes())?;
        w.write_all(k)?;
        w.write_all(&(v.len() as u32).to_le_bytes())?;
        w.write_all(v)?;
    }
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

/// Reads the frames of [`write_kv`] whose key is in `groups`.
pub fn read_kv(path: &Path, groups: Range<u16>) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut r = BufReader::new(std::fs::File::open(path)?);
    let mut out = Vec::new();
    let mut len = [0u8; 4];
    loop {
        match r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        let mut k = vec![0; u32::from_le_bytes(len) as usize];
        r.read_exact(&mut k)?;
        r.read_exact(&mut len)?;
        let mut v = vec![0; u32::from_le_bytes(len) as usize];
        r.read_exact(&mut v)?;
        if in_groups(&k, &groups) {
            out.push((k, v));
        }
    }
    Ok(out)
}

/// Reads a snapshot folder of either backend: `state.kv` or a RocksDB checkpoint.
pub fn read_snapshot(dir: &Path, groups: Range<u16>) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    if dir.join(KV_FILE).exists() {
        read_kv(&dir.join(KV_FILE), groups)
    } else {
        rocks::read_checkpoint(dir, groups)
    }
}

/// The in-memory backend.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Bytes of the keys and values in `map`.
    bytes: u64,
}

impl MemoryBackend {
    fn removed(&mut self, key: &[u8], value: Option<Vec<u8>>) {
        if let Some(v) = value {
            self.bytes -= (key.len() + v.len()) as u64;
        }
    }
}

impl StateBackend for MemoryBackend {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        self.map.get(key).cloned()
    }
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.bytes += (key.len() + value.len()) as u64;
        let len = key.len();
        if let Some(old) = self.map.insert(key, value) {
            self.bytes -= (len + old.len()) as u64;
        }
    }
    fn put_slice(&mut self, key: &[u8], value: &[u8]) {
        match self.map.get_mut(key) {
            Some(v) => {
                self.bytes = self.bytes - v.len() as u64 + value.len() as u64;
                v.clear();
                v.extend_from_slice(value);
            }
            None => self.put(key.to_vec(), value.to_vec()),
        }
    }
    fn append(&mut self, key: &[u8], item: &[u8]) {
        match self.map.get_mut(key) {
            Some(list) => {
                self.bytes += 4 + item.len() as u64;
                append_list(list, item);
            }
            None => {
                let mut list = Vec::with_capacity(4 + item.len());
                append_list(&mut list, item);
                self.put(key.to_vec(), list);
            }
        }
    }
    fn delete(&mut self, key: &[u8]) {
        let old = self.map.remove(key);
        self.removed(key, old);
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.map.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix)).map(|(k, v)| (k.clone(), v.clone())).collect()
    }
    fn delete_prefix(&mut self, prefix: &[u8]) {
        let keys: Vec<Vec<u8>> =
            self.map.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix)).map(|(k, _)| k.clone()).collect();
        for k in keys {
            let old = self.map.remove(&k);
            self.removed(&k, old);
        }
    }
    fn len(&self) -> usize {
        self.map.len()
    }
    fn size_bytes(&self) -> u64 {
        self.bytes
    }
    fn in_memory(&self) -> bool {
        true
    }
    fn snapshot(&mut self, dir: &Path) -> anyhow::Result<Deferred> {
        // A copy at the barrier; the write happens off the task's thread.
        let copy = self.map.clone();
        let dir = dir.to_path_buf();
        Ok(Box::new(move || {
            std::fs::create_dir_all(&dir)?;
            write_kv(&dir.join(KV_FILE), copy.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
        }))
    }
}

/// Encodes state keys: `kg(2) | name_len(1) | name | key_len(4) | key | namespace`.
#[derive(Debug, Default)]
pub struct KeyCodec {
    buf: Vec<u8>,
}

impl KeyCodec {
    /// The prefix of all namespaces of `(kg, name, key)`; reuses the internal buffer.
    pub fn prefix(&mut self, kg: u16, name: &str, key: &[u8]) -> &[u8] {
        self.buf.clear();
        self.buf.extend_from_slice(&kg.to_be_bytes());
        let name = &name.as_bytes()[..name.len().min(255)];
        self.buf.push(name.len() as u8);
        self.buf.extend_from_slice(name);
        self.buf.extend_from_slice(&(key.len() as u32).to_be_bytes());
        self.buf.extend_from_slice(key);
        &self.buf
    }

    /// The full key of `(kg, name, key, namespace)`.
    pub fn key(&mut self, kg: u16, name: &str, key: &[u8], namespace: &[u8]) -> &[u8] {
        self.prefix(kg, name, key);
        self.buf.extend_from_slice(namespace);
        &self.buf
    }

    /// The key or prefix encoded last.
    pub fn last(&self) -> &[u8] {
        &self.buf
    }
}

/// Length-prefixed list encoding for list state values.
pub fn encode_list(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.iter().map(|i| i.len() + 4).sum());
    for i in items {
        append_list(&mut out, i);
    }
    out
}

/// Appends one element to an encoded list.
pub fn append_list(out: &mut Vec<u8>, item: &[u8]) {
    out.extend_from_slice(&(item.len() as u32).to_le_bytes());
    out.extend_from_slice(item);
}

/// Decodes an encoded list; a truncated tail is ignored.
pub fn decode_list(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while bytes.len() >= 4 {
        let n = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        if bytes.len() < 4 + n {
            break;
        }
        out.push(bytes[4..4 + n].to_vec());
        bytes = &bytes[4 + n..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memory backend's in-place writes leave what `put` would, and count its bytes.
    #[test]
    fn writes_in_place_equal_puts() {
        let mut m = MemoryBackend::default();
        m.put_slice(b"v", b"1");
        m.put_slice(b"v", b"22");
        m.put_slice(b"w", b"");
        m.append(b"l", b"a");
        m.append(b"l", b"bc");
        m.put(b"x".to_vec(), b"3".to_vec());
        m.append(b"x", b"d");
        assert_eq!(m.get(b"v"), Some(b"22".to_vec()));
        assert_eq!(m.get(b"w"), Some(Vec::new()));
        assert_eq!(decode_list(&m.get(b"l").unwrap_or_default()), vec![b"a".to_vec(), b"bc".to_vec()]);
        assert_eq!(m.get(b"x").map(|x| x[..1].to_vec()), Some(b"3".to_vec()), "appended to what was there");
        let held: u64 = m.scan_prefix(b"").iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
        assert_eq!(m.size_bytes(), held);
        m.delete(b"l");
        m.put_slice(b"v", b"");
        let held: u64 = m.scan_prefix(b"").iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
        assert_eq!(m.size_bytes(), held);
    }

    #[test]
    fn key_groups_are_stable_and_cover_subtasks() {
        assert_eq!(key_group(b"user1", 128), key_group(b"user1", 128));
        let owners: std::collections::BTreeSet<usize> = (0..128u16).map(|kg| subtask_of(kg, 4, 128)).collect();
        assert_eq!(owners.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert_eq!(subtask_of(127, 3, 128), 2);
        for p in 1..=7 {
            for s in 0..p {
                for kg in key_groups_of(s, p, 128) {
                    assert_eq!(subtask_of(kg, p, 128), s, "p={p}");
                }
            }
            assert_eq!(key_groups_of(p - 1, p, 128).end, 128);
        }
    }

    #[test]
    fn key_groups_stay_what_checkpoints_hold() {
        // State and timers are stored under these groups: a change here would misplace every
        // restored key.
        assert_eq!([key_group(b"user1", 128), key_group(b"user38", 128), key_group(b"", 128)], [39, 39, 25]);
        assert_eq!([key_group(b"user1", 100), key_group(b"session_2542", 7)], [51, 2]);
        for m in [1u32, 2, 64, 128, 4096, 32768] {
            for k in 0..500 {
                let key = format!("key{k}");
                assert_eq!(u64::from(key_group(key.as_bytes(), m)), XxHash64::oneshot(0, key.as_bytes()) % u64::from(m), "{key} of {m}");
            }
        }
    }

    #[test]
    fn prefix_scan_sees_only_one_key() {
        let mut b = MemoryBackend::default();
        let mut c = KeyCodec::default();
        b.put(c.key(1, "m", b"a", b"x").to_vec(), b"1".to_vec());
        b.put(c.key(1, "m", b"a", b"y").to_vec(), b"2".to_vec());
        b.put(c.key(1, "m", b"ab", b"x").to_vec(), b"3".to_vec());
        let p = c.prefix(1, "m", b"a").to_vec();
        assert_eq!(b.scan_prefix(&p).len(), 2);
        b.delete_prefix(&p);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn the_memory_backend_counts_the_bytes_it_holds() {
        let mut m = MemoryBackend::default();
        m.put(b"ab".to_vec(), b"1234".to_vec());
        m.put(b"cd".to_vec(), b"1".to_vec());
        assert_eq!(m.size_bytes(), 9);
        m.put(b"ab".to_vec(), b"12".to_vec());
        assert_eq!(m.size_bytes(), 7, "a value replaced counts once");
        m.delete(b"cd");
        m.delete(b"zz");
        assert_eq!(m.size_bytes(), 4);
        m.put(b"ax".to_vec(), b"9".to_vec());
        m.delete_prefix(b"a");
        assert_eq!((m.size_bytes(), m.len()), (0, 0));
    }

    #[test]
    fn snapshots_restore_only_the_requested_key_groups() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = MemoryBackend::default();
        let mut c = KeyCodec::default();
        for kg in 0..8u16 {
            b.put(c.key(kg, "s", b"k", b"").to_vec(), vec![kg as u8]);
        }
        b.snapshot(&dir.path().join("snap")).unwrap()().unwrap();
        let mut r = MemoryBackend::default();
        r.restore(&[&dir.path().join("snap")], 2..5).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r.get(c.key(3, "s", b"k", b"")), Some(vec![3]));
    }

    #[test]
    fn list_roundtrip() {
        let items = vec![b"a".to_vec(), vec![], b"ccc".to_vec()];
        assert_eq!(decode_list(&encode_list(&items)), items);
    }
}
