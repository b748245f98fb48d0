//! Applying state-machine decisions: load, `decide`, compare-and-set, and
//! a history row, all in one `BEGIN IMMEDIATE` transaction.

use rusqlite::{params, Connection};

use super::{get, record_transition, Job, Lease};
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
    pub name: String,
    pub size: u64,
    pub sha256: String,
    pub compressed: bool,
}

/// Data written along with a transition.
#[derive(Debug, Clone, Default)]
pub struct Patch {
    /// Final spool size and record count (exporting → uploading).
    pub spool: Option<(u64, u64)>,
    pub record_count: Option<u64>,
    pub file: Option<StoredFile>,
    /// Error code and message (failures, retries, cancel, expiry).
    pub error: Option<(String, String)>,
    /// Delay before the next attempt, for a retry decision.
    pub retry_delay_ms: i64,
}

/// What a transition did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub decision: Decision,
    pub from: JobState,
    pub job: Job,
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
    let (err_code, err_msg) = match event {
        JobEvent::Cancel => (
            Some("cancelled".to_string()),
            Some("cancelled by request".to_string()),
        ),
        _ => patch.error.clone().unzip(),
    };
    let lease_token = match fence {
        Fence::Lease(l) => Some(l.token.clone()),
        _ => job.lease_token.clone(),
    };
    // Every branch: same row, same state, same lease as we read (the
    // IMMEDIATE transaction already excludes other writers; the WHERE
    // keeps the write honest if that ever changes).
    let guard = "WHERE id = ?1 AND state = ?2 AND lease_token IS ?3";
    let n = if decision.retry {
        tx.execute(
            &format!(
                "UPDATE export_jobs SET attempt = attempt + 1, next_attempt_at = ?4 + ?5, \
                 lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, \
                 error_code = ?6, error_message = ?7, updated_at = ?4 {guard}"
            ),
            params![
                id,
                job.state.as_str(),
                lease_token,
                now,
                patch.retry_delay_ms.max(0),
                err_code,
                err_msg
            ],
        )?
    } else if decision.clear_checkpoint {
        tx.execute(
            &format!(
                "UPDATE export_jobs SET state = 'exporting', attempt = 1, next_attempt_at = ?4, \
                 last_occurred_at = NULL, last_id = NULL, exported_count = 0, spool_bytes = 0, \
                 restart_requested = 0, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, \
                 error_code = NULL, error_message = NULL, updated_at = ?4 {guard}"
            ),
            params![id, job.state.as_str(), lease_token, now],
        )?
    } else {
        match decision.to {
            JobState::Uploading => {
                let (count, bytes) = patch.spool.unwrap_or((job.exported_count, job.spool_bytes));
                tx.execute(
                    &format!(
                        "UPDATE export_jobs SET state = 'uploading', exported_count = ?4, spool_bytes = ?5, \
                         record_count = ?4, error_code = NULL, error_message = NULL, updated_at = ?6 {guard}"
                    ),
                    params![id, job.state.as_str(), lease_token, count, bytes, now],
                )?
            }
            JobState::Completed => {
                let f = patch.file.as_ref();
                tx.execute(
                    &format!(
                        "UPDATE export_jobs SET state = 'completed', completed_at = ?4, updated_at = ?4, \
                         record_count = ?5, file_key = ?6, file_name = ?7, file_size = ?8, \
                         file_sha256 = ?9, file_compressed = ?10, error_code = NULL, error_message = NULL, \
                         lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL {guard}"
                    ),
                    params![
                        id,
                        job.state.as_str(),
                        lease_token,
                        now,
                        patch.record_count.or(job.record_count).unwrap_or(0),
                        f.map(|f| &f.key),
                        f.map(|f| &f.name),
                        f.map(|f| f.size),
                        f.map(|f| &f.sha256),
                        f.map(|f| f.compressed)
                    ],
                )?
            }
            JobState::Failed | JobState::Expired => tx.execute(
                &format!(
                    "UPDATE export_jobs SET state = ?4, completed_at = ?5, updated_at = ?5, \
                     error_code = ?6, error_message = ?7, record_count = NULL, \
                     lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL {guard}"
                ),
                params![
                    id,
                    job.state.as_str(),
                    lease_token,
                    decision.to.as_str(),
                    now,
                    err_code,
                    err_msg
                ],
            )?,
            JobState::Exporting => {
                unreachable!("only restart and retry stay in or return to exporting")
            }
        }
    };
    if n != 1 {
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
    // A final state and its notifications commit together or not at all.
    if !updated.state.in_progress() {
        crate::notify::enqueue_for_job(&tx, &updated, now)?;
    }
    tx.commit()?;
    Ok(Outcome {
        decision,
        from: job.state,
        job: updated,
    })
}

/// What a user's cancel or restart request did.
#[derive(Debug, Clone)]
pub enum Request {
    /// Applied at once (the job was idle); the caller removes the spool.
    Applied(Job),
    /// Flagged for the worker running the job, which applies it at its
    /// next batch.
    Flagged(Job),
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
        Ok(out) => Ok(Request::Applied(out.job)),
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
