//! `kind = "discard"`: counts and drops.

use serde::Deserialize;
use weir_core::config::Check;
use weir_core::operator::{Operator, Output};
use weir_core::record::Batch;

/// `kind = "discard"` has no fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

impl Check for Config {}

impl crate::SinkConfig for Config {
    fn open(&self, _at: crate::SinkAt) -> anyhow::Result<Box<dyn Operator>> {
        Ok(Box::new(DiscardSink))
    }
}

/// Counts and drops.
#[derive(Debug, Default)]
pub struct DiscardSink;

impl Operator for DiscardSink {
    fn process(&mut self, _batch: Batch, _out: &mut Output) -> anyhow::Result<()> {
        Ok(())
    }
}
