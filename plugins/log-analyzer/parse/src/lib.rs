//! Log analyzer, step 1: a JSON line becomes a LogEvent.
//!
//! A line that is not a JSON object, lacks one of `user_id`, `session_id`, `action`,
//! `timestamp`, `ip_address`, `user_agent`, or has one of the wrong type (strings, and an
//! integer `timestamp` in epoch seconds; a boolean is not an integer) is rejected with the
//! reason, and the host sends it to the dead-letter output. `metadata`, when present, must be
//! an object. The output is the event re-encoded with exactly these fields.

use serde::{Deserialize, Serialize};
use weir_sdk::{Error, Record, Result};

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

/// The operator.
#[weir_sdk::map]
fn parse(rec: Record) -> Result<Record> {
    let event = parse_line(&rec.value)?;
    rec.with_json(&event)
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
