//! The ordered parallel scan: an export's key range is cut into slices of
//! about [`SLICE_ROWS`] rows (boundaries read from the time index alone,
//! never OFFSET), the slices are scanned and encoded on worker threads,
//! each on its own read connection, and handed back strictly in key order.
//! The bytes are those of the one-thread scan: each slice is encoded as if
//! it followed another record, and the very first record of the export
//! loses that separator.
//!
//! Memory is bounded: at most [`Parallel::in_flight`] slices exist at once
//! (queued, being encoded, or waiting to be taken), whatever the row count.
//! Dropping a `Parallel` stops and joins its threads. This module never
//! writes anywhere; the caller decides what the bytes become.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use rusqlite::Connection;

use crate::audit::query::{slice_bounds, Cursor, Scan};
use crate::filters::Filters;
use crate::format::Encoder;

/// Rows per slice: enough to amortize a slice's seek and hand-off, small
/// enough that a few slices in flight stay a few MiB each.
pub const SLICE_ROWS: u64 = 4096;

/// One slice of the key range: rows after `after` up to `until`
/// (inclusive; `None`: to the end of the range).
struct Work {
    seq: u64,
    after: Option<Cursor>,
    until: Option<Cursor>,
}

/// A slice, encoded.
struct Done {
    bytes: Vec<u8>,
    records: u64,
    first: Option<Cursor>,
    last: Option<Cursor>,
}

type Outcome = (u64, Result<Done, rusqlite::Error>);

/// A counting semaphore for the slices in flight; closing it releases the
/// waiter for good.
struct Budget {
    state: Mutex<(usize, bool)>,
    cv: Condvar,
}

impl Budget {
    fn acquire(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while s.0 == 0 && !s.1 {
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        if s.1 {
            return false;
        }
        s.0 -= 1;
        true
    }
    fn release(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0 += 1;
        self.cv.notify_one();
    }
    fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.cv.notify_all();
    }
}

/// A running parallel scan; take its slices with [`Parallel::next_into`].
pub struct Parallel {
    results: Option<Receiver<Outcome>>,
    /// Buffers handed back to the workers, so slices reuse memory instead
    /// of faulting in fresh pages each time.
    pool: Arc<Mutex<Vec<Vec<u8>>>>,
    pending: BTreeMap<u64, Result<Done, rusqlite::Error>>,
    next: u64,
    encoder: Encoder,
    records: u64,
    first: Option<Cursor>,
    cursor: Option<Cursor>,
    budget: Arc<Budget>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Parallel {
    /// Slices in flight at most for `threads` workers.
    pub fn in_flight(threads: usize) -> usize {
        2 * threads + 2
    }

    /// Starts scanning `filters` after `after` (a resumed job's checkpoint)
    /// on `threads` workers reading `db`; `records` were written before.
    pub fn start(
        db: PathBuf,
        filters: &Filters,
        encoder: Encoder,
        after: Option<Cursor>,
        records: u64,
        batch: usize,
        threads: usize,
    ) -> Parallel {
        let threads = threads.max(1);
        let budget = Arc::new(Budget {
            state: Mutex::new((Parallel::in_flight(threads), false)),
            cv: Condvar::new(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (work_tx, work_rx) = mpsc::sync_channel::<Work>(Parallel::in_flight(threads));
        let work_rx = Arc::new(Mutex::new(work_rx));
        let (result_tx, results) = mpsc::channel::<Outcome>();
        let pool: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let mut handles = Vec::with_capacity(threads + 1);
        {
            let (db, f, budget, stop, tx) = (
                db.clone(),
                filters.clone(),
                budget.clone(),
                stop.clone(),
                result_tx.clone(),
            );
            handles.push(
                std::thread::Builder::new()
                    .name("export-slicer".into())
                    .spawn(move || slicer(db, f, after, work_tx, budget, stop, tx))
                    .expect("spawn the slicer"),
            );
        }
        for i in 0..threads {
            let ctx = WorkerCtx {
                db: db.clone(),
                filters: filters.clone(),
                work: work_rx.clone(),
                results: result_tx.clone(),
                batch,
                stop: stop.clone(),
                pool: pool.clone(),
            };
            let enc = encoder.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("export-{i}"))
                    .spawn(move || worker(ctx, enc))
                    .expect("spawn an export thread"),
            );
        }
        drop(result_tx);
        Parallel {
            results: Some(results),
            pool,
            pending: BTreeMap::new(),
            next: 0,
            encoder,
            records,
            first: None,
            cursor: after,
            budget,
            stop,
            threads: handles,
        }
    }

    /// Appends the next non-empty slice, in key order, to `buf`; returns its
    /// records (0: the scan is done).
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> rusqlite::Result<usize> {
        loop {
            let done = match self.pending.remove(&self.next) {
                Some(d) => d,
                None => {
                    let Some(rx) = &self.results else {
                        return Ok(0);
                    };
                    match rx.recv() {
                        Ok((seq, d)) => {
                            self.pending.insert(seq, d);
                            continue;
                        }
                        // Every thread has finished: no slice is left.
                        Err(_) => {
                            self.results = None;
                            return Ok(0);
                        }
                    }
                }
            };
            self.next += 1;
            self.budget.release();
            let d = done?;
            if d.records == 0 {
                continue;
            }
            // Encoded as if after another record: the export's very first
            // record has no separator before it.
            let skip = if self.records == 0 {
                self.encoder.separator().len()
            } else {
                0
            };
            let mut bytes = d.bytes;
            if buf.is_empty() && skip == 0 {
                // Hand the slice's buffer over instead of copying it.
                std::mem::swap(buf, &mut bytes);
            } else {
                buf.extend_from_slice(&bytes[skip..]);
            }
            bytes.clear();
            self.pool
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(bytes);
            self.records += d.records;
            self.first = self.first.or(d.first);
            self.cursor = d.last;
            return Ok(d.records as usize);
        }
    }

    /// Records taken so far, those of earlier runs of a resumed job included.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The first row taken from this scan (not a resumed job's earlier ones).
    pub fn first(&self) -> Option<Cursor> {
        self.first
    }

    /// The last row taken so far.
    pub fn cursor(&self) -> Option<Cursor> {
        self.cursor
    }

    /// The encoder the records are written with (format and options).
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }
}

impl Drop for Parallel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.budget.close();
        // Unblocks workers waiting to hand a result over.
        self.results = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A read connection of this scan's own.
fn open(db: &std::path::Path) -> rusqlite::Result<Connection> {
    match crate::db::connect(db) {
        Ok(c) => Ok(c),
        Err(crate::db::DbError::Sqlite(e)) => Err(e),
        Err(_) => Err(rusqlite::Error::InvalidPath(db.to_path_buf())),
    }
}

/// Cuts the range into slices and queues them, within the budget.
fn slicer(
    db: PathBuf,
    f: Filters,
    after: Option<Cursor>,
    work: SyncSender<Work>,
    budget: Arc<Budget>,
    stop: Arc<AtomicBool>,
    results: mpsc::Sender<Outcome>,
) {
    let mut seq = 0u64;
    let mut prev = after;
    let walked = open(&db).and_then(|conn| {
        slice_bounds(&conn, &f, after, SLICE_ROWS, |key| {
            if stop.load(Ordering::Relaxed) || !budget.acquire() {
                return false;
            }
            let w = Work {
                seq,
                after: prev,
                until: Some(key),
            };
            seq += 1;
            prev = Some(key);
            work.send(w).is_ok()
        })
    });
    match walked {
        Err(e) => {
            let _ = results.send((seq, Err(e)));
        }
        // The rest of the range, whatever is after the last bound.
        Ok(_) => {
            if !stop.load(Ordering::Relaxed) && budget.acquire() {
                let _ = work.send(Work {
                    seq,
                    after: prev,
                    until: None,
                });
            }
        }
    }
}

/// What a worker shares with the scan.
struct WorkerCtx {
    db: PathBuf,
    filters: Filters,
    work: Arc<Mutex<Receiver<Work>>>,
    results: mpsc::Sender<Outcome>,
    batch: usize,
    stop: Arc<AtomicBool>,
    pool: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// Scans and encodes slices until none is left.
fn worker(ctx: WorkerCtx, mut encoder: Encoder) {
    let WorkerCtx {
        db,
        filters: f,
        work,
        results,
        batch,
        stop,
        pool,
    } = ctx;
    let conn = match open(&db) {
        Ok(c) => c,
        Err(e) => {
            // Report against the next slice there is, so the reader sees it.
            if let Ok(w) = work.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                let _ = results.send((w.seq, Err(e)));
            }
            return;
        }
    };
    loop {
        let next = work.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(w) = next else { return };
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let buf = pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(2 << 20));
        let out = encode_slice(&conn, &f, &w, &mut encoder, batch, &stop, buf);
        if results.send((w.seq, out)).is_err() {
            return;
        }
    }
}

fn encode_slice(
    conn: &Connection,
    f: &Filters,
    w: &Work,
    encoder: &mut Encoder,
    batch: usize,
    stop: &AtomicBool,
    buf: Vec<u8>,
) -> Result<Done, rusqlite::Error> {
    let mut scan = Scan::new(f, batch).resume_after(w.after);
    if let Some(u) = w.until {
        scan = scan.until(u);
    }
    let mut d = Done {
        bytes: buf,
        records: 0,
        first: None,
        last: None,
    };
    loop {
        let n = scan.next_page::<rusqlite::Error>(conn, |r| {
            if d.first.is_none() {
                d.first = Some(Cursor {
                    occurred_at: r.occurred_at,
                    id: r.id,
                });
            }
            // Index 1: as if another record came before (see module doc).
            encoder.record(&mut d.bytes, r, 1);
            d.records += 1;
            Ok(())
        })?;
        // A short page ends the slice: the page query stops at the slice's
        // last instant, so fewer rows than asked means none are left (a
        // further query would only seek to find that out).
        if n < scan.batch() || stop.load(Ordering::Relaxed) {
            break;
        }
    }
    d.last = scan.cursor();
    Ok(d)
}
