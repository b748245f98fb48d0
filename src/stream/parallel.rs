//! The ordered parallel scan: an export's key range is cut into pieces of
//! about [`SLICE_ROWS`] rows, the pieces are scanned and encoded on worker
//! threads, each on its own read connection, and handed back strictly in
//! key order. The bytes are those of the one-thread scan: each piece is
//! encoded as if it followed another record, and the very first record of
//! the export loses that separator.
//!
//! Pieces are cut by time, not by counting keys: a piece is the rows before
//! an instant, and how many milliseconds make [`SLICE_ROWS`] rows is
//! estimated from the pieces already scanned (see [`Plan::learn`]). An
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
//! Memory is bounded: at most [`Parallel::in_flight`] pieces exist at once
//! (being encoded or waiting to be taken), each of at most `cap_rows` rows
//! or [`CAP_BYTES`] bytes and a page, whatever the row count. Dropping a
//! `Parallel` stops and joins its threads. This module never writes
//! anywhere; the caller decides what the bytes become.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use rusqlite::Connection;

use crate::audit::query::{next_instant, slice_bounds, Cursor, Scan};
use crate::filters::Filters;
use crate::format::Encoder;

/// Rows a piece aims at: enough to amortize a piece's query and hand-off,
/// small enough that a few pieces in flight stay a few MiB each.
pub const SLICE_ROWS: u64 = 4096;

/// A piece stops after the page that takes it past this many bytes (rows
/// can be large; the row cap alone would not bound memory).
pub const CAP_BYTES: usize = 8 << 20;

/// How a parallel scan cuts its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    /// Rows a piece aims at.
    pub target: u64,
    /// A piece stops after the page that reaches this many rows.
    pub cap_rows: u64,
    /// Milliseconds the first pieces span.
    pub width: i64,
    /// No piece spans more (so that even a filter matching few rows leaves
    /// several pieces to share).
    pub max_width: i64,
}

impl Sizing {
    /// Measures `filters` after `after` for `threads` workers: the first
    /// [`SLICE_ROWS`] keys of the range give the first width. `None` when
    /// the range holds less than that (a small export pays nothing).
    pub fn measure(
        conn: &Connection,
        f: &Filters,
        after: Option<Cursor>,
        threads: usize,
    ) -> rusqlite::Result<Option<Sizing>> {
        let mut nth = None;
        slice_bounds(conn, f, after, SLICE_ROWS, |k| {
            nth = Some(k);
            false
        })?;
        let Some(nth) = nth else { return Ok(None) };
        let start = match after {
            Some(c) => c.occurred_at,
            None => next_instant(conn, f, f.from_ms.saturating_sub(1), f.to_ms)?
                .unwrap_or(nth.occurred_at),
        };
        let threads = threads.max(1) as i64;
        Ok(Some(Sizing {
            target: SLICE_ROWS,
            cap_rows: 2 * SLICE_ROWS,
            width: nth
                .occurred_at
                .saturating_sub(start)
                .saturating_add(1)
                .max(1),
            max_width: (f.to_ms.saturating_sub(start) / (4 * threads)).max(1),
        }))
    }
}

/// The position just before `instant`: after every row of earlier instants.
fn boundary(instant: i64) -> Cursor {
    Cursor {
        occurred_at: instant.saturating_sub(1),
        id: i64::MAX,
    }
}

/// A stretch of the key range: the rows after `after` and before the
/// instant `end`.
#[derive(Debug, Clone, Copy)]
struct Piece {
    after: Cursor,
    end: i64,
    /// The index seek found no row in it: nothing to read.
    empty: bool,
}

/// A piece, encoded.
struct Done {
    bytes: Vec<u8>,
    records: u64,
    first: Option<Cursor>,
    last: Option<Cursor>,
    /// Where the next piece starts: the piece's end, or its last row when it
    /// stopped at its cap.
    upto: Cursor,
}

/// A piece's outcome, by the position it starts after.
type Outcome = (Cursor, Result<Done, rusqlite::Error>);

/// What is left to cut and how, shared by the workers and the reader.
struct Plan {
    /// Stretches nobody has claimed, by the position they start after.
    open: BTreeMap<Cursor, i64>,
    /// Pieces that may still be claimed before the reader takes one.
    tokens: usize,
    /// Pieces claimed and not yet finished (each may hand a rest back).
    active: usize,
    closed: bool,
    sizing: Sizing,
}

struct Shared {
    plan: Mutex<Plan>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lowest open stretch, cut to the current width, once the budget
    /// allows; `None` when nothing is left (or the scan is stopped). The
    /// lowest first: the piece the reader waits for is never queued behind
    /// later ones. `conn` seeks past stretches without rows.
    fn claim(
        &self,
        conn: Option<&Connection>,
        f: &Filters,
    ) -> Option<Result<Piece, (Cursor, rusqlite::Error)>> {
        let mut p = self.lock();
        loop {
            if p.closed || (p.open.is_empty() && p.active == 0) {
                return None;
            }
            if !p.open.is_empty() && p.tokens > 0 {
                break;
            }
            p = self.cv.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        let (after, end) = p.open.pop_first().expect("checked above");
        p.tokens -= 1;
        p.active += 1;
        let width = p.sizing.width;
        // A stretch starting at an instant boundary: seek to its first row
        // (a gap costs one seek, not pieces). One inside an instant goes on
        // from there.
        let first = match (after.id == i64::MAX, conn) {
            (true, Some(conn)) => match next_instant(conn, f, after.occurred_at, end) {
                Ok(Some(at)) => at,
                Ok(None) => {
                    return Some(Ok(Piece {
                        after,
                        end,
                        empty: true,
                    }))
                }
                Err(e) => {
                    p.active -= 1;
                    self.cv.notify_all();
                    return Some(Err((after, e)));
                }
            },
            _ => after.occurred_at,
        };
        let cut = first.saturating_add(width).max(first.saturating_add(1));
        if cut < end {
            p.open.insert(boundary(cut), end);
            self.cv.notify_all();
        }
        Some(Ok(Piece {
            after,
            end: cut.min(end),
            empty: false,
        }))
    }

    /// A claimed piece is finished: the rest of its stretch (after `rest`,
    /// when it stopped at its cap) is open again, and what it read refines
    /// the width.
    fn finish(&self, piece: &Piece, done: Option<&Done>) {
        let mut p = self.lock();
        p.active -= 1;
        if let Some(d) = done {
            if d.upto < boundary(piece.end) {
                p.open.insert(d.upto, piece.end);
            }
            if !piece.empty {
                p.learn(piece, d);
            }
        }
        self.cv.notify_all();
    }

    /// The reader took a piece: one more may be claimed.
    fn release(&self) {
        self.lock().tokens += 1;
        self.cv.notify_all();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.cv.notify_all();
    }
}

impl Plan {
    /// Moves the width towards the one that would have given this piece
    /// `target` rows: narrower at once (down to an eighth: a burst must not
    /// be read in capped pieces one after another), wider half-way and at
    /// most ×4 (pieces vary; a gap is skipped by a seek anyway).
    fn learn(&mut self, piece: &Piece, d: &Done) {
        let s = &mut self.sizing;
        let w = s.width as f64;
        let next = match (d.first, d.last) {
            (Some(first), Some(last)) => {
                // The milliseconds the rows were found in.
                let to = if d.upto < boundary(piece.end) {
                    last.occurred_at.saturating_add(1)
                } else {
                    piece.end
                };
                let span = to.saturating_sub(first.occurred_at).max(1) as f64;
                let ideal = span * s.target as f64 / d.records.max(1) as f64;
                if ideal < w {
                    ideal.max(w / 8.0)
                } else {
                    ((w + ideal) / 2.0).min(w * 4.0)
                }
            }
            // The filters left nothing: wider.
            _ => w * 4.0,
        };
        s.width = (next as i64).clamp(1, s.max_width.max(1));
    }
}

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
        }
    }

    /// Appends the next non-empty piece, in key order, to `buf`; returns
    /// its records (0: the scan is done).
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> rusqlite::Result<usize> {
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
            let d = done?;
            self.position = d.upto;
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
                // Hand the piece's buffer over instead of copying it.
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
            _ => rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERNAL),
                Some("the parallel scan stopped before the end of its range".into()),
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
        self.stop.store(true, Ordering::Relaxed);
        self.shared.close();
        // Unblocks workers handing a result over.
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
        let out = match &conn {
            Ok(conn) => encode_piece(&ctx, conn, &piece, &mut encoder),
            Err(e) => {
                // Reported against a piece the reader will wait for; this
                // worker stops, the others go on.
                let e = rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                    Some(format!("opening a read connection: {e}")),
                );
                ctx.shared.finish(&piece, None);
                let _ = ctx.results.send((piece.after, Err(e)));
                return;
            }
        };
        ctx.shared.finish(&piece, out.as_ref().ok());
        if ctx.results.send((piece.after, out)).is_err() {
            return;
        }
    }
}

/// Reads and encodes one piece: pages until a short one (the piece is
/// done) or until the cap (the rest is handed back by `finish`).
fn encode_piece(
    ctx: &WorkerCtx,
    conn: &Connection,
    piece: &Piece,
    encoder: &mut Encoder,
) -> Result<Done, rusqlite::Error> {
    let mut d = Done {
        bytes: ctx
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(2 << 20)),
        records: 0,
        first: None,
        last: None,
        upto: boundary(piece.end),
    };
    if piece.empty {
        return Ok(d);
    }
    let mut scan = Scan::new(&ctx.filters, ctx.page)
        .resume_after(Some(piece.after))
        .ending(piece.end);
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
        // A short page ends the piece: its query stops at the piece's end.
        if n < scan.batch() || ctx.stop.load(Ordering::Relaxed) {
            break;
        }
        if d.records >= ctx.cap_rows || d.bytes.len() >= CAP_BYTES {
            d.upto = scan.cursor().expect("a full page moved the cursor");
            break;
        }
    }
    d.last = scan.cursor().filter(|_| d.records > 0);
    Ok(d)
}

#[cfg(test)]
mod tests;
