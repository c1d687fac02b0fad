//! How a key of record fields is written: one field as its text (a string's, unquoted) or
//! normalized JSON, several as the JSON array of their values. Routes write keys; windows
//! read their result rows' key texts back from them.

use crate::json;
use crate::record::Key;

/// Key bytes for raw field values (see [`KeyExtractor::Fields`]).
pub fn key_bytes(values: &[json::Raw]) -> Key {
    match values {
        [v] => match json::raw_str(*v) {
            Some(s) => Key::from_slice(s.as_bytes()),
            None => Key::from_slice(json::normalized(*v).as_bytes()),
        },
        many => {
            // The JSON array of the values, as serde_json prints one, written into the key
            // itself (no heap block up to 24 bytes, such as `["user_42","login"]`).
            let mut out = Key::new();
            out.push(b'[');
            for (i, v) in many.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json::write_normalized(*v, &mut out);
            }
            out.push(b']');
            out
        }
    }
}

/// Whether a result row's key text comes from the key bytes alone, never from the record
/// (see [`WindowOp::key_json`]): always for a key-selector plugin's key (`key_fields` 0);
/// for one key field, when the bytes cannot be a non-string's JSON text; for several, when
/// the bytes are the JSON array of their normalized values (which `runtime::key_bytes`
/// always makes): its items are the row's texts ([`key_items`]).
pub fn key_text_in_key(key_fields: usize, key: &[u8]) -> bool {
    match key_fields {
        0 => true,
        // A non-string is written as normalized JSON text, which starts with none of these
        // bytes: the field was a string.
        1 => !matches!(key.first(), Some(b'"' | b'{' | b'[' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n')),
        _ => key.first() == Some(&b'['),
    }
}

/// Computes keys of records outside the host's field reader: a key-selector plugin.
pub trait KeySelector: Send {
    /// One key, or why there is none, per record of `records`.
    fn select_keys(&mut self, records: &[crate::record::Record]) -> Vec<Result<Vec<u8>, String>>;
}
