#![warn(missing_docs)]
//! audit-export: a durable export engine for audit logs on embedded SQLite.
//!
//! Start with [`Engine`]: it opens a data directory, migrates the database
//! and runs the engine's services until a cancellation token fires; it
//! also records events and requests exports for a host application.
//!
//! # Layout
//! Modules follow the flow of data, each with one job:
//! - [`config`]: settings, their defaults and where each came from.
//! - [`db`]: opening SQLite (WAL, busy timeout), numbered migrations with a
//!   backup first, online backup and restore.
//! - [`time`]: UTC millisecond instants, RFC 3339 in and out; the one
//!   [`Clock`] every loop reads.
//! - [`util`]: hex, random bytes, time-ordered ids, retry backoff.
//! - [`audit`]: the event type, ingest, the filtered keyset query, the
//!   engine's own audit trail, the synthetic generator.
//! - [`filters`]: validate, canonicalize and hash export filters.
//! - [`mod@format`]: streaming CSV / JSON / JSONL encoders.
//! - [`stream`]: one export run (query → encoder → sink), for CLI and HTTP
//!   sync exports.
//! - [`jobs`]: durable background exports — state machine (transitions
//!   and their effects), store (leases, checkpoints, one write per
//!   transition), steps (spool, zip + store), scheduler, clean-up, rescue.
//! - [`storage`]: opendal operator (local disk or S3), deterministic zip.
//! - [`manifest`]: signed, chained export manifests; signing keys;
//!   offline verification.
//! - [`links`]: signed download links (HMAC, constant-time check) — the
//!   only place a download URL is made.
//! - [`users`]: users, roles, hashed API tokens; the [`users::Requester`].
//! - [`notify`]: in-app notices and the e-mail outbox (lettre), written in
//!   the transaction of a job's final transition.
//! - [`service`]: the operations every surface calls (request an export,
//!   see/cancel/restart jobs, search, ingest) with the same rules and
//!   errors.
//! - [`schedules`]: scheduled exports (`workflows/*.toml`): definitions,
//!   DST-aware fire times, exactly-once fires, archive copies.
//! - [`engine`]: the library entry point that opens and runs it all.
//! - [`api`]: the wire format HTTP and MCP share: request bodies and the
//!   one error shape.
//! - [`http`]: the API server (tiny_http, bounded against slow clients),
//!   downloads, the web console's files, metrics.
//! - [`mcp`]: the same search and exports as MCP tools (stdio and `/mcp`).
//! - [`cli`]: the command line.

pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod db;
pub mod engine;
pub mod filters;
pub mod format;
pub mod http;
pub mod jobs;
pub mod links;
pub mod manifest;
pub mod mcp;
pub mod notify;
pub mod schedules;
pub mod service;
pub mod storage;
pub mod stream;
pub mod time;
pub mod users;
pub mod util;

pub use config::Config;
pub use engine::{Engine, EngineBuilder, EngineError, RunOptions, Running};
pub use service::{ExportRequest, ServiceError};
pub use time::Clock;
