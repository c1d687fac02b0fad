//! Routes: how a task's output reaches the subtasks downstream (forward, rebalance, or by
//! key group of a key read from fields, a key-selector or the record).

use std::path::Path;
use std::sync::Arc;

use crossbeam_channel::Sender;

use weir_core::json;
use weir_core::keys::{key_bytes, key_text_in_key, KeySelector};
use weir_core::record::{copy_prekeys, Batch, BatchBuilder, Key, Message, Record, SPAN_SET};
use weir_state::{key_group, subtask_of};

thread_local! {
    /// Nanoseconds this thread spent blocked on full channels since the last take.
    static BACKPRESSURED_NS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The time this thread spent waiting for room in a full downstream channel since the last
/// call (backpressure), in ns.
pub fn take_backpressured_ns() -> u64 {
    BACKPRESSURED_NS.with(|b| b.replace(0))
}

/// Bounded channel capacity, in batches.
pub const CHANNEL_CAPACITY: usize = 16;

/// What a channel carries: `(input channel index at the receiver, message)`.
pub type Envelope = (u32, Message);

/// How records of an output are spread over the downstream subtasks.
pub enum Partitioner {
    /// One downstream subtask.
    Forward,
    /// Round robin by batch (watermarks go to all).
    Rebalance(usize),
    /// By key group of the record's key, computed here.
    Hash(KeyExtractor, u32),
}

impl std::fmt::Debug for Partitioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Partitioner::Forward => "Forward",
            Partitioner::Rebalance(_) => "Rebalance",
            Partitioner::Hash(..) => "Hash",
        })
    }
}

/// How a key is computed from a record.
pub enum KeyExtractor {
    /// JSON fields (dotted paths). One string field: its UTF-8 bytes; otherwise the JSON text
    /// (an array for several fields). With an id, a key the source read ahead under that id
    /// (see [`Record::prekeys`]) is taken instead of reading the value again.
    Fields(Vec<Vec<String>>, Option<u16>),
    /// A key-selector (a plugin instance).
    Selector(Box<dyn KeySelector>),
    /// The key each record carries (set upstream, `key-by = { record-key = ... }` in job files).
    RecordKey,
}

impl KeyExtractor {
    /// How many JSON fields make the key (0 for a plugin's key).
    pub fn key_fields(&self) -> usize {
        match self {
            KeyExtractor::Fields(paths, _) => paths.len(),
            KeyExtractor::Selector(_) | KeyExtractor::RecordKey => 0,
        }
    }

    /// Sets `key` on each record; returns the indexes that failed with reasons.
    fn assign(&mut self, records: &mut [Record]) -> Vec<(usize, String)> {
        let mut failed = Vec::new();
        match self {
            KeyExtractor::Fields(paths, id) => {
                for (i, r) in records.iter_mut().enumerate() {
                    if let Some(pos) = id.and_then(|id| r.prekeys.iter().position(|(p, _)| *p == id)) {
                        r.key = Some(r.prekeys.swap_remove(pos).1);
                        continue;
                    }
                    match fields_key(paths, &r.value) {
                        Ok(k) => r.key = Some(k),
                        Err(e) => failed.push((i, e)),
                    }
                }
            }
            KeyExtractor::RecordKey => {
                failed.extend(
                    records.iter().enumerate().filter(|(_, r)| r.key.is_none()).map(|(i, _)| {
                        (i, "key-by: the record has no key (`record-key` keys by the key a plugin upstream set)".to_string())
                    }),
                );
            }
            KeyExtractor::Selector(selector) => {
                for (i, res) in selector.select_keys(records).into_iter().enumerate() {
                    match res {
                        Ok(k) => records[i].key = Some(Key::from_slice(&k)),
                        Err(f) => failed.push((i, format!("key-selector: {f}"))),
                    }
                }
            }
        }
        failed
    }
}

/// The key of fields `paths` in a JSON value, or why there is none.
pub(crate) fn fields_key(paths: &[Vec<String>], value: &[u8]) -> Result<Key, String> {
    let mut found = json::Found::new();
    json::extract(value, paths, &mut found).map_err(|e| format!("key-by: value is not JSON: {e}"))?;
    let vals: smallvec::SmallVec<[json::Raw; 4]> = found.iter().map_while(|v| json::non_null(*v)).collect();
    match vals.len() == paths.len() {
        true => Ok(key_bytes(&vals)),
        false => {
            Err(format!("key-by: missing field {}", paths.iter().map(|p| format!("`{}`", p.join("."))).collect::<Vec<_>>().join(", ")))
        }
    }
}

/// One output port's connection to a downstream node.
#[derive(Debug)]
pub struct Route {
    /// One sender per downstream subtask.
    pub senders: Vec<Sender<Envelope>>,
    /// This task's input channel index at each downstream subtask.
    pub channel: u32,
    /// How records are spread.
    pub partitioner: Partitioner,
    /// The keyed downstream reads nothing of a record but its key and event time (a window
    /// counting, see `Planned::reads_only_keys`): values are dropped before records go, on
    /// the thread that made them.
    pub drop_values: bool,
}

/// The receiving side went away: the job is failing elsewhere.
#[derive(Debug, thiserror::Error)]
#[error("downstream task stopped")]
pub struct Disconnected;

impl Route {
    /// A copy of `batch` for this route when others get it too. A keyed route's copy keeps
    /// only the key read ahead for its own key-by (and the spans read ahead for plugins,
    /// `SPAN_SET`): the other keys would be freed unread on the
    /// downstream thread (and every allocation freed on another thread than its own is one
    /// of the dearest things in the job). Nor does it copy a value that [`Route::send_batch`]
    /// would drop at once: one whose key was read ahead, when the window downstream reads
    /// only keys.
    pub(crate) fn copy_of(&self, batch: &Batch) -> Batch {
        // The key this route will key by, where it is known before the route reads it.
        let (fields, id, record_key) = match &self.partitioner {
            Partitioner::Hash(KeyExtractor::Fields(paths, id), _) => (paths.len(), *id, false),
            Partitioner::Hash(KeyExtractor::RecordKey, _) => (0, None, true),
            _ => return batch.clone(),
        };
        let records = batch
            .records
            .iter()
            .map(|r| {
                let prekey = r.prekeys.iter().find(|(p, _)| Some(*p) == id);
                let key = if record_key { r.key.as_deref() } else { prekey.map(|(_, k)| k.as_slice()) };
                let dropped = key.is_some_and(|key| Self::drops_value(self.drop_values, fields, r, key));
                Record {
                    key: r.key.as_deref().map(Key::from_slice),
                    value: if dropped { Vec::new() } else { r.value.clone() },
                    timestamp: r.timestamp,
                    headers: r.headers.clone(),
                    origin: r.origin,
                    // Spans of a few members live in the record (they free nothing
                    // downstream: see `spans_entry`), and a plugin there may read them.
                    prekeys: copy_prekeys(prekey.into_iter().chain(r.prekeys.iter().filter(|(p, _)| p & SPAN_SET != 0))),
                }
            })
            .collect();
        Batch { records, marks: batch.marks.clone() }
    }

    /// Whether a route that drops values (see [`Route::drop_values`]) sends the record,
    /// keyed by `key` of `key_fields` fields, without its value. A record without event time
    /// goes whole: the window sends it to the dead letters. So does one whose key text the
    /// window reads from it.
    pub(crate) fn drops_value(drop_values: bool, key_fields: usize, r: &Record, key: &[u8]) -> bool {
        drop_values && r.timestamp.is_some() && key_text_in_key(key_fields, key)
    }

    fn send(&self, to: usize, m: Message) -> Result<(), Disconnected> {
        // A full channel is backpressure: the time spent waiting for room is counted for the
        // sending thread's task (`take_backpressured_ns`).
        match self.senders[to].try_send((self.channel, m)) {
            Ok(()) => Ok(()),
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => Err(Disconnected),
            Err(crossbeam_channel::TrySendError::Full(m)) => {
                let started = std::time::Instant::now();
                let sent = self.senders[to].send(m).map_err(|_| Disconnected);
                BACKPRESSURED_NS.with(|b| b.set(b.get() + started.elapsed().as_nanos() as u64));
                sent
            }
        }
    }

    fn broadcast(&self, m: impl Fn() -> Message) -> Result<(), Disconnected> {
        (0..self.senders.len()).try_for_each(|i| self.send(i, m()))
    }

    /// Sends a batch; records whose key cannot be computed are returned with a reason.
    pub fn send_batch(&mut self, mut batch: Batch) -> Result<Vec<(Record, String)>, Disconnected> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let n = self.senders.len();
        match &mut self.partitioner {
            Partitioner::Forward => {
                self.send(0, Message::Data(batch))?;
                Ok(Vec::new())
            }
            Partitioner::Rebalance(next) => {
                let to = *next % n;
                *next = next.wrapping_add(1);
                let wm = batch.last_watermark();
                if batch.records.is_empty() {
                    self.broadcast(|| Message::Data(Batch { records: Vec::new(), marks: batch.marks.clone() }))?;
                    return Ok(Vec::new());
                }
                self.send(to, Message::Data(batch))?;
                if let Some(wm) = wm {
                    for i in (0..n).filter(|i| *i != to) {
                        self.send(i, Message::Watermark(wm))?;
                    }
                }
                Ok(Vec::new())
            }
            Partitioner::Hash(extractor, max_par) => {
                let failed = extractor.assign(&mut batch.records);
                // Each record's subtask first (`n`: the dead letters), so that each output is
                // allocated once, at its size: records are 176 bytes, and growing by doubling
                // moves them again.
                let max_par = *max_par;
                let mut to: Vec<usize> = batch
                    .records
                    .iter()
                    .map(|r| subtask_of(key_group(r.key.as_deref().unwrap_or_default(), max_par), n, max_par))
                    .collect();
                for (i, _) in &failed {
                    to[*i] = n;
                }
                let mut reasons = failed.into_iter().map(|(_, r)| r);
                let mut dead = Vec::new();
                let mut sizes = vec![0; n + 1];
                to.iter().for_each(|&t| sizes[t] += 1);
                let mut outs: Vec<BatchBuilder> = sizes[..n].iter().map(|&len| BatchBuilder::with_capacity(len)).collect();
                let mut marks = batch.marks.iter().peekable();
                for (i, (mut r, to)) in batch.records.into_iter().zip(to).enumerate() {
                    while let Some((_, w)) = marks.next_if(|m| m.0 as usize <= i) {
                        outs.iter_mut().for_each(|o| o.mark(*w));
                    }
                    if to == n {
                        dead.push((r, reasons.next().unwrap_or_default()));
                        continue;
                    }
                    let key = r.key.as_deref().unwrap_or_default();
                    if Self::drops_value(self.drop_values, extractor.key_fields(), &r, key) {
                        r.value = Vec::new();
                        r.prekeys.clear();
                    }
                    outs[to].push(r);
                }
                for (_, w) in marks {
                    outs.iter_mut().for_each(|o| o.mark(*w));
                }
                for (i, o) in outs.into_iter().enumerate() {
                    let b = o.finish();
                    if !b.is_empty() {
                        self.send(i, Message::Data(b))?;
                    }
                }
                Ok(dead)
            }
        }
    }

    /// Sends a checkpoint barrier to every downstream subtask.
    pub fn barrier(&self, id: u64, dir: &Arc<Path>) -> Result<(), Disconnected> {
        self.broadcast(|| Message::Barrier(id, dir.clone()))
    }

    /// Sends end-of-input to every downstream subtask.
    pub fn end(&self) -> Result<(), Disconnected> {
        self.broadcast(|| Message::End)
    }

    /// Sends an idleness change to every downstream subtask.
    pub fn idle(&self, idle: bool) -> Result<(), Disconnected> {
        self.broadcast(|| Message::Idle(idle))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_for_room_in_a_full_channel_counts_as_backpressure() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut route = Route { senders: vec![tx], channel: 0, partitioner: Partitioner::Forward, drop_values: false };
        let batch = || Batch::of(vec![Record { value: b"x".to_vec(), ..Record::default() }]);
        take_backpressured_ns();
        route.send_batch(batch()).expect("room");
        assert_eq!(take_backpressured_ns(), 0, "room in the channel: no wait");
        let reader = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(60));
            (rx.recv().is_ok(), rx)
        });
        route.send_batch(batch()).expect("room after the reader took one");
        let waited = take_backpressured_ns();
        assert!(waited >= 40_000_000, "waited {waited} ns");
        assert!(reader.join().expect("reader").0);
    }
    use crossbeam_channel::Receiver;

    #[test]
    fn key_by_takes_a_key_read_ahead_under_its_id_and_reads_the_value_otherwise() {
        let rec = |v: &str, prekeys: Vec<(u16, Key)>| Record { value: v.as_bytes().to_vec(), prekeys: prekeys.into(), ..Record::default() };
        let mut by_user = KeyExtractor::Fields(vec![vec!["user".to_string()]], Some(3));
        let mut recs = vec![
            rec(r#"{"user": "a"}"#, vec![(3, Key::from_slice(b"a"))]),
            rec(r#"{"user": "b"}"#, vec![(7, Key::from_slice(b"other"))]),
            rec(r#"{"user": 7}"#, vec![]),
            rec(r#"{"name": "c"}"#, vec![]),
        ];
        let failed = by_user.assign(&mut recs);
        let keys: Vec<Option<&[u8]>> = recs.iter().map(|r| r.key.as_deref()).collect();
        assert_eq!(keys, [Some(&b"a"[..]), Some(&b"b"[..]), Some(&b"7"[..]), None]);
        assert_eq!(failed.len(), 1);
        assert!(failed[0].1.contains("missing field `user`"), "{failed:?}");
        // Taken, not copied: a later key-by reads the value.
        assert!(recs[0].prekeys.is_empty() && recs[1].prekeys.len() == 1);
        let mut pair = KeyExtractor::Fields(vec![vec!["user".to_string()], vec!["n".to_string()]], None);
        let mut recs = vec![rec(r#"{"user": "a", "n": 1.50}"#, vec![])];
        assert!(pair.assign(&mut recs).is_empty());
        assert_eq!(recs[0].key.as_deref(), Some(&br#"["a",1.5]"#[..]));
        // Several fields: the JSON array serde_json would print for the values.
        let v = r#"{"user": "a\u0041\"", "n": {"x": [1, 2.0], "y": null}}"#;
        let mut recs = vec![rec(v, vec![])];
        assert!(pair.assign(&mut recs).is_empty());
        let parsed: serde_json::Value = serde_json::from_str(v).unwrap();
        assert_eq!(recs[0].key.as_deref(), Some(serde_json::to_vec(&[&parsed["user"], &parsed["n"]]).unwrap().as_slice()));
    }

    #[test]
    fn a_keyed_routes_copy_keeps_only_its_own_key_read_ahead() {
        let (tx, _rx) = crossbeam_channel::unbounded();
        let route = |partitioner| Route { senders: vec![tx.clone()], channel: 0, partitioner, drop_values: false };
        let batch = Batch {
            records: vec![Record {
                value: br#"{"user": "a", "action": "x"}"#.to_vec(),
                timestamp: Some(5),
                headers: vec![("h".into(), b"v".to_vec())],
                prekeys: vec![(3, Key::from_slice(b"a")), (4, Key::from_slice(br#"["a","x"]"#))].into(),
                ..Record::default()
            }],
            marks: vec![(1, 7)],
        };
        let by_user = route(Partitioner::Hash(KeyExtractor::Fields(vec![vec!["user".into()]], Some(3)), 128));
        let copy = by_user.copy_of(&batch);
        assert_eq!(copy.records[0].prekeys.to_vec(), vec![(3, Key::from_slice(b"a"))]);
        let rest = |r: &Record| (r.value.clone(), r.timestamp, r.headers.clone());
        assert_eq!((rest(&copy.records[0]), &copy.marks), (rest(&batch.records[0]), &batch.marks));
        // A route that does not key (a stateless task downstream may feed a keyed one) keeps all.
        assert_eq!(route(Partitioner::Forward).copy_of(&batch).records, batch.records);
    }

    #[test]
    fn a_copy_for_a_route_that_drops_values_leaves_them_out_where_it_would_drop_them() {
        let rec = |v: &str, ts: Option<i64>, prekey: Option<&str>| Record {
            value: v.as_bytes().to_vec(),
            timestamp: ts,
            prekeys: prekey.map(|k| (3, Key::from_slice(k.as_bytes()))).into_iter().collect(),
            ..Record::default()
        };
        let batch = Batch::of(vec![
            rec(r#"{"user": "a"}"#, Some(1), Some("a")),
            rec(r#"{"user": "b"}"#, None, Some("b")),
            rec(r#"{"user": "7"}"#, Some(2), Some("7")),
            // No key read ahead: the route reads it from the value.
            rec(r#"{"user": "c"}"#, Some(3), None),
        ]);
        for drop_values in [false, true] {
            let (tx, rx) = crossbeam_channel::unbounded();
            let partitioner = Partitioner::Hash(KeyExtractor::Fields(vec![vec!["user".into()]], Some(3)), 128);
            let mut route = Route { senders: vec![tx], channel: 0, partitioner, drop_values };
            let copy = route.copy_of(&batch);
            let copied: Vec<bool> = copy.records.iter().map(|r| !r.value.is_empty()).collect();
            assert_eq!(copied, [!drop_values, true, true, true]);
            // What goes downstream is what the batch itself would have sent.
            for b in [copy, batch.clone()] {
                assert!(route.send_batch(b).expect("sent").is_empty());
            }
            let sent = |rx: &Receiver<Envelope>| match rx.try_recv() {
                Ok((_, Message::Data(b))) => b.records.into_iter().map(|r| (r.key, r.value)).collect::<Vec<_>>(),
                _ => panic!("a batch"),
            };
            assert_eq!(sent(&rx), sent(&rx));
        }
    }

    #[test]
    fn a_route_to_a_window_that_reads_only_keys_drops_values_it_can() {
        let records = || {
            let rec = |v: &str, ts: Option<i64>| Record { value: v.as_bytes().to_vec(), timestamp: ts, ..Record::default() };
            vec![
                rec(r#"{"user": "a"}"#, Some(1)),
                // No event time: the window sends it to the dead letters, whole.
                rec(r#"{"user": "b"}"#, None),
                // The key text of a non-string (or a string that reads like one) comes from
                // the record.
                rec(r#"{"user": 7}"#, Some(2)),
                rec(r#"{"user": "7"}"#, Some(3)),
            ]
        };
        for drop_values in [false, true] {
            let (tx, rx) = crossbeam_channel::unbounded();
            let mut route = Route {
                senders: vec![tx],
                channel: 0,
                partitioner: Partitioner::Hash(KeyExtractor::Fields(vec![vec!["user".into()]], None), 128),
                drop_values,
            };
            assert!(route.send_batch(Batch::of(records())).expect("sent").is_empty());
            let Ok((_, Message::Data(sent))) = rx.try_recv() else { panic!("a batch") };
            let values: Vec<&[u8]> = sent.records.iter().map(|r| r.value.as_slice()).collect();
            let keys: Vec<&[u8]> = sent.records.iter().map(|r| r.key.as_deref().unwrap_or_default()).collect();
            assert_eq!(keys, [&b"a"[..], b"b", b"7", b"7"]);
            let kept: Vec<Vec<u8>> = records().into_iter().map(|r| r.value).collect();
            match drop_values {
                false => assert_eq!(values, kept),
                true => assert_eq!(values, [&b""[..], &kept[1], &kept[2], &kept[3]]),
            }
        }
    }

    #[test]
    fn a_route_to_a_counting_window_keyed_by_several_fields_drops_values() {
        // The window reads the row's texts back from the key's JSON array.
        let (tx, rx) = crossbeam_channel::unbounded();
        let by = KeyExtractor::Fields(vec![vec!["user".into()], vec!["action".into()]], None);
        let mut route = Route { senders: vec![tx], channel: 0, partitioner: Partitioner::Hash(by, 128), drop_values: true };
        let rec = Record { value: br#"{"user": "a", "action": "view"}"#.to_vec(), timestamp: Some(1), ..Record::default() };
        assert!(route.send_batch(Batch::of(vec![rec])).expect("sent").is_empty());
        let Ok((_, Message::Data(sent))) = rx.try_recv() else { panic!("a batch") };
        assert_eq!(sent.records[0].key.as_deref(), Some(&br#"["a","view"]"#[..]));
        assert!(sent.records[0].value.is_empty());
    }
}
