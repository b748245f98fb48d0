//! Audit events: the stored type, ingest from files and HTTP bodies, the
//! filtered keyset query, and the synthetic generator for benchmarks.
//!
//! This module never formats output (that is `format`).

pub mod event;
pub mod ingest;
pub mod query;
pub mod record;
pub mod seed;

pub use event::{NewEvent, Record, COLUMNS};
