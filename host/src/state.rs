//! Keyed state: bytes under structured keys `(key group, state name, key, namespace)`.
//!
//! One byte layout serves every backend: the encoded key starts with the key group (2 bytes,
//! big-endian), so a subtask's state is a set of contiguous ranges and moving whole key
//! groups (restore at another parallelism) is a range copy. The memory backend is an ordered
//! map; a RocksDB backend implements the same trait over the same layout.

use std::collections::BTreeMap;

use twox_hash::XxHash64;

/// Default number of key groups (Flink's max parallelism).
pub const DEFAULT_MAX_PARALLELISM: u32 = 128;

/// The key group of a key: a stable hash (xxHash64, seed 0) modulo `max_parallelism`.
pub fn key_group(key: &[u8], max_parallelism: u32) -> u16 {
    (XxHash64::oneshot(0, key) % u64::from(max_parallelism)) as u16
}

/// The subtask that owns a key group (Flink's `keyGroup * parallelism / maxParallelism`).
pub fn subtask_of(key_group: u16, parallelism: usize, max_parallelism: u32) -> usize {
    (usize::from(key_group) * parallelism) / max_parallelism as usize
}

/// The ordered byte-state store of one operator subtask.
pub trait StateBackend: Send {
    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Puts `value` under `key`.
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>);
    /// Deletes `key`; a no-op when absent.
    fn delete(&mut self, key: &[u8]);
    /// All entries whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)>;
    /// Deletes every entry whose key starts with `prefix`.
    fn delete_prefix(&mut self, prefix: &[u8]);
    /// Number of entries (for metrics and tests).
    fn len(&self) -> usize;
    /// Whether the store is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The in-memory backend.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl StateBackend for MemoryBackend {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.map.get(key).cloned()
    }
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.map.insert(key, value);
    }
    fn delete(&mut self, key: &[u8]) {
        self.map.remove(key);
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.map.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix)).map(|(k, v)| (k.clone(), v.clone())).collect()
    }
    fn delete_prefix(&mut self, prefix: &[u8]) {
        let keys: Vec<Vec<u8>> =
            self.map.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix)).map(|(k, _)| k.clone()).collect();
        for k in keys {
            self.map.remove(&k);
        }
    }
    fn len(&self) -> usize {
        self.map.len()
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

    #[test]
    fn key_groups_are_stable_and_cover_subtasks() {
        assert_eq!(key_group(b"user1", 128), key_group(b"user1", 128));
        let owners: std::collections::BTreeSet<usize> = (0..128u16).map(|kg| subtask_of(kg, 4, 128)).collect();
        assert_eq!(owners.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert_eq!(subtask_of(127, 3, 128), 2);
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
    fn list_roundtrip() {
        let items = vec![b"a".to_vec(), vec![], b"ccc".to_vec()];
        assert_eq!(decode_list(&encode_list(&items)), items);
    }
}
