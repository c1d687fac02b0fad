//! Process-window plugin: emits the most frequent `action` of each window
//! (`{"user_id", "window_start", "window_end", "top_action", "n", "events"}`), ties broken by
//! name.

use std::collections::BTreeMap;

use weir_sdk::{current_key_str, emit, Config, Record, Result, Window, WindowProcess};

/// The operator.
pub struct Top;

#[weir_sdk::window_process]
impl WindowProcess for Top {
    fn open(_: &Config) -> Result<Self> {
        Ok(Top)
    }

    fn process_window(&mut self, window: Window, elements: Vec<Record>) -> Result<()> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for e in &elements {
            let v: serde_json::Value = e.json()?;
            let a = v.get("action").and_then(|a| a.as_str()).unwrap_or("?").to_string();
            *counts.entry(a).or_default() += 1;
        }
        let (top, n) = counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map(|(a, n)| (a.clone(), *n)).unwrap_or_default();
        emit(&Record::from_json(&serde_json::json!({
            "user_id": current_key_str(), "window_start": window.start, "window_end": window.end,
            "top_action": top, "n": n, "events": elements.len(),
        }))?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_most_frequent() {
        let ev = |a: &str| Record::from_json(&serde_json::json!({"action": a})).unwrap();
        let out = weir_sdk::testing::run_window_process::<Top>(
            serde_json::json!({}),
            b"u",
            Window { start: 0, end: 10 },
            vec![ev("view"), ev("buy"), ev("view")],
        )
        .unwrap();
        let v: serde_json::Value = out[0].json().unwrap();
        assert_eq!((v["top_action"].as_str(), v["n"].as_u64(), v["user_id"].as_str()), (Some("view"), Some(2), Some("u")));
    }
}
