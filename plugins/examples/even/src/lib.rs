//! Seed filter of Flink's tutorial: keeps even numbers.

use weir_sdk::{Record, Result};

/// True for even JSON integers.
#[weir_sdk::filter]
fn even(rec: &Record) -> Result<bool> {
    let x: i64 = rec.json()?;
    Ok(x % 2 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_even() {
        assert!(even(&Record::from_json(&4).unwrap()).unwrap());
        assert!(!even(&Record::from_json(&3).unwrap()).unwrap());
        assert!(even(&Record::from_bytes("nope")).is_err());
    }
}
