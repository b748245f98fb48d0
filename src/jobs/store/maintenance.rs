//! The SQL of the maintenance services (clean-up, rescue) and of the job
//! metrics: kept here with the rest of the job SQL so the services hold
//! only their rules.

use std::collections::BTreeMap;

use rusqlite::{params, Connection};

use crate::jobs::JobError;

fn ids_and_keys(
    conn: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
) -> Result<Vec<(String, Option<String>)>, JobError> {
    let mut st = conn.prepare_cached(sql)?;
    let rows = st.query_map(p, |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Jobs in progress created at or before `created_before`.
pub fn stuck(conn: &Connection, created_before: i64) -> Result<Vec<String>, JobError> {
    Ok(ids_and_keys(
        conn,
        "SELECT id, NULL FROM export_jobs WHERE state IN ('exporting', 'uploading') AND created_at <= ?",
        [created_before],
    )?
    .into_iter()
    .map(|(id, _)| id)
    .collect())
}

/// Completed jobs finished at or before `before`, with their file keys.
pub fn completed_before(
    conn: &Connection,
    before: i64,
) -> Result<Vec<(String, Option<String>)>, JobError> {
    ids_and_keys(
        conn,
        "SELECT id, file_key FROM export_jobs WHERE state = 'completed' AND completed_at <= ?",
        [before],
    )
}

/// Failed and expired jobs finished at or before `before`.
pub fn failed_before(
    conn: &Connection,
    before: i64,
) -> Result<Vec<(String, Option<String>)>, JobError> {
    ids_and_keys(
        conn,
        "SELECT id, file_key FROM export_jobs WHERE state IN ('failed', 'expired') AND completed_at <= ?",
        [before],
    )
}

/// Deletes a finished job and its history; returns whether it was deleted
/// (a job in progress never is).
pub fn delete_finished(conn: &mut Connection, id: &str) -> Result<bool, JobError> {
    let tx = crate::db::immediate(conn)?;
    tx.execute("DELETE FROM export_job_transitions WHERE job_id = ?", [id])?;
    let n = tx.execute(
        "DELETE FROM export_jobs WHERE id = ? AND state IN ('completed', 'failed', 'expired')",
        [id],
    )?;
    tx.commit()?;
    Ok(n == 1)
}

/// Whether job `id` exists and is in progress.
pub fn in_progress(conn: &Connection, id: &str) -> Result<bool, JobError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM export_jobs WHERE id = ? AND state IN ('exporting', 'uploading')",
        params![id],
        |r| r.get::<_, i64>(0),
    )? > 0)
}

/// Frees the leases that expired by `now`; returns `(job id, records
/// exported so far)` of each job freed.
pub fn free_expired_leases(conn: &Connection, now: i64) -> Result<Vec<(String, i64)>, JobError> {
    let mut st = conn.prepare_cached(
        "UPDATE export_jobs SET lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = ?1 \
         WHERE state IN ('exporting', 'uploading') AND lease_token IS NOT NULL AND lease_expires_at <= ?1 \
         RETURNING id, exported_count",
    )?;
    let rows = st.query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Job figures for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobMetrics {
    /// Jobs by state.
    pub by_state: BTreeMap<String, i64>,
    /// Records of the completed jobs still retained.
    pub completed_records: i64,
    /// Creation to completion of those jobs, summed, in seconds.
    pub completed_seconds: f64,
    /// Completed jobs still retained.
    pub completed: i64,
}

/// Reads the job figures of `/metrics` in two queries.
pub fn metrics(conn: &Connection) -> Result<JobMetrics, JobError> {
    let mut st = conn.prepare_cached("SELECT state, count(*) FROM export_jobs GROUP BY state")?;
    let by_state = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let (completed_records, completed_seconds, completed) = conn.query_row(
        "SELECT coalesce(sum(record_count), 0), coalesce(sum(completed_at - created_at), 0) / 1000.0, count(*) \
         FROM export_jobs WHERE state = 'completed'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(JobMetrics {
        by_state,
        completed_records,
        completed_seconds,
        completed,
    })
}
