//! The exporting step (spool): keyset pages → encoder → spool file, checkpointed.
//!
//! Each lease writes its own spool file, `<data-dir>/spool/<job-id>/
//! part-<lease-token>.<ext>`; a new owner copies the checkpointed prefix of
//! the previous file into its own and unlinks the rest, so a stale worker
//! that lost its lease can only ever write into an orphaned file. Every
//! write is preceded by a fenced check of the lease. The finished spool is
//! renamed to `export.<ext>` for the upload step. A checkpoint
//! records (last row, records written, spool length) only after the spool
//! has been fsynced up to that length, so it never claims more than is
//! durable. On resume the spool is truncated to the checkpointed length and
//! the scan continues after the checkpointed row: the file ends up
//! byte-identical to an uninterrupted run. Checkpoints are taken every
//! `checkpoint_bytes` or `checkpoint_interval_ms`, not every page, so the
//! fsyncs cost little against the export itself.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio_util::sync::CancellationToken;

use super::syncer::Syncer;
use super::{deflate_file, deflate_info, job_filters, spool_file, StepError};
use crate::audit::query::Cursor;
use crate::jobs::store::{self, Checkpoint, Lease};
use crate::jobs::{spool_dir, Compress, Job, Runner};
use crate::storage::Deflater;
use crate::stream::Source;

/// While the compressed stream of a resumed spool is rebuilt, the lease is
/// renewed every this many bytes (~1 s of compression on two cores).
const PRIME_POLL_BYTES: usize = 128 << 20;

/// `[jobs] rows_per_second`: after each page the run waits until the rows
/// it wrote are within the rate (a page may overshoot it; the next wait is
/// longer).
struct Pace {
    rate: u64,
    start: Instant,
    from: u64,
}

impl Pace {
    fn new(rate: u64, from: u64) -> Self {
        Pace {
            rate,
            start: Instant::now(),
            from,
        }
    }

    /// How long the run must still wait with `records` written (counting
    /// those of earlier leases, which this run's rate leaves out).
    fn left(&self, records: u64) -> Option<Duration> {
        if self.rate == 0 {
            return None;
        }
        let due = records.saturating_sub(self.from) as f64 / self.rate as f64;
        Duration::from_secs_f64(due).checked_sub(self.start.elapsed())
    }
}

/// How the step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpoolOutcome {
    /// Every record is in the spool (fsynced).
    Complete {
        /// Records in the spool.
        records: u64,
        /// Size of the spool file in bytes.
        bytes: u64,
        /// Position of the first record exported; `None` if there is none.
        first: Option<Cursor>,
        /// Position of the last record exported; `None` if there is none.
        last: Option<Cursor>,
    },
    /// Nothing matched; no spool kept.
    NoRecords,
    /// A user cancelled (seen at a page boundary).
    CancelRequested,
    /// A user asked to restart (seen at a page boundary).
    RestartRequested,
    /// The process is shutting down; the checkpoint is current.
    Interrupted,
}

/// Everything the step needs besides the job.
pub struct SpoolStep<'a> {
    /// The connection the step reads events and writes checkpoints with.
    pub conn: &'a Connection,
    /// Settings, storage, clock and redaction rules.
    pub runner: &'a Runner,
    /// Cancelled when the process shuts down; the step stops at a checkpoint.
    pub shutdown: &'a CancellationToken,
}

/// Prepares this lease's own spool file: with a checkpoint, a copy of the
/// checkpointed prefix of a previous file (any file at least that long
/// holds it: no byte below a recorded checkpoint is ever rewritten);
/// without one, empty. Every other file is removed. Returns the file and
/// whether the checkpoint could be honoured.
fn own_spool(
    dir: &std::path::Path,
    own: &std::path::Path,
    need: Option<u64>,
) -> std::io::Result<(File, bool)> {
    std::fs::create_dir_all(dir)?;
    let others: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p != own && p.is_file())
        .collect();
    // Only a spool file can hold the prefix (`part-*.<ext>`, `export.<ext>`),
    // never a compressed stream or its description (`export.deflate.json`
    // has the JSON format's extension).
    let is_spool = |p: &&PathBuf| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let ext = own.extension().and_then(|e| e.to_str()).unwrap_or("");
        name.strip_suffix(ext)
            .and_then(|stem| stem.strip_suffix('.'))
            .is_some_and(|stem| {
                stem == "export" || (stem.starts_with("part-") && !stem.contains('.'))
            })
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(own)?;
    let mut resumed = false;
    if let Some(need) = need {
        let source = others
            .iter()
            .filter(is_spool)
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() >= need));
        if let Some(src) = source {
            let mut input = File::open(src)?.take(need);
            std::io::copy(&mut input, &mut file)?;
            file.sync_data()?;
            resumed = true;
        }
    }
    for p in others {
        std::fs::remove_file(&p)?;
    }
    Ok((file, resumed))
}

impl SpoolStep<'_> {
    /// Writes `job`'s matching records to its spool file under `lease`,
    /// resuming after the checkpoint if there is one and checkpointing as it
    /// goes, until done, cancelled, restarted or shut down.
    pub fn run(&self, job: &Job, lease: &Lease) -> Result<SpoolOutcome, StepError> {
        let filters = job_filters(job)?;
        let encoder = crate::stream::encoder(
            self.conn,
            &filters,
            job.format,
            job.options.clone(),
            self.runner.redactor.clone(),
        )?;
        let (runner, cfg) = (self.runner, &self.runner.cfg);
        let lease_ms = runner.lease_ms();
        // Fenced before touching the folder: setting up our spool removes
        // every other file in it.
        store::poll_flags(self.conn, lease, lease_ms, runner.now_ms())?;
        let dir = spool_dir(&runner.data_dir, &job.id);
        let own = dir.join(format!("part-{}.{}", lease.token, job.format.extension()));
        let need = job.checkpoint.map(|_| job.spool_bytes);
        let (mut file, resumed) = own_spool(&dir, &own, need)?;
        let mut checkpoint = job.checkpoint;
        if checkpoint.is_some() && !resumed {
            // No spool holds the bytes the checkpoint says are durable (a
            // disk problem, or the folder was removed): start over rather
            // than pad the file.
            tracing::warn!(job_id = %job.id, "no spool holds the checkpointed bytes; restarting the export");
            checkpoint = None;
        }
        let mut buf = Vec::with_capacity(1 << 20);
        let (mut len, done) = match checkpoint {
            Some(_) => (job.spool_bytes, job.exported_count),
            None => {
                encoder.header(&mut buf);
                (0, 0)
            }
        };
        file.set_len(len)?;
        file.seek(SeekFrom::Start(len))?;
        // Compressed as it is written once the spool is sure to be stored
        // compressed: `auto` below its threshold pays nothing.
        let mut deflater = match self.deflates(job, len) {
            true => self.deflater(job, &dir, &own, lease, len)?,
            false => None,
        };
        let mut pages = Source::new(
            self.conn,
            &filters,
            encoder,
            checkpoint,
            done,
            runner.batch,
            // A held-back export reads page by page on one thread: it is
            // paced to a rate one thread keeps easily, and pieces read ahead
            // by workers would only wait, holding memory.
            if cfg.rows_per_second > 0 {
                1
            } else {
                runner.threads
            },
        )?;
        // A resumed run's first row is the one its predecessor recorded.
        let earlier_first = checkpoint.and(job.first);

        // Checkpoint pacing is about disk bandwidth, so it is measured in
        // real time, not on the engine's clock.
        let interval = Duration::from_millis(cfg.checkpoint_interval_ms);
        let mut last_cp = Instant::now();
        let mut durable_len = len;
        // What the last sync asked for was written; durable once it is back.
        let mut requested_len = len;
        let mut syncer = Syncer::new(&file)?;
        let pace = Pace::new(cfg.rows_per_second, done);
        loop {
            // A page is written whole, after the fenced check below.
            let n = pages.next_into(self.conn, &mut buf, usize::MAX, |_| Ok::<_, StepError>(()))?;
            if n == 0 {
                break;
            }
            // A fenced check (and lease renewal) before touching the file.
            let flags = store::poll_flags(self.conn, lease, lease_ms, runner.now_ms())?;
            if flags.cancel {
                return Ok(SpoolOutcome::CancelRequested);
            }
            if flags.restart {
                return Ok(SpoolOutcome::RestartRequested);
            }
            if deflater.is_none() && self.deflates(job, len + buf.len() as u64) {
                deflater = self.deflater(job, &dir, &own, lease, len)?;
            }
            file.write_all(&buf)?;
            if let Some(d) = deflater.as_mut() {
                d.write(&buf)?;
            }
            len += buf.len() as u64;
            buf.clear();
            // A checkpoint is recorded once its sync is back; the next one
            // starts syncing while this loop goes on writing.
            if let Some(cp) = syncer.poll()? {
                durable_len = self.record(&file, lease, &cp, durable_len, deflater.is_some())?;
            }
            let due = len - requested_len >= cfg.checkpoint_bytes || last_cp.elapsed() >= interval;
            if due && !syncer.busy() {
                syncer.request(checkpoint_at(&pages, earlier_first, len))?;
                requested_len = len;
                last_cp = Instant::now();
            }
            // Held to the rate in short sleeps: shutdown is never held up,
            // and a long wait renews the lease and sees a cancel.
            let mut polled = Instant::now();
            while let Some(left) = pace.left(pages.records()) {
                if self.shutdown.is_cancelled() {
                    break;
                }
                std::thread::sleep(left.min(Duration::from_millis(50)));
                // A held-back run records its checkpoints while it waits.
                if let Some(cp) = syncer.poll()? {
                    durable_len =
                        self.record(&file, lease, &cp, durable_len, deflater.is_some())?;
                }
                if polled.elapsed().as_millis() as i64 >= lease_ms / 4 {
                    let flags = store::poll_flags(self.conn, lease, lease_ms, runner.now_ms())?;
                    if flags.cancel {
                        return Ok(SpoolOutcome::CancelRequested);
                    }
                    if flags.restart {
                        return Ok(SpoolOutcome::RestartRequested);
                    }
                    polled = Instant::now();
                }
            }
            if self.shutdown.is_cancelled() {
                if let Some(cp) = syncer.wait()? {
                    durable_len =
                        self.record(&file, lease, &cp, durable_len, deflater.is_some())?;
                }
                if durable_len < len {
                    self.sync_and_checkpoint(&file, lease, &pages, earlier_first, len)?;
                }
                return Ok(SpoolOutcome::Interrupted);
            }
        }
        // The sync under way must be seen to end: a write-back error is
        // reported to one fsync of the file only, and it may have been this
        // one's (the final sync below could then succeed over lost pages).
        syncer.wait()?;
        // Fenced once more: a worker that lost its lease must not publish.
        let flags = store::poll_flags(self.conn, lease, lease_ms, runner.now_ms())?;
        if flags.cancel {
            return Ok(SpoolOutcome::CancelRequested);
        }
        if flags.restart {
            return Ok(SpoolOutcome::RestartRequested);
        }
        let records = pages.records();
        if records == 0 {
            drop(file);
            crate::jobs::remove_spool(&runner.data_dir, &job.id)?;
            return Ok(SpoolOutcome::NoRecords);
        }
        pages.encoder().footer(&mut buf, records);
        if deflater.is_none() && self.deflates(job, len + buf.len() as u64) {
            deflater = self.deflater(job, &dir, &own, lease, len)?;
        }
        file.write_all(&buf)?;
        len += buf.len() as u64;
        file.sync_data()?;
        drop(file);
        let spool = spool_file(&runner.data_dir, job);
        if let Some(mut d) = deflater {
            d.write(&buf)?;
            let info = d.finish()?;
            // Finishing took a while: fenced again before publishing.
            let flags = store::poll_flags(self.conn, lease, lease_ms, runner.now_ms())?;
            if flags.cancel {
                return Ok(SpoolOutcome::CancelRequested);
            }
            if flags.restart {
                return Ok(SpoolOutcome::RestartRequested);
            }
            // The description first, then the stream under its final name:
            // the upload step trusts a stream only with a matching one.
            let json = serde_json::to_vec(&info).expect("plain fields serialize");
            std::fs::write(deflate_info(&spool), json)?;
            std::fs::rename(
                dir.join(format!("part-{}.deflate", lease.token)),
                deflate_file(&spool),
            )?;
        }
        std::fs::rename(&own, spool)?;
        Ok(SpoolOutcome::Complete {
            records,
            bytes: len,
            first: earlier_first.or(pages.first()),
            last: pages.cursor(),
        })
    }

    /// Whether a spool of `bytes` will be stored compressed.
    fn deflates(&self, job: &Job, bytes: u64) -> bool {
        let threshold = self.runner.cfg.compress_threshold_bytes;
        super::upload::should_compress(job.compress, bytes, threshold)
    }

    /// The compressor fed as the spool is written (unless the job never
    /// compresses), primed with the spool's prefix (resumed, or written
    /// before `auto` passed its threshold): the stream
    /// depends only on the data, so it comes out as an uninterrupted run's.
    fn deflater(
        &self,
        job: &Job,
        dir: &std::path::Path,
        own: &std::path::Path,
        lease: &Lease,
        prefix: u64,
    ) -> Result<Option<Deflater>, StepError> {
        if job.compress == Compress::Never {
            return Ok(None);
        }
        let out = File::create(dir.join(format!("part-{}.deflate", lease.token)))?;
        let mut d = Deflater::new(out, self.runner.threads);
        // A long prefix takes a while to compress again: the lease is
        // renewed on the way (fenced), or a rescue would take the job over
        // and start this all over.
        let mut input = File::open(own)?.take(prefix);
        let mut chunk = vec![0u8; 1 << 20];
        let mut since_poll = 0usize;
        loop {
            let n = input.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            d.write(&chunk[..n])?;
            since_poll += n;
            if since_poll >= PRIME_POLL_BYTES {
                since_poll = 0;
                let r = self.runner;
                store::poll_flags(self.conn, lease, r.lease_ms(), r.now_ms())?;
            }
        }
        Ok(Some(d))
    }

    /// Makes the spool's first `len` bytes durable and records them.
    fn sync_and_checkpoint(
        &self,
        file: &File,
        lease: &Lease,
        pages: &Source,
        earlier_first: Option<Cursor>,
        len: u64,
    ) -> Result<(), StepError> {
        file.sync_data()?;
        // The run stops here: nothing is left to keep in the cache for.
        self.record(
            file,
            lease,
            &checkpoint_at(pages, earlier_first, len),
            0,
            false,
        )?;
        Ok(())
    }

    /// Records a checkpoint whose bytes are durable; returns its length.
    /// `durable` is the previous checkpoint's: only the bytes after it are
    /// newly clean (those before were released then).
    fn record(
        &self,
        file: &File,
        lease: &Lease,
        cp: &Checkpoint,
        durable: u64,
        compressing: bool,
    ) -> Result<u64, StepError> {
        let r = self.runner;
        store::checkpoint(self.conn, lease, cp, r.lease_ms(), r.now_ms())?;
        if compressing {
            release_cache(file, durable, cp.spool_bytes);
        }
        Ok(cp.spool_bytes)
    }
}

/// The checkpoint of the spool's first `len` bytes, the rows written so far.
fn checkpoint_at(pages: &Source, earlier_first: Option<Cursor>, len: u64) -> Checkpoint {
    Checkpoint {
        cursor: pages.cursor(),
        first: earlier_first.or(pages.first()),
        exported_count: pages.records(),
        spool_bytes: len,
    }
}

/// Lets the kernel drop the spool's bytes `from..to` (synced, clean) from
/// the page cache. When the job compresses, the stored file is the deflate
/// stream, so the raw spool is only read again if a run resumes or the
/// upload finds no usable stream and compresses it afresh. Freed at
/// each checkpoint, its pages are reused by the next 16 MiB of writes
/// instead of new ones being found for the whole spool: on this kind of VM
/// a free page goes back to the host, and each fresh one costs a host fault
/// (a 1M-row zipped job spent 0.7-1.0 s of system time writing its 336 MB
/// spool). Advice only: an error changes nothing.
#[cfg(target_os = "linux")]
fn release_cache(file: &File, from: u64, to: u64) {
    let Some(len) = std::num::NonZeroU64::new(to.saturating_sub(from)) else {
        return;
    };
    let _ = rustix::fs::fadvise(file, from, Some(len), rustix::fs::Advice::DontNeed);
}

#[cfg(not(target_os = "linux"))]
fn release_cache(_: &File, _: u64, _: u64) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_says_how_long_a_run_is_ahead_of_its_rate() {
        // No limit: never a wait.
        assert_eq!(Pace::new(0, 0).left(u64::MAX), None);
        // 300 rows of this run at 1,000/s are due 0.3 s after it began;
        // the 1,000 rows written by an earlier lease do not count.
        let pace = Pace::new(1_000, 1_000);
        let left = pace.left(1_300).expect("ahead of the rate");
        assert!(left > Duration::from_millis(200) && left <= Duration::from_millis(300));
        assert_eq!(pace.left(1_000), None);
        std::thread::sleep(left);
        assert_eq!(pace.left(1_300), None, "due once the time has passed");
    }
}
