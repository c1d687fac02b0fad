//! The RocksDB backend: the same ordered byte layout, on local disk. Snapshots are RocksDB
//! checkpoints (hard links to immutable SST files), so consecutive checkpoints share their
//! files: an incremental checkpoint costs what changed since the last one.

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use fastbloom::BloomFilter;
use rocksdb::{checkpoint::Checkpoint, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};

use super::{in_groups, Deferred, StateBackend};

/// Keyed state of one operator subtask in an embedded RocksDB.
pub struct RocksBackend {
    db: DB,
    path: PathBuf,
    /// Puts since the store was opened (a restore writes without).
    len: usize,
    /// Writes skip RocksDB's write-ahead log, as Flink's backend does: working state is
    /// never reused after a crash (recovery reads checkpoints, which flush the memtables).
    write: WriteOptions,
    /// The keys the store may hold: a lookup of a key that was never put (a new window, a
    /// new key: most lookups) is answered here, without crossing into RocksDB (a third of a
    /// window operator's time on the flagship job).
    written: Written,
}

/// The keys put into a store or restored into it, as a Bloom filter sized to them. A Bloom
/// filter forgets nothing, so each time as many new keys have entered as it was sized for it
/// is rebuilt from the keys the store holds, sized to twice their number: the keys of
/// windows fired and deleted leave it, and it stays small enough to stay in the cache (a
/// probe that misses the cache cost the log-analyzer's keyed threads a tenth of their time).
struct Written {
    bloom: BloomFilter<foldhash::fast::FixedState>,
    /// Keys entered since it was built (a key it already seemed to hold is not counted).
    items: usize,
    /// Keys it was sized for.
    capacity: usize,
}

/// The fewest keys a [`Written`] filter is sized for (5 KiB).
const WRITTEN_MIN: usize = 1 << 12;
/// Bits of a [`Written`] filter per key it is sized for: about 1 % false positives when
/// full, where a false positive costs only the RocksDB lookup that would have happened anyway.
const WRITTEN_BITS_PER_KEY: usize = 10;

impl Written {
    /// An empty filter for `keys` keys (at least [`WRITTEN_MIN`]).
    fn sized(keys: usize) -> Written {
        let capacity = keys.max(WRITTEN_MIN).next_power_of_two();
        let bloom = BloomFilter::with_num_bits(capacity * WRITTEN_BITS_PER_KEY)
            .hasher(foldhash::fast::FixedState::default())
            .expected_items(capacity);
        Written { bloom, items: 0, capacity }
    }

    /// A filter of the keys `db` holds, sized to twice their number. A key it missed would
    /// read as absent, so a failed read of the keys fails the task, as a failed write does.
    fn of(db: &DB, path: &Path) -> Written {
        let each_key = |f: &mut dyn FnMut(&[u8])| {
            let mut it = db.raw_iterator();
            it.seek_to_first();
            while let Some(k) = it.key() {
                f(k);
                it.next();
            }
            if let Err(e) = it.status() {
                panic!("RocksDB read of the keys failed at {}: {e}", path.display());
            }
        };
        let mut live = 0;
        each_key(&mut |_| live += 1);
        let mut w = Written::sized(2 * live);
        each_key(&mut |k| {
            w.enter(k);
        });
        w
    }

    /// Enters `key`; true when the filter is then fuller than it was sized for.
    fn enter(&mut self, key: &[u8]) -> bool {
        if !self.bloom.insert(key) {
            self.items += 1;
        }
        self.items > self.capacity
    }

    /// False when the store surely does not hold `key`. No probe when it holds nothing (no
    /// cache miss either: a store whose windows fire before any flush never holds a key).
    fn may_hold(&self, key: &[u8]) -> bool {
        self.items > 0 && self.bloom.contains(key)
    }
}

impl std::fmt::Debug for RocksBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksBackend").field("path", &self.path).finish_non_exhaustive()
    }
}

/// Memory RocksDB may keep per subtask: write buffer and block cache. State beyond this
/// lives on disk.
const WRITE_BUFFER: usize = 16 << 20;
const BLOCK_CACHE: usize = 16 << 20;

fn options() -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.set_write_buffer_size(WRITE_BUFFER);
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_block_cache(&rocksdb::Cache::new_lru_cache(BLOCK_CACHE));
    // Most lookups are for keys that are not there yet (a new window, a new key): bloom
    // filters answer those without reading blocks, in SST files and in the memtable.
    table.set_bloom_filter(10.0, false);
    o.set_memtable_prefix_bloom_ratio(0.1);
    o.set_memtable_whole_key_filtering(true);
    o.set_block_based_table_factory(&table);
    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    o.set_max_open_files(256);
    o.increase_parallelism(2);
    o
}

impl RocksBackend {
    /// Opens a fresh store at `path` (anything there is removed first: working state is
    /// rebuilt from checkpoints, never reused).
    pub fn open(path: &Path) -> anyhow::Result<RocksBackend> {
        if path.exists() {
            std::fs::remove_dir_all(path).with_context(|| format!("clearing state dir {}", path.display()))?;
        }
        std::fs::create_dir_all(path).with_context(|| format!("creating state dir {}", path.display()))?;
        let db = DB::open(&options(), path).with_context(|| format!("opening RocksDB at {}", path.display()))?;
        let mut write = WriteOptions::default();
        write.disable_wal(true);
        Ok(RocksBackend { db, path: path.to_path_buf(), len: 0, write, written: Written::sized(0) })
    }
}

impl StateBackend for RocksBackend {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        if !self.written.may_hold(key) {
            return None;
        }
        self.db.get(key).ok().flatten()
    }
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        let full = self.written.enter(&key);
        if let Err(e) = self.db.put_opt(key, value, &self.write) {
            panic!("RocksDB write failed at {}: {e}", self.path.display());
        }
        if full {
            self.written = Written::of(&self.db, &self.path);
        }
        self.len += 1;
    }
    fn delete(&mut self, key: &[u8]) {
        if let Err(e) = self.db.delete_opt(key, &self.write) {
            panic!("RocksDB delete failed at {}: {e}", self.path.display());
        }
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.db
            .iterator(IteratorMode::From(prefix, Direction::Forward))
            .map_while(|r| r.ok())
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    }
    fn delete_prefix(&mut self, prefix: &[u8]) {
        let mut batch = WriteBatch::default();
        for (k, _) in self.scan_prefix(prefix) {
            batch.delete(k);
        }
        if let Err(e) = self.db.write_opt(batch, &self.write) {
            panic!("RocksDB write failed at {}: {e}", self.path.display());
        }
    }
    fn len(&self) -> usize {
        // RocksDB keeps no exact count; this is an estimate for metrics.
        self.db.property_int_value("rocksdb.estimate-num-keys").ok().flatten().map(|n| n as usize).unwrap_or(self.len)
    }
    fn size_bytes(&self) -> u64 {
        // SST files' live data plus what the memtables hold (both RocksDB's estimates).
        let p = |name: &str| self.db.property_int_value(name).ok().flatten().unwrap_or(0);
        p("rocksdb.estimate-live-data-size") + p("rocksdb.cur-size-all-mem-tables")
    }
    fn snapshot(&mut self, dir: &Path) -> anyhow::Result<Deferred> {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Flushes the memtable and hard-links the immutable SST files: quick, and all
        // that the checkpoint needs.
        Checkpoint::new(&self.db)?.create_checkpoint(dir).with_context(|| format!("RocksDB checkpoint into {}", dir.display()))?;
        Ok(Box::new(|| Ok(())))
    }
    fn restore(&mut self, snapshots: &[&Path], groups: Range<u16>) -> anyhow::Result<()> {
        for dir in snapshots {
            let mut batch = WriteBatch::default();
            for (k, v) in super::read_snapshot(dir, groups.clone())? {
                batch.put(k, v);
                if batch.len() >= 10_000 {
                    self.db.write_opt(std::mem::take(&mut batch), &self.write)?;
                }
            }
            self.db.write_opt(batch, &self.write)?;
        }
        // The filter learns the restored keys: lookups of new keys stay out of RocksDB after
        // a recovery or a rescale too.
        self.written = Written::of(&self.db, &self.path);
        Ok(())
    }
}

/// Reads key groups `groups` from a RocksDB checkpoint folder (opened read-only).
pub fn read_checkpoint(dir: &Path, groups: Range<u16>) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let db = DB::open_for_read_only(&options(), dir, false)
        .with_context(|| format!("opening checkpoint {} (not a state snapshot?)", dir.display()))?;
    let start = groups.start.to_be_bytes();
    let mut out = Vec::new();
    for item in db.iterator(IteratorMode::From(&start, Direction::Forward)) {
        let (k, v) = item?;
        if !in_groups(&k, &groups) {
            break;
        }
        out.push((k.to_vec(), v.to_vec()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyCodec, MemoryBackend};

    #[test]
    fn rocksdb_snapshot_restores_into_memory_and_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = RocksBackend::open(&dir.path().join("db")).unwrap();
        let mut c = KeyCodec::default();
        for kg in 0..10u16 {
            db.put(c.key(kg, "v", format!("k{kg}").as_bytes(), b"").to_vec(), vec![kg as u8]);
        }
        assert_eq!(db.scan_prefix(c.prefix(4, "v", b"k4")).len(), 1);
        db.snapshot(&dir.path().join("chk")).unwrap()().unwrap();
        db.put(c.key(1, "v", b"late", b"").to_vec(), vec![]);
        let mut m = MemoryBackend::default();
        m.restore(&[&dir.path().join("chk")], 0..5).unwrap();
        assert_eq!(m.len(), 5, "only key groups 0..5, and nothing written after the snapshot");
        let mut db2 = RocksBackend::open(&dir.path().join("db2")).unwrap();
        db2.restore(&[&dir.path().join("chk")], 5..10).unwrap();
        assert_eq!(db2.get(c.key(7, "v", b"k7", b"")), Some(vec![7]));
        assert_eq!(db2.get(c.key(2, "v", b"k2", b"")), None);
    }

    /// Lookups of keys never put are answered by the filter; every key put, deleted, put
    /// again or restored is still found, among many that were not.
    #[test]
    fn keys_put_or_restored_are_found_past_the_filter_of_keys_never_put() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = RocksBackend::open(&dir.path().join("db")).unwrap();
        let key = |i: u32| format!("key-{i}").into_bytes();
        for i in (0..50_000).step_by(5) {
            db.put(key(i), i.to_le_bytes().to_vec());
        }
        db.delete(&key(5));
        db.put(key(5), vec![5]);
        let found = (0..50_000).filter(|&i| db.get(&key(i)).is_some()).count();
        assert_eq!(found, 10_000);
        assert_eq!(db.get(&key(5)), Some(vec![5]));
        db.snapshot(&dir.path().join("chk")).unwrap()().unwrap();
        let mut restored = RocksBackend::open(&dir.path().join("db2")).unwrap();
        assert_eq!(restored.get(&key(10)), None, "an empty store");
        restored.restore(&[&dir.path().join("chk")], 0..u16::MAX).unwrap();
        let found = (0..50_000).filter(|&i| restored.get(&key(i)).is_some()).count();
        assert_eq!(found, 10_000, "every restored key is found");
        let passed = (50_000..100_000).filter(|&i| restored.written.may_hold(&key(i))).count();
        assert!(passed < 1_000, "after a restore the filter answers for keys never put, but let {passed} of 50,000 through");
    }

    /// Keys put and deleted in turn, as windows open and fire: the filter is rebuilt from
    /// the keys left each time it fills, so it stays sized to them and keeps answering for
    /// keys never put, where one filter of every key ever put would let nearly all through.
    #[test]
    fn the_filter_is_rebuilt_from_the_keys_left_as_keys_come_and_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = RocksBackend::open(&dir.path().join("db")).unwrap();
        let key = |i: u32| format!("window-{i}").into_bytes();
        for round in 0..60u32 {
            for i in round * 5_000..(round + 1) * 5_000 {
                db.put(key(i), vec![1]);
            }
            if round < 59 {
                db.delete_prefix(b"window-");
            }
        }
        assert!(db.written.capacity <= 4 * 5_000, "sized to the 5,000 keys left, not to the 300,000 put: {}", db.written.capacity);
        let live = (295_000..300_000).filter(|&i| db.get(&key(i)).is_some()).count();
        assert_eq!(live, 5_000, "every key left is found");
        assert_eq!(db.get(&key(10)), None, "a deleted key is gone");
        let passed = (1_000_000..1_050_000).filter(|&i| db.written.may_hold(&key(i))).count();
        assert!(passed < 2_500, "the filter let {passed} of 50,000 keys never put through");
    }
}
