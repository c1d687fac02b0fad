//! Key selector: keys `{"email": "..."}` records by the e-mail's domain, case-folded, which a
//! field path cannot express.

use weir_sdk::{Error, RecordView, Result};

/// The lowercase domain of the `email` field.
#[weir_sdk::key_selector]
fn domain(rec: RecordView) -> Result<Vec<u8>> {
    let v: serde_json::Value = rec.json()?;
    let email = v.get("email").and_then(|e| e.as_str()).ok_or_else(|| Error::invalid_input("no string field `email`"))?;
    let (_, d) = email.rsplit_once('@').ok_or_else(|| Error::invalid_input(format!("`{email}` has no @")))?;
    Ok(d.to_ascii_lowercase().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case() {
        use weir_sdk::Record;
        let r = Record::from_json(&serde_json::json!({"email": "A@Example.ORG"})).unwrap();
        assert_eq!(domain(r.view()).unwrap(), b"example.org");
        assert!(domain(Record::from_json(&serde_json::json!({})).unwrap().view()).is_err());
    }
}
