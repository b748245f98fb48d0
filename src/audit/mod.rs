//! Audit events: the stored type, ingest from files and HTTP bodies, the
//! filtered keyset query, and the synthetic generator for benchmarks.
//!
//! This module never formats output (that is `format`).

pub mod event;
pub mod ingest;
pub mod insert;
pub mod query;
mod raw;
pub mod seed;
pub mod trail;

pub use event::{NewEvent, Record, COLUMNS};
