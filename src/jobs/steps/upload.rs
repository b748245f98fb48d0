//! The uploading step: (optionally) zip the spool deterministically, then
//! stream it to storage at `<org>/<job-id>/<file-name>`, hashing on the way.
//!
//! Re-running the step after a crash rebuilds the same zip from the same
//! spool and overwrites the same key, so the stored bytes do not depend on
//! how often it was interrupted. A missing spool sends the job back to
//! exporting. An upload failure aborts the write and
//! returns; the spool stays for the retry (the scheduler removes it when the
//! job reaches a final state), so nothing can block or leak.

use super::{job_filters, spool_file, StepError};
use crate::jobs::store::StoredFile;
use crate::jobs::{Compress, Job, Runner};
use crate::storage::{export_file_name, safe_component, zip_file};

/// The stored file name of a job (see [`export_file_name`]).
pub fn file_name(job: &Job, compressed: bool) -> Result<String, StepError> {
    let f = job_filters(job)?;
    let base = export_file_name(&f, job.format, job.created_at);
    Ok(if compressed {
        format!("{base}.zip")
    } else {
        base
    })
}

/// Whether the policy compresses a spool of `bytes`.
pub fn should_compress(policy: Compress, bytes: u64, threshold: u64) -> bool {
    match policy {
        Compress::Always => true,
        Compress::Never => false,
        Compress::Auto => bytes > threshold,
    }
}

/// Runs the step and returns what was stored.
pub async fn run(job: &Job, runner: &Runner) -> Result<StoredFile, StepError> {
    let (cfg, storage) = (&runner.cfg, &runner.storage);
    let spool = spool_file(&runner.data_dir, job);
    // Exactly the recorded length is stored, whatever else is on disk.
    let bytes = job.spool_bytes;
    match tokio::fs::metadata(&spool).await {
        Ok(m) if m.len() >= bytes => {}
        _ => return Err(StepError::SpoolLost),
    }
    let compressed = should_compress(job.compress, bytes, cfg.compress_threshold_bytes);
    let name = file_name(job, compressed)?;
    let key = format!(
        "{}/{}/{}",
        safe_component(&job.organization_id),
        job.id,
        name
    );
    let source = if compressed {
        let zipped = spool.with_file_name(&name);
        let (src, dst, entry, mtime) = (
            spool.clone(),
            zipped.clone(),
            file_name(job, false)?,
            job.created_at,
        );
        tokio::task::spawn_blocking(move || zip_file(&src, bytes, &dst, &entry, mtime))
            .await
            .map_err(|e| StepError::retryable("zip_failed", e))??;
        zipped
    } else {
        spool
    };
    let limit = if compressed { u64::MAX } else { bytes };
    let put = storage.put_file(&key, &source, limit).await?;
    if let Some(archive) = &job.archive_key {
        // The archive copy is the stored file itself (zipped when it is).
        let archive = if compressed && !archive.ends_with(".zip") {
            format!("{archive}.zip")
        } else {
            archive.clone()
        };
        storage.copy(&key, &archive).await?;
    }
    Ok(StoredFile {
        key,
        name,
        size: put.size,
        sha256: put.sha256,
        compressed,
    })
}
