//! Creating a job: duplicate detection, restart, and the per-requester
//! limit, all in one `BEGIN IMMEDIATE` transaction.

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Transaction};

use super::{get, record_transition, Job};
use crate::filters::Filters;
use crate::format::{ExportOptions, Format};
use crate::jobs::state::JobState;
use crate::jobs::{Compress, JobError};

/// What to create.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Who asks: `user:<id>`, or a system label such as `schedule:<name>`.
    pub requester: String,
    /// Validated filters; their organization is the job's.
    pub filters: Filters,
    /// Output format.
    pub format: Format,
    /// CSV options, time zone, redaction.
    pub options: ExportOptions,
    /// Compression policy of the stored file.
    pub compress: Compress,
    /// Attempts allowed before the job fails (at least 1).
    pub max_attempts: u32,
    /// Matching events counted at request time, if counted.
    pub estimated_count: Option<u64>,
    /// Name of the schedule firing the job; `None` for a request.
    pub schedule_id: Option<String>,
    /// The fire time (ms) the job is for; a schedule fires once per time.
    /// `None` for requests and manual runs.
    pub fire_time: Option<i64>,
    /// E-mail addresses to tell of the outcome (already checked).
    pub recipients: Vec<String>,
    /// If an identical job is in progress, restart it instead of failing.
    pub restart: bool,
    /// A scheduled export's archive copy key.
    pub archive_key: Option<String>,
}

/// What `create` did.
#[derive(Debug, Clone)]
pub enum CreateOutcome {
    /// A new job, in `exporting`.
    Created(Job),
    /// An identical job was in progress and has been asked to restart.
    Restarted(Job),
}

impl CreateOutcome {
    /// The job created or restarted.
    pub fn job(&self) -> &Job {
        match self {
            CreateOutcome::Created(j) | CreateOutcome::Restarted(j) => j,
        }
    }
}

/// Creates a job, or reports the identical one in progress
/// ([`JobError::DuplicateExport`]) or restarts it (`restart`), or refuses
/// when the requester already has `max_in_progress` jobs running.
pub fn create(
    conn: &mut Connection,
    new: &NewJob,
    max_in_progress: u32,
    now: i64,
) -> Result<CreateOutcome, JobError> {
    let tx = crate::db::immediate(conn)?;
    let out = create_in(&tx, new, Some(max_in_progress), now)?;
    tx.commit()?;
    Ok(out)
}

/// [`create`] inside the caller's transaction (a scheduled fire creates
/// its job with the fire's record). `max_in_progress: None` applies no
/// per-requester limit (a schedule's fires are never refused for it).
pub fn create_in(
    tx: &Transaction<'_>,
    new: &NewJob,
    max_in_progress: Option<u32>,
    now: i64,
) -> Result<CreateOutcome, JobError> {
    let hash = identity(new);
    // An identical job in progress wins over the limit: asking twice for the
    // same export is a duplicate, not "too many".
    let existing: Option<String> = tx
        .prepare_cached(
            "SELECT id FROM export_jobs WHERE requester = ? AND filter_hash = ? AND format = ? \
             AND state IN ('exporting', 'uploading')",
        )?
        .query_row(params![new.requester, hash, new.format.as_str()], |r| {
            r.get(0)
        })
        .ok();
    if let Some(id) = existing {
        let job = get(tx, &id)?;
        if new.restart {
            tx.execute(
                "UPDATE export_jobs SET restart_requested = 1, next_attempt_at = min(next_attempt_at, ?2), \
                 updated_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            return Ok(CreateOutcome::Restarted(get(tx, &id)?));
        }
        return Err(duplicate(&job));
    }
    if let Some(limit) = max_in_progress {
        let running: u32 = tx.query_row(
            "SELECT count(*) FROM export_jobs WHERE requester = ? AND state IN ('exporting', 'uploading')",
            [&new.requester],
            |r| r.get(0),
        )?;
        if running >= limit {
            return Err(JobError::TooManyExports { limit });
        }
    }
    let id = crate::util::new_id(now);
    let inserted = tx.execute(
        "INSERT INTO export_jobs (id, organization_id, requester, filters, filter_hash, format, \
         csv_bom, csv_formula_guard, compress, state, attempt, max_attempts, next_attempt_at, \
         estimated_count, schedule_id, fire_time, recipients, archive_key, options, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'exporting', 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            id,
            new.filters.organization,
            new.requester,
            new.filters.canonical_json(),
            hash,
            new.format.as_str(),
            new.options.csv.bom,
            new.options.csv.formula_guard,
            new.compress.as_str(),
            new.max_attempts.max(1),
            now,
            new.estimated_count,
            new.schedule_id,
            new.fire_time,
            serde_json::to_string(&new.recipients).expect("strings serialize"),
            new.archive_key,
            new.options.to_json(),
            now,
            now
        ],
    );
    match inserted {
        Ok(_) => {}
        // The partial UNIQUE indexes are the real guard; the SELECT above
        // only gives the friendlier answer.
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => {
            let dup: Option<String> = tx
                .query_row(
                    "SELECT id FROM export_jobs WHERE (requester = ?1 AND filter_hash = ?2 AND format = ?3 \
                     AND state IN ('exporting', 'uploading')) OR (schedule_id = ?4 AND fire_time = ?5)",
                    params![new.requester, hash, new.format.as_str(), new.schedule_id, new.fire_time],
                    |r| r.get(0),
                )
                .optional()?;
            return match dup {
                Some(id) => Err(duplicate(&get(tx, &id)?)),
                None => Err(JobError::Db(rusqlite::Error::SqliteFailure(e, None))),
            };
        }
        Err(e) => return Err(e.into()),
    }
    record_transition(tx, &id, None, JobState::Exporting, "create", None, now)?;
    Ok(CreateOutcome::Created(get(tx, &id)?))
}

/// The job's identity for duplicate detection (`export_jobs.filter_hash`):
/// the filters' hash, mixed with the export options when they are not the
/// defaults, so a readable and a raw CSV of the same events are two
/// exports, while a job queued by an older release (always default
/// options) still matches its identical request.
pub fn identity(new: &NewJob) -> String {
    let base = new.filters.hash();
    if new.options == ExportOptions::default() {
        return base;
    }
    let o = &new.options;
    crate::util::sha256_hex(
        format!(
            "{base}\n{}\nbom={}\nguard={}",
            o.to_json(),
            o.csv.bom,
            o.csv.formula_guard
        )
        .as_bytes(),
    )
}

fn duplicate(job: &Job) -> JobError {
    JobError::DuplicateExport {
        id: job.id.clone(),
        created_at: job.created_at,
        created_at_text: crate::time::format_rfc3339_ms(job.created_at),
    }
}
