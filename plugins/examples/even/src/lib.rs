//! Seed filter of Flink's tutorial: keeps even numbers.

use weir_sdk::{RecordView, Result};

/// True for even JSON integers. Reads each record where it lies in the host's batch.
#[weir_sdk::filter]
fn even(rec: RecordView) -> Result<bool> {
    let x: i64 = rec.json()?;
    Ok(x % 2 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_even() {
        use weir_sdk::Record;
        assert!(even(Record::from_json(&4).unwrap().view()).unwrap());
        assert!(!even(Record::from_json(&3).unwrap().view()).unwrap());
        assert!(even(Record::from_bytes("nope").view()).is_err());
    }
}
