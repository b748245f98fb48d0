//! The I/O of each job state, one module per step:
//! [`spool`] (query → format → spool file, checkpointed) and [`upload`]
//! (spool → zip → storage). Steps never change job state themselves beyond
//! checkpoints; they return what happened and the scheduler applies it.

pub mod spool;
mod syncer;
pub mod upload;

use std::path::{Path, PathBuf};

use crate::filters::Filters;
use crate::jobs::{spool_dir, Job, JobError};

/// Why a step stopped without finishing.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The lease was lost: stop at once, touch nothing.
    #[error(transparent)]
    Job(#[from] JobError),
    /// Can never succeed (e.g. stored filters no longer valid).
    #[error("{code}: {message}")]
    Fatal {
        /// Stable error code stored with the failed job, e.g. `invalid_filters`.
        code: &'static str,
        /// One-line explanation.
        message: String,
    },
    /// The finished spool is gone (uploading cannot go on): export again.
    #[error("the finished spool file is missing; the export starts over")]
    SpoolLost,
    /// May succeed later (I/O, storage, a busy database).
    #[error("{code}: {message}")]
    Retryable {
        /// Stable error code, stored with the job (e.g. `storage_error`).
        code: &'static str,
        /// One-line explanation.
        message: String,
    },
}

impl StepError {
    /// A [`StepError::Retryable`] with `code` and the text of `e`.
    pub fn retryable(code: &'static str, e: impl std::fmt::Display) -> StepError {
        StepError::Retryable {
            code,
            message: e.to_string(),
        }
    }
}

/// A storage backend error caused by a full local disk (the fs service
/// wraps the `ENOSPC` of its writes).
fn backend_disk_full(e: &opendal::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>().is_some_and(is_disk_full) {
            return true;
        }
        cause = c.source();
    }
    // The io error may be carried as text only.
    e.to_string().contains("No space left on device")
}

/// A full disk (`ENOSPC`): retried like an outage, since space may be freed.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(28) || e.kind() == std::io::ErrorKind::StorageFull
}

impl From<std::io::Error> for StepError {
    fn from(e: std::io::Error) -> Self {
        if is_disk_full(&e) {
            return StepError::retryable("disk_full", e);
        }
        StepError::retryable("io_error", e)
    }
}

impl From<rusqlite::Error> for StepError {
    fn from(e: rusqlite::Error) -> Self {
        StepError::retryable("database_error", e)
    }
}

impl From<crate::storage::StorageError> for StepError {
    fn from(e: crate::storage::StorageError) -> Self {
        if !e.retryable() {
            return StepError::Fatal {
                code: "storage_config",
                message: e.to_string(),
            };
        }
        match &e {
            crate::storage::StorageError::Io(io) if is_disk_full(io) => {
                StepError::retryable("disk_full", e)
            }
            crate::storage::StorageError::Backend(b) if backend_disk_full(b) => {
                StepError::retryable("disk_full", e)
            }
            _ => StepError::retryable("storage_error", e),
        }
    }
}

/// Path of a job's finished spool file (what the upload step reads).
pub fn spool_file(data_dir: &Path, job: &Job) -> PathBuf {
    spool_dir(data_dir, &job.id).join(format!("export.{}", job.format.extension()))
}

/// The compressed stream of a finished spool (see `storage::Deflater`),
/// written while the export ran.
pub fn deflate_file(spool: &Path) -> PathBuf {
    spool.with_extension("deflate")
}

/// The description of that stream (`storage::Deflated`, JSON).
pub fn deflate_info(spool: &Path) -> PathBuf {
    spool.with_extension("deflate.json")
}

/// The job's filters; stored filters that no longer parse can never run.
pub fn job_filters(job: &Job) -> Result<Filters, StepError> {
    job.filters().map_err(|e| StepError::Fatal {
        code: "invalid_filters",
        message: e.to_string(),
    })
}
