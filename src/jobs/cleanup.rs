//! The clean-up service (default hourly, and at start): expires jobs in
//! progress longer than the job TTL; deletes completed jobs past the
//! download window and failed/expired jobs past retention, with their
//! stored files and spool folders; removes orphan spool folders. A failure
//! on one job is logged and counted, and the rest go on.

use std::sync::Arc;

use super::state::JobEvent;
use super::store::{self, maintenance, ErrorInfo, Fence, Patch};
use super::{remove_spool, Runner};

/// What one clean-up pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupCounts {
    /// Jobs in progress past the job TTL, moved to `expired`.
    pub expired: usize,
    /// Completed jobs past the download window, deleted with their files.
    pub deleted_completed: usize,
    /// Failed and expired jobs past retention, deleted.
    pub deleted_final: usize,
    /// Spool folders no job in progress owns, removed.
    pub orphan_spools: usize,
    /// Idempotency-Key answers past their day.
    pub idempotency_keys: usize,
    /// Unfinished local uploads a day old.
    pub stale_partials: usize,
    /// Failures (logged; the pass went on and the next one retries).
    pub errors: usize,
}

/// How long an Idempotency-Key answer is kept (the clean-up prunes older).
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 3600 * 1000;

/// One clean-up pass at `now`.
pub async fn cleanup_once(runner: &Arc<Runner>, now: i64) -> CleanupCounts {
    let mut c = CleanupCounts::default();
    expire_stuck(runner, now, &mut c).await;
    delete_old(runner, now, &mut c).await;
    remove_orphan_spools(runner, &mut c).await;
    // Unfinished local uploads of processes killed mid-write.
    c.stale_partials = runner
        .storage
        .remove_stale_partials(std::time::Duration::from_secs(24 * 3600));
    let before = now - IDEMPOTENCY_TTL_MS;
    match runner
        .on_db(move |conn| {
            Ok(conn.execute(
                "DELETE FROM idempotency_keys WHERE created_at <= ?",
                [before],
            )?)
        })
        .await
    {
        Ok(n) => c.idempotency_keys = n,
        Err(e) => {
            tracing::error!(error = %e, "clean-up: deleting old idempotency keys failed");
            c.errors += 1;
        }
    }
    if c != CleanupCounts::default() {
        tracing::info!(?c, "clean-up pass");
    }
    c
}

/// 1. Jobs in progress longer than the job TTL end `expired`.
async fn expire_stuck(runner: &Arc<Runner>, now: i64, c: &mut CleanupCounts) {
    let ttl_secs = runner.cfg.job_ttl_secs;
    let before = now - (ttl_secs * 1000) as i64;
    let stuck = match runner
        .on_db(move |conn| maintenance::stuck(conn, before))
        .await
    {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "clean-up: listing stuck jobs failed");
            c.errors += 1;
            return;
        }
    };
    for id in stuck {
        let patch = Patch {
            error: Some(ErrorInfo::new(
                "expired",
                format!(
                    "the export did not finish within {}",
                    crate::time::human_duration(ttl_secs)
                ),
            )),
            ..Patch::default()
        };
        let job_id = id.clone();
        let expired = runner
            .on_db(move |conn| {
                store::apply(conn, &job_id, Fence::Any, JobEvent::TtlExceeded, patch, now)
            })
            .await;
        match expired {
            Ok(out) => {
                c.expired += 1;
                runner.apply_effects(&out).await;
                tracing::info!(job_id = %id, "clean-up: expired a job in progress past its TTL");
            }
            Err(e) => {
                c.errors += 1;
                tracing::error!(job_id = %id, error = %e, "clean-up: expiring failed");
            }
        }
    }
}

/// 2. Old finished jobs go, with their stored files.
async fn delete_old(runner: &Arc<Runner>, now: i64, c: &mut CleanupCounts) {
    let cfg = &runner.cfg;
    let completed_before = now - (cfg.download_ttl_secs * 1000) as i64;
    let failed_before = now - (cfg.retention_secs * 1000) as i64;
    for completed in [true, false] {
        let old = runner
            .on_db(move |conn| {
                if completed {
                    maintenance::completed_before(conn, completed_before)
                } else {
                    maintenance::failed_before(conn, failed_before)
                }
            })
            .await;
        let old = match old {
            Ok(v) => v,
            Err(e) => {
                c.errors += 1;
                tracing::error!(error = %e, completed, "clean-up: listing old jobs failed");
                continue;
            }
        };
        for (id, key) in old {
            if let Some(key) = &key {
                if let Err(e) = runner.storage.delete_export(key).await {
                    // Keep the row so the next pass tries again.
                    c.errors += 1;
                    tracing::error!(job_id = %id, error = %e, "clean-up: deleting the stored file failed");
                    continue;
                }
            }
            let job_id = id.clone();
            match runner
                .on_db(move |conn| maintenance::delete_finished(conn, &job_id))
                .await
            {
                Ok(_) => {
                    let _ = remove_spool(&runner.data_dir, &id);
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
}

/// 3. Spool folders no job in progress owns.
async fn remove_orphan_spools(runner: &Arc<Runner>, c: &mut CleanupCounts) {
    let spool_root = runner.data_dir.join("spool");
    let Ok(entries) = std::fs::read_dir(&spool_root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        match runner
            .on_db(move |conn| maintenance::in_progress(conn, &name))
            .await
        {
            Ok(false) => match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => c.orphan_spools += 1,
                Err(e) => {
                    c.errors += 1;
                    tracing::error!(folder = %entry.path().display(), error = %e, "clean-up: removing an orphan spool failed");
                }
            },
            Ok(true) => {}
            Err(e) => {
                c.errors += 1;
                tracing::error!(error = %e, "clean-up: checking a spool folder failed");
            }
        }
    }
}
