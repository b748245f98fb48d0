//! Durable export jobs: a persisted state machine driven by a scheduler.
//!
//! - [`state`]: the enum and the pure transition function.
//! - [`store`]: every database operation on jobs — create (dedup, limits),
//!   claim with a lease, checkpoint, transitions — each write of a running
//!   job fenced by its lease token.
//! - [`steps`]: the I/O of each state (query to spool, zip + store).
//! - [`runner`]: what the services share, and where a transition's effects
//!   are carried out.
//! - [`scheduler`]: the loop that claims and runs jobs.
//! - [`cleanup`], [`rescue`]: the maintenance services, each on a crontab
//!   schedule ([`cron`]).
//!
//! This module never speaks HTTP.

pub mod cleanup;
pub mod cron;
pub mod rescue;
pub mod runner;
pub mod scheduler;
pub mod state;
pub mod steps;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use runner::Runner;
pub use state::{JobEvent, JobState};
pub use store::{Job, NewJob};

/// Runs the maintenance services until shutdown: clean-up (once at start,
/// then on its schedule) and rescue. The schedules were validated by
/// [`JobsConfig::validate`].
pub async fn run_maintenance(runner: Arc<Runner>, shutdown: CancellationToken) {
    let (Ok(cleanup), Ok(rescue)) = (
        cron::Schedule::parse(&runner.cfg.cleanup_schedule),
        cron::Schedule::parse(&runner.cfg.rescue_schedule),
    ) else {
        tracing::error!("maintenance schedules are invalid; clean-up and rescue do not run");
        return;
    };
    cleanup::cleanup_once(&runner, runner.now_ms()).await;
    let (r1, r2) = (runner.clone(), runner.clone());
    let c = cron::every(
        "cleanup",
        cleanup,
        runner.clock.clone(),
        shutdown.clone(),
        move |now| {
            let r = r1.clone();
            async move {
                cleanup::cleanup_once(&r, now).await;
            }
        },
    );
    let r = cron::every(
        "rescue",
        rescue,
        runner.clock.clone(),
        shutdown,
        move |now| {
            let r = r2.clone();
            async move { rescue::run_once(&r, now).await }
        },
    );
    tokio::join!(c, r);
}

/// Errors of the jobs layer.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The requester already has an identical export (same filters, format and
    /// options) in progress.
    #[error("an identical export is already in progress (job {id}, created {created_at_text})")]
    DuplicateExport {
        /// The job in progress.
        id: String,
        /// When it was created, ms since the Unix epoch.
        created_at: i64,
        /// The same instant as RFC 3339, for the message.
        created_at_text: String,
    },
    /// The requester already has `max_in_progress_per_requester` jobs in progress.
    #[error(
        "too many exports in progress for this requester (limit {limit}); wait for one to finish"
    )]
    TooManyExports {
        /// The configured limit.
        limit: u32,
    },
    /// No job has this id.
    #[error("no export job {0}")]
    NotFound(String),
    /// The job (by id) has already ended, so it cannot be cancelled or restarted.
    #[error("job {0} is not in progress")]
    NotInProgress(String),
    /// A fenced write matched no row: another worker owns the job now, or
    /// it was expired or cancelled. The worker must stop at once.
    #[error("lease on job {0} was lost")]
    LeaseLost(String),
    /// Another export of the organization completed first: the manifest
    /// must link to it (the upload step runs again).
    #[error("organization {0}'s manifest chain moved on; the manifest is rebuilt")]
    ChainMoved(String),
    /// The state machine does not allow the event in the job's state.
    #[error(transparent)]
    InvalidTransition(#[from] state::InvalidTransition),
    /// A stored job could not be used, or a database task died (panicked or
    /// was cancelled); the text says what.
    #[error("stored job is corrupt: {0}")]
    Corrupt(String),
    /// The database could not be opened.
    #[error(transparent)]
    Open(Box<crate::db::DbError>),
    /// SQLite refused a read or a write.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
}

impl From<crate::db::DbError> for JobError {
    fn from(e: crate::db::DbError) -> Self {
        JobError::Open(Box::new(e))
    }
}

/// Job engine settings (`[jobs]` in the config file).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Jobs one process runs at once.
    pub max_parallel_jobs: usize,
    /// How long a claim lasts without a checkpoint, in seconds.
    pub lease_secs: u64,
    /// How often the scheduler looks for due jobs, in milliseconds.
    pub poll_interval_ms: u64,
    /// Attempts before a job fails.
    pub max_attempts: u32,
    /// Base of the exponential retry backoff, in milliseconds (waits of
    /// 1×, 2×, 4×, … this, with jitter).
    pub retry_base_ms: u64,
    /// In-progress jobs one requester may have.
    pub max_in_progress_per_requester: u32,
    /// A job in progress longer than this expires, in seconds.
    pub job_ttl_secs: u64,
    /// How long a completed export stays downloadable, in seconds.
    pub download_ttl_secs: u64,
    /// How long failed and expired jobs are kept, in seconds.
    pub retention_secs: u64,
    /// Checkpoint after this many spool bytes since the last one.
    pub checkpoint_bytes: u64,
    /// ... or after this many milliseconds, whichever comes first.
    pub checkpoint_interval_ms: u64,
    /// Rows one background export writes per second at most (0: as fast
    /// as it can): on a busy appliance, long exports yield the disk and
    /// the cores to ingest and to the console.
    pub rows_per_second: u64,
    /// `auto` (compress above `compress_threshold_bytes`), `always`, `never`.
    pub compress: Compress,
    /// With `auto`, files larger than this many bytes are stored compressed.
    pub compress_threshold_bytes: u64,
    /// Clean-up cron (5-field crontab, UTC); also runs at start.
    pub cleanup_schedule: String,
    /// Rescue of stalled jobs (expired leases).
    pub rescue_schedule: String,
}

impl JobsConfig {
    /// Checks what deserializing cannot: the crontab lines.
    pub fn validate(&self) -> Result<(), String> {
        for (key, line) in [
            ("cleanup_schedule", &self.cleanup_schedule),
            ("rescue_schedule", &self.rescue_schedule),
        ] {
            cron::Schedule::parse(line).map_err(|e| format!("[jobs] {key}: {e}"))?;
        }
        Ok(())
    }
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            max_parallel_jobs: 2,
            lease_secs: 60,
            poll_interval_ms: 1_000,
            // With the storage's own retries (2 min per attempt), waits of
            // 1, 2, 4 and 8 min between attempts ride out an outage of
            // about 25 minutes before a job fails.
            max_attempts: 5,
            retry_base_ms: 60_000,
            max_in_progress_per_requester: 3,
            job_ttl_secs: 24 * 3600,
            download_ttl_secs: 24 * 3600,
            retention_secs: 7 * 24 * 3600,
            checkpoint_bytes: 16 << 20,
            checkpoint_interval_ms: 1_000,
            rows_per_second: 0,
            compress: Compress::Auto,
            compress_threshold_bytes: 10 << 20,
            cleanup_schedule: "0 * * * *".into(),
            rescue_schedule: "* * * * *".into(),
        }
    }
}

crate::util::text_enum! {
    /// Compression policy for stored files.
    #[derive(
        Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, clap::ValueEnum,
    )]
    #[serde(rename_all = "lowercase")]
    pub enum Compress ("compress policy") {
        /// Compress above `compress_threshold_bytes`.
        Auto = "auto",
        // Variant docs as `#[doc = concat!(..)]`: clap ignores them there, while
        // a `///` would become the value's help and change the `--help` output.
        #[doc = concat!("Always store a zip, whatever the size.")]
        Always = "always",
        #[doc = concat!("Never compress: store the plain file.")]
        Never = "never",
    }
}

/// Where a job's work files live: `<data-dir>/spool/<job-id>/`.
pub fn spool_dir(data_dir: &Path, job_id: &str) -> PathBuf {
    data_dir.join("spool").join(job_id)
}

/// Removes a job's spool folder; a missing folder is fine.
pub fn remove_spool(data_dir: &Path, job_id: &str) -> std::io::Result<()> {
    match std::fs::remove_dir_all(spool_dir(data_dir, job_id)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
