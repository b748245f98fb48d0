//! Maintenance services, each with a `run_once(now)` that returns counts
//! (easy to test) and a thin loop firing on a crontab schedule:
//!
//! - [`cleanup_once`] (default hourly, and at start): expires jobs in
//!   progress longer than the job TTL; deletes completed jobs past the
//!   download window and failed/expired jobs past retention, with their
//!   stored files and spool folders; removes orphan spool folders. A
//!   failure on one job is logged and the rest go on.
//! - [`rescue_once`] (default every minute): frees the leases of jobs whose
//!   worker died (lease expired), so they resume from their checkpoint,
//!   and wakes the scheduler.
//!
//! Schedules are standard 5-field crontab lines, evaluated in UTC.

use std::str::FromStr;
use std::sync::Arc;

use rusqlite::params;
use tokio::sync::watch;

use super::scheduler::Engine;
use super::state::JobEvent;
use super::store::{self, Fence, Patch};
use super::{now_ms, remove_spool, JobError};

/// What one clean-up pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupCounts {
    pub expired: usize,
    pub deleted_completed: usize,
    pub deleted_final: usize,
    pub orphan_spools: usize,
    pub errors: usize,
}

/// A parsed crontab line (5 fields, or `@hourly`-style nicknames).
#[derive(Debug, Clone)]
pub struct Schedule(croner::Cron);

impl Schedule {
    pub fn parse(line: &str) -> Result<Schedule, String> {
        croner::Cron::from_str(line.trim())
            .map(Schedule)
            .map_err(|e| format!("invalid cron schedule {line:?}: {e}"))
    }

    /// The first fire time strictly after `after_ms` (UTC milliseconds).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let t = chrono::DateTime::from_timestamp_millis(after_ms)?;
        self.0
            .find_next_occurrence(&t, false)
            .ok()
            .map(|n| n.timestamp_millis())
    }
}

fn with_conn<T>(
    engine: &Engine,
    f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, JobError>,
) -> Result<T, JobError> {
    let mut conn = crate::db::connect(&crate::db::db_path(&engine.data_dir))
        .map_err(|e| JobError::Corrupt(e.to_string()))?;
    f(&mut conn)
}

/// Runs `f` with a fresh connection on the blocking pool, so a busy
/// database never stalls the runtime's threads (the scheduler shares them).
async fn on_db<T: Send + 'static>(
    engine: &Engine,
    f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, JobError> + Send + 'static,
) -> Result<T, JobError> {
    let path = crate::db::db_path(&engine.data_dir);
    tokio::task::spawn_blocking(move || {
        let mut conn = crate::db::connect(&path).map_err(|e| JobError::Corrupt(e.to_string()))?;
        f(&mut conn)
    })
    .await
    .map_err(|e| JobError::Corrupt(e.to_string()))?
}

fn ids(
    conn: &rusqlite::Connection,
    sql: &str,
    p: impl rusqlite::Params,
) -> Result<Vec<(String, Option<String>)>, JobError> {
    let mut st = conn.prepare(sql)?;
    let rows = st.query_map(p, |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One clean-up pass at `now`.
pub async fn cleanup_once(engine: &Engine, now: i64) -> CleanupCounts {
    let mut c = CleanupCounts::default();
    let cfg = &engine.cfg;
    let ttl_ms = (cfg.job_ttl_secs * 1000) as i64;

    // 1. Expire jobs stuck in progress.
    let stuck = on_db(engine, move |conn| {
        ids(
            conn,
            "SELECT id, NULL FROM export_jobs WHERE state IN ('exporting', 'uploading') AND created_at <= ?",
            [now - ttl_ms],
        )
    })
    .await;
    for (id, _) in stuck.unwrap_or_else(|e| {
        tracing::error!(error = %e, "clean-up: listing stuck jobs failed");
        c.errors += 1;
        Vec::new()
    }) {
        let patch = Patch {
            error: Some((
                "expired".into(),
                format!(
                    "the export did not finish within {}",
                    crate::time::human_duration(cfg.job_ttl_secs)
                ),
            )),
            ..Patch::default()
        };
        let job_id = id.clone();
        let expired = on_db(engine, move |conn| {
            store::apply(conn, &job_id, Fence::Any, JobEvent::TtlExceeded, patch, now)
        })
        .await;
        match expired {
            Ok(_) => {
                c.expired += 1;
                let _ = remove_spool(&engine.data_dir, &id);
                tracing::info!(job_id = %id, "clean-up: expired a job in progress past its TTL");
            }
            Err(e) => {
                c.errors += 1;
                tracing::error!(job_id = %id, error = %e, "clean-up: expiring failed");
            }
        }
    }

    // 2. Delete old final jobs with their files.
    let plans = [
        ("completed", (cfg.download_ttl_secs * 1000) as i64, true),
        ("final", (cfg.retention_secs * 1000) as i64, false),
    ];
    for (what, keep_ms, completed) in plans {
        let sql = if completed {
            "SELECT id, file_key FROM export_jobs WHERE state = 'completed' AND completed_at <= ?"
        } else {
            "SELECT id, file_key FROM export_jobs WHERE state IN ('failed', 'expired') AND completed_at <= ?"
        };
        let old = match on_db(engine, move |conn| ids(conn, sql, [now - keep_ms])).await {
            Ok(v) => v,
            Err(e) => {
                c.errors += 1;
                tracing::error!(error = %e, what, "clean-up: listing old jobs failed");
                continue;
            }
        };
        for (id, key) in old {
            if let Some(key) = &key {
                if let Err(e) = engine.storage.delete(key).await {
                    // Keep the row so the next pass tries again.
                    c.errors += 1;
                    tracing::error!(job_id = %id, error = %e, "clean-up: deleting the stored file failed");
                    continue;
                }
            }
            let job_id = id.clone();
            let deleted = on_db(engine, move |conn| {
                let tx = crate::db::immediate(conn)?;
                tx.execute("DELETE FROM export_job_transitions WHERE job_id = ?", [&job_id])?;
                let n = tx.execute(
                    "DELETE FROM export_jobs WHERE id = ? AND state IN ('completed', 'failed', 'expired')",
                    [&job_id],
                )?;
                tx.commit()?;
                Ok(n)
            })
            .await;
            match deleted {
                Ok(_) => {
                    let _ = remove_spool(&engine.data_dir, &id);
                    if completed {
                        c.deleted_completed += 1;
                    } else {
                        c.deleted_final += 1;
                    }
                }
                Err(e) => {
                    c.errors += 1;
                    tracing::error!(job_id = %id, error = %e, "clean-up: deleting the job failed");
                }
            }
        }
    }

    // 3. Orphan spool folders: no job in progress owns them.
    let spool_root = engine.data_dir.join("spool");
    if let Ok(entries) = std::fs::read_dir(&spool_root) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let live = on_db(engine, move |conn| {
                Ok(conn.query_row(
                    "SELECT count(*) FROM export_jobs WHERE id = ? AND state IN ('exporting', 'uploading')",
                    params![name],
                    |r| r.get::<_, i64>(0),
                )?)
            })
            .await;
            match live {
                Ok(0) => match std::fs::remove_dir_all(entry.path()) {
                    Ok(()) => c.orphan_spools += 1,
                    Err(e) => {
                        c.errors += 1;
                        tracing::error!(folder = %entry.path().display(), error = %e, "clean-up: removing an orphan spool failed");
                    }
                },
                Ok(_) => {}
                Err(e) => {
                    c.errors += 1;
                    tracing::error!(error = %e, "clean-up: checking a spool folder failed");
                }
            }
        }
    }
    if c != CleanupCounts::default() {
        tracing::info!(?c, "clean-up pass");
    }
    c
}

/// Frees expired leases; returns how many jobs were rescued.
pub fn rescue_once(conn: &rusqlite::Connection, now: i64) -> Result<usize, JobError> {
    let mut st = conn.prepare(
        "UPDATE export_jobs SET lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = ?1 \
         WHERE state IN ('exporting', 'uploading') AND lease_token IS NOT NULL AND lease_expires_at <= ?1 \
         RETURNING id, exported_count",
    )?;
    let rescued = st
        .query_map([now], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    for (id, done) in &rescued {
        tracing::warn!(job_id = %id, exported = done, "rescue: worker lease expired; job will resume from its checkpoint");
    }
    Ok(rescued.len())
}

/// Runs `task` at every fire time of `schedule` until shutdown.
async fn every<F, Fut>(
    name: &'static str,
    schedule: Schedule,
    mut shutdown: watch::Receiver<bool>,
    mut task: F,
) where
    F: FnMut(i64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        let now = now_ms();
        let Some(next) = schedule.next_after(now) else {
            tracing::error!(name, "cron schedule has no next fire time; stopping it");
            return;
        };
        let wait = std::time::Duration::from_millis((next - now).max(0) as u64);
        tokio::select! {
            _ = tokio::time::sleep(wait) => task(now_ms()).await,
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// Starts the clean-up (also once now) and rescue crons.
pub async fn run(engine: Arc<Engine>, shutdown: watch::Receiver<bool>) -> Result<(), String> {
    let cleanup = Schedule::parse(&engine.cfg.cleanup_schedule)?;
    let rescue = Schedule::parse(&engine.cfg.rescue_schedule)?;
    cleanup_once(&engine, now_ms()).await;
    let e1 = engine.clone();
    let c = every("cleanup", cleanup, shutdown.clone(), move |now| {
        let e = e1.clone();
        async move {
            cleanup_once(&e, now).await;
        }
    });
    let e2 = engine.clone();
    let r = every("rescue", rescue, shutdown, move |now| {
        let e = e2.clone();
        async move {
            let n = tokio::task::spawn_blocking({
                let e = e.clone();
                move || with_conn(&e, |conn| rescue_once(conn, now))
            })
            .await;
            match n {
                Ok(Ok(n)) if n > 0 => e.wake.notify_one(),
                Ok(Err(err)) => tracing::error!(error = %err, "rescue pass failed"),
                _ => {}
            }
        }
    });
    tokio::join!(c, r);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        crate::time::parse_rfc3339_ms(s).unwrap()
    }

    #[test]
    fn crontab_lines_have_crontab_semantics() {
        // Monday 09:00: 2026-11-23 is a Monday.
        let s = Schedule::parse("0 9 * * 1").unwrap();
        assert_eq!(
            s.next_after(at("2026-11-22T12:00:00Z")),
            Some(at("2026-11-23T09:00:00Z"))
        );
        // 0 and 7 are both Sunday.
        for line in ["30 6 * * 0", "30 6 * * 7"] {
            let s = Schedule::parse(line).unwrap();
            assert_eq!(
                s.next_after(at("2026-11-23T00:00:00Z")),
                Some(at("2026-11-29T06:30:00Z")),
                "{line}"
            );
        }
        let hourly = Schedule::parse("0 * * * *").unwrap();
        assert_eq!(
            hourly.next_after(at("2026-11-23T10:00:00Z")),
            Some(at("2026-11-23T11:00:00Z"))
        );
        assert!(Schedule::parse("61 * * * *").is_err());
        assert!(Schedule::parse("not a schedule").is_err());
    }
}
