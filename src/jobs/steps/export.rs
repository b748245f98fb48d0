//! The exporting step: keyset pages → encoder → spool file, checkpointed.
//!
//! The spool is `<data-dir>/spool/<job-id>/export.<ext>`. A checkpoint
//! records (last row, records written, spool length) only after the spool
//! has been fsynced up to that length, so it never claims more than is
//! durable. On resume the spool is truncated to the checkpointed length and
//! the scan continues after the checkpointed row: the file ends up
//! byte-identical to an uninterrupted run. Checkpoints are taken every
//! `checkpoint_bytes` or `checkpoint_interval_ms`, not every page, so the
//! fsyncs cost little against the export itself.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::StepError;
use crate::audit::query::Scan;
use crate::filters::{Filters, Limits};
use crate::format::Encoder;
use crate::jobs::store::{self, Checkpoint, Lease};
use crate::jobs::{now_ms, spool_dir, Job, JobsConfig};

/// How the step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportOutcome {
    /// Every record is in the spool (fsynced).
    SpoolComplete {
        records: u64,
        bytes: u64,
    },
    /// Nothing matched; no spool kept.
    NoRecords,
    /// A user cancelled or asked to restart (seen at a page boundary).
    CancelRequested,
    RestartRequested,
    /// The process is shutting down; the checkpoint is current.
    Interrupted,
}

/// Everything the step needs besides the job.
pub struct ExportStep<'a> {
    pub conn: &'a Connection,
    pub data_dir: &'a std::path::Path,
    pub cfg: &'a JobsConfig,
    pub batch: usize,
    pub shutdown: &'a AtomicBool,
}

/// Path of a job's spool file.
pub fn spool_file(data_dir: &std::path::Path, job: &Job) -> PathBuf {
    spool_dir(data_dir, &job.id).join(format!("export.{}", job.format.extension()))
}

/// Stored filters are re-read without the range limit: they were validated
/// when the job was created, and a later, stricter setting must not fail a
/// job already accepted.
pub fn job_filters(job: &Job) -> Result<Filters, StepError> {
    Filters::from_canonical_json(
        &job.filters,
        &Limits {
            max_span_days: u32::MAX,
        },
    )
    .map_err(|e| StepError::Fatal {
        code: "invalid_filters",
        message: e.to_string(),
    })
}

impl ExportStep<'_> {
    pub fn run(&self, job: &Job, lease: &Lease) -> Result<ExportOutcome, StepError> {
        let filters = job_filters(job)?;
        let encoder = Encoder::new(job.format, job.csv);
        let lease_ms = (self.cfg.lease_secs * 1000) as i64;
        let path = spool_file(self.data_dir, job);
        std::fs::create_dir_all(path.parent().expect("spool file has a folder"))?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;

        let mut buf = Vec::with_capacity(1 << 20);
        let mut records = job.exported_count;
        let on_disk = file.metadata()?.len();
        let mut checkpoint = job.checkpoint;
        if checkpoint.is_some() && on_disk < job.spool_bytes {
            // The spool lost data the checkpoint says was durable (a disk
            // problem, or the folder was removed): start over rather than
            // pad the file.
            tracing::warn!(job_id = %job.id, on_disk, checkpointed = job.spool_bytes, "spool shorter than checkpoint; restarting export");
            checkpoint = None;
        }
        let mut len = match checkpoint {
            // Resume: drop whatever was written after the checkpoint.
            Some(_) => job.spool_bytes,
            None => {
                records = 0;
                encoder.header(&mut buf);
                0
            }
        };
        file.set_len(len)?;
        file.seek(SeekFrom::Start(len))?;
        let mut scan = Scan::new(&filters, self.batch).resume_after(checkpoint);

        let interval = Duration::from_millis(self.cfg.checkpoint_interval_ms);
        let mut last_cp = Instant::now();
        let mut durable_len = len;
        loop {
            let n = scan.next_page::<StepError>(self.conn, |r| {
                encoder.record(&mut buf, r, records);
                records += 1;
                Ok(())
            })?;
            if n == 0 {
                break;
            }
            file.write_all(&buf)?;
            len += buf.len() as u64;
            buf.clear();

            let due =
                len - durable_len >= self.cfg.checkpoint_bytes || last_cp.elapsed() >= interval;
            let flags = if due {
                file.sync_data()?;
                durable_len = len;
                last_cp = Instant::now();
                let cp = Checkpoint {
                    cursor: scan.cursor(),
                    exported_count: records,
                    spool_bytes: len,
                };
                store::checkpoint(self.conn, lease, &cp, lease_ms, now_ms())?
            } else {
                store::poll_flags(self.conn, lease, lease_ms, now_ms())?
            };
            if flags.cancel {
                return Ok(ExportOutcome::CancelRequested);
            }
            if flags.restart {
                return Ok(ExportOutcome::RestartRequested);
            }
            if self.shutdown.load(Ordering::Relaxed) {
                if durable_len < len {
                    sync_and_checkpoint(self.conn, &file, lease, &scan, records, len, lease_ms)?;
                }
                return Ok(ExportOutcome::Interrupted);
            }
        }
        if records == 0 {
            drop(file);
            crate::jobs::remove_spool(self.data_dir, &job.id)?;
            return Ok(ExportOutcome::NoRecords);
        }
        encoder.footer(&mut buf, records);
        file.write_all(&buf)?;
        len += buf.len() as u64;
        file.sync_data()?;
        Ok(ExportOutcome::SpoolComplete {
            records,
            bytes: len,
        })
    }
}

fn sync_and_checkpoint(
    conn: &Connection,
    file: &File,
    lease: &Lease,
    scan: &Scan,
    records: u64,
    len: u64,
    lease_ms: i64,
) -> Result<(), StepError> {
    file.sync_data()?;
    let cp = Checkpoint {
        cursor: scan.cursor(),
        exported_count: records,
        spool_bytes: len,
    };
    store::checkpoint(conn, lease, &cp, lease_ms, now_ms())?;
    Ok(())
}
