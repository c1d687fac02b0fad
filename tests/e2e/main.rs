//! End-to-end tests: the real `weir` binary with real components built from plugins/.

mod conformance;
mod errors;
mod grants;
mod hardening;
mod kafka;
mod languages;
mod layout;
mod log_analyzer;
mod observability;
mod processing_time;
mod recovery;
mod reload;
mod seed;
mod support;
mod windows;
