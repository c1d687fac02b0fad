//! `kind = "generator"`: the built-in log generator.

use std::time::Duration;

use anyhow::Context as _;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use serde::Deserialize;
use weir_core::config::{Check, FieldError};
use weir_core::operator::Source;
use weir_core::record::{Origin, Record};

/// `kind = "generator"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Events to make over all subtasks (absent: unbounded).
    #[serde(default)]
    pub count: Option<u64>,
    /// The same seed gives the same stream.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Distinct users.
    #[serde(default = "default_users")]
    pub users: u32,
    /// Epoch seconds of the first event (default 2025-01-01T00:00:00Z).
    #[serde(default = "default_start")]
    pub start: i64,
}

fn default_seed() -> u64 {
    42
}
fn default_users() -> u32 {
    50
}
fn default_start() -> i64 {
    1_735_689_600
}

impl Check for Config {
    fn check(&self) -> Result<(), FieldError> {
        match self.users {
            0 => Err(FieldError::new("users", "must be at least 1")),
            _ => Ok(()),
        }
    }
}

impl crate::SourceConfig for Config {
    fn open(&self, at: crate::SourceAt<'_>) -> anyhow::Result<Box<dyn Source>> {
        // Subtasks share `count`; the first ones make one more when it does not divide.
        let (p, s) = (at.parallelism as u64, at.subtask as u64);
        let count = self.count.map(|c| c / p + u64::from(s < c % p));
        let cfg = GeneratorConfig { count, seed: self.seed, users: self.users, start: self.start };
        Ok(Box::new(Generator::new(cfg, s, at.index)))
    }
}

/// Settings of the log generator.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// Events to make (None: unbounded).
    pub count: Option<u64>,
    /// Seed; equal seeds give equal streams.
    pub seed: u64,
    /// Distinct users.
    pub users: u32,
    /// Epoch seconds of the first event.
    pub start: i64,
}

const ACTIONS: [&str; 8] = ["login_success", "logout", "view", "purchase", "download", "login_failed", "view", "view"];
const IPS: [&str; 4] = ["192.168.1.1", "192.168.1.2", "10.0.0.1", "10.0.0.2"];
const AGENTS: [&str; 3] = ["Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (Macintosh)", "curl/8.5.0"];

/// One generated line. Fields in name order: the generator wrote a `serde_json::Value`
/// before, whose map sorts them, and streams stay as they were for a seed.
#[derive(serde::Serialize)]
struct LogLine<'a> {
    action: &'a str,
    ip_address: &'a str,
    metadata: Empty,
    session_id: Prefixed,
    timestamp: i64,
    user_agent: &'a str,
    user_id: &'a str,
}

/// `{}`.
#[derive(serde::Serialize)]
struct Empty {}

/// A string written as a prefix and a number, without building it first.
struct Prefixed(&'static str, u32);

impl serde::Serialize for Prefixed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}{}", self.0, self.1))
    }
}

/// The log generator: users acting in sessions, with failed-login bursts (security alerts)
/// and users who go quiet for more than a day after logging in (anomaly alerts). Event time
/// advances about two seconds per event. Deterministic for a seed.
#[derive(Debug)]
pub struct Generator {
    cfg: GeneratorConfig,
    rng: ChaCha8Rng,
    made: u64,
    t: i64,
    pending: std::collections::VecDeque<(String, &'static str, i64)>,
    /// Sleepers: user index → event time (s) until which the user is quiet.
    quiet_until: Vec<i64>,
    source: u16,
}

impl Generator {
    /// A generator for subtask `subtask` (each subtask gets its own seed).
    pub fn new(cfg: GeneratorConfig, subtask: u64, source: u16) -> Generator {
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(subtask.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        let users = cfg.users.max(1) as usize;
        let t = cfg.start;
        Generator { rng, made: 0, t, pending: Default::default(), quiet_until: vec![i64::MIN; users], cfg, source }
    }

    fn sleepers(&self) -> usize {
        (self.cfg.users as usize / 10).max(1)
    }

    fn next_event(&mut self) -> (String, &'static str, i64) {
        if let Some(e) = self.pending.pop_front() {
            return e;
        }
        loop {
            self.t += [0, 1, 1, 2, 2, 3, 5][self.rng.random_range(0..7)];
            let u = self.rng.random_range(0..self.cfg.users.max(1) as usize);
            let user = format!("user{}", u + 1);
            if self.quiet_until[u] > self.t {
                continue;
            }
            // Sleepers log in, then go quiet for 24-27 h of event time.
            if u < self.sleepers() && self.quiet_until[u] == i64::MIN {
                let offset = 600 * (u as i64 + 1);
                if self.t - self.cfg.start >= offset {
                    self.quiet_until[u] = self.t + 86_400 + self.rng.random_range(60..10_800);
                    return (user, "login_success", self.t);
                }
            }
            if self.rng.random_bool(0.01) {
                let mut ts = self.t;
                for _ in 0..self.rng.random_range(3..=8) {
                    ts += self.rng.random_range(0..=40);
                    self.pending.push_back((user.clone(), "login_failed", ts));
                }
                self.t = ts;
                return self.pending.pop_front().expect("burst has at least three");
            }
            let action = ACTIONS[self.rng.random_range(0..ACTIONS.len())];
            if u < self.sleepers() && action == "login_success" {
                // A sleeper's next login starts its next long quiet spell.
                self.quiet_until[u] = self.t + 86_400 + self.rng.random_range(60..10_800);
            }
            return (user, action, self.t);
        }
    }
}

impl Source for Generator {
    fn poll(&mut self, max: usize) -> anyhow::Result<Option<(Vec<Record>, Duration)>> {
        let left = self.cfg.count.map(|c| c - self.made).unwrap_or(u64::MAX);
        if left == 0 {
            return Ok(None);
        }
        let n = (max as u64).min(left) as usize;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let (user, action, timestamp) = self.next_event();
            self.made += 1;
            let ev = LogLine {
                action,
                session_id: Prefixed("session_", self.rng.random_range(1000..10000)),
                ip_address: IPS[self.rng.random_range(0..IPS.len())],
                metadata: Empty {},
                timestamp,
                user_agent: AGENTS[self.rng.random_range(0..AGENTS.len())],
                user_id: &user,
            };
            let mut value = Vec::with_capacity(192);
            serde_json::to_writer(&mut value, &ev).context("generator: event does not serialize")?;
            out.push(Record {
                value,
                origin: Origin { source: self.source, position: self.made, ..Origin::default() },
                ..Record::default()
            });
        }
        Ok(Some((out, Duration::ZERO)))
    }

    fn progress(&self) -> Option<weir_core::status::SourceProgress> {
        Some(weir_core::status::SourceProgress { done: self.made, total: self.cfg.count, ..Default::default() })
    }

    fn position(&self) -> serde_json::Value {
        serde_json::json!({ "made": self.made })
    }

    fn seek(&mut self, position: &serde_json::Value) -> anyhow::Result<()> {
        let made = position["made"].as_u64().ok_or_else(|| anyhow::anyhow!("generator position without `made`"))?;
        // The stream is a pure function of the seed: regenerate and skip.
        while self.made < made {
            let n = (made - self.made).min(4096) as usize;
            if self.poll(n)?.is_none() {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(g: &mut Generator) -> Vec<serde_json::Value> {
        let mut all = Vec::new();
        while let Some((b, _)) = g.poll(1000).unwrap() {
            all.extend(b.iter().map(|r| serde_json::from_slice::<serde_json::Value>(&r.value).unwrap()));
        }
        all
    }

    #[test]
    fn generator_is_deterministic_for_a_seed() {
        let cfg = GeneratorConfig { count: Some(500), seed: 7, users: 50, start: 1_735_689_600 };
        let a = drain(&mut Generator::new(cfg.clone(), 0, 0));
        let b = drain(&mut Generator::new(cfg.clone(), 0, 0));
        let c = drain(&mut Generator::new(GeneratorConfig { seed: 8, ..cfg }, 0, 0));
        assert_eq!(a.len(), 500);
        assert_eq!(a, b);
        assert_ne!(a, c);
        for f in ["user_id", "session_id", "action", "ip_address", "user_agent"] {
            assert!(a.iter().all(|e| e[f].is_string()), "{f}");
        }
        assert!(a.iter().all(|e| e["timestamp"].is_i64()));
    }

    #[test]
    fn generated_lines_stay_byte_for_byte_what_they_were() {
        // A stream is a function of its seed: checkpoints restore a generator by replaying it,
        // and the README's output depends on it.
        let cfg = GeneratorConfig { count: Some(2), seed: 42, users: 50, start: 1_735_689_600 };
        let (lines, _) = Generator::new(cfg, 0, 0).poll(10).unwrap().unwrap();
        let lines: Vec<String> = lines.into_iter().map(|r| String::from_utf8(r.value).unwrap()).collect();
        assert_eq!(
            lines,
            [
                r#"{"action":"view","ip_address":"192.168.1.2","metadata":{},"session_id":"session_4847","timestamp":1735689601,"user_agent":"Mozilla/5.0 (Macintosh)","user_id":"user35"}"#,
                r#"{"action":"view","ip_address":"192.168.1.1","metadata":{},"session_id":"session_3772","timestamp":1735689604,"user_agent":"curl/8.5.0","user_id":"user15"}"#,
            ]
        );
    }
}
