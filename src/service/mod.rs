//! The operations every surface calls — HTTP, MCP, the CLI, a host
//! embedding the engine — so each has the same rules, the same errors and
//! the same audit events: request an export (scope, recipients, duplicate,
//! limit), see, cancel and restart jobs, ingest events, build links.
//!
//! [`Service`] holds what the operations need (settings, clock, job
//! runner, links). Operations take the caller's connection, so request
//! threads keep theirs. This module never speaks HTTP and never parses
//! command lines; [`ServiceError`] is mapped once to HTTP statuses (in
//! `http::error`) and to exit codes (in `cli`).

mod exports;
mod ingest;
mod jobs;
mod search;

use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::Connection;

pub use exports::{export_allowed, export_details, export_details_of, ExportRequest, Prepared};
pub use ingest::{Idempotency, Ingested};
pub use search::Page;

use crate::audit::trail::{Actor, Client, OwnEvent};
use crate::config::Config;
use crate::filters::FilterError;
use crate::jobs::{JobError, Runner};
use crate::links::Links;
use crate::time::Clock;
use crate::users::Requester;

/// Errors of the operations, each with a stable code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The filters are invalid.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// The job store refused (duplicate, limit, not found, not in progress…).
    #[error(transparent)]
    Job(#[from] JobError),
    /// A request field is wrong (`invalid_email_to`, `invalid_csv_options`…).
    #[error("{message}")]
    Invalid {
        /// Stable machine code, e.g. `invalid_email_to`.
        code: &'static str,
        /// The request field at fault, e.g. `email_to`.
        field: &'static str,
        /// One-line explanation for people.
        message: String,
    },
    /// `email_to` names an address nobody vouches for.
    #[error("{0}")]
    UnverifiedRecipient(String),
    /// The caller's role or organization does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// No such thing, or not the caller's to see.
    #[error("not found")]
    NotFound,
    /// An Idempotency-Key reused with a different request.
    #[error("Idempotency-Key {0:?} was used with a different request body")]
    IdempotencyConflict(String),
    /// SQLite refused a read or a write.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    /// The database could not be opened.
    #[error(transparent)]
    Open(Box<crate::db::DbError>),
}

impl From<crate::db::DbError> for ServiceError {
    fn from(e: crate::db::DbError) -> Self {
        ServiceError::Open(Box::new(e))
    }
}

impl ServiceError {
    /// A [`ServiceError::Invalid`] about `field`.
    pub fn invalid(code: &'static str, field: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Invalid {
            code,
            field,
            message: message.into(),
        }
    }

    /// Whether the database (or its disk) is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            ServiceError::Db(e) | ServiceError::Job(JobError::Db(e)) => crate::db::is_disk_full(e),
            _ => false,
        }
    }
}

impl From<crate::users::UserError> for ServiceError {
    fn from(e: crate::users::UserError) -> Self {
        match e {
            crate::users::UserError::Db(e) => ServiceError::Db(e),
            crate::users::UserError::NotFound => ServiceError::NotFound,
            other => ServiceError::invalid("invalid_user", "user", other.to_string()),
        }
    }
}

/// What the operations share.
pub struct Service {
    /// The data directory (database, spool, local exports).
    pub data_dir: PathBuf,
    /// The effective settings.
    pub cfg: Config,
    /// The clock every rule reads.
    pub clock: Clock,
    /// The job services' shared state (storage, wake-ups, effects).
    pub runner: Arc<Runner>,
    /// Makes the signed download links of answers and notices.
    pub links: Arc<Links>,
}

impl Service {
    /// A connection to the database (schema already current).
    pub fn connect(&self) -> Result<Connection, ServiceError> {
        Ok(crate::db::connect(&crate::db::db_path(&self.data_dir))?)
    }

    /// The current time on the service's clock, ms since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Records one of the engine's own events (exports, downloads), with
    /// `who` as actor.
    pub fn audit(
        &self,
        conn: &mut Connection,
        who: &Requester,
        client: &Client,
        what: Audited<'_>,
    ) -> Result<(), ServiceError> {
        let event = OwnEvent {
            org: what.org,
            action: what.action,
            actor: &actor(who),
            target_id: what.target_id,
            client,
            details: what.details,
        };
        crate::audit::trail::record(conn, &event, self.now_ms())?;
        Ok(())
    }
}

/// What an engine event records: where, what, about which export.
#[derive(Debug, Clone, Copy)]
pub struct Audited<'a> {
    /// Organization the event is recorded in.
    pub org: &'a str,
    /// Event action, e.g. `audit_log.exported`.
    pub action: &'a str,
    /// The export job id, or the filter hash of an export answered at once.
    pub target_id: &'a str,
    /// Event details (e.g. filters, format, record count), stored as JSON.
    pub details: &'a serde_json::Value,
}

/// The audit-trail actor of a requester.
pub fn actor(who: &Requester) -> Actor {
    match who {
        Requester::User(u) => Actor {
            kind: "user".into(),
            id: Some(u.requester()),
            name: Some(u.name.clone()),
            email: Some(u.email.clone()),
        },
        Requester::System(label) => Actor {
            kind: "system".into(),
            id: Some(label.clone()),
            name: None,
            email: None,
        },
    }
}
