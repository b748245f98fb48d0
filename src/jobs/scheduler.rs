//! The scheduler: claims runnable jobs (up to `max_parallel_jobs`) and
//! drives each through its steps, applying every outcome as a fenced
//! transition. It wakes when a job is enqueued, when a job finishes, and
//! every poll interval.
//!
//! Shutdown is passed in: running steps see it at their next page,
//! checkpoint, and release their lease so another process can resume them
//! at once. A job whose lease is lost is dropped without touching anything.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use super::state::{JobEvent, JobState};
use super::steps::export::{ExportOutcome, ExportStep};
use super::steps::{upload, StepError};
use super::store::{self, Fence, Lease, Patch};
use super::{now_ms, remove_spool, Job, JobError, JobsConfig};
use crate::storage::Storage;

/// Everything a worker process shares between its jobs.
pub struct Engine {
    pub data_dir: PathBuf,
    pub cfg: JobsConfig,
    /// Rows per keyset page.
    pub batch: usize,
    pub storage: Storage,
    /// This process's lease owner name.
    pub owner: String,
    /// Notified on enqueue: the loop claims at once instead of at the next poll.
    pub wake: Notify,
    /// Set on shutdown; steps check it between pages.
    pub stopping: AtomicBool,
}

impl Engine {
    pub fn new(data_dir: PathBuf, cfg: JobsConfig, batch: usize, storage: Storage) -> Engine {
        let mut tag = [0u8; 3];
        super::random_bytes(&mut tag);
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        let host = host.trim();
        let owner = format!(
            "{}:{}:{}",
            if host.is_empty() { "worker" } else { host },
            std::process::id(),
            crate::filters::hex(&tag)
        );
        Engine {
            data_dir,
            cfg,
            batch,
            storage,
            owner,
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
        }
    }

    fn connect(&self) -> Result<Connection, JobError> {
        crate::db::connect(&crate::db::db_path(&self.data_dir)).map_err(|e| match e {
            crate::db::DbError::Sqlite(e) => JobError::Db(e),
            other => JobError::Corrupt(other.to_string()),
        })
    }

    fn lease_ms(&self) -> i64 {
        (self.cfg.lease_secs * 1000) as i64
    }

    /// Delay before attempt `attempt + 1`: exponential with jitter.
    fn backoff_ms(&self, attempt: u32) -> i64 {
        let base = self.cfg.retry_base_ms.max(1);
        let exp = base
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(3_600_000);
        let mut r = [0u8; 4];
        super::random_bytes(&mut r);
        let jitter = u64::from(u32::from_le_bytes(r)) % (base / 2 + 1);
        (exp + jitter) as i64
    }
}

/// Runs the loop until `shutdown` turns true; then stops steps at their
/// next page and waits for them to release their leases.
pub async fn run(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    let mut running: JoinSet<()> = JoinSet::new();
    let poll = Duration::from_millis(engine.cfg.poll_interval_ms.max(10));
    loop {
        if *shutdown.borrow() {
            break;
        }
        let free = engine.cfg.max_parallel_jobs.saturating_sub(running.len());
        if free > 0 {
            match claim(&engine, free).await {
                Ok(claimed) => {
                    for (job, lease) in claimed {
                        let engine = engine.clone();
                        running.spawn(async move { run_job(engine, job, lease).await });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming jobs failed; will retry"),
            }
        }
        tokio::select! {
            _ = engine.wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = shutdown.changed() => {}
        }
    }
    engine.stopping.store(true, Ordering::SeqCst);
    while running.join_next().await.is_some() {}
}

async fn claim(engine: &Arc<Engine>, free: usize) -> Result<Vec<(Job, Lease)>, JobError> {
    let e = engine.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = e.connect()?;
        store::claim(&mut conn, &e.owner, free, e.lease_ms(), now_ms())
    })
    .await
    .map_err(|e| JobError::Corrupt(e.to_string()))?
}

/// Drives one claimed job as far as it goes, logging the end.
pub async fn run_job(engine: Arc<Engine>, job: Job, lease: Lease) {
    let span = tracing::info_span!("job", job_id = %job.id, org = %job.organization_id);
    let _g = span.enter();
    let id = job.id.clone();
    match drive(&engine, job, &lease).await {
        Ok(state) => tracing::info!(job_id = %id, %state, "job step finished"),
        Err(JobError::LeaseLost(_)) => {
            tracing::warn!(job_id = %id, "lease lost; another worker owns the job now")
        }
        Err(e) => {
            tracing::error!(job_id = %id, error = %e, "job run failed; it will be retried when its lease expires")
        }
    }
}

type Shared = Arc<Mutex<Connection>>;

/// Runs `f` with the job's connection on the blocking pool.
async fn blocking<T: Send + 'static>(
    conn: &Shared,
    f: impl FnOnce(&mut Connection) -> T + Send + 'static,
) -> T {
    let conn = conn.clone();
    tokio::task::spawn_blocking(move || f(&mut conn.lock().expect("connection lock")))
        .await
        .expect("blocking task panicked")
}

async fn apply(
    conn: &Shared,
    id: &str,
    lease: &Lease,
    event: JobEvent,
    patch: Patch,
) -> Result<store::Outcome, JobError> {
    let (id, lease) = (id.to_string(), lease.clone());
    blocking(conn, move |c| {
        store::apply(c, &id, Fence::Lease(&lease), event, patch, now_ms())
    })
    .await
}

fn error_patch(code: &str, message: &str) -> Patch {
    Patch {
        error: Some((code.to_string(), message.to_string())),
        ..Patch::default()
    }
}

/// Applies a user request seen by the worker, cleaning the spool.
async fn honour(
    engine: &Engine,
    conn: &Shared,
    job: &Job,
    lease: &Lease,
    cancel: bool,
) -> Result<JobState, JobError> {
    let event = if cancel {
        JobEvent::Cancel
    } else {
        JobEvent::Restart
    };
    let out = apply(conn, &job.id, lease, event, Patch::default()).await?;
    Ok(after_request(engine, &out.job))
}

/// Cleans up after a cancel (spool removed) or restart (the job is
/// claimable again; its next export step clears the spool itself).
fn after_request(engine: &Engine, job: &Job) -> JobState {
    if job.state == JobState::Exporting {
        engine.wake.notify_one();
    } else {
        let _ = remove_spool(&engine.data_dir, &job.id);
    }
    job.state
}

async fn drive(engine: &Arc<Engine>, mut job: Job, lease: &Lease) -> Result<JobState, JobError> {
    let conn: Shared = Arc::new(Mutex::new(engine.connect()?));
    if job.cancel_requested || job.restart_requested {
        return honour(engine, &conn, &job, lease, job.cancel_requested).await;
    }
    if job.state == JobState::Exporting {
        let (e, j, l) = (engine.clone(), job.clone(), lease.clone());
        let outcome = blocking(&conn, move |c| {
            ExportStep {
                conn: c,
                data_dir: &e.data_dir,
                cfg: &e.cfg,
                batch: e.batch,
                shutdown: &e.stopping,
            }
            .run(&j, &l)
        })
        .await;
        match outcome {
            Ok(ExportOutcome::SpoolComplete { records, bytes }) => {
                let patch = Patch {
                    spool: Some((records, bytes)),
                    ..Patch::default()
                };
                job = apply(&conn, &job.id, lease, JobEvent::SpoolComplete, patch)
                    .await?
                    .job;
                if job.state != JobState::Uploading {
                    // A cancel or restart request arrived with the last batch.
                    return Ok(after_request(engine, &job));
                }
            }
            Ok(ExportOutcome::NoRecords) => {
                let patch = Patch {
                    record_count: Some(0),
                    ..Patch::default()
                };
                let out = apply(&conn, &job.id, lease, JobEvent::NoRecords, patch).await?;
                return Ok(after_request(engine, &out.job));
            }
            Ok(ExportOutcome::CancelRequested) => {
                return honour(engine, &conn, &job, lease, true).await
            }
            Ok(ExportOutcome::RestartRequested) => {
                return honour(engine, &conn, &job, lease, false).await
            }
            Ok(ExportOutcome::Interrupted) => return release(&conn, lease, job.state).await,
            Err(e) => return fail(engine, &conn, &job, lease, e).await,
        }
    }
    if engine.stopping.load(Ordering::SeqCst) {
        return release(&conn, lease, job.state).await;
    }
    let (l, ms) = (lease.clone(), engine.lease_ms());
    let flags = blocking(&conn, move |c| store::poll_flags(c, &l, ms, now_ms())).await?;
    if flags.cancel || flags.restart {
        return honour(engine, &conn, &job, lease, flags.cancel).await;
    }
    // Uploading: keep the lease alive (and watch for cancel) while storing.
    let heartbeat = heartbeat(engine, &conn, lease);
    let result = tokio::select! {
        r = upload::run(&job, &engine.data_dir, &engine.cfg, &engine.storage) => r,
        hb = heartbeat => match hb {
            Ok(cancel) => return honour(engine, &conn, &job, lease, cancel).await,
            Err(e) => return Err(e),
        },
    };
    match result {
        Ok(file) => {
            let key = file.key.clone();
            let patch = Patch {
                record_count: Some(job.exported_count),
                file: Some(file),
                ..Patch::default()
            };
            let out = apply(&conn, &job.id, lease, JobEvent::Stored, patch).await?;
            if out.job.state != JobState::Completed {
                // Cancelled while uploading: the stored file belongs to no
                // completed job, so it goes (the clean-up cron only looks at
                // jobs that hold a file). Restarted: the job may already be
                // running again, and its new run writes the same key (the
                // name comes from the job), so the file is left to it.
                if out.job.state == JobState::Failed {
                    if let Err(e) = engine.storage.delete(&key).await {
                        tracing::warn!(job_id = %job.id, error = %e, "cannot remove the file of a cancelled upload");
                    }
                }
                return Ok(after_request(engine, &out.job));
            }
            let _ = remove_spool(&engine.data_dir, &job.id);
            Ok(out.job.state)
        }
        Err(e) => fail(engine, &conn, &job, lease, e).await,
    }
}

/// Renews the lease every third of its length while a step runs; resolves
/// with `true` for a cancel, `false` for a restart request, or the lease
/// error. Never resolves otherwise.
async fn heartbeat(engine: &Engine, conn: &Shared, lease: &Lease) -> Result<bool, JobError> {
    let every = Duration::from_millis((engine.lease_ms() / 3).max(50) as u64);
    loop {
        tokio::time::sleep(every).await;
        let (l, ms) = (lease.clone(), engine.lease_ms());
        let flags = blocking(conn, move |c| store::poll_flags(c, &l, ms, now_ms())).await?;
        if flags.cancel || flags.restart {
            return Ok(flags.cancel);
        }
    }
}

async fn release(conn: &Shared, lease: &Lease, state: JobState) -> Result<JobState, JobError> {
    let l = lease.clone();
    blocking(conn, move |c| store::release(c, &l, now_ms())).await?;
    Ok(state)
}

/// Applies a step failure: retry with backoff, or fail for good (and then
/// remove the spool). A lost lease is passed up untouched.
async fn fail(
    engine: &Engine,
    conn: &Shared,
    job: &Job,
    lease: &Lease,
    err: StepError,
) -> Result<JobState, JobError> {
    let (retryable, code, message) = match err {
        StepError::Job(JobError::LeaseLost(id)) => return Err(JobError::LeaseLost(id)),
        StepError::Job(e) => (true, "internal_error", e.to_string()),
        StepError::SpoolLost => {
            tracing::warn!(job_id = %job.id, "finished spool missing; exporting again");
            return honour(engine, conn, job, lease, false).await;
        }
        StepError::Fatal { code, message } => (false, code, message),
        StepError::Retryable { code, message } => (true, code, message),
    };
    tracing::warn!(job_id = %job.id, attempt = job.attempt, code, %message, "job step failed");
    let mut patch = error_patch(code, &message);
    patch.retry_delay_ms = engine.backoff_ms(job.attempt);
    let out = apply(
        conn,
        &job.id,
        lease,
        JobEvent::StepFailed { retryable },
        patch,
    )
    .await?;
    if out.job.state == JobState::Failed {
        let _ = remove_spool(&engine.data_dir, &job.id);
    }
    Ok(out.job.state)
}
