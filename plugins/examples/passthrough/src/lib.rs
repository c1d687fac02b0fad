//! A map that passes every record on as it came by answering [`Mapped::Unchanged`]: the
//! record is read where it lies in the host's batch and nothing of it crosses back. With
//! `identity` (which copies each record into an owned `Record` and sends it back) it
//! measures what the boundary costs on its own (`bench/benches/wasm_tax.rs`), and the e2e
//! tests check that the host keeps such records byte for byte (`tests/e2e/seed.rs`).

use weir_sdk::{Mapped, RecordView, Result};

/// Every record goes on unchanged.
#[weir_sdk::map]
fn passthrough(_rec: RecordView) -> Result<Mapped> {
    Ok(Mapped::Unchanged)
}

#[cfg(test)]
mod tests {
    use weir_sdk::testing::run_map;
    use weir_sdk::Record;

    #[test]
    fn every_record_goes_on_as_it_came() {
        let keyed = Record { key: Some(b"k".to_vec()), headers: vec![("h".into(), b"v".to_vec())], ..Record::from_bytes("") };
        let records = vec![Record::from_bytes(b"\xff not json".to_vec()).with_timestamp(7), keyed];
        let out = run_map::<super::__WeirFnOperator>(serde_json::json!({}), records.clone()).unwrap();
        let out: Vec<Record> = out.into_iter().map(Result::unwrap).collect();
        assert_eq!(format!("{out:?}"), format!("{records:?}"));
    }
}
