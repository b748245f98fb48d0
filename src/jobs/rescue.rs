//! The rescue service (default every minute): frees the leases of jobs
//! whose worker died (lease expired), so they resume from their checkpoint
//! at once, and wakes the scheduler.
//!
//! Why it exists when `claim` already takes jobs with expired leases: a
//! freed lease makes the job visibly idle (`lease_owner` empty) for people
//! and for cancel/restart requests, which otherwise would be flagged for a
//! worker that no longer exists and wait for the next claim; and it wakes
//! the scheduler instead of waiting for its poll.

use std::sync::Arc;

use super::store::maintenance;
use super::{JobError, Runner};

/// Frees expired leases at `now`; returns how many jobs were rescued.
pub fn rescue_once(conn: &rusqlite::Connection, now: i64) -> Result<usize, JobError> {
    let rescued = maintenance::free_expired_leases(conn, now)?;
    for (id, done) in &rescued {
        tracing::warn!(job_id = %id, exported = done, "rescue: worker lease expired; job will resume from its checkpoint");
    }
    Ok(rescued.len())
}

/// One pass, from the loop: waking the scheduler when a job was freed.
pub async fn run_once(runner: &Arc<Runner>, now: i64) {
    match runner.on_db(move |conn| rescue_once(conn, now)).await {
        Ok(n) if n > 0 => runner.wake.notify_one(),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "rescue pass failed"),
    }
}
