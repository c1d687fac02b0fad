//! weir's core, below everything else in the host: records, keys and batches with their
//! watermark marks ([`record`]), how keys of fields are written ([`keys`]), event time,
//! watermarks and timers ([`time`]), the JSON scanner the host reads fields with ([`json`]),
//! the one operator lifecycle every node implements ([`operator`]), and what a running job
//! counts ([`status`]), and typed configuration tables of kinds ([`config`]).

pub mod config;
pub mod json;
pub mod keys;
pub mod operator;
pub mod record;
pub mod status;
pub mod time;
