//! The HTTP API over real sockets against a spawned `audit-export serve`,
//! one behaviour per test, grouped by concern.

#[path = "../common/mod.rs"]
mod common;
mod exports;
mod ingest_view;
mod recipients;
mod refusals;
mod roles;
mod support;
