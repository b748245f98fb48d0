//! Applying state-machine decisions: load, `decide`, one named
//! compare-and-set write per kind of transition, a history row and (for a
//! final state) the notices, all in one `BEGIN IMMEDIATE` transaction.

use rusqlite::{params, Connection, Transaction};

use super::{get, record_transition, Job, Lease};
use crate::audit::query::Cursor;
use crate::jobs::state::{decide, with_pending_request, Decision, JobEvent, JobState};
use crate::jobs::JobError;

/// Who may move the job.
#[derive(Debug, Clone, Copy)]
pub enum Fence<'a> {
    /// The worker holding this lease (every step's write).
    Lease(&'a Lease),
    /// Nobody else: unleased, or the lease expired (user requests on an
    /// idle job).
    Free,
    /// Unconditionally (the clean-up cron expiring a stuck job: a worker
    /// still holding it loses its lease and stops).
    Any,
}

/// A file in storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// Storage key: `<org>/<job-id>/<file-name>`.
    pub key: String,
    /// File name users see, e.g. `audit-logs_acme_2025-01-01_2025-12-31_20260105T100000Z.csv`
    /// (`.zip` appended when compressed).
    pub name: String,
    /// Size of the stored file in bytes.
    pub size: u64,
    /// SHA-256 (hex) of the stored file.
    pub sha256: String,
    /// Whether the stored file is a zip of the export.
    pub compressed: bool,
}

/// The finished spool: what the upload step will store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolTotals {
    /// Records in the spool.
    pub records: u64,
    /// Size of the spool file in bytes.
    pub bytes: u64,
    /// The first and last rows written.
    pub first: Option<Cursor>,
    /// The last row written; `None` when the spool is empty.
    pub last: Option<Cursor>,
}

/// Why a job failed, was retried, cancelled or expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorInfo {
    /// Stable code, stored as `export_jobs.error_code` (e.g. `cancelled`).
    pub code: String,
    /// One-line explanation for people.
    pub message: String,
}

impl ErrorInfo {
    /// An error with this code and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> ErrorInfo {
        ErrorInfo {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Data written along with a transition.
#[derive(Debug, Clone, Default)]
pub struct Patch {
    /// exporting → uploading.
    pub spool: Option<SpoolTotals>,
    /// → completed: records in the export (default: the count recorded
    /// with the spool, else 0).
    pub record_count: Option<u64>,
    /// uploading → completed: the stored file.
    pub file: Option<StoredFile>,
    /// The signed manifest of the stored file (uploading → completed):
    /// inserted only as the next link of its organization's chain.
    pub manifest: Option<crate::manifest::Signed>,
    /// Failures, retries, expiry (a cancel writes its own).
    pub error: Option<ErrorInfo>,
    /// Delay before the next attempt, for a retry decision.
    pub retry_delay_ms: i64,
}

/// What a transition did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What the state machine decided.
    pub decision: Decision,
    /// The state the job was in.
    pub from: JobState,
    /// The job as written by the transition.
    pub job: Job,
    /// A file the step had stored that no completed job owns now (a cancel
    /// won over the upload): the `SpoolAndFile` clean-up removes it.
    pub orphan_file: Option<StoredFile>,
}

/// Applies `event` to job `id` if `fence` allows, writing `patch`.
pub fn apply(
    conn: &mut Connection,
    id: &str,
    fence: Fence<'_>,
    event: JobEvent,
    patch: Patch,
    now: i64,
) -> Result<Outcome, JobError> {
    let tx = crate::db::immediate(conn)?;
    let job = get(&tx, id)?;
    let owner = match fence {
        Fence::Lease(l) => {
            if job.lease_token.as_deref() != Some(l.token.as_str()) {
                return Err(JobError::LeaseLost(id.to_string()));
            }
            Some(l.owner.as_str())
        }
        Fence::Free => {
            if job.lease_token.is_some() && job.lease_expires_at.is_some_and(|t| t > now) {
                return Err(JobError::LeaseLost(id.to_string()));
            }
            None
        }
        Fence::Any => None,
    };
    // A request that arrived while the step ran wins over the step's result
    // here, in the same transaction, so none slips between check and write.
    let event = with_pending_request(event, job.cancel_requested, job.restart_requested);
    let decision = decide(job.state, event, job.attempt, job.max_attempts)?;
    let error = match event {
        JobEvent::Cancel => Some(ErrorInfo::new("cancelled", "cancelled by request")),
        _ => patch.error.clone(),
    };
    let w = Write {
        tx: &tx,
        job: &job,
        lease_token: match fence {
            Fence::Lease(l) => Some(l.token.clone()),
            _ => job.lease_token.clone(),
        },
        now,
    };
    let changed = if decision.retry {
        w.retry(patch.retry_delay_ms, error.as_ref())?
    } else if decision.clear_checkpoint {
        w.restart()?
    } else {
        match decision.to {
            JobState::Uploading => w.uploading(patch.spool)?,
            JobState::Completed => {
                if let (JobEvent::Stored, Some(m)) = (event, &patch.manifest) {
                    if !crate::manifest::store::insert_if_next(&tx, m, id, now)? {
                        return Err(JobError::ChainMoved(m.manifest.organization.clone()));
                    }
                }
                w.completed(patch.record_count, patch.file.as_ref())?
            }
            JobState::Failed | JobState::Expired => w.finished(decision.to, error.as_ref())?,
            JobState::Exporting => {
                unreachable!("only restart and retry stay in or return to exporting")
            }
        }
    };
    if changed != 1 {
        return Err(JobError::LeaseLost(id.to_string()));
    }
    if decision.to != job.state || decision.clear_checkpoint {
        record_transition(
            &tx,
            id,
            Some(job.state),
            decision.to,
            event.name(),
            owner,
            now,
        )?;
    }
    let updated = get(&tx, id)?;
    // A final state and its notices commit together or not at all.
    if decision.effects.notify {
        if let Some(notice) = super::notice::for_job(&updated) {
            crate::notify::enqueue(&tx, &notice, now)?;
        }
    }
    tx.commit()?;
    let orphan_file = match (event, updated.state) {
        (JobEvent::Cancel, JobState::Failed) => patch.file,
        _ => None,
    };
    Ok(Outcome {
        decision,
        from: job.state,
        job: updated,
        orphan_file,
    })
}

/// One compare-and-set write of a transition: same row, same state and
/// same lease as read (the IMMEDIATE transaction already excludes other
/// writers; the WHERE keeps each write honest if that ever changes).
/// Each returns the number of rows changed, which must be 1.
struct Write<'a> {
    tx: &'a Transaction<'a>,
    job: &'a Job,
    lease_token: Option<String>,
    now: i64,
}

const GUARD: &str = "WHERE id = ?1 AND state = ?2 AND lease_token IS ?3";

impl Write<'_> {
    /// Stay in the state; attempt + 1 after the backoff; lease released.
    fn retry(&self, delay_ms: i64, error: Option<&ErrorInfo>) -> rusqlite::Result<usize> {
        self.tx.execute(
            &format!(
                "UPDATE export_jobs SET attempt = attempt + 1, next_attempt_at = ?4 + ?5, \
                 lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, \
                 error_code = ?6, error_message = ?7, updated_at = ?4 {GUARD}"
            ),
            params![
                self.job.id,
                self.job.state.as_str(),
                self.lease_token,
                self.now,
                delay_ms.max(0),
                error.map(|e| &e.code),
                error.map(|e| &e.message)
            ],
        )
    }

    /// Back to exporting from scratch: checkpoint, attempts and error
    /// cleared, runnable at once.
    fn restart(&self) -> rusqlite::Result<usize> {
        self.tx.execute(
            &format!(
                "UPDATE export_jobs SET state = 'exporting', attempt = 1, next_attempt_at = ?4, \
                 last_occurred_at = NULL, last_id = NULL, first_occurred_at = NULL, first_id = NULL, \
                 exported_count = 0, spool_bytes = 0, \
                 restart_requested = 0, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, \
                 error_code = NULL, error_message = NULL, updated_at = ?4 {GUARD}"
            ),
            params![
                self.job.id,
                self.job.state.as_str(),
                self.lease_token,
                self.now
            ],
        )
    }

    /// Exporting → uploading: the final spool totals (the lease is kept:
    /// the same worker uploads).
    fn uploading(&self, spool: Option<SpoolTotals>) -> rusqlite::Result<usize> {
        let t = spool.unwrap_or(SpoolTotals {
            records: self.job.exported_count,
            bytes: self.job.spool_bytes,
            first: self.job.first,
            last: self.job.checkpoint,
        });
        self.tx.execute(
            &format!(
                "UPDATE export_jobs SET state = 'uploading', exported_count = ?4, spool_bytes = ?5, \
                 record_count = ?4, error_code = NULL, error_message = NULL, updated_at = ?6, \
                 first_occurred_at = ?7, first_id = ?8, last_occurred_at = ?9, last_id = ?10 {GUARD}"
            ),
            params![
                self.job.id,
                self.job.state.as_str(),
                self.lease_token,
                t.records,
                t.bytes,
                self.now,
                t.first.map(|c| c.occurred_at),
                t.first.map(|c| c.id),
                t.last.map(|c| c.occurred_at),
                t.last.map(|c| c.id)
            ],
        )
    }

    /// → completed, with the stored file (none for zero records).
    fn completed(
        &self,
        record_count: Option<u64>,
        file: Option<&StoredFile>,
    ) -> rusqlite::Result<usize> {
        self.tx.execute(
            &format!(
                "UPDATE export_jobs SET state = 'completed', completed_at = ?4, updated_at = ?4, \
                 record_count = ?5, file_key = ?6, file_name = ?7, file_size = ?8, \
                 file_sha256 = ?9, file_compressed = ?10, error_code = NULL, error_message = NULL, \
                 lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL {GUARD}"
            ),
            params![
                self.job.id,
                self.job.state.as_str(),
                self.lease_token,
                self.now,
                record_count.or(self.job.record_count).unwrap_or(0),
                file.map(|f| &f.key),
                file.map(|f| &f.name),
                file.map(|f| f.size),
                file.map(|f| &f.sha256),
                file.map(|f| f.compressed)
            ],
        )
    }

    /// → failed or expired, with the reason; no record count.
    fn finished(&self, to: JobState, error: Option<&ErrorInfo>) -> rusqlite::Result<usize> {
        self.tx.execute(
            &format!(
                "UPDATE export_jobs SET state = ?4, completed_at = ?5, updated_at = ?5, \
                 error_code = ?6, error_message = ?7, record_count = NULL, \
                 lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL {GUARD}"
            ),
            params![
                self.job.id,
                self.job.state.as_str(),
                self.lease_token,
                to.as_str(),
                self.now,
                error.map(|e| &e.code),
                error.map(|e| &e.message)
            ],
        )
    }
}

/// What a user's cancel or restart request did.
#[derive(Debug, Clone)]
pub enum Request {
    /// Applied at once (the job was idle); its effects are to be applied.
    Applied(Outcome),
    /// Flagged for the worker running the job, which applies it at its
    /// next batch.
    Flagged(Job),
}

impl Request {
    /// The job after the request.
    pub fn job(&self) -> &Job {
        match self {
            Request::Applied(o) => &o.job,
            Request::Flagged(j) => j,
        }
    }
}

fn request(
    conn: &mut Connection,
    id: &str,
    event: JobEvent,
    flag_column: &str,
    now: i64,
) -> Result<Request, JobError> {
    let job = get(conn, id)?;
    if !job.state.in_progress() {
        return Err(JobError::NotInProgress(id.to_string()));
    }
    match apply(conn, id, Fence::Free, event, Patch::default(), now) {
        Ok(out) => Ok(Request::Applied(out)),
        Err(JobError::LeaseLost(_)) => {
            let n = conn.execute(
                &format!(
                    "UPDATE export_jobs SET {flag_column} = 1, next_attempt_at = min(next_attempt_at, ?2), \
                     updated_at = ?2 WHERE id = ?1 AND state IN ('exporting', 'uploading')"
                ),
                params![id, now],
            )?;
            if n == 0 {
                return Err(JobError::NotInProgress(id.to_string()));
            }
            Ok(Request::Flagged(get(conn, id)?))
        }
        Err(e) => Err(e),
    }
}

/// Cancels a job: at once if idle, else at the running worker's next batch.
pub fn request_cancel(conn: &mut Connection, id: &str, now: i64) -> Result<Request, JobError> {
    request(conn, id, JobEvent::Cancel, "cancel_requested", now)
}

/// Restarts a job from scratch: at once if idle, else at the running
/// worker's next batch.
pub fn request_restart(conn: &mut Connection, id: &str, now: i64) -> Result<Request, JobError> {
    request(conn, id, JobEvent::Restart, "restart_requested", now)
}
