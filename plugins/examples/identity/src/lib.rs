//! A map that returns every record unchanged (value, key, event time, headers). It measures
//! what the plugin boundary costs on its own (`bench/benches/wasm_tax.rs`) and shows that a
//! record survives the round trip byte for byte (`tests/e2e/seed.rs`).

use weir_sdk::{Record, Result};

/// The record, as it came.
#[weir_sdk::map]
fn identity(rec: Record) -> Result<Record> {
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_record() {
        let r = Record {
            key: Some(b"k".to_vec()),
            value: b"\xff not json".to_vec(),
            timestamp: Some(7),
            headers: vec![("h".into(), b"v".to_vec())],
        };
        let out = identity(r.clone()).unwrap();
        assert_eq!((out.key, out.value, out.timestamp, out.headers), (r.key, r.value, r.timestamp, r.headers));
    }
}
