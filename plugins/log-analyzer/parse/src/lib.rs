//! Log analyzer, step 1: a JSON line becomes a LogEvent.
//!
//! A line that is not a JSON object, lacks one of `user_id`, `session_id`, `action`,
//! `timestamp`, `ip_address`, `user_agent`, or has one of the wrong type (strings, and an
//! integer `timestamp` in epoch seconds; a boolean is not an integer) is rejected with the
//! reason, and the host sends it to the dead-letter output. `metadata`, when present, must be
//! an object or null. A line with exactly these fields passes unchanged; one with more
//! (extra fields, repeated keys, `metadata: null`) is re-encoded with exactly these fields.
//!
//! With `config = { stamp = true }` each LogEvent also leaves with its `user_id` as the
//! record's key and its `timestamp` (in ms) as its event time, and a plain line still sends
//! back no value, only those: for jobs that key by `{ record-key = "user_id" }` and give the
//! operator a `watermark`, so that the host reads nothing of the line itself.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use weir_sdk::json::{GiveUp, Layout, Scanner};
use weir_sdk::{Config, Error, Map, Mapped, Record, RecordView, Result};

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

/// Whether the line is a LogEvent with exactly the LogEvent fields, in one walk of the SDK's
/// scanner (`weir_sdk::json`): each field once, the five strings without escapes, an integer
/// `timestamp`, `metadata` absent or an object. `false` only means "not this plainly":
/// [`LogEventRef::read`] then decides (`plain_lines_agree_with_serde_json` checks that the
/// two agree). About half the time of the serde_json pass on the log-analyzer's lines.
pub fn plainly_as_is(bytes: &[u8]) -> bool {
    walk::<false>(bytes, None).is_some()
}

/// Where a plain line's `user_id` lies and what its `timestamp` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plain {
    /// The bytes of the `user_id` string (it has no escapes).
    pub user: std::ops::Range<usize>,
    /// `timestamp`, epoch seconds.
    pub timestamp: i64,
}

/// [`plainly_as_is`], and what the walk read on the way: a line that is not this plain gives
/// `None`.
pub fn plain(bytes: &[u8]) -> Option<Plain> {
    walk::<true>(bytes, None)
}

/// [`plain`], checking the line against the layout of the last plain line first (only the
/// values are walked when the bytes around them are the same), and learning the line's
/// when it has another.
pub fn plain_as(shape: &mut Shape, bytes: &[u8]) -> Option<Plain> {
    walk::<true>(bytes, Some(shape))
}

/// The layout of the last plain line (`weir_json::Layout`), and the field of each of its
/// members by place.
#[derive(Debug, Default)]
pub struct Shape {
    layout: Layout,
    fields: Vec<u8>,
}

/// The walk of [`plainly_as_is`]; with `READ` it also notes where `user_id` lies (the
/// `timestamp` is read either way: checking that it is an i64 reads it).
#[inline(always)]
fn walk<const READ: bool>(bytes: &[u8], shape: Option<&mut Shape>) -> Option<Plain> {
    let mut r = Reading::default();
    let walk = match shape {
        None => Scanner::new(bytes).document_object(|s, key| r.member::<READ>(s, field(key)?)),
        Some(Shape { layout, fields }) => {
            match Scanner::new(bytes).document_object_as(layout, |s, _, place| r.member::<READ>(s, fields[place])) {
                Ok(()) => Ok(()),
                Err(GiveUp) => {
                    r = Reading::default();
                    fields.clear();
                    Scanner::new(bytes).document_object_learning(layout, |s, key, _| {
                        let field = field(key)?;
                        fields.push(field);
                        r.member::<READ>(s, field)
                    })
                }
            }
        }
    };
    (walk.is_ok() && r.seen & 0b11_1111 == 0b11_1111).then_some(Plain { user: r.user, timestamp: r.timestamp })
}

/// The LogEvent field a key names, by its bit in [`Reading::seen`].
#[inline(always)]
fn field(key: &[u8]) -> std::result::Result<u8, GiveUp> {
    match key {
        b"user_id" => Ok(0),
        b"session_id" => Ok(1),
        b"action" => Ok(2),
        b"ip_address" => Ok(3),
        b"user_agent" => Ok(4),
        b"timestamp" => Ok(5),
        b"metadata" => Ok(6),
        _ => Err(GiveUp),
    }
}

/// What a walk of a line has read so far.
#[derive(Default)]
struct Reading {
    /// The fields seen, a bit each.
    seen: u8,
    user: std::ops::Range<usize>,
    timestamp: i64,
}

impl Reading {
    /// One member of the line: a LogEvent field (see [`field`]), each once, of its type.
    #[inline(always)]
    fn member<const READ: bool>(&mut self, s: &mut Scanner<'_>, field: u8) -> std::result::Result<(), GiveUp> {
        if self.seen & (1 << field) != 0 {
            return Err(GiveUp);
        }
        self.seen |= 1 << field;
        match field {
            // A string with escapes is decoded (and its surrogates checked) by serde_json.
            0..=4 => {
                let start = s.at() + 1;
                match s.string()? {
                    true => Err(GiveUp),
                    false => {
                        if READ && field == 0 {
                            self.user = start..s.at() - 1;
                        }
                        Ok(())
                    }
                }
            }
            5 => {
                self.timestamp = s.integer()?;
                Ok(())
            }
            _ => match s.peek()? {
                b'{' => s.value(1),
                _ => Err(GiveUp),
            },
        }
    }
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
    check_in(None, bytes)
}

/// [`check`], with the plain walk checking the line against `shape` first (see [`plain_as`]).
pub fn check_in(shape: Option<&mut Shape>, bytes: &[u8]) -> Result<Checked> {
    // One walk for plain lines, one borrowed serde_json pass for other well-formed ones.
    if walk::<false>(bytes, shape).is_some() || LogEventRef::read(bytes).is_some() {
        return Ok(Checked::AsIs);
    }
    reencoded(&parse_line(bytes)?).map(Checked::Reencoded)
}

/// The event's line with exactly the LogEvent fields.
fn reencoded(event: &LogEvent) -> Result<Vec<u8>> {
    serde_json::to_vec(event).map_err(|e| Error::other(e.to_string()))
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

/// A LogEvent's event time in ms.
fn event_time_ms(seconds: i64) -> Result<i64> {
    // A range check, not `checked_mul`: Wasm has no multiply with overflow, and that one
    // becomes a call to a 128-bit multiply.
    const LIMIT: i64 = i64::MAX / 1000;
    match (-LIMIT..=LIMIT).contains(&seconds) {
        true => Ok(seconds * 1000),
        false => Err(Error::invalid_input(format!("field `timestamp` = {seconds} s is out of range in ms"))),
    }
}

/// The operator: reads each line where it lies in the host's batch; a line that is a
/// LogEvent as it is goes on without crossing back (with `stamp`, only its key and event
/// time cross back).
pub struct Parse {
    stamp: bool,
    /// The layout of the last plain line.
    shape: Shape,
}

#[weir_sdk::map]
impl Map for Parse {
    fn open(config: &Config) -> Result<Self> {
        Ok(Parse { stamp: config.field_or("stamp", false)?, shape: Shape::default() })
    }

    fn map(&mut self, rec: Record) -> Result<Record> {
        self.map_view(rec.view()).map(|m| m.apply(rec))
    }

    fn map_view(&mut self, rec: RecordView<'_>) -> Result<Mapped> {
        if !self.stamp {
            return Ok(match check_in(Some(&mut self.shape), rec.value)? {
                Checked::AsIs => Mapped::Unchanged,
                Checked::Reencoded(v) => Mapped::Value(v),
            });
        }
        // The readers of `check`, each at most once, keeping what they read.
        if let Some(p) = plain_as(&mut self.shape, rec.value) {
            return Ok(Mapped::value_as_is(Some(&rec.value[p.user]), Some(event_time_ms(p.timestamp)?)));
        }
        if let Some(e) = LogEventRef::read(rec.value) {
            return Ok(Mapped::value_as_is(Some(e.user_id.as_bytes()), Some(event_time_ms(e.timestamp)?)));
        }
        let event = parse_line(rec.value)?;
        let timestamp = Some(event_time_ms(event.timestamp)?);
        let value = reencoded(&event)?;
        Ok(Mapped::Record(Record { key: Some(event.user_id.into_bytes()), value, timestamp, ..rec.to_record() }))
    }
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

    /// With `stamp`, every LogEvent leaves with its user as key and its time in ms, whichever
    /// path read it; a plain line sends back nothing else.
    #[test]
    fn stamping_sets_key_and_event_time_on_every_path() {
        let mut op = Parse { stamp: true, shape: Shape::default() };
        let stamped = |op: &mut Parse, line: &str| match op.map_view(Record::from_bytes(line).view()) {
            Ok(Mapped::ValueAsIs { key, timestamp }) => (key, timestamp, None),
            Ok(Mapped::Record(r)) => (r.key, r.timestamp, Some(String::from_utf8(r.value).unwrap())),
            other => panic!("{line}: {other:?}"),
        };
        let plain = r#"{"user_id": "u1", "session_id": "s", "action": "a", "timestamp": 5, "ip_address": "i", "user_agent": "x"}"#;
        assert_eq!(stamped(&mut op, plain), (Some(b"u1".to_vec()), Some(5000), None));
        // Escapes: serde_json's reading, the key unescaped as a key-by of the field gives it.
        let escaped = r#"{"user_id": "u\"1", "session_id": "s", "action": "a", "timestamp": -7, "ip_address": "i", "user_agent": "x"}"#;
        assert_eq!(stamped(&mut op, escaped), (Some(b"u\"1".to_vec()), Some(-7000), None));
        let extra =
            r#"{"user_id": "u2", "session_id": "s", "action": "a", "timestamp": 6, "ip_address": "i", "user_agent": "x", "more": 1}"#;
        let reencoded = r#"{"user_id":"u2","session_id":"s","action":"a","timestamp":6,"ip_address":"i","user_agent":"x"}"#;
        assert_eq!(stamped(&mut op, extra), (Some(b"u2".to_vec()), Some(6000), Some(reencoded.to_string())));
        assert!(op.map_view(Record::from_bytes(r#"{"user_id": 7, "timestamp": 1000}"#).view()).is_err());
        // Without `stamp` a plain line passes unchanged.
        assert!(matches!(
            Parse { stamp: false, shape: Shape::default() }.map_view(Record::from_bytes(plain).view()),
            Ok(Mapped::Unchanged)
        ));
    }

    #[test]
    fn event_times_in_ms_are_exactly_those_that_fit() {
        for s in [0, 1, -1, i64::MAX / 1000, i64::MIN / 1000, i64::MAX / 1000 + 1, i64::MIN / 1000 - 1, i64::MAX, i64::MIN] {
            assert_eq!(event_time_ms(s).ok(), s.checked_mul(1000), "{s}");
        }
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

    #[test]
    fn plain_lines_agree_with_serde_json() {
        let mut seeds: Vec<Vec<u8>> = sample_lines(5);
        for extra in [
            r#" { "timestamp" : -9223372036854775808 , "user_id":"u", "session_id":"s", "action":"a", "ip_address":"i", "user_agent":"x" } "#,
            r#"{"user_id": "ü ✓", "session_id": "s", "action": "a", "timestamp": 0, "ip_address": "i", "user_agent": "x", "metadata": {"a": [1, 2.5e-3, {"b": null}], "c": "\ud800"}}"#,
            r#"{"user_id":"u","session_id":"s","action":"a","timestamp":-10,"ip_address":"i","user_agent":"x","metadata":{}}"#,
            // Escapes: serde_json decodes them (a lone surrogate is an error there).
            r#"{"user_id": "u\"1", "session_id": "s", "action": "a", "timestamp": 9223372036854775807, "ip_address": "i", "user_agent": "x"}"#,
            r#"{"user_id": "u\ud800", "session_id": "s", "action": "a", "timestamp": 1, "ip_address": "i", "user_agent": "x"}"#,
        ] {
            seeds.push(extra.as_bytes().to_vec());
        }
        for seed in &seeds[..seeds.len() - 2] {
            assert!(plainly_as_is(seed), "{}", String::from_utf8_lossy(seed));
        }
        // What serde_json reads differently, or refuses, the walk leaves to it.
        let line = |ts: &str, rest: &str| {
            format!(r#"{{"user_id":"u","session_id":"s","action":"a","timestamp":{ts},"ip_address":"i","user_agent":"x"{rest}}}"#)
        };
        for text in [
            line("1", r#","user_id":"v""#),
            line("1", r#","metadata":null"#),
            line("1", r#","metadata":[]"#),
            line("1", r#","extra":1"#),
            line("-0", ""),
            line("1.0", ""),
            line("1e3", ""),
            line("9223372036854775808", ""),
            line(r#""1""#, ""),
        ] {
            assert!(!plainly_as_is(text.as_bytes()), "{text}");
        }
        assert!(plainly_as_is(line("-1", r#","metadata":{"a":{"b":[]}}"#).as_bytes()));
        // Random edits of the seeds: whatever the walk passes, serde_json passes as it is.
        let mut edits =
            weir_sdk::json::testing::Edits::new(0x9e37_79b9_7f4a_7c15, b"{}[]\",:\\/ \t\n0123456789-+.eEtrufalsn\x01\x1f\xc3\xa9");
        let (mut plain, mut other) = (0, 0);
        // One shape over all lines, as the operator keeps it: a seed first, half the time, so
        // that many of the edits are checked against the seed's layout.
        let (mut shape, mut checks, mut as_learned) = (Shape::default(), Shape::default(), 0);
        for _ in 0..200_000 {
            let seed = &seeds[edits.below(seeds.len())];
            if edits.below(2) == 0 {
                assert_eq!(plain_as(&mut shape, seed), super::plain(seed), "{}", String::from_utf8_lossy(seed));
            }
            let text = edits.edit(seed, 3);
            let reference = LogEventRef::read(&text);
            let read = super::plain(&text);
            as_learned += usize::from(
                shape.layout.is_learned() && Scanner::new(&text).document_object_as(&shape.layout, |s, _, _| s.value(1)).is_ok(),
            );
            assert_eq!(plain_as(&mut shape, &text), read, "{}", String::from_utf8_lossy(&text));
            assert_eq!(format!("{:?}", check_in(Some(&mut checks), &text)), format!("{:?}", check(&text)));
            assert_eq!(plainly_as_is(&text), read.is_some(), "{}", String::from_utf8_lossy(&text));
            if let Some(p) = read {
                plain += 1;
                let r = reference.unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&text)));
                // What the walk read on the way is what serde_json reads.
                assert_eq!((&text[p.user], p.timestamp), (r.user_id.as_bytes(), r.timestamp), "{}", String::from_utf8_lossy(&text));
            } else {
                other += usize::from(reference.is_none());
            }
        }
        // Both sides of the check were exercised.
        assert!(plain > 15_000 && other > 50_000 && as_learned > 5_000, "plain {plain}, refused {other}, in a learned layout {as_learned}");
    }
}
