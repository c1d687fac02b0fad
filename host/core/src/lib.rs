//! weir's core types, below everything else in the host: records, keys and batches with
//! their watermark marks ([`record`]), event time, watermarks and timers ([`time`]), and the
//! JSON scanner the host reads fields with ([`json`]).

pub mod json;
pub mod record;
pub mod time;
