//! How a parallel scan cuts its range into pieces, and the state the
//! workers and the reader share about it: the stretches nobody has claimed
//! yet, the budget of pieces in flight, and the width (in milliseconds)
//! that is expected to hold [`SLICE_ROWS`] rows, learnt from the pieces
//! read so far. Only index seeks happen here (which stretch has rows);
//! reading and encoding rows is the workers' (`super`).

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use rusqlite::Connection;

use crate::audit::query::{next_instant, slice_bounds, Cursor};
use crate::filters::Filters;

/// Rows a piece aims at: enough to amortize a piece's query and hand-off,
/// small enough that a few pieces in flight stay a few MiB each.
pub const SLICE_ROWS: u64 = 4096;

/// A piece stops at the row that takes it past this many bytes (rows can
/// be large; the row cap alone would not bound memory).
pub const CAP_BYTES: usize = 4 << 20;

/// How a parallel scan cuts its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    /// Rows a piece aims at.
    pub target: u64,
    /// A piece stops at this many rows.
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
        let max_width = (f.to_ms.saturating_sub(start) / (4 * threads)).max(1);
        Ok(Some(Sizing {
            target: SLICE_ROWS,
            cap_rows: 2 * SLICE_ROWS,
            width: nth
                .occurred_at
                .saturating_sub(start)
                .saturating_add(1)
                .clamp(1, max_width),
            max_width,
        }))
    }
}

/// The position just before `instant`: after every row of earlier instants.
pub(super) fn boundary(instant: i64) -> Cursor {
    Cursor {
        occurred_at: instant.saturating_sub(1),
        id: i64::MAX,
    }
}

/// A stretch of the key range: the rows after `after` and before the
/// instant `end`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Piece {
    pub(super) after: Cursor,
    pub(super) end: i64,
    /// The index seek found no row in it: nothing to read.
    pub(super) empty: bool,
}

/// A piece, encoded.
pub(super) struct Done {
    pub(super) bytes: Vec<u8>,
    pub(super) records: u64,
    pub(super) first: Option<Cursor>,
    pub(super) last: Option<Cursor>,
    /// Where the next piece starts: the piece's end, or its last row when it
    /// stopped at its cap.
    pub(super) upto: Cursor,
}

/// What is left to cut and how, shared by the workers and the reader.
pub(super) struct Plan {
    /// Stretches nobody has claimed, by the position they start after.
    pub(super) open: BTreeMap<Cursor, i64>,
    /// Pieces that may still be claimed before the reader takes one.
    pub(super) tokens: usize,
    /// Pieces claimed and not yet finished (each may hand a rest back).
    pub(super) active: usize,
    pub(super) closed: bool,
    pub(super) sizing: Sizing,
}

/// The plan and the condition the workers wait on for it.
pub(super) struct Shared {
    pub(super) plan: Mutex<Plan>,
    pub(super) cv: Condvar,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lowest open stretch, cut to the current width, once the budget
    /// allows; `None` when nothing is left (or the scan is stopped). The
    /// lowest first: the piece the reader waits for is never queued behind
    /// later ones. `conn` seeks past stretches without rows.
    pub(super) fn claim(
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
        // from there. The seek runs unlocked (it may wait on a busy
        // database); the stretch is claimed meanwhile, so it is neither
        // open nor lost.
        drop(p);
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
                    self.lock().active -= 1;
                    self.cv.notify_all();
                    return Some(Err((after, e)));
                }
            },
            _ => after.occurred_at,
        };
        let cut = first.saturating_add(width).max(first.saturating_add(1));
        if cut < end {
            self.lock().open.insert(boundary(cut), end);
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
    pub(super) fn finish(&self, piece: &Piece, done: Option<&Done>) {
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
    pub(super) fn release(&self) {
        self.lock().tokens += 1;
        self.cv.notify_all();
    }

    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.cv.notify_all();
    }
}

impl Plan {
    /// Moves the width towards the one that would have given this piece
    /// `target` rows: narrower at once (down to an eighth: a burst must not
    /// be read in capped pieces one after another), wider half-way and at
    /// most ×4 (pieces vary; a gap is skipped by a seek anyway).
    pub(super) fn learn(&mut self, piece: &Piece, d: &Done) {
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
