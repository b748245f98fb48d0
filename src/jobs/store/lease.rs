//! Leases: claiming runnable jobs, checkpointing, polling user requests,
//! releasing on shutdown. Every write here is fenced by the lease token.

use rusqlite::{params, Connection, OptionalExtension};

use super::Job;
use crate::audit::query::Cursor;
use crate::jobs::JobError;

/// A worker's hold on one job. Every write carries the token; when a write
/// matches no row the lease is lost and the worker stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The job held.
    pub job_id: String,
    /// Random token of this claim (32 hex digits), fencing every write.
    pub token: String,
    /// The worker's lease owner name (`host:pid:random`).
    pub owner: String,
}

/// Claims up to `max` runnable jobs: in progress, due, and not leased (or
/// the lease expired because its worker died). One `UPDATE … RETURNING`
/// inside `BEGIN IMMEDIATE`, so two workers never claim the same job.
pub fn claim(
    conn: &mut Connection,
    owner: &str,
    max: usize,
    lease_ms: i64,
    now: i64,
) -> Result<Vec<(Job, Lease)>, JobError> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let tx = crate::db::immediate(conn)?;
    let jobs = {
        let mut st = tx.prepare_cached(
            "UPDATE export_jobs SET lease_owner = ?1, lease_token = lower(hex(randomblob(16))), \
             lease_expires_at = ?2 + ?3, started_at = coalesce(started_at, ?2), updated_at = ?2 \
             WHERE id IN (SELECT id FROM export_jobs WHERE state IN ('exporting', 'uploading') \
               AND next_attempt_at <= ?2 AND (lease_token IS NULL OR lease_expires_at <= ?2) \
               ORDER BY next_attempt_at, created_at LIMIT ?4) \
             RETURNING *",
        )?;
        let rows = st.query_map(params![owner, now, lease_ms, max as i64], Job::from_row)?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    tx.commit()?;
    Ok(jobs
        .into_iter()
        .map(|j| {
            let lease = Lease {
                job_id: j.id.clone(),
                token: j.lease_token.clone().expect("just set"),
                owner: owner.to_string(),
            };
            (j, lease)
        })
        .collect())
}

/// What is durable in the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last row durably in the spool; `None` before the first.
    pub cursor: Option<Cursor>,
    /// The first row of the spool (kept once recorded).
    pub first: Option<Cursor>,
    /// Records durably in the spool.
    pub exported_count: u64,
    /// Bytes of the spool file that are durable (fsynced).
    pub spool_bytes: u64,
}

/// User requests a running job must honour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// A user asked to cancel the job.
    pub cancel: bool,
    /// A user asked to restart the job from scratch.
    pub restart: bool,
}

/// Records a checkpoint and renews the lease, in one fenced statement.
/// Returns the user's pending requests.
pub fn checkpoint(
    conn: &Connection,
    lease: &Lease,
    cp: &Checkpoint,
    lease_ms: i64,
    now: i64,
) -> Result<Flags, JobError> {
    let flags = conn
        .prepare_cached(
            "UPDATE export_jobs SET last_occurred_at = ?3, last_id = ?4, exported_count = ?5, \
             spool_bytes = ?6, lease_expires_at = ?7 + ?8, updated_at = ?7, \
             first_occurred_at = ?9, first_id = ?10 \
             WHERE id = ?1 AND lease_token = ?2 AND state = 'exporting' \
             RETURNING cancel_requested, restart_requested",
        )?
        .query_row(
            params![
                lease.job_id,
                lease.token,
                cp.cursor.map(|c| c.occurred_at),
                cp.cursor.map(|c| c.id),
                cp.exported_count,
                cp.spool_bytes,
                now,
                lease_ms,
                cp.first.map(|c| c.occurred_at),
                cp.first.map(|c| c.id)
            ],
            flags_from_row,
        )
        .optional()?;
    flags.ok_or_else(|| JobError::LeaseLost(lease.job_id.clone()))
}

/// Reads `RETURNING cancel_requested, restart_requested`.
fn flags_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Flags> {
    Ok(Flags {
        cancel: r.get(0)?,
        restart: r.get(1)?,
    })
}

/// Reads the user's pending requests, confirming the lease is still held
/// (and renewing it: polling shows the worker is alive).
pub fn poll_flags(
    conn: &Connection,
    lease: &Lease,
    lease_ms: i64,
    now: i64,
) -> Result<Flags, JobError> {
    let flags = conn
        .prepare_cached(
            "UPDATE export_jobs SET lease_expires_at = ?3 + ?4 \
             WHERE id = ?1 AND lease_token = ?2 AND state IN ('exporting', 'uploading') \
             RETURNING cancel_requested, restart_requested",
        )?
        .query_row(
            params![lease.job_id, lease.token, now, lease_ms],
            flags_from_row,
        )
        .optional()?;
    flags.ok_or_else(|| JobError::LeaseLost(lease.job_id.clone()))
}

/// Gives a job back (clean shutdown): it stays in its state with its
/// checkpoint and is claimable at once.
pub fn release(conn: &Connection, lease: &Lease, now: i64) -> Result<(), JobError> {
    let n = conn.execute(
        "UPDATE export_jobs SET lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, \
         updated_at = ?3 WHERE id = ?1 AND lease_token = ?2",
        params![lease.job_id, lease.token, now],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(JobError::LeaseLost(lease.job_id.clone()))
    }
}
