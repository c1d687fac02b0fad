//! `kind = "collection"`: inline values, each one JSON record (Flink's `from_collection`).

use std::time::Duration;

use serde::Deserialize;
use weir_core::config::{toml_to_json, Check, FieldError};
use weir_core::operator::Source;
use weir_core::record::{Origin, Record};

/// `values = [...]`: each value becomes one JSON record.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// The values, in order.
    #[serde(default)]
    pub values: Vec<toml::Value>,
}

impl Check for Config {
    fn check(&self) -> Result<(), FieldError> {
        match self.values.is_empty() {
            true => Err(FieldError::new("", "kind = \"collection\" needs `values = [...]`")),
            false => Ok(()),
        }
    }
}

impl crate::SourceConfig for Config {
    fn open(&self, at: crate::SourceAt<'_>) -> anyhow::Result<Box<dyn Source>> {
        Ok(Box::new(CollectionSource::new(self.values.iter().map(toml_to_json).collect(), at.index)))
    }
}

/// Inline values, each one JSON record (Flink's `from_collection`).
#[derive(Debug)]
pub struct CollectionSource {
    values: std::vec::IntoIter<serde_json::Value>,
    source: u16,
    next: u64,
    total: u64,
}

impl CollectionSource {
    /// A source over `values`.
    pub fn new(values: Vec<serde_json::Value>, source: u16) -> Self {
        CollectionSource { total: values.len() as u64, values: values.into_iter(), source, next: 1 }
    }
}

impl Source for CollectionSource {
    fn poll(&mut self, max: usize) -> anyhow::Result<Option<(Vec<Record>, Duration)>> {
        let batch: Vec<Record> = self
            .values
            .by_ref()
            .take(max)
            .map(|v| {
                let origin = Origin { source: self.source, position: self.next, ..Origin::default() };
                self.next += 1;
                Record { value: v.to_string().into_bytes(), origin, ..Record::default() }
            })
            .collect();
        Ok((!batch.is_empty()).then_some((batch, Duration::ZERO)))
    }

    fn progress(&self) -> Option<weir_core::status::SourceProgress> {
        Some(weir_core::status::SourceProgress { done: self.next - 1, total: Some(self.total), ..Default::default() })
    }

    fn position(&self) -> serde_json::Value {
        serde_json::json!({ "next": self.next })
    }

    fn seek(&mut self, position: &serde_json::Value) -> anyhow::Result<()> {
        let next = position["next"].as_u64().ok_or_else(|| anyhow::anyhow!("collection position without `next`"))?;
        while self.next < next {
            self.values.next();
            self.next += 1;
        }
        Ok(())
    }
}
