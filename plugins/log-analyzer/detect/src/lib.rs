//! Log analyzer, step 2: security and anomaly alerts per user (keyed by `user_id`), exactly
//! the two rules of the conformance semantics:
//!
//! - `security_alert`: on `login_failed`, keep the failed-login timestamps no older than
//!   `window_seconds` (300) before this event since the last `login_success` or alert; at
//!   `threshold` (5) of them, emit `{"type", "user_id", "timestamp", "failed_attempts"}` and
//!   forget them. `login_success` forgets them too.
//! - `anomaly_alert`: on `view`, `purchase` or `download` more than `idle_seconds` (86,400)
//!   after the user's last `login_success`, emit `{"type", "user_id", "timestamp", "action",
//!   "idle_seconds"}` once per login.

use std::borrow::Cow;

use serde::Deserialize;
use weir_sdk::{emit, Config, ListState, Process, Record, RecordView, Result, ValueState};

/// The fields the rules read, as serde_json reads them: borrowed from the record's value
/// (copied only when escaped).
#[derive(Deserialize, Debug, PartialEq)]
struct Event<'a> {
    #[serde(borrow)]
    user_id: Cow<'a, str>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    timestamp: i64,
}

/// The members of `Event`, which the host finds in each record (`weir_sdk::read_fields`).
const FIELDS: [&str; 3] = ["user_id", "action", "timestamp"];

/// What the rules do on an event's action.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    Failed,
    Success,
    /// `view`, `purchase` or `download` (named in an anomaly alert).
    Active(&'static str),
    Other,
}

impl Action {
    /// The action a string's text names as written (`None` when it has escapes, which may
    /// spell one of the five: serde_json decodes it). The five have no escapes, so a text
    /// that is one of them is that action, without a look for a backslash.
    #[inline(always)]
    fn of_text(text: &[u8]) -> Option<Action> {
        match Action::of(text) {
            Action::Other if text.contains(&b'\\') => None,
            action => Some(action),
        }
    }

    /// The action a (decoded) text names: by its length, then two loads against the one or
    /// two words of that length (in Wasm a slice comparison is a call to a byte loop).
    #[inline(always)]
    fn of(action: &[u8]) -> Action {
        use weir_sdk::json::equal;
        match action.len() {
            4 if equal(action, b"view") => Action::Active("view"),
            8 if equal(action, b"purchase") => Action::Active("purchase"),
            8 if equal(action, b"download") => Action::Active("download"),
            12 if equal(action, b"login_failed") => Action::Failed,
            13 if equal(action, b"login_success") => Action::Success,
            _ => Action::Other,
        }
    }
}

/// An event as the rules read it: the user's text is read only for an alert.
#[derive(Debug, PartialEq)]
struct Seen<'a> {
    action: Action,
    timestamp: i64,
    user: User<'a>,
}

/// An event's `user_id`.
#[derive(Debug, PartialEq)]
enum User<'a> {
    /// A string as written (quotes and any escapes), in a value the host checked to be valid
    /// JSON: decoded only for an alert, so most records never look at it.
    Written(&'a [u8]),
    /// As serde_json read it.
    Read(Cow<'a, str>),
}

impl User<'_> {
    fn text(&self) -> Result<Cow<'_, str>> {
        match self {
            User::Written(value) => match weir_sdk::json::plain_str(value) {
                Some(text) => Ok(Cow::Borrowed(text)),
                None => serde_json::from_slice::<String>(value).map(Cow::Owned).map_err(|e| weir_sdk::Error::invalid_input(e.to_string())),
            },
            User::Read(text) => Ok(Cow::Borrowed(text)),
        }
    }
}

impl<'a> Seen<'a> {
    /// The event from the fields the host found, when they are plain: two strings (the
    /// action without escapes) and an integer `timestamp` that fits, each once in a value
    /// that is valid JSON. Anything else (`None`) is left to serde_json, whose answer, or
    /// refusal, stands. The parser's output is always this plain, so a record costs no JSON
    /// walk here, and no string is decoded: the action is matched as written, the user read
    /// for alerts only.
    fn found(rec: &RecordView<'a>) -> Option<Seen<'a>> {
        let user = match rec.field(0)? {
            user @ [b'"', .., b'"'] => User::Written(user),
            _ => return None,
        };
        let action = match rec.field(1)? {
            [b'"', text @ .., b'"'] => Action::of_text(text)?,
            _ => return None,
        };
        Some(Seen { action, timestamp: rec.field_i64(2)?, user })
    }

    /// The event as serde_json read it.
    fn read(e: Event<'a>) -> Seen<'a> {
        Seen { action: Action::of(e.action.as_bytes()), timestamp: e.timestamp, user: User::Read(e.user_id) }
    }
}

/// Thresholds, all overridable in the job's `config`.
pub struct Detect {
    threshold: usize,
    window_seconds: i64,
    idle_seconds: i64,
    fails: ListState<i64>,
    last_login: ValueState<i64>,
    flagged: ValueState<bool>,
}

#[weir_sdk::process]
impl Process for Detect {
    fn open(config: &Config) -> Result<Self> {
        weir_sdk::read_fields(&FIELDS);
        Ok(Detect {
            threshold: config.field_or("threshold", 5)?,
            window_seconds: config.field_or("window_seconds", 300)?,
            idle_seconds: config.field_or("idle_seconds", 86_400)?,
            fails: ListState::new("fails"),
            last_login: ValueState::new("last_login"),
            flagged: ValueState::new("flagged"),
        })
    }

    fn process(&mut self, rec: Record) -> Result<()> {
        self.process_view(rec.view())
    }

    /// Reads the event where it lies in the host's batch.
    fn process_view(&mut self, rec: RecordView<'_>) -> Result<()> {
        let e = match Seen::found(&rec) {
            Some(e) => e,
            None => Seen::read(rec.json()?),
        };
        match e.action {
            Action::Failed => {
                let kept = self.fails.get()?;
                let mut recent: Vec<i64> = kept.iter().copied().filter(|t| *t >= e.timestamp - self.window_seconds).collect();
                recent.push(e.timestamp);
                if recent.len() >= self.threshold {
                    self.fails.clear();
                    let alert = serde_json::json!({"type": "security_alert", "user_id": e.user.text()?, "timestamp": e.timestamp, "failed_attempts": recent.len()});
                    emit(&Record::from_json(&alert)?);
                } else if recent.len() == kept.len() + 1 {
                    // None aged out: the list is the kept one and this time, which one element
                    // crossing to the host says (not the whole list).
                    self.fails.add(&e.timestamp)?;
                } else {
                    self.fails.update(&recent)?;
                }
            }
            Action::Success => {
                self.fails.clear();
                self.last_login.set(&e.timestamp)?;
                self.flagged.set(&false)?;
            }
            Action::Active(action) => {
                if let Some(last) = self.last_login.get()? {
                    let idle = e.timestamp - last;
                    if idle > self.idle_seconds && !self.flagged.get()?.unwrap_or(false) {
                        self.flagged.set(&true)?;
                        let alert = serde_json::json!({"type": "anomaly_alert", "user_id": e.user.text()?, "timestamp": e.timestamp, "action": action, "idle_seconds": idle});
                        emit(&Record::from_json(&alert)?);
                    }
                }
            }
            Action::Other => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::ProcessHarness;

    fn ev(user: &str, action: &str, ts: i64) -> Record {
        Record::from_json(&serde_json::json!({"user_id": user, "action": action, "timestamp": ts})).unwrap()
    }

    fn alerts(h: &mut ProcessHarness<Detect>) -> Vec<serde_json::Value> {
        h.take_output().iter().map(|r| r.json().unwrap()).collect()
    }

    /// The event as the host's spans give it, as `process` sees it.
    fn found(line: &str) -> Option<(String, Action, i64)> {
        let rec = Record::from_bytes(line);
        let mut spans = [0; 6];
        let members = weir_sdk::json::members(line.as_bytes(), &FIELDS, &mut spans).unwrap_or(0);
        Seen::found(&rec.view().with_fields(&spans, members)).map(|e| (e.user.text().unwrap().into_owned(), e.action, e.timestamp))
    }

    #[test]
    fn the_fields_found_read_as_serde_json_reads_them_or_leave_the_record_to_it() {
        let plain = [
            r#"{"user_id": "u1", "action": "view", "timestamp": 1735689600}"#,
            r#"{"timestamp":-5,"metadata":{"a":[1,2,{"b":null}]},"action":"login_failed","user_id":"user 7","ip":"1.2.3.4"}"#,
            r#" { "action" : "x" , "user_id" : "", "timestamp" : 0 } "#,
            r#"{"user_id": "ü", "action": "view", "timestamp": 1}"#,
            r#"{"user_id": "u", "action": "purchase", "timestamp": 1}"#,
            r#"{"user_id": "u", "action": "download", "timestamp": 1}"#,
            r#"{"user_id": "u", "action": "login_success", "timestamp": 1}"#,
            // Near misses of the five, and none.
            r#"{"user_id": "u", "action": "downloaf", "timestamp": 1}"#,
            r#"{"user_id": "u", "action": "login_succest", "timestamp": 1}"#,
            r#"{"user_id": "u", "action": "vie", "timestamp": 1}"#,
            r#"{"user_id": "u", "action": "", "timestamp": 1}"#,
            // A user with escapes is decoded when an alert names it.
            r#"{"user_id": "u\"1\u00e9", "action": "view", "timestamp": 1}"#,
        ];
        for line in plain {
            let e = Seen::read(serde_json::from_str(line).unwrap());
            assert_eq!(found(line), Some((e.user.text().unwrap().into_owned(), e.action, e.timestamp)), "{line}");
        }
        let actions: Vec<Action> = plain.iter().map(|l| found(l).unwrap().1).collect();
        assert_eq!(
            actions,
            [
                Action::Active("view"),
                Action::Failed,
                Action::Other,
                Action::Active("view"),
                Action::Active("purchase"),
                Action::Active("download"),
                Action::Success,
                Action::Other,
                Action::Other,
                Action::Other,
                Action::Other,
                Action::Active("view")
            ]
        );
        // Escapes, duplicates, missing fields, other types, a float, an overflow, bad JSON:
        // not found, so serde_json decides (and refuses some, as it always did).
        for line in [
            // An action spelled with an escape may be one of the five.
            r#"{"user_id": "u", "action": "vie\u0077", "timestamp": 1}"#,
            r#"{"user_id": "u", "action": "login_\u0066ailed", "timestamp": 1}"#,
            r#"{"user_id": "a", "user_id": "b", "action": "view", "timestamp": 1}"#,
            r#"{"user_id": "a", "action": "view"}"#,
            r#"{"user_id": 7, "action": "view", "timestamp": 1}"#,
            r#"{"user_id": "a", "action": "view", "timestamp": 1.5}"#,
            r#"{"user_id": "a", "action": "view", "timestamp": 1e3}"#,
            r#"{"user_id": "a", "action": "view", "timestamp": 99999999999999999999}"#,
            r#"{"user_id": "a", "action": "view", "timestamp": -0}"#,
            r#"{"user_id": "a", "action": "view", "timestamp": 1"#,
            r#"{"user_id": "a", "action": "view", "timestamp": 1} x"#,
            r#"["user_id"]"#,
        ] {
            assert_eq!(found(line), None, "{line}");
        }
    }

    #[test]
    fn five_failures_within_300s_alert_once_then_reset() {
        let mut h = ProcessHarness::<Detect>::new(serde_json::json!({})).unwrap();
        for t in [0, 100, 200, 250] {
            h.process("u", ev("u", "login_failed", t)).unwrap();
        }
        assert!(alerts(&mut h).is_empty());
        h.process("u", ev("u", "login_failed", 299)).unwrap();
        assert_eq!(
            alerts(&mut h),
            vec![serde_json::json!({"type": "security_alert", "user_id": "u", "timestamp": 299, "failed_attempts": 5})]
        );
        h.process("u", ev("u", "login_failed", 300)).unwrap();
        assert!(alerts(&mut h).is_empty(), "forgotten after the alert");
    }

    #[test]
    fn escaped_text_reads_as_its_characters() {
        // Fields are borrowed from the value where they can be, decoded where escaped.
        let mut h = ProcessHarness::<Detect>::new(serde_json::json!({})).unwrap();
        for t in 0..5 {
            let line = format!(r#"{{"user_id": "u\u00e9", "action": "login_f\u0061iled", "timestamp": {t}, "ip": "x"}}"#);
            h.process("u", Record::from_bytes(line)).unwrap();
        }
        assert_eq!(
            alerts(&mut h),
            vec![serde_json::json!({"type": "security_alert", "user_id": "u\u{e9}", "timestamp": 4, "failed_attempts": 5})]
        );
    }

    #[test]
    fn old_failures_and_success_do_not_count() {
        let mut h = ProcessHarness::<Detect>::new(serde_json::json!({})).unwrap();
        for t in [0, 10, 20, 30] {
            h.process("u", ev("u", "login_failed", t)).unwrap();
        }
        h.process("u", ev("u", "login_failed", 311)).unwrap();
        assert!(alerts(&mut h).is_empty(), "t=0..10 are older than 300 s");
        h.process("u", ev("u", "login_success", 312)).unwrap();
        for t in [313, 314, 315, 316] {
            h.process("u", ev("u", "login_failed", t)).unwrap();
        }
        assert!(alerts(&mut h).is_empty(), "the success forgot the earlier ones");
    }

    #[test]
    fn anomaly_once_per_login() {
        let mut h = ProcessHarness::<Detect>::new(serde_json::json!({})).unwrap();
        h.process("u", ev("u", "view", 100_000)).unwrap();
        assert!(alerts(&mut h).is_empty(), "no login yet");
        h.process("u", ev("u", "login_success", 0)).unwrap();
        h.process("u", ev("u", "view", 86_400)).unwrap();
        assert!(alerts(&mut h).is_empty(), "exactly 24 h is not more than 24 h");
        h.process("u", ev("u", "purchase", 86_401)).unwrap();
        h.process("u", ev("u", "download", 90_000)).unwrap();
        assert_eq!(
            alerts(&mut h),
            vec![
                serde_json::json!({"type": "anomaly_alert", "user_id": "u", "timestamp": 86_401, "action": "purchase", "idle_seconds": 86_401})
            ]
        );
        h.process("u", ev("u", "login_success", 90_001)).unwrap();
        h.process("u", ev("u", "view", 200_000)).unwrap();
        assert_eq!(alerts(&mut h).len(), 1, "re-armed by the next login");
    }
}
