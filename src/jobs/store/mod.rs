//! Every database operation on export jobs.
//!
//! - `create`: insert with duplicate detection and the per-requester
//!   limit, atomically (partial UNIQUE index + `BEGIN IMMEDIATE`).
//! - `lease`: claim runnable jobs, checkpoint, poll flags, release.
//! - `transition`: apply a state-machine decision as a compare-and-set,
//!   one named write per kind of transition, with the notices of a final
//!   state ([`notice`]).
//! - [`maintenance`]: what the clean-up and rescue services read and write.
//!
//! Reads are free; every write of a running job says
//! `WHERE id = ? AND lease_token = ?` and checks that one row changed.

mod create;
mod lease;
pub mod maintenance;
pub mod notice;
mod transition;

use rusqlite::{Connection, OptionalExtension, Row};

pub use create::{create, create_in, CreateOutcome, NewJob};
pub use lease::{checkpoint, claim, poll_flags, release, Checkpoint, Flags, Lease};
pub use transition::{
    apply, request_cancel, request_restart, ErrorInfo, Fence, Outcome, Patch, Request, SpoolTotals,
    StoredFile,
};

use super::state::JobState;
use super::{Compress, JobError};
use crate::audit::query::Cursor;
use crate::filters::{FilterError, Filters, Limits};
use crate::format::{ExportOptions, Format};

/// One row of `export_jobs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Time-ordered id (26 characters, see `util::new_id`).
    pub id: String,
    /// The organization whose events are exported.
    pub organization_id: String,
    /// Who asked: `user:<id>`, or a system label such as `schedule:<name>`.
    pub requester: String,
    /// Canonical filter JSON (`Filters::canonical_json`); [`Job::filters`]
    /// parses it.
    pub filters: String,
    /// The export's identity for duplicate detection (SHA-256 hex of the
    /// filters, mixed with non-default options; see `create::identity`).
    pub filter_hash: String,
    /// Output format.
    pub format: Format,
    /// CSV options, time zone, redaction.
    pub options: ExportOptions,
    /// Compression policy of the stored file.
    pub compress: Compress,
    /// Where the job is in its state machine.
    pub state: JobState,
    /// The current attempt, from 1.
    pub attempt: u32,
    /// Attempts allowed before the job fails.
    pub max_attempts: u32,
    /// When the job may be claimed next (ms since the Unix epoch); later
    /// than now while a retry backs off.
    pub next_attempt_at: i64,
    /// The lease owner name (`host:pid:random`) of the worker holding the
    /// job; `None` when the job is not leased.
    pub lease_owner: Option<String>,
    /// The token of the worker's current lease; a write fenced by it fails
    /// once the lease is taken over. `None` when unleased.
    pub lease_token: Option<String>,
    /// When the current lease lapses unless renewed by a checkpoint (ms).
    pub lease_expires_at: Option<i64>,
    /// The last row durably in the spool.
    pub checkpoint: Option<Cursor>,
    /// The first row written to the spool.
    pub first: Option<Cursor>,
    /// Records durably in the spool, as of the checkpoint.
    pub exported_count: u64,
    /// Bytes of the spool file, as of the checkpoint.
    pub spool_bytes: u64,
    /// Matching events counted when the job was requested, if counted.
    pub estimated_count: Option<u64>,
    /// A user asked for a restart while a worker held the job; the worker
    /// honours it at its next checkpoint.
    pub restart_requested: bool,
    /// A user asked for a cancel while a worker held the job; the worker
    /// honours it at its next checkpoint.
    pub cancel_requested: bool,
    /// Stable code of the last failure (e.g. `storage_error`,
    /// `cancelled`); `None` if there is none.
    pub error_code: Option<String>,
    /// Message of the last failure, for people.
    pub error_message: Option<String>,
    /// Records in the export, set once the spool is complete; `None` before
    /// and after a failure.
    pub record_count: Option<u64>,
    /// The stored file of a completed job; `None` otherwise and when no
    /// event matched.
    pub file: Option<StoredFile>,
    /// Name of the schedule that fired this job; `None` for a request.
    pub schedule_id: Option<String>,
    /// The schedule fire time this job is for (ms); `None` for requests and
    /// manual runs.
    pub fire_time: Option<i64>,
    /// E-mail addresses told of the outcome.
    pub recipients: Vec<String>,
    /// A scheduled export's archive copy key.
    pub archive_key: Option<String>,
    /// When the job was created (ms since the Unix epoch).
    pub created_at: i64,
    /// When the row last changed (ms).
    pub updated_at: i64,
    /// When a worker first claimed the job (ms); `None` until then.
    pub started_at: Option<i64>,
    /// When the job reached a final state (ms); set exactly in final states.
    pub completed_at: Option<i64>,
}

fn corrupt(what: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        what.to_string().into(),
    )
}

impl Job {
    /// The job's filters. Stored filters are re-read without the range
    /// limit: they were validated when the job was created, and a later,
    /// stricter setting must not fail a job already accepted.
    pub fn filters(&self) -> Result<Filters, FilterError> {
        Filters::from_canonical_json(
            &self.filters,
            &Limits {
                max_span_days: u32::MAX,
            },
        )
    }

    /// The filters as a JSON value (for answers and payloads).
    pub fn filters_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.filters).unwrap_or(serde_json::Value::Null)
    }

    /// Reads a job from a `SELECT * FROM export_jobs` row.
    pub fn from_row(r: &Row<'_>) -> rusqlite::Result<Job> {
        let format: String = r.get("format")?;
        let state: String = r.get("state")?;
        let compress: String = r.get("compress")?;
        let last_at: Option<i64> = r.get("last_occurred_at")?;
        let last_id: Option<i64> = r.get("last_id")?;
        let file_key: Option<String> = r.get("file_key")?;
        let recipients: String = r.get("recipients")?;
        Ok(Job {
            id: r.get("id")?,
            organization_id: r.get("organization_id")?,
            requester: r.get("requester")?,
            filters: r.get("filters")?,
            filter_hash: r.get("filter_hash")?,
            format: format.parse().map_err(corrupt)?,
            options: ExportOptions::from_stored(
                r.get::<_, Option<String>>("options")?.as_deref(),
                r.get("csv_bom")?,
                r.get("csv_formula_guard")?,
            )
            .map_err(corrupt)?,
            compress: compress.parse().map_err(corrupt)?,
            state: state.parse().map_err(corrupt)?,
            attempt: r.get("attempt")?,
            max_attempts: r.get("max_attempts")?,
            next_attempt_at: r.get("next_attempt_at")?,
            lease_owner: r.get("lease_owner")?,
            lease_token: r.get("lease_token")?,
            lease_expires_at: r.get("lease_expires_at")?,
            checkpoint: match (last_at, last_id) {
                (Some(occurred_at), Some(id)) => Some(Cursor { occurred_at, id }),
                _ => None,
            },
            first: match (
                r.get::<_, Option<i64>>("first_occurred_at")?,
                r.get::<_, Option<i64>>("first_id")?,
            ) {
                (Some(occurred_at), Some(id)) => Some(Cursor { occurred_at, id }),
                _ => None,
            },
            exported_count: r.get("exported_count")?,
            spool_bytes: r.get("spool_bytes")?,
            estimated_count: r.get("estimated_count")?,
            restart_requested: r.get("restart_requested")?,
            cancel_requested: r.get("cancel_requested")?,
            error_code: r.get("error_code")?,
            error_message: r.get("error_message")?,
            record_count: r.get("record_count")?,
            file: match file_key {
                None => None,
                Some(key) => Some(StoredFile {
                    key,
                    name: r.get("file_name")?,
                    size: r.get("file_size")?,
                    sha256: r.get("file_sha256")?,
                    compressed: r.get("file_compressed")?,
                }),
            },
            schedule_id: r.get("schedule_id")?,
            fire_time: r.get("fire_time")?,
            recipients: serde_json::from_str(&recipients).map_err(corrupt)?,
            archive_key: r.get("archive_key")?,
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
            started_at: r.get("started_at")?,
            completed_at: r.get("completed_at")?,
        })
    }
}

/// Loads one job.
pub fn get(conn: &Connection, id: &str) -> Result<Job, JobError> {
    conn.prepare_cached("SELECT * FROM export_jobs WHERE id = ?")?
        .query_row([id], Job::from_row)
        .optional()?
        .ok_or_else(|| JobError::NotFound(id.to_string()))
}

/// Jobs, newest first, optionally of one organization and/or requester.
pub fn list(
    conn: &Connection,
    organization: Option<&str>,
    requester: Option<&str>,
    limit: u32,
) -> Result<Vec<Job>, JobError> {
    let mut st = conn.prepare_cached(
        "SELECT * FROM export_jobs WHERE (?1 IS NULL OR organization_id = ?1) \
         AND (?2 IS NULL OR requester = ?2) ORDER BY created_at DESC, id DESC LIMIT ?3",
    )?;
    let rows = st.query_map(
        rusqlite::params![organization, requester, limit],
        Job::from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One state change of a job, from its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionRow {
    /// `None` for the creation.
    pub from: Option<String>,
    /// The state entered.
    pub to: String,
    /// The event's name (see `JobEvent::name`), or `create`.
    pub event: String,
    /// The worker that made it, if a worker did.
    pub owner: Option<String>,
    /// When it happened (ms since the Unix epoch).
    pub at: i64,
}

/// The state history of a job, oldest first.
pub fn history(conn: &Connection, id: &str) -> Result<Vec<TransitionRow>, JobError> {
    let mut st = conn.prepare_cached(
        "SELECT from_state, to_state, event, owner, at FROM export_job_transitions \
         WHERE job_id = ? ORDER BY id",
    )?;
    let rows = st.query_map([id], |r| {
        Ok(TransitionRow {
            from: r.get(0)?,
            to: r.get(1)?,
            event: r.get(2)?,
            owner: r.get(3)?,
            at: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How many jobs are in progress (all organizations).
pub fn in_progress_count(conn: &Connection) -> Result<u64, JobError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM export_jobs WHERE state IN ('exporting', 'uploading')",
        [],
        |r| r.get(0),
    )?)
}

/// Records a state change in the history table (inside the caller's tx).
fn record_transition(
    conn: &Connection,
    job_id: &str,
    from: Option<JobState>,
    to: JobState,
    event: &str,
    owner: Option<&str>,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO export_job_transitions (job_id, from_state, to_state, event, owner, at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )?
    .execute(rusqlite::params![
        job_id,
        from.map(|s| s.as_str()),
        to.as_str(),
        event,
        owner,
        now
    ])?;
    Ok(())
}
