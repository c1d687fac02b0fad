//! What a `process` call has read of value and list state, kept for the rest of the call,
//! and the value and list writes of the record at hand, held back until the next.
//!
//! A state call crosses into the host and back (its name lifted, the answer lowered through
//! this component's allocator): on the log-analyzer's detector one cost about 400 ns, more
//! than reading the record, and its state calls half its time. Records of one key often
//! come several to a batch, and an operator reads the same states for each. So within one
//! `process` call each value or list state of a key, once read, is answered from here (and
//! decoded from where it lies). Writes update what is kept and are held back in a log
//! (`weir_batch::writes`), each record's under its index, which crosses with the next call
//! that needs the host, or, after the last record, in one `state.apply-writes`.
//!
//! A record enters the host (`context.enter`) only when it needs it for more than its
//! writes: a read the call has not kept, map state, an emit, a timer, the context's key,
//! watermark or time. The others cost no crossing at all: on the log-analyzer's detector
//! that is almost every record. The host applies each write in the context of the record
//! that made it, so a trap in the middle of a call leaves the host's state as exactly-once
//! needs it: the records before the last one entered fully applied, the rest not at all
//! (the host calls a fresh instance from that one on, and that instance's first call enters
//! every record, so the record that traps again is known). Once a record registers or
//! deletes a timer, every later record of the call is entered first, so that the host can
//! stop the call where that timer is due. The host's processing time stands still for
//! the length of a call, so a state with a time-to-live reads the same from here as from
//! the host. Kept reads are shared by every handle of a state name. Map state is not kept.

use std::cell::RefCell;
use std::collections::HashMap;

use weir_batch::writes;

use crate::host;

type Map<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// Kept states of one kind: by state name, then key.
type States<V> = Names<Map<KeyBytes, Kept<V>>>;

/// Picks one kind's states, the current key and the call on.
type Pick<V> = fn(&mut Reads) -> (&mut States<V>, &KeyBytes, u64);

/// A key's bytes, compared with `weir_json::equal`: in Wasm the slice comparison a hash map
/// makes on every hit is a call to a byte loop (`memcmp`), about as dear as the lookup.
#[derive(Default, Clone, Eq)]
struct KeyBytes(Vec<u8>);

impl PartialEq for KeyBytes {
    fn eq(&self, other: &KeyBytes) -> bool {
        crate::json::equal(&self.0, &other.0)
    }
}

impl std::hash::Hash for KeyBytes {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.hash(h);
    }
}

/// What is kept of each state by its name: an operator has a few states, found by comparing
/// names (as [`KeyBytes`] are compared) rather than by hashing them.
struct Names<T>(Vec<(String, T)>);

impl<T> Default for Names<T> {
    fn default() -> Self {
        Names(Vec::new())
    }
}

impl<T> Names<T> {
    fn get(&self, name: &str) -> Option<&T> {
        self.0.iter().find(|(n, _)| crate::json::equal(n.as_bytes(), name.as_bytes())).map(|(_, t)| t)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut T> {
        self.0.iter_mut().find(|(n, _)| crate::json::equal(n.as_bytes(), name.as_bytes())).map(|(_, t)| t)
    }

    fn insert(&mut self, name: &str, t: T) {
        self.0.push((name.to_string(), t));
    }

    fn values(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|(_, t)| t)
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// A state of one key as a call read or wrote it.
struct Kept<V> {
    /// The call it was kept in: older ones are not answered from.
    call: u64,
    v: V,
}

/// Kept reads by state name, then key. Entries stay from call to call (and their room is
/// reused), answered from only in the call that kept them.
#[derive(Default)]
struct Reads {
    /// The call on (0: none).
    call: u64,
    /// The last call's number.
    calls: u64,
    /// The current record's key.
    key: KeyBytes,
    values: States<Option<Vec<u8>>>,
    lists: States<Vec<Vec<u8>>>,
    /// Writes not yet handed to the host, each record's under its index.
    log: Vec<u8>,
    /// The index of the record at hand in the call's batch.
    record: u32,
    /// The record the host has current in this call, if any.
    entered: Option<u32>,
    /// The record whose writes the log ends with, when not `entered`.
    tagged: Option<u32>,
    /// Every record is entered before it is handled (a timer was set in this call).
    strict: bool,
}

/// Keys kept at most (per state kind) before a call starts afresh.
const MAX_KEPT: usize = 4096;

thread_local! {
    static READS: RefCell<Reads> = RefCell::new(Reads::default());
}

/// A `process` call starts: nothing kept from before is answered from (a call a trap ended
/// may have left its reads).
pub(crate) fn begin() {
    READS.with(|r| {
        let mut r = r.borrow_mut();
        // The instance's first call, and a call after one that did not end (a trap), enter
        // every record: the host, after a trap, calls a fresh instance from the last record
        // entered on, and fails the last one entered when that call traps too.
        let strict = r.calls == 0 || r.call != 0;
        r.calls += 1;
        r.call = r.calls;
        // Writes a trap cut short belong to a record that failed.
        r.log.clear();
        (r.record, r.entered, r.tagged, r.strict) = (0, None, None, strict);
        if r.values.values().map(Map::len).sum::<usize>() > MAX_KEPT || r.lists.values().map(Map::len).sum::<usize>() > MAX_KEPT {
            r.values.clear();
            r.lists.clear();
        }
    });
}

/// The call ends: the writes held back go to the host, and reads go to the host again.
pub(crate) fn end() {
    hand_over();
    reset();
}

/// Another export starts: nothing kept is answered from, nothing held back is applied (a
/// call a trap ended may have left some).
pub(crate) fn reset() {
    READS.with(|r| {
        let mut r = r.borrow_mut();
        r.call = 0;
        r.log.clear();
        (r.record, r.entered, r.tagged, r.strict) = (0, None, None, false);
    });
}

/// Takes the held-back writes, if any, for `f`, and keeps the log's room. A record that
/// wrote nothing costs one look at the log.
fn with_log<R>(f: impl FnOnce(Option<&[u8]>) -> R) -> R {
    let taken = READS.with(|r| {
        let mut r = r.borrow_mut();
        (!r.log.is_empty()).then(|| std::mem::take(&mut r.log))
    });
    let Some(mut log) = taken else { return f(None) };
    let out = f(Some(&log));
    log.clear();
    READS.with(|r| r.borrow_mut().log = log);
    out
}

/// Before any other call to the host: in a `process` call, the record at hand is entered,
/// with the writes held back (`context.enter-with-writes`), unless it is already; then the
/// writes it made since go (`state.apply-writes`).
pub(crate) fn flush() {
    let (call, record, entered) = READS.with(|r| {
        let r = r.borrow();
        (r.call, r.record, r.entered)
    });
    if call != 0 && entered != Some(record) {
        // A lazy record is never told to stop: only a timer set in the call makes the host
        // stop one, and from then on each record is entered before it is handled.
        enter_record(record);
        return;
    }
    if hand_over() {
        READS.with(|r| {
            let mut r = r.borrow_mut();
            r.entered = r.tagged.take().or(r.entered);
        });
    }
}

/// Hands the writes held back to the host (`state.apply-writes`), if any (true).
fn hand_over() -> bool {
    with_log(|log| log.map(host::apply_writes)).is_some()
}

/// `context.enter` of record `index`, with the writes held back.
pub(crate) fn enter_record(index: u32) -> bool {
    let entered = with_log(|log| match log {
        Some(log) => host::enter_with_writes(index, log),
        None => host::enter(index),
    });
    READS.with(|r| {
        let mut r = r.borrow_mut();
        // A log of other records' writes made the last of them current, whatever the answer.
        let tagged = r.tagged.take();
        r.entered = if entered { Some(index) } else { tagged.or(r.entered) };
    });
    entered
}

/// Record `index` of the call's batch is at hand: in a call that set a timer it is entered
/// now (false: the host says stop before it); otherwise only when it needs the host.
pub(crate) fn next_record(index: u32) -> bool {
    let strict = READS.with(|r| {
        let mut r = r.borrow_mut();
        r.record = index;
        r.strict
    });
    !strict || enter_record(index)
}

/// A timer was set or deleted in the call: each later record is entered before it is
/// handled, so that the host can stop the call before the first one the timer is due at.
pub(crate) fn enter_each_record() {
    READS.with(|r| {
        let mut r = r.borrow_mut();
        if r.call != 0 {
            r.strict = true;
        }
    });
}

/// Holds a write back while a call is on (true), under the record that made it; outside one
/// (false) it goes at once.
fn hold(write: impl FnOnce(&mut Vec<u8>)) -> bool {
    READS.with(|r| {
        let mut r = r.borrow_mut();
        if r.call == 0 {
            return false;
        }
        let record = r.record;
        if r.tagged.or(r.entered) != Some(record) {
            writes::push_record(&mut r.log, record);
            r.tagged = Some(record);
        }
        write(&mut r.log);
        true
    })
}

/// The record at hand has key `key`.
pub(crate) fn enter(key: &[u8]) {
    READS.with(|r| {
        let mut r = r.borrow_mut();
        r.key.0.clear();
        r.key.0.extend_from_slice(key);
    });
}

/// Sets what state `name` of the current key holds, when a call is on: `set` changes a kept
/// entry in place (its room reused, answering `None`), or, given none, makes one.
fn keep<V>(pick: Pick<V>, name: &str, set: impl FnOnce(Option<&mut V>) -> Option<V>) {
    READS.with(|r| {
        let mut r = r.borrow_mut();
        let (states, key, call) = pick(&mut r);
        if call == 0 {
            return;
        }
        if let Some(kept) = states.get_mut(name).and_then(|keys| keys.get_mut(key)) {
            kept.call = call;
            set(Some(&mut kept.v));
            return;
        }
        let Some(v) = set(None) else { return };
        let kept = Kept { call, v };
        match states.get_mut(name) {
            Some(keys) => _ = keys.insert(key.clone(), kept),
            None => states.insert(name, Map::from_iter([(key.clone(), kept)])),
        }
    });
}

fn values(r: &mut Reads) -> (&mut States<Option<Vec<u8>>>, &KeyBytes, u64) {
    (&mut r.values, &r.key, r.call)
}

fn lists(r: &mut Reads) -> (&mut States<Vec<Vec<u8>>>, &KeyBytes, u64) {
    (&mut r.lists, &r.key, r.call)
}

/// `dst` made a copy of `src`, reusing its room.
fn copy_into(dst: &mut Vec<u8>, src: &[u8]) {
    dst.clear();
    dst.extend_from_slice(src);
}

/// Value state `name` of the current key, handed to `f` where it lies.
pub(crate) fn value<R>(name: &str, f: impl FnOnce(Option<&[u8]>) -> R) -> R {
    let mut f = Some(f);
    let kept = READS.with(|r| {
        let r = r.borrow();
        let kept = r.values.get(name)?.get(&r.key).filter(|k| r.call != 0 && k.call == r.call)?;
        f.take().map(|f| f(kept.v.as_deref()))
    });
    if let Some(out) = kept {
        return out;
    }
    flush();
    let mut v = host::value_get(name);
    let out = f.take().map(|f| f(v.as_deref()));
    keep(values, name, |kept| match kept {
        Some(k) => {
            *k = v.take();
            None
        }
        None => Some(v.take()),
    });
    out.expect("answered once")
}

pub(crate) fn value_set(name: &str, v: &[u8]) {
    if !hold(|log| writes::push_value(log, writes::VALUE_SET, name, v)) {
        host::value_set(name, v);
    }
    keep(values, name, |kept| match kept {
        Some(Some(old)) => {
            copy_into(old, v);
            None
        }
        Some(cleared) => {
            *cleared = Some(v.to_vec());
            None
        }
        None => Some(Some(v.to_vec())),
    });
}

pub(crate) fn value_clear(name: &str) {
    if !hold(|log| writes::push_clear(log, writes::VALUE_CLEAR, name)) {
        host::value_clear(name);
    }
    keep(values, name, |kept| match kept {
        Some(k) => {
            *k = None;
            None
        }
        None => Some(None),
    });
}

/// List state `name` of the current key, handed to `f` where it lies.
pub(crate) fn list<R>(name: &str, f: impl FnOnce(&[Vec<u8>]) -> R) -> R {
    let mut f = Some(f);
    let kept = READS.with(|r| {
        let r = r.borrow();
        let kept = r.lists.get(name)?.get(&r.key).filter(|k| r.call != 0 && k.call == r.call)?;
        f.take().map(|f| f(&kept.v))
    });
    if let Some(out) = kept {
        return out;
    }
    flush();
    let items = host::list_get(name);
    let out = f.take().map(|f| f(&items));
    keep(lists, name, |kept| match kept {
        Some(k) => {
            *k = items;
            None
        }
        None => Some(items),
    });
    out.expect("answered once")
}

pub(crate) fn list_add(name: &str, v: &[u8]) {
    if !hold(|log| writes::push_value(log, writes::LIST_ADD, name, v)) {
        host::list_add(name, v);
    }
    // Only a list this call read whole can be added to: one kept from an earlier call is
    // stale, and is never answered from.
    READS.with(|r| {
        let mut r = r.borrow_mut();
        let Reads { lists, key, call, .. } = &mut *r;
        if let Some(kept) = lists.get_mut(name).and_then(|keys| keys.get_mut(&*key)).filter(|k| *call != 0 && k.call == *call) {
            kept.v.push(v.to_vec());
        }
    });
}

pub(crate) fn list_update(name: &str, vs: &[Vec<u8>]) {
    if !hold(|log| writes::push_values(log, name, vs)) {
        host::list_update(name, vs);
    }
    keep(lists, name, |kept| match kept {
        Some(items) => {
            items.resize_with(vs.len(), Vec::new);
            items.iter_mut().zip(vs).for_each(|(dst, src)| copy_into(dst, src));
            None
        }
        None => Some(vs.to_vec()),
    });
}

pub(crate) fn list_clear(name: &str) {
    if !hold(|log| writes::push_clear(log, writes::LIST_CLEAR, name)) {
        host::list_clear(name);
    }
    keep(lists, name, |kept| match kept {
        Some(items) => {
            items.clear();
            None
        }
        None => Some(Vec::new()),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::with_host;

    fn value_get(name: &str) -> Option<Vec<u8>> {
        value(name, |v| v.map(<[u8]>::to_vec))
    }

    fn list_get(name: &str) -> Vec<Vec<u8>> {
        list(name, <[Vec<u8>]>::to_vec)
    }

    #[test]
    fn reads_are_kept_for_the_call_and_writes_go_through() {
        let on = |key: &[u8]| {
            // As the SDK's `process` does: the record before hands over its writes first.
            enter_record(0);
            with_host(|h| h.key = Some(key.to_vec()));
            enter(key);
        };
        on(b"k");
        host::value_set("n", b"1");
        host::list_update("l", &[b"a".to_vec()]);
        begin();
        on(b"k");
        assert_eq!(value_get("n"), Some(b"1".to_vec()));
        assert_eq!(list_get("l"), vec![b"a".to_vec()]);
        // Changed behind the call's back (only the host could): the call keeps what it read.
        host::value_set("n", b"2");
        host::list_add("l", b"x");
        assert_eq!(value_get("n"), Some(b"1".to_vec()), "kept");
        assert_eq!(list_get("l"), vec![b"a".to_vec()], "kept");
        // Writes change what is kept at once and reach the host with the next record's
        // `enter`, or before another state call.
        value_set("n", b"3");
        list_add("l", b"b");
        assert_eq!((host::value_get("n"), value_get("n")), (Some(b"2".to_vec()), Some(b"3".to_vec())), "held back");
        assert_eq!(list_get("l"), vec![b"a".to_vec(), b"b".to_vec()]);
        assert!(enter_record(1));
        assert_eq!(host::value_get("n"), Some(b"3".to_vec()));
        assert_eq!(host::list_get("l"), vec![b"a".to_vec(), b"x".to_vec(), b"b".to_vec()]);
        value_clear("n");
        list_clear("l");
        list_update("u", &[b"1".to_vec(), b"2".to_vec()]);
        assert_eq!((value_get("n"), list_get("l"), list_get("u")), (None, vec![], vec![b"1".to_vec(), b"2".to_vec()]));
        flush();
        assert_eq!((host::value_get("n"), host::list_get("l")), (None, vec![]));
        assert_eq!(host::list_get("u"), vec![b"1".to_vec(), b"2".to_vec()]);
        // A list added to before it was read is read from the host.
        list_add("m", b"1");
        assert_eq!(list_get("m"), vec![b"1".to_vec()]);
        // Another key has reads of its own.
        on(b"other");
        assert_eq!(value_get("n"), None);
        value_set("n", b"o");
        assert_eq!(value_get("n"), Some(b"o".to_vec()));
        on(b"k");
        assert_eq!(value_get("n"), None, "k's own, cleared above");
        // Keys and names that differ in their last byte only are others too.
        for (a, b) in [(&b"user_10"[..], &b"user_11"[..]), (b"a_key_of_twenty_bytes", b"a_key_of_twenty_byteZ")] {
            on(a);
            value_set("last_login", b"1");
            value_set("last_logiN", b"2");
            on(b);
            assert_eq!((value_get("last_login"), value_get("last_logiN")), (None, None), "{a:?} {b:?}");
            on(a);
            assert_eq!((value_get("last_login"), value_get("last_logiN")), (Some(b"1".to_vec()), Some(b"2".to_vec())));
        }
        on(b"k");
        // The call ends: the last record's writes reach the host; after it, reads and
        // writes go to the host at once.
        value_set("n", b"last");
        end();
        assert_eq!(host::value_get("n"), Some(b"last".to_vec()));
        host::value_set("n", b"4");
        assert_eq!(value_get("n"), Some(b"4".to_vec()));
        value_set("n", b"5");
        assert_eq!(host::value_get("n"), Some(b"5".to_vec()));
    }

    #[test]
    fn writes_a_trap_cut_short_are_never_applied() {
        with_host(|h| h.key = Some(b"k".to_vec()));
        begin();
        enter(b"k");
        value_set("t", b"1");
        list_add("t", b"1");
        // The call traps here; the next export starts afresh, and nothing it does hands
        // the failed record's writes over.
        reset();
        flush();
        assert!(enter_record(0));
        assert_eq!((host::value_get("t"), host::list_get("t")), (None, vec![]));
    }
}
