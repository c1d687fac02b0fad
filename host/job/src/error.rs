//! Errors that name the job file, the line (or the `--set`), the field and the fix.

use std::path::PathBuf;

/// A job-file error: where, what, and how to fix it.
#[derive(Debug, thiserror::Error)]
#[error(
    "{file}{}{}: {field}: {message}",
    line.map(|l| format!(":{l}")).unwrap_or_default(),
    set.as_ref().map(|s| format!(" (--set {s})")).unwrap_or_default()
)]
pub struct JobError {
    /// The job file.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The `--set KEY=VALUE` the value came from, when it came from one (then `line` is
    /// `None`: the field is not on a line of the file).
    pub set: Option<String>,
    /// Dotted path of the field (`source.logs.path`).
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

/// Where a job's values came from: the file's text after `--set` overrides, and the
/// overrides, to say where a refused value is written.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The job file.
    pub file: PathBuf,
    /// Its text with the overrides applied.
    pub text: String,
    /// The `--set KEY=VALUE` overrides, as given.
    pub sets: Vec<String>,
}

impl Origin {
    /// An error at `field` (dotted path), with the line of that field when it can be found.
    pub fn error(&self, field: &str, message: impl Into<String>) -> JobError {
        let set = self.set_of(field);
        let line = if set.is_some() { None } else { self.line_of(field) };
        JobError { file: self.file.display().to_string(), line, set, field: field.to_string(), message: message.into() }
    }

    /// The last `--set` whose key is `field`, inside it or holds it: the value the error is
    /// about came from the command line, not from a line of the file.
    fn set_of(&self, field: &str) -> Option<String> {
        let within = |a: &str, b: &str| a == b || a.strip_prefix(b).is_some_and(|r| r.starts_with('.'));
        self.sets.iter().rev().find(|s| s.split_once('=').is_some_and(|(k, _)| within(k.trim(), field) || within(field, k.trim()))).cloned()
    }

    fn line_of(&self, field: &str) -> Option<usize> {
        let Ok(doc) = toml_edit::Document::parse(self.text.clone()) else {
            // toml_edit refuses what the parser took (an integer above i64::MAX): find a
            // top-level `field =` line by its text.
            let top = self.text.lines().take_while(|l| !l.trim_start().starts_with('['));
            let at = top.into_iter().position(|l| l.split_once('=').is_some_and(|(k, _)| k.trim() == field))?;
            return Some(at + 1);
        };
        let mut item = doc.as_item();
        let mut span = None;
        for k in field.split('.') {
            // `read[1]`: the key, then an element of its array.
            let (k, index) = match k.split_once('[') {
                Some((k, i)) => (k, i.strip_suffix(']').and_then(|i| i.parse::<usize>().ok())),
                None => (k, None),
            };
            let tbl = item.as_table_like()?;
            let (key, it) = tbl.get_key_value(k)?;
            span = key.span().or(it.span()).or(span);
            item = it;
            if let Some(element) = index.and_then(|i| item.as_array()?.get(i)) {
                span = element.span().or(span);
                break;
            }
        }
        span.map(|s| line_at(&self.text, s.start))
    }
}

/// Applies `KEY=VALUE` overrides to TOML text. VALUE is read as a TOML value when it is one
/// (`4`, `true`, `"x"`, `[1, 2]`) and as a string otherwise.
pub fn apply_overrides(text: &str, sets: &[String]) -> Result<String, String> {
    if sets.is_empty() {
        return Ok(text.to_string());
    }
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| e.to_string())?;
    for s in sets {
        let (path, value) =
            s.split_once('=').ok_or_else(|| format!("--set {s}: expected KEY=VALUE, e.g. --set source.logs.path=in.jsonl"))?;
        let keys: Vec<&str> = path.trim().split('.').collect();
        if keys.iter().any(|k| k.is_empty()) {
            return Err(format!("--set {s}: `{path}` is not a dotted key path"));
        }
        let parsed =
            format!("v = {value}").parse::<toml_edit::DocumentMut>().ok().and_then(|d| d.get("v").and_then(|i| i.as_value()).cloned());
        let v = parsed.unwrap_or_else(|| toml_edit::Value::from(value));
        let mut item = doc.as_item_mut();
        for k in &keys[..keys.len() - 1] {
            let tbl = item.as_table_like_mut().ok_or_else(|| format!("--set {s}: `{k}` is inside a value that is not a table"))?;
            if tbl.get(k).is_none() {
                tbl.insert(k, toml_edit::Item::Table(toml_edit::Table::new()));
            }
            item = tbl.get_mut(k).expect("just inserted");
        }
        let last = keys[keys.len() - 1];
        let tbl = item.as_table_like_mut().ok_or_else(|| format!("--set {s}: the parent of `{last}` is not a table"))?;
        tbl.insert(last, toml_edit::Item::Value(v));
    }
    Ok(doc.to_string())
}

/// The `--set` whose key ends in the key of a TOML line (`parallelism = "x"`), or the last
/// `--set` when none matches.
pub(crate) fn set_on_line(sets: &[String], line: &str) -> Option<String> {
    let key = line.split('=').next().unwrap_or_default().trim().trim_matches(|c| c == '"' || c == '\'');
    sets.iter().rev().find(|s| s.split_once('=').is_some_and(|(k, _)| k.trim().rsplit('.').next() == Some(key))).or(sets.last()).cloned()
}

/// The 1-based line of byte offset `at`.
pub(crate) fn line_at(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}
