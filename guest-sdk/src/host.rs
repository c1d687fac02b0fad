//! The calls an operator makes to its host. In a component they are the WIT imports; in a
//! native build they go to the in-memory host of [`crate::testing`].

#[cfg(target_arch = "wasm32")]
mod imp {
    use crate::wit::weir::plugin::{context, log, output, state, timers};
    use crate::{Level, Record};

    pub fn log(level: Level, msg: &str) {
        log::log(level, msg)
    }
    pub fn current_key() -> Option<Vec<u8>> {
        context::current_key()
    }
    pub fn current_watermark() -> i64 {
        context::current_watermark()
    }
    pub fn current_processing_time() -> i64 {
        context::current_processing_time()
    }
    pub fn subtask_index() -> u32 {
        context::subtask_index()
    }
    pub fn enter(index: u32) -> bool {
        context::enter(index)
    }
    pub fn enter_with_writes(index: u32, writes: &[u8]) -> bool {
        context::enter_with_writes(index, writes)
    }
    pub fn apply_writes(writes: &[u8]) {
        state::apply_writes(writes)
    }
    pub fn read_fields(names: &[String]) {
        context::read_fields(names)
    }
    pub fn field_spans() -> Vec<u32> {
        context::field_spans()
    }
    pub fn member_counts() -> Vec<u32> {
        context::member_counts()
    }
    pub fn emit(rec: &Record) {
        output::emit(rec)
    }
    pub fn emit_to(name: &str, rec: &Record) {
        output::emit_to(name, rec)
    }
    pub fn value_get(name: &str) -> Option<Vec<u8>> {
        state::value_get(name)
    }
    pub fn value_set(name: &str, v: &[u8]) {
        state::value_set(name, v)
    }
    pub fn value_clear(name: &str) {
        state::value_clear(name)
    }
    pub fn list_get(name: &str) -> Vec<Vec<u8>> {
        state::list_get(name)
    }
    pub fn list_add(name: &str, v: &[u8]) {
        state::list_add(name, v)
    }
    pub fn list_update(name: &str, vs: &[Vec<u8>]) {
        state::list_update(name, vs)
    }
    pub fn list_clear(name: &str) {
        state::list_clear(name)
    }
    pub fn map_get(name: &str, k: &[u8]) -> Option<Vec<u8>> {
        state::map_get(name, k)
    }
    pub fn map_put(name: &str, k: &[u8], v: &[u8]) {
        state::map_put(name, k, v)
    }
    pub fn map_remove(name: &str, k: &[u8]) {
        state::map_remove(name, k)
    }
    pub fn map_contains(name: &str, k: &[u8]) -> bool {
        state::map_contains(name, k)
    }
    pub fn map_entries(name: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        state::map_entries(name)
    }
    pub fn map_clear(name: &str) {
        state::map_clear(name)
    }
    pub fn register_event_time(ts: i64) {
        timers::register_event_time(ts)
    }
    pub fn delete_event_time(ts: i64) {
        timers::delete_event_time(ts)
    }
    pub fn register_processing_time(ts: i64) {
        timers::register_processing_time(ts)
    }
    pub fn delete_processing_time(ts: i64) {
        timers::delete_processing_time(ts)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use crate::testing::with_host;
    use crate::{Level, Record, TimeDomain};

    pub fn log(level: Level, msg: &str) {
        with_host(|h| h.logs.push((level, msg.to_string())))
    }
    pub fn current_key() -> Option<Vec<u8>> {
        with_host(|h| h.key.clone())
    }
    pub fn current_watermark() -> i64 {
        with_host(|h| h.watermark)
    }
    pub fn current_processing_time() -> i64 {
        with_host(|h| h.processing_time)
    }
    pub fn subtask_index() -> u32 {
        0
    }
    /// The native harness sets each record's context itself.
    pub fn enter(_index: u32) -> bool {
        true
    }
    pub fn enter_with_writes(index: u32, writes: &[u8]) -> bool {
        apply_writes(writes);
        enter(index)
    }
    /// Applies a write log as the host does, through the calls it stands for.
    pub fn apply_writes(writes: &[u8]) {
        use weir_batch::writes::{read, Write};
        for w in read(writes) {
            match w.expect("the SDK writes logs that read") {
                Write::ValueSet(name, v) => value_set(name, v),
                Write::ValueClear(name) => value_clear(name),
                Write::ListAdd(name, v) => list_add(name, v),
                Write::ListUpdate(name, vs) => list_update(name, &vs.iter().map(<[u8]>::to_vec).collect::<Vec<_>>()),
                Write::ListClear(name) => list_clear(name),
                // The native harness hands each record's context over itself.
                Write::Record(_) => {}
            }
        }
    }
    pub fn read_fields(names: &[String]) {
        with_host(|h| h.read_fields = names.to_vec())
    }
    /// The native harness lends each record with its spans itself.
    pub fn field_spans() -> Vec<u32> {
        Vec::new()
    }
    /// As `field_spans`.
    pub fn member_counts() -> Vec<u32> {
        Vec::new()
    }
    pub fn emit(rec: &Record) {
        with_host(|h| h.emit(None, rec.clone()))
    }
    pub fn emit_to(name: &str, rec: &Record) {
        with_host(|h| h.emit(Some(name), rec.clone()))
    }
    pub fn value_get(name: &str) -> Option<Vec<u8>> {
        with_host(|h| h.cell(name, b"v").get(&Vec::new()).cloned())
    }
    pub fn value_set(name: &str, v: &[u8]) {
        with_host(|h| h.cell(name, b"v").insert(Vec::new(), v.to_vec()));
    }
    pub fn value_clear(name: &str) {
        with_host(|h| h.cell(name, b"v").clear())
    }
    pub fn list_get(name: &str) -> Vec<Vec<u8>> {
        with_host(|h| h.cell(name, b"l").values().cloned().collect())
    }
    pub fn list_add(name: &str, v: &[u8]) {
        with_host(|h| {
            let cell = h.cell(name, b"l");
            let next = cell.len().to_be_bytes().to_vec();
            cell.insert(next, v.to_vec());
        })
    }
    pub fn list_update(name: &str, vs: &[Vec<u8>]) {
        with_host(|h| {
            let cell = h.cell(name, b"l");
            cell.clear();
            for (i, v) in vs.iter().enumerate() {
                cell.insert(i.to_be_bytes().to_vec(), v.clone());
            }
        })
    }
    pub fn list_clear(name: &str) {
        with_host(|h| h.cell(name, b"l").clear())
    }
    pub fn map_get(name: &str, k: &[u8]) -> Option<Vec<u8>> {
        with_host(|h| h.cell(name, b"m").get(k).cloned())
    }
    pub fn map_put(name: &str, k: &[u8], v: &[u8]) {
        with_host(|h| h.cell(name, b"m").insert(k.to_vec(), v.to_vec()));
    }
    pub fn map_remove(name: &str, k: &[u8]) {
        with_host(|h| h.cell(name, b"m").remove(k));
    }
    pub fn map_contains(name: &str, k: &[u8]) -> bool {
        with_host(|h| h.cell(name, b"m").contains_key(k))
    }
    pub fn map_entries(name: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        with_host(|h| h.cell(name, b"m").iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
    pub fn map_clear(name: &str) {
        with_host(|h| h.cell(name, b"m").clear())
    }
    pub fn register_event_time(ts: i64) {
        with_host(|h| h.set_timer(TimeDomain::EventTime, ts, true))
    }
    pub fn delete_event_time(ts: i64) {
        with_host(|h| h.set_timer(TimeDomain::EventTime, ts, false))
    }
    pub fn register_processing_time(ts: i64) {
        with_host(|h| h.set_timer(TimeDomain::ProcessingTime, ts, true))
    }
    pub fn delete_processing_time(ts: i64) {
        with_host(|h| h.set_timer(TimeDomain::ProcessingTime, ts, false))
    }
}

pub(crate) use imp::*;
