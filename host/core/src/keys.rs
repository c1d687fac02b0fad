//! How a key of record fields is written: one field as its text (a string's, unquoted) or
//! normalized JSON, several as the JSON array of their values. Routes write keys; windows
//! read their result rows' key texts back from them.

use crate::json;
use crate::record::Key;

/// Key bytes for raw field values (see [`KeyExtractor::Fields`]).
pub fn key_bytes(values: &[json::Raw]) -> Key {
    match values {
        [v] => match json::raw_str(*v) {
            Some(s) => Key::from_slice(&s),
            None => Key::from_slice(json::normalized(*v).as_bytes()),
        },
        many => {
            // Strings without escapes and integers are printed as they are: an array of such
            // (`["user_42","login"]`) is written on the stack and copied in at once, where
            // pushing it piece by piece cost the source's thread 6 %.
            const ROOM: usize = 64;
            let total = many.iter().map(|v| v.bytes().len() + 1).sum::<usize>() + 1;
            if !many.is_empty() && total <= ROOM && many.iter().all(|v| json::is_written_as_is(*v)) {
                let mut buf = [0u8; ROOM];
                buf[0] = b'[';
                let mut at = 1;
                for v in many.iter().map(|v| v.bytes()) {
                    buf[at..at + v.len()].copy_from_slice(v);
                    at += v.len();
                    buf[at] = b',';
                    at += 1;
                }
                buf[at - 1] = b']';
                return Key::from_slice(&buf[..at]);
            }
            // The JSON array of the values, as serde_json prints one, written into the key
            // itself (no heap block up to 24 bytes).
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

/// How an operator's keys map to key groups (where its state lives, which subtask owns it):
/// by the whole key, or by the key of its first `prefix` fields. An operator keyed by
/// `["user_id", "action"]` that shares a task with operators keyed by `user_id` receives its
/// records partitioned by `user_id` (one shuffle for all of them); its state then lives in
/// the key groups of `user_id`, so that restoring at another parallelism moves it with the
/// records that reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyGroups {
    /// Number of key groups.
    pub max_parallelism: u32,
    /// 0: the whole key; otherwise the key of the key's first `prefix` fields.
    pub prefix: usize,
}

impl KeyGroups {
    /// Key groups of whole keys.
    pub fn whole(max_parallelism: u32) -> KeyGroups {
        KeyGroups { max_parallelism, prefix: 0 }
    }

    /// The key group of `key`.
    pub fn of(&self, key: &[u8]) -> u16 {
        match self.prefix {
            0 => weir_state::key_group(key, self.max_parallelism),
            n => weir_state::key_group(&prefix_key(key, n), self.max_parallelism),
        }
    }
}

/// The key [`key_bytes`] writes for the first `n` fields of `key`, a key of several fields
/// (their JSON array). A key that is no such array stands for itself.
pub fn prefix_key(key: &[u8], n: usize) -> std::borrow::Cow<'_, [u8]> {
    // The common case without parsing: a first field that is a string without escapes,
    // whose key is its text.
    if n == 1 {
        if let Some(rest) = key.strip_prefix(b"[\"") {
            if let Some(end) = rest.iter().position(|&b| b == b'"' || b == b'\\') {
                if rest[end] == b'"' {
                    return std::borrow::Cow::Borrowed(&rest[..end]);
                }
            }
        }
    }
    match json::array_items(key) {
        Some(items) if items.len() >= n => std::borrow::Cow::Owned(key_bytes(&items[..n]).to_vec()),
        _ => std::borrow::Cow::Borrowed(key),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A key of several fields is the JSON array of their values as serde_json prints it,
    /// whether it fits the key's inline room or not, plain or not.
    #[test]
    fn a_key_of_several_fields_is_the_array_serde_json_prints() {
        let values = [
            r#""a""#,
            r#""user_42""#,
            "7",
            "-3",
            "2.50",
            r#""a\"b""#,
            "[1, 2]",
            r#"{"k": 1}"#,
            "true",
            r#""xxxxxxxxxxxxxxxxxxxx""#,
            r#""""#,
        ];
        for a in values {
            for b in values {
                for c in [None, Some("1"), Some(r#""z""#)] {
                    let fields: Vec<&str> = [Some(a), Some(b), c].into_iter().flatten().collect();
                    let doc =
                        format!("{{{}}}", fields.iter().enumerate().map(|(i, v)| format!(r#""f{i}": {v}"#)).collect::<Vec<_>>().join(", "));
                    let paths: Vec<json::Path> = (0..fields.len()).map(|i| vec![format!("f{i}")]).collect();
                    let mut found = json::Found::new();
                    json::extract(doc.as_bytes(), &paths, &mut found).expect("JSON");
                    let raws: Vec<json::Raw> = found.iter().map(|v| v.expect("present")).collect();
                    let array = serde_json::Value::Array(raws.iter().map(|r| json::value(*r)).collect());
                    assert_eq!(key_bytes(&raws).as_slice(), serde_json::to_vec(&array).unwrap(), "{a} {b} {c:?}");
                }
            }
        }
    }

    /// The key of a key's leading fields is the key those fields alone make.
    #[test]
    fn a_prefix_of_a_key_is_the_key_of_its_leading_fields() {
        let doc = br#"{"u": "a\"b", "n": 7, "s": "user_1", "x": [1, 2.50]}"#;
        let key_of = |fields: &[&str]| {
            let paths: Vec<json::Path> = fields.iter().map(|f| vec![f.to_string()]).collect();
            let mut found = json::Found::new();
            json::extract(doc, &paths, &mut found).expect("JSON");
            key_bytes(&found.iter().map(|v| v.expect("present")).collect::<Vec<_>>())
        };
        for (fields, n) in [(&["s", "n"][..], 1), (&["u", "n"], 1), (&["n", "s"], 1), (&["x", "s", "u"], 2), (&["s", "u", "x"], 3)] {
            assert_eq!(&*prefix_key(&key_of(fields), n), key_of(&fields[..n]).as_slice(), "{fields:?}");
        }
        // The fast path took the plain string; escapes and numbers went through the parser.
        assert!(matches!(prefix_key(br#"["user_1",7]"#, 1), std::borrow::Cow::Borrowed(b"user_1")));
        // Not a key of several fields: itself.
        assert_eq!(&*prefix_key(b"user_1", 1), b"user_1");
        let groups = KeyGroups { max_parallelism: 128, prefix: 1 };
        assert_eq!(groups.of(br#"["user_1","view"]"#), weir_state::key_group(b"user_1", 128));
        assert_eq!(KeyGroups::whole(128).of(b"user_1"), weir_state::key_group(b"user_1", 128));
    }
}
