//! Durable export jobs: a persisted state machine driven by a scheduler.
//!
//! - [`state`]: the enum and the pure transition function.
//! - [`store`]: every database operation on jobs — create (dedup, limits),
//!   claim with a lease, checkpoint, transitions — each write of a running
//!   job fenced by its lease token.
//! - [`steps`]: the I/O of each state (export to spool, zip + store).
//! - [`scheduler`]: the loop that claims and runs jobs.
//! - [`crons`]: clean-up and rescue services.
//!
//! This module never speaks HTTP.

pub mod crons;
pub mod scheduler;
pub mod state;
pub mod steps;
pub mod store;

use std::path::{Path, PathBuf};

pub use state::{JobEvent, JobState};
pub use store::{Job, NewJob};

/// Errors of the jobs layer.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("an identical export is already in progress (job {id}, created {created_at_text})")]
    DuplicateExport {
        id: String,
        created_at: i64,
        created_at_text: String,
    },
    #[error(
        "too many exports in progress for this requester (limit {limit}); wait for one to finish"
    )]
    TooManyExports { limit: u32 },
    #[error("no export job {0}")]
    NotFound(String),
    #[error("job {0} is not in progress")]
    NotInProgress(String),
    /// A fenced write matched no row: another worker owns the job now, or
    /// it was expired or cancelled. The worker must stop at once.
    #[error("lease on job {0} was lost")]
    LeaseLost(String),
    #[error(transparent)]
    InvalidTransition(#[from] state::InvalidTransition),
    #[error("stored job is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
}

/// Job engine settings (`[jobs]` in the config file).
#[derive(Debug, Clone, serde::Deserialize)]
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
    /// Base of the exponential retry backoff, in milliseconds.
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
    /// `auto` (compress above `compress_threshold_bytes`), `always`, `never`.
    pub compress: Compress,
    pub compress_threshold_bytes: u64,
    /// Clean-up cron (5-field crontab, UTC); also runs at start.
    pub cleanup_schedule: String,
    /// Rescue of stalled jobs (expired leases).
    pub rescue_schedule: String,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            max_parallel_jobs: 2,
            lease_secs: 60,
            poll_interval_ms: 1_000,
            max_attempts: 3,
            retry_base_ms: 5_000,
            max_in_progress_per_requester: 3,
            job_ttl_secs: 24 * 3600,
            download_ttl_secs: 24 * 3600,
            retention_secs: 7 * 24 * 3600,
            checkpoint_bytes: 16 << 20,
            checkpoint_interval_ms: 1_000,
            compress: Compress::Auto,
            compress_threshold_bytes: 10 << 20,
            cleanup_schedule: "0 * * * *".into(),
            rescue_schedule: "* * * * *".into(),
        }
    }
}

/// Compression policy for stored files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compress {
    Auto,
    Always,
    Never,
}

impl Compress {
    pub fn as_str(self) -> &'static str {
        match self {
            Compress::Auto => "auto",
            Compress::Always => "always",
            Compress::Never => "never",
        }
    }
}

impl std::str::FromStr for Compress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Compress::Auto),
            "always" => Ok(Compress::Always),
            "never" => Ok(Compress::Never),
            _ => Err(format!(
                "unknown compress policy {s:?}: expected auto, always or never"
            )),
        }
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

/// A new job id: 26 characters of Crockford base32, time-ordered (48-bit
/// milliseconds) then 80 random bits, like a ULID.
pub fn new_job_id(now_ms: i64) -> String {
    let mut rand = [0u8; 10];
    random_bytes(&mut rand);
    let mut v: u128 = (now_ms.max(0) as u128 & ((1 << 48) - 1)) << 80;
    for (i, b) in rand.iter().enumerate() {
        v |= (*b as u128) << (8 * (9 - i));
    }
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    (0..26)
        .rev()
        .map(|i| ALPHABET[((v >> (5 * i)) & 31) as usize] as char)
        .collect()
}

/// Fills `buf` from the system's secure random source.
pub fn random_bytes(buf: &mut [u8]) {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(buf)
        .expect("the system random source works");
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_unique_and_time_ordered() {
        let a = new_job_id(1_000);
        let b = new_job_id(2_000);
        assert_eq!(a.len(), 26);
        assert!(a < b);
        assert_ne!(new_job_id(5), new_job_id(5));
    }
}
