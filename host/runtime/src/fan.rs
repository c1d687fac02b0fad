//! Keyed operators that share a task: reading the same input at the same parallelism, with
//! keys that all refine one (`user_id`; `user_id` again; `["user_id", "action"]`), they get
//! their input partitioned once, by that coarsest key, over one channel into one thread per
//! subtask, where each would otherwise have had its own shuffle, channel and thread. In the
//! task each gets the batch keyed by its own key (a copy for all but one), without the
//! values it does not read.

use std::borrow::Cow;

use weir_core::keys::prefix_key;
use weir_core::record::{copy_prekeys, Batch, BatchBuilder, Key, Record};

use crate::route::{fields_key, Route};

/// How one keyed operator of a shared task receives the task's input.
#[derive(Debug, Default)]
pub struct Share {
    /// Keyed otherwise than the partition: by these fields.
    pub refine: Option<Refine>,
    /// It reads nothing of a record but its key and event time (see `Route::drop_values`).
    pub drop_values: bool,
    /// The number of fields its key is made of (0: the record's own key).
    pub key_fields: usize,
}

/// A key of fields whose first `prefix` make the partition's key (see
/// `weir_core::keys::KeyGroups`).
#[derive(Debug)]
pub struct Refine {
    /// The key's field paths.
    pub paths: Vec<Vec<String>>,
    /// The id under which a walk upstream may have read the key ahead (`Record::prekeys`).
    pub id: Option<u16>,
    /// How many leading fields make the partition's key (0: all).
    pub prefix: usize,
    /// What to tell the user when a record's key does not lead to its partition key.
    pub remedy: String,
}

impl Refine {
    /// The key of `r`, checked against the partition key the record carries: a record whose
    /// key would belong to another subtask cannot be kept here.
    fn key<'r>(&self, r: &'r Record) -> Result<Cow<'r, [u8]>, String> {
        let own = match self.id.and_then(|id| r.prekeys.iter().find(|(p, _)| *p == id)) {
            Some((_, k)) => Cow::Borrowed(k.as_slice()),
            None => Cow::Owned(fields_key(&self.paths, &r.value)?.into_vec()),
        };
        let partition = r.key.as_deref().unwrap_or_default();
        let lead = match self.prefix {
            0 => Cow::Borrowed(&*own),
            n => prefix_key(&own, n),
        };
        if !weir_json::equal(&lead, partition) {
            return Err(format!(
                "key-by: the key {} does not lead with the record's key {}: {}",
                String::from_utf8_lossy(&own),
                String::from_utf8_lossy(partition),
                self.remedy
            ));
        }
        Ok(own)
    }
}

impl Share {
    /// Whether this operator reads the records' values as they came (and so may take the
    /// task's batch itself rather than a copy).
    pub fn takes_batch(&self) -> bool {
        self.refine.is_none() && !self.drop_values
    }

    /// The key `r` has for this operator: the partition's, or its own refinement of it, where
    /// it lies in the record when it does; an error where it cannot be made (or does not lead
    /// to the partition's).
    pub fn key_ref<'r>(&self, r: &'r Record) -> Result<Option<Cow<'r, [u8]>>, String> {
        match &self.refine {
            None => Ok(r.key.as_deref().map(Cow::Borrowed)),
            Some(f) => f.key(r).map(Some),
        }
    }

    /// [`Share::key_ref`], copied (at once: see `Record`'s `Clone`).
    pub fn key_of(&self, r: &Record) -> Result<Option<Key>, String> {
        self.key_ref(r).map(|k| k.map(|k| Key::from_slice(&k)))
    }

    /// This operator's batch made from the task's: each record keyed by its key, with its
    /// value only where the operator reads it; records whose key cannot be made, with why.
    pub fn copy_of(&self, batch: &Batch) -> (Batch, Vec<(Record, String)>) {
        let mut out = BatchBuilder::with_capacity(batch.records.len());
        let mut dead = Vec::new();
        let mut marks = batch.marks.iter().peekable();
        for (i, r) in batch.records.iter().enumerate() {
            while let Some((_, w)) = marks.next_if(|m| m.0 as usize <= i) {
                out.mark(*w);
            }
            let key = match self.key_of(r) {
                Ok(k) => k,
                Err(why) => {
                    dead.push((r.clone(), why));
                    continue;
                }
            };
            let keep = !Route::drops_value(self.drop_values, self.key_fields, r, key.as_deref().unwrap_or_default());
            out.push(Record {
                key,
                value: if keep { r.value.clone() } else { Vec::new() },
                timestamp: r.timestamp,
                headers: r.headers.clone(),
                origin: r.origin,
                prekeys: if keep { copy_prekeys(&r.prekeys) } else { Default::default() },
            });
        }
        for (_, w) in marks {
            out.mark(*w);
        }
        (out.finish(), dead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(value: &str, key: &str, ts: Option<i64>) -> Record {
        Record { value: value.as_bytes().to_vec(), key: Some(Key::from_slice(key.as_bytes())), timestamp: ts, ..Record::default() }
    }

    #[test]
    fn a_refined_key_is_read_from_the_value_and_must_lead_with_the_partition_key() {
        let share = Share {
            refine: Some(Refine { paths: vec![vec!["user".into()], vec!["action".into()]], id: None, prefix: 1, remedy: "fix it".into() }),
            drop_values: true,
            key_fields: 2,
        };
        let batch = Batch {
            records: vec![
                rec(r#"{"user": "a", "action": "view"}"#, "a", Some(1)),
                // Partitioned by another key than its `user`: not this task's to keep.
                rec(r#"{"user": "b", "action": "view"}"#, "a", Some(2)),
                rec(r#"{"user": "c"}"#, "c", Some(3)),
                rec(r#"{"user": "d\u0021", "action": "buy"}"#, "d!", Some(4)),
            ],
            marks: vec![(1, 10), (2, 20), (4, 30)],
        };
        let (copy, dead) = share.copy_of(&batch);
        let keys: Vec<&[u8]> = copy.records.iter().map(|r| r.key.as_deref().unwrap_or_default()).collect();
        assert_eq!(keys, [&br#"["a","view"]"#[..], br#"["d!","buy"]"#]);
        assert!(copy.records.iter().all(|r| r.value.is_empty()), "a counting window reads no value");
        // The marks stay between the records they were between.
        assert_eq!(copy.marks, vec![(1, 10), (1, 20), (2, 30)]);
        let why: Vec<&str> = dead.iter().map(|(_, w)| w.as_str()).collect();
        assert!(why[0].contains(r#"the key ["b","view"] does not lead with the record's key a: fix it"#), "{why:?}");
        assert!(why[1].contains("missing field `user`, `action`"), "{why:?}");
    }

    #[test]
    fn a_member_keyed_by_the_partition_key_keeps_the_values_it_reads() {
        let batch = Batch::of(vec![rec(r#"{"user": "a"}"#, "a", Some(1)), rec(r#"{"user": "b"}"#, "b", None)]);
        let reads = Share::default();
        assert!(reads.takes_batch());
        assert_eq!(reads.copy_of(&batch).0.records, batch.records);
        let counts = Share { drop_values: true, ..Share::default() };
        let values: Vec<usize> = counts.copy_of(&batch).0.records.iter().map(|r| r.value.len()).collect();
        // Without event time the window sends the record to the dead letters, whole.
        assert_eq!(values, [0, 13]);
    }
}
