//! Log analyzer, step 1: a JSON line becomes a LogEvent.
//!
//! A line that is not a JSON object, lacks one of `user_id`, `session_id`, `action`,
//! `timestamp`, `ip_address`, `user_agent`, or has one of the wrong type (strings, and an
//! integer `timestamp` in epoch seconds; a boolean is not an integer) is rejected with the
//! reason, and the host sends it to the dead-letter output. `metadata`, when present, must be
//! an object or null. A line with exactly these fields passes unchanged; one with more
//! (extra fields, repeated keys, `metadata: null`) is re-encoded with exactly these fields.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use weir_sdk::{Error, Mapped, RecordView, Result};

/// A parsed log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEvent {
    pub user_id: String,
    pub session_id: String,
    pub action: String,
    pub timestamp: i64,
    pub ip_address: String,
    pub user_agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

const STRINGS: [&str; 5] = ["user_id", "session_id", "action", "ip_address", "user_agent"];

/// A LogEvent read in place: strings borrowed from the line, unknown fields refused (the
/// fast path of [`check`]; also the benchmark baseline's reader).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEventRef<'a> {
    #[serde(borrow)]
    pub user_id: Cow<'a, str>,
    #[serde(borrow)]
    pub session_id: Cow<'a, str>,
    #[serde(borrow)]
    pub action: Cow<'a, str>,
    pub timestamp: i64,
    #[serde(borrow)]
    pub ip_address: Cow<'a, str>,
    #[serde(borrow)]
    pub user_agent: Cow<'a, str>,
    /// Raw, so that `null` is seen (and re-encoded away) rather than read as absent.
    #[serde(borrow, default, deserialize_with = "raw")]
    pub metadata: Option<&'a RawValue>,
}

impl<'a> LogEventRef<'a> {
    /// The line as a LogEvent with exactly the LogEvent fields (what [`check`] passes as it
    /// is), or `None` (not one, or one [`check`] would re-encode or refuse).
    pub fn read(bytes: &'a [u8]) -> Option<LogEventRef<'a>> {
        // UTF-8 checked once up front, so strings need no check of their own.
        let e = serde_json::from_str::<LogEventRef>(std::str::from_utf8(bytes).ok()?).ok()?;
        e.metadata.is_none_or(|m| m.get().starts_with('{')).then_some(e)
    }
}

fn raw<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// What [`check`] made of a line that is a LogEvent.
#[derive(Debug, PartialEq)]
pub enum Checked {
    /// The line has exactly the LogEvent fields (metadata absent or an object): it goes on
    /// unchanged.
    AsIs,
    /// The line had more (extra fields, duplicate keys, `metadata: null`): this is the event
    /// re-encoded with exactly the LogEvent fields.
    Reencoded(Vec<u8>),
}

/// `n` valid LogEvent lines of the shape the log-analyzer reads: the input every benchmark of
/// this parser shares (`bench/benches/wasm_tax.rs`, `bench/examples/plugin_loop.rs`, and
/// `examples/native_twin.rs`), so their figures compare.
pub fn sample_lines(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"user_id": "user{}", "session_id": "session_{}", "action": "view", "timestamp": {}, "ip_address": "10.0.0.2", "user_agent": "Mozilla/5.0 (Test Browser)", "metadata": {{}}}}"#,
                i % 97,
                i * 31 % 10_000,
                1_735_689_600 + i
            )
            .into_bytes()
        })
        .collect()
}

/// Checks one line: a LogEvent passes (as it is when it has nothing more), anything else is
/// refused with the reason.
pub fn check(bytes: &[u8]) -> Result<Checked> {
    // One borrowed pass for well-formed lines.
    if LogEventRef::read(bytes).is_some() {
        return Ok(Checked::AsIs);
    }
    let event = parse_line(bytes)?;
    serde_json::to_vec(&event).map(Checked::Reencoded).map_err(|e| Error::other(e.to_string()))
}

/// Validates one line, naming the first field that is wrong.
pub fn parse_line(bytes: &[u8]) -> Result<LogEvent> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| Error::invalid_input(format!("not JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| Error::invalid_input("not a JSON object"))?;
    let field = |name: &str| obj.get(name).ok_or_else(|| Error::invalid_input(format!("missing field `{name}`")));
    for name in STRINGS {
        if !field(name)?.is_string() {
            return Err(Error::invalid_input(format!("field `{name}` must be a string")));
        }
    }
    let ts = field("timestamp")?;
    if !(ts.is_i64() || ts.is_u64()) || ts.as_i64().is_none() {
        return Err(Error::invalid_input("field `timestamp` must be an integer (epoch seconds)"));
    }
    if let Some(m) = obj.get("metadata") {
        if !m.is_object() && !m.is_null() {
            return Err(Error::invalid_input("field `metadata` must be an object"));
        }
    }
    serde_json::from_value(v).map_err(|e| Error::invalid_input(e.to_string()))
}

/// The operator: reads each line where it lies in the host's batch; a line that is a
/// LogEvent as it is goes on without crossing back.
#[weir_sdk::map]
fn parse(rec: RecordView) -> Result<Mapped> {
    Ok(match check(rec.value)? {
        Checked::AsIs => Mapped::Unchanged,
        Checked::Reencoded(v) => Mapped::Value(v),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(line: &str) -> String {
        match parse_line(line.as_bytes()) {
            Err(Error::InvalidInput(m)) => m,
            other => panic!("expected a rejection of {line}, got {other:?}"),
        }
    }

    #[test]
    fn accepts_a_log_event() {
        let e = parse_line(br#"{"user_id":"u","session_id":"s","action":"view","timestamp":1735689603,"ip_address":"1.2.3.4","user_agent":"x","metadata":{}}"#).unwrap();
        assert_eq!((e.user_id.as_str(), e.timestamp), ("u", 1735689603));
    }

    #[test]
    fn log_events_pass_as_they_are_and_others_are_reencoded() {
        let as_is = [
            r#"{"user_id": "u\"1", "session_id": "s", "action": "view", "timestamp": 1735689603, "ip_address": "1.2.3.4", "user_agent": "x", "metadata": {}}"#,
            r#"{"timestamp": 5, "user_id": "u", "session_id": "s", "action": "a", "ip_address": "i", "user_agent": "x"}"#,
            r#"{"user_id": "u", "session_id": "s", "action": "a", "timestamp": 5, "ip_address": "i", "user_agent": "x", "metadata": {"z": 1}}"#,
        ];
        for line in as_is {
            assert_eq!(check(line.as_bytes()).unwrap(), Checked::AsIs, "{line}");
            // Passing as is loses nothing: the line reads as the event re-encoding would give.
            let event = parse_line(line.as_bytes()).unwrap();
            assert_eq!(serde_json::from_str::<LogEvent>(line).unwrap(), event);
        }
        let reencoded = [
            (
                r#"{"user_id": "u", "session_id": "s", "action": "a", "timestamp": 5, "ip_address": "i", "user_agent": "x", "extra": [1]}"#,
                r#"{"user_id":"u","session_id":"s","action":"a","timestamp":5,"ip_address":"i","user_agent":"x"}"#,
            ),
            (
                r#"{"user_id": "u", "session_id": "s", "action": "a", "timestamp": 5, "ip_address": "i", "user_agent": "x", "metadata": null}"#,
                r#"{"user_id":"u","session_id":"s","action":"a","timestamp":5,"ip_address":"i","user_agent":"x"}"#,
            ),
            (
                r#"{"user_id": "u", "user_id": "v", "session_id": "s", "action": "a", "timestamp": 5, "ip_address": "i", "user_agent": "x"}"#,
                r#"{"user_id":"v","session_id":"s","action":"a","timestamp":5,"ip_address":"i","user_agent":"x"}"#,
            ),
        ];
        for (line, want) in reencoded {
            assert_eq!(check(line.as_bytes()).unwrap(), Checked::Reencoded(want.as_bytes().to_vec()), "{line}");
        }
        assert!(matches!(check(br#"{"user_id": 7}"#), Err(Error::InvalidInput(m)) if m == "field `user_id` must be a string"));
    }

    #[test]
    fn sample_lines_are_log_events_that_pass_as_they_are() {
        let lines = sample_lines(300);
        assert_eq!(lines.len(), 300);
        for line in &lines {
            assert_eq!(check(line).unwrap(), Checked::AsIs, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn rejects_malformed_lines_with_reasons() {
        assert!(reason("not json at all").starts_with("not JSON"));
        assert!(reason("").starts_with("not JSON"));
        assert!(reason(r#"{"user_id": "x", broken"#).starts_with("not JSON"));
        assert_eq!(reason(r#"{"user_id": 7}"#), "field `user_id` must be a string");
        assert_eq!(reason("[1]"), "not a JSON object");
        assert_eq!(
            reason(r#"{"user_id":"u","session_id":"s","action":"view","timestamp":true,"ip_address":"i","user_agent":"a"}"#),
            "field `timestamp` must be an integer (epoch seconds)"
        );
        assert_eq!(
            reason(r#"{"user_id":"u","session_id":"s","action":"view","timestamp":1,"ip_address":"i"}"#),
            "missing field `user_agent`"
        );
    }
}
