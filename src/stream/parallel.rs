//! The ordered parallel scan: an export's key range is cut into pieces of
//! about [`SLICE_ROWS`] rows, the pieces are scanned and encoded on worker
//! threads, each on its own read connection, and handed back strictly in
//! key order. The bytes are those of the one-thread scan: each piece is
//! encoded as if it followed another record, and the very first record of
//! the export loses that separator.
//!
//! Pieces are cut by time, not by counting keys: a piece is the rows before
//! an instant, and how many milliseconds make [`SLICE_ROWS`] rows is
//! estimated from the pieces already scanned (see `plan::Plan::learn`). An
//! earlier design walked every key of the range on a thread of its own to
//! place exact boundaries; that walk cost as much per key as reading the
//! row's index entry again, ~6% of a parallel export's instructions, and a
//! third busy thread on two cores. A wrong estimate costs no correctness and
//! no memory: a piece stops at [`Sizing::cap_rows`] rows and the rest of
//! its stretch goes back to be cut again, smaller. Stretches without rows
//! are skipped with one index seek. Rows of a single instant are never
//! split between workers, so an instant holding more than a few thousand
//! rows is read by one thread at a time (in capped pieces).
//!
//! Memory is bounded: at most [`Parallel::in_flight`] pieces are being
//! encoded or waiting to be taken (and one more is the caller's), each of
//! at most `cap_rows` rows
//! and [`CAP_BYTES`] bytes plus the row that reached them, whatever the row
//! count. Dropping a
//! `Parallel` stops and joins its threads. This module never writes
//! anywhere; the caller decides what the bytes become.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use rusqlite::Connection;

use crate::audit::query::{Cursor, Scan};
use crate::filters::Filters;
use crate::format::Encoder;

mod plan;

use plan::{boundary, Done, Piece, Plan, Shared};
pub use plan::{Sizing, CAP_BYTES, SLICE_ROWS};

/// A piece's outcome, by the position it starts after.
type Outcome = (Cursor, Result<Done, rusqlite::Error>);

/// A running parallel scan; take its pieces with [`Parallel::next_into`].
pub struct Parallel {
    results: Option<Receiver<Outcome>>,
    /// Buffers handed back to the workers, so pieces reuse memory instead
    /// of faulting in fresh pages each time.
    pool: Arc<Mutex<Vec<Vec<u8>>>>,
    pending: BTreeMap<Cursor, Result<Done, rusqlite::Error>>,
    /// Where the next piece to take starts.
    position: Cursor,
    /// The position after the last row of the range.
    end: Cursor,
    encoder: Encoder,
    records: u64,
    first: Option<Cursor>,
    cursor: Option<Cursor>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Pieces taken, and the largest of them in bytes (reported on drop).
    pieces: u64,
    largest: usize,
    /// The error this scan stopped at, for every later call.
    broken: Option<String>,
}

impl Parallel {
    /// Pieces in flight at most for `threads` workers.
    pub fn in_flight(threads: usize) -> usize {
        2 * threads + 2
    }

    /// Starts scanning `filters` after `after` (a resumed job's checkpoint)
    /// on `threads` workers reading `db`, cut as `sizing` says; `records`
    /// were written before; `batch` rows per page.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        db: PathBuf,
        filters: &Filters,
        encoder: Encoder,
        after: Option<Cursor>,
        records: u64,
        batch: usize,
        threads: usize,
        sizing: Sizing,
    ) -> Parallel {
        let threads = threads.max(1);
        let position = after.unwrap_or(boundary(filters.from_ms));
        let end = boundary(filters.to_ms);
        let mut open = BTreeMap::new();
        if position < end {
            open.insert(position, filters.to_ms);
        }
        let shared = Arc::new(Shared {
            plan: Mutex::new(Plan {
                open,
                tokens: Parallel::in_flight(threads),
                active: 0,
                closed: false,
                sizing,
            }),
            cv: Condvar::new(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (result_tx, results) = mpsc::channel::<Outcome>();
        let pool: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let ctx = WorkerCtx {
                db: db.clone(),
                filters: filters.clone(),
                shared: shared.clone(),
                results: result_tx.clone(),
                page: batch.clamp(1, sizing.cap_rows.max(1) as usize),
                cap_rows: sizing.cap_rows,
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
            position,
            end,
            encoder,
            records,
            first: None,
            cursor: after,
            shared,
            stop,
            threads: handles,
            pieces: 0,
            largest: 0,
            broken: None,
        }
    }

    /// Appends the next non-empty piece, in key order, to `buf`; returns
    /// its records (0: the scan is done).
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> rusqlite::Result<usize> {
        if let Some(e) = &self.broken {
            return Err(failure(rusqlite::ffi::SQLITE_ERROR, e.clone()));
        }
        loop {
            if self.position >= self.end {
                return Ok(0);
            }
            let done = match self.pending.remove(&self.position) {
                Some(d) => d,
                None => {
                    let received = self.results.as_ref().map(|rx| rx.recv());
                    match received {
                        Some(Ok((at, d))) => {
                            self.pending.insert(at, d);
                            continue;
                        }
                        // Every worker has stopped short of the end.
                        _ => return Err(self.lost()),
                    }
                }
            };
            self.shared.release();
            let d = match done {
                Ok(d) => d,
                Err(e) => {
                    // Nothing will ever come for this position again: a
                    // later call gets the same error, never a wait or an end.
                    self.broken = Some(e.to_string());
                    return Err(e);
                }
            };
            self.position = d.upto;
            self.pieces += 1;
            self.largest = self.largest.max(d.bytes.len());
            if d.records == 0 {
                self.recycle(d.bytes);
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
                // Hand the piece's buffer over instead of copying it.
                std::mem::swap(buf, &mut bytes);
            } else {
                buf.extend_from_slice(&bytes[skip..]);
            }
            self.recycle(bytes);
            self.records += d.records;
            self.first = self.first.or(d.first);
            self.cursor = d.last;
            return Ok(d.records as usize);
        }
    }

    /// Hands a piece's buffer back to the workers.
    fn recycle(&self, mut bytes: Vec<u8>) {
        if bytes.capacity() > 0 {
            bytes.clear();
            self.pool
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(bytes);
        }
    }

    /// Why the workers stopped before the end: the first error one of them
    /// reported (about a later piece than the one awaited), or a bug.
    fn lost(&mut self) -> rusqlite::Error {
        self.results = None;
        let failed = self
            .pending
            .iter()
            .find_map(|(at, d)| d.is_err().then_some(*at));
        match failed.and_then(|at| self.pending.remove(&at)) {
            Some(Err(e)) => e,
            _ => failure(
                rusqlite::ffi::SQLITE_INTERNAL,
                "the parallel scan stopped before the end of its range".into(),
            ),
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
        tracing::debug!(
            pieces = self.pieces,
            largest = self.largest,
            width = self.shared.lock().sizing.width,
            "parallel scan ends"
        );
        self.stop.store(true, Ordering::Relaxed);
        self.shared.close();
        // Unblocks workers handing a result over.
        self.results = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// An error of this module's own, as SQLite's error type.
fn failure(code: std::ffi::c_int, msg: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(msg))
}

/// A read connection of this scan's own.
fn open(db: &std::path::Path) -> rusqlite::Result<Connection> {
    match crate::db::connect(db) {
        Ok(c) => Ok(c),
        Err(crate::db::DbError::Sqlite(e)) => Err(e),
        Err(_) => Err(rusqlite::Error::InvalidPath(db.to_path_buf())),
    }
}

/// What a worker shares with the scan.
struct WorkerCtx {
    db: PathBuf,
    filters: Filters,
    shared: Arc<Shared>,
    results: mpsc::Sender<Outcome>,
    /// Rows per page of a piece.
    page: usize,
    cap_rows: u64,
    stop: Arc<AtomicBool>,
    pool: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// Claims, scans and encodes pieces until none is left.
fn worker(ctx: WorkerCtx, mut encoder: Encoder) {
    let conn = open(&ctx.db);
    while let Some(claimed) = ctx.shared.claim(conn.as_ref().ok(), &ctx.filters) {
        let piece = match claimed {
            Ok(p) => p,
            Err((at, e)) => {
                let _ = ctx.results.send((at, Err(e)));
                continue;
            }
        };
        let conn = match &conn {
            Ok(conn) => conn,
            Err(e) => {
                // Reported against a piece the reader will wait for; this
                // worker stops, the others go on.
                let e = failure(
                    rusqlite::ffi::SQLITE_CANTOPEN,
                    format!("opening a read connection: {e}"),
                );
                ctx.shared.finish(&piece, None);
                let _ = ctx.results.send((piece.after, Err(e)));
                return;
            }
        };
        let mut claim = Claim {
            ctx: &ctx,
            piece,
            armed: true,
        };
        let out = encode_piece(&ctx, conn, &piece, &mut encoder);
        claim.armed = false;
        let failed = out.is_err();
        ctx.shared.finish(&piece, out.as_ref().ok());
        if ctx.results.send((piece.after, out)).is_err() || failed {
            return;
        }
    }
}

/// A claimed piece while its worker encodes it. A panic must not leave the
/// piece claimed for ever (the other workers would wait for its rest, the
/// reader for its bytes): unwinding through an armed claim makes the panic
/// that piece's error. (A guard rather than `catch_unwind`: wrapping the
/// encoding loop in one measured 5% slower on JSONL exports.)
struct Claim<'a> {
    ctx: &'a WorkerCtx,
    piece: Piece,
    armed: bool,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.ctx.shared.finish(&self.piece, None);
            let e = failure(
                rusqlite::ffi::SQLITE_INTERNAL,
                "an export thread panicked".into(),
            );
            let _ = self.ctx.results.send((self.piece.after, Err(e)));
        }
    }
}

/// Reads and encodes one piece: pages until a short one (the piece is
/// done) or up to the cap (the rest is handed back by `finish`).
fn encode_piece(
    ctx: &WorkerCtx,
    conn: &Connection,
    piece: &Piece,
    encoder: &mut Encoder,
) -> Result<Done, rusqlite::Error> {
    // Fault injection: a bug in an encoder, as the tests see it.
    #[cfg(test)]
    if ctx.filters.organization == tests::PANICKING_ORG {
        panic!("injected: an export thread panics");
    }
    let mut d = Done {
        bytes: Vec::new(),
        records: 0,
        first: None,
        last: None,
        upto: boundary(piece.end),
    };
    if piece.empty {
        return Ok(d);
    }
    d.bytes = ctx
        .pool
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop()
        .unwrap_or_else(|| Vec::with_capacity(2 << 20));
    let mut scan = Scan::new(&ctx.filters, ctx.page)
        .resume_after(Some(piece.after))
        .ending(piece.end);
    loop {
        let (n, capped) = scan.next_page_while::<rusqlite::Error>(conn, |r| {
            if d.first.is_none() {
                d.first = Some(Cursor {
                    occurred_at: r.occurred_at,
                    id: r.id,
                });
            }
            // Index 1: as if another record came before (see module doc).
            encoder.record(&mut d.bytes, r, 1);
            d.records += 1;
            Ok(d.records < ctx.cap_rows && d.bytes.len() < CAP_BYTES)
        })?;
        if capped {
            d.upto = scan.cursor().expect("a row was taken");
            break;
        }
        // A short page ends the piece: its query stops at the piece's end.
        if n < scan.batch() || ctx.stop.load(Ordering::Relaxed) {
            break;
        }
    }
    d.last = scan.cursor().filter(|_| d.records > 0);
    Ok(d)
}

#[cfg(test)]
mod tests;
