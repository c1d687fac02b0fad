//! Seed flat-map of Flink's tutorial: a JSON string sentence becomes one record per word.

use weir_sdk::{Record, Result};

/// Splits on whitespace; each word keeps the sentence's key, time and headers.
#[weir_sdk::flat_map]
fn words(rec: Record) -> Result<Vec<Record>> {
    let sentence: String = rec.json()?;
    sentence.split_whitespace().map(|w| rec.clone().with_json(w)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits() {
        let out = words(Record::from_json("hello  weir world").unwrap()).unwrap();
        let ws: Vec<String> = out.iter().map(|r| r.json().unwrap()).collect();
        assert_eq!(ws, ["hello", "weir", "world"]);
    }
}
