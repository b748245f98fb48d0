//! audit-export: a durable export engine for audit logs on embedded SQLite.
//!
//! # Layout
//! Modules follow the flow of data:
//! - [`config`]: settings and defaults.
//! - [`db`]: opening SQLite (WAL, busy timeout), applying `schema.sql`.
//! - [`time`]: UTC millisecond instants, RFC 3339 in and out.
//! - [`audit`]: the event type, ingest, the filtered keyset query, the
//!   synthetic generator.
//! - [`filters`]: validate, canonicalize and hash export filters.
//! - [`format`]: streaming CSV / JSON / JSONL encoders.
//! - [`export`]: one export run (query → encoder → sink), for small exports.
//! - [`jobs`]: durable background exports — state machine, store (leases,
//!   checkpoints), steps (spool, zip + store), scheduler, crons.
//! - [`storage`]: opendal operator (local disk or S3), deterministic zip.
//! - [`users`]: users, roles and hashed API tokens.
//! - [`notify`]: in-app notices and the e-mail outbox (lettre), written in
//!   the transaction of a job's final transition.
//! - [`links`]: signed download links (HMAC, constant-time check).
//! - [`http`]: the API (tiny_http), downloads, metrics.
//! - [`cli`]: the command line.

pub mod audit;
pub mod cli;
pub mod config;
pub mod db;
pub mod export;
pub mod filters;
pub mod format;
pub mod http;
pub mod jobs;
pub mod links;
pub mod notify;
pub mod storage;
pub mod time;
pub mod users;
