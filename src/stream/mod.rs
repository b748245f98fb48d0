//! One export run: keyset pages of the filtered query → an [`Encoder`] →
//! a byte sink, with memory bounded by one page and one output buffer.
//!
//! The sink is opened only once the first matching row is known to exist,
//! so an export that matches nothing creates no file. This module decides
//! nothing about where bytes end up (the CLI writes a temporary file and
//! renames it; HTTP streams a response; jobs write a spool).

pub mod parallel;

use std::io::{self, Write};

use rusqlite::Connection;

use crate::audit::query::{Cursor, Scan};
use crate::filters::Filters;
use crate::format::Encoder;

/// The threads an export scans with: `[export] threads`, 0 meaning one per
/// core.
pub fn threads(configured: usize) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// An export's records, encoded, in key order: one keyset scan on the
/// caller's connection, or a [`parallel::Parallel`] scan when there are
/// threads to spare and more than one piece of rows (a small export pays
/// nothing). The bytes are the same either way.
pub enum Source {
    /// One keyset scan on the caller's connection.
    Serial(Pages),
    /// Slices scanned and encoded on worker threads, handed back in order.
    Parallel(parallel::Parallel),
}

impl Source {
    /// The records of `filters` after `after` (a resumed job's checkpoint),
    /// `records` having been written before.
    pub fn new(
        conn: &Connection,
        filters: &Filters,
        encoder: Encoder,
        after: Option<Cursor>,
        records: u64,
        batch: usize,
        threads: usize,
    ) -> rusqlite::Result<Source> {
        let db = conn
            .path()
            .filter(|p| !p.is_empty())
            .map(std::path::PathBuf::from);
        if let (true, Some(db)) = (threads > 1, db) {
            if let Some(sizing) = parallel::Sizing::measure(conn, filters, after, threads)? {
                return Ok(Source::Parallel(parallel::Parallel::start(
                    db, filters, encoder, after, records, batch, threads, sizing,
                )));
            }
        }
        let scan = Scan::new(filters, batch).resume_after(after);
        Ok(Source::Serial(Pages::new(scan, encoder, records)))
    }

    /// Appends the next records to `buf` (handing it to `spill` whenever it
    /// reaches `flush_at` bytes); returns how many (0: done).
    pub fn next_into<E: From<rusqlite::Error>>(
        &mut self,
        conn: &Connection,
        buf: &mut Vec<u8>,
        flush_at: usize,
        mut spill: impl FnMut(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<usize, E> {
        match self {
            Source::Serial(p) => p.next_into(conn, buf, flush_at, spill),
            Source::Parallel(p) => {
                let n = p.next_into(buf)?;
                if buf.len() >= flush_at {
                    spill(buf)?;
                }
                Ok(n)
            }
        }
    }

    /// Records written so far, those of earlier runs of a resumed job included.
    pub fn records(&self) -> u64 {
        match self {
            Source::Serial(p) => p.records(),
            Source::Parallel(p) => p.records(),
        }
    }

    /// The first row of this run (not a resumed job's earlier ones).
    pub fn first(&self) -> Option<Cursor> {
        match self {
            Source::Serial(p) => p.first(),
            Source::Parallel(p) => p.first(),
        }
    }

    /// The last row taken so far.
    pub fn cursor(&self) -> Option<Cursor> {
        match self {
            Source::Serial(p) => p.cursor(),
            Source::Parallel(p) => p.cursor(),
        }
    }

    /// The encoder the records are written with (format and options).
    pub fn encoder(&self) -> &Encoder {
        match self {
            Source::Serial(p) => p.encoder(),
            Source::Parallel(p) => p.encoder(),
        }
    }
}

/// Output buffer size: large enough to amortize write syscalls, small
/// enough to keep memory flat.
const FLUSH_AT: usize = 256 * 1024;

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Records written.
    pub records: u64,
    /// Bytes written, header and footer included.
    pub bytes: u64,
}

/// Why an export run stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the events failed.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    /// Writing the output failed.
    #[error("write error: {0}")]
    Io(#[from] io::Error),
}

/// The encoder of an export of `filters` as `format` with `opts`: for the
/// readable profile, with the users of the exported organization (loaded
/// once here, so enrichment never queries per row nor crosses
/// organizations).
pub fn encoder(
    conn: &Connection,
    filters: &Filters,
    format: crate::format::Format,
    opts: crate::format::ExportOptions,
    redactor: std::sync::Arc<crate::format::Redactor>,
) -> rusqlite::Result<Encoder> {
    let directory = if format == crate::format::Format::Csv
        && opts.csv.profile == crate::format::CsvProfile::Readable
    {
        crate::format::readable::Directory::new(crate::users::directory(
            conn,
            &filters.organization,
        )?)
    } else {
        Default::default()
    };
    Ok(Encoder::with(
        format,
        opts,
        redactor,
        std::sync::Arc::new(directory),
    ))
}

/// Keyset pages of a scan, encoded: the one loop from rows to bytes, for
/// sync exports and the job's spool step alike. It counts the records
/// (JSON's separators and a job's checkpoint depend on the count).
pub struct Pages {
    scan: Scan,
    encoder: Encoder,
    records: u64,
    /// The first row encoded by these pages.
    first: Option<Cursor>,
}

impl Pages {
    /// Pages of `scan`, `records` already written (a resumed job).
    pub fn new(scan: Scan, encoder: Encoder, records: u64) -> Pages {
        Pages {
            scan,
            encoder,
            records,
            first: None,
        }
    }

    /// The first row these pages encoded (not a resumed job's earlier ones).
    pub fn first(&self) -> Option<Cursor> {
        self.first
    }

    /// Records encoded so far, those of earlier runs of a resumed job included.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The last row encoded so far.
    pub fn cursor(&self) -> Option<Cursor> {
        self.scan.cursor()
    }

    /// The encoder the records are written with (format and options).
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// Appends the next page's records to `buf`, handing `buf` to `spill`
    /// whenever it reaches `flush_at` bytes (memory stays one buffer even
    /// for a large page). Returns the rows in the page; 0 means done.
    pub fn next_into<E: From<rusqlite::Error>>(
        &mut self,
        conn: &Connection,
        buf: &mut Vec<u8>,
        flush_at: usize,
        mut spill: impl FnMut(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<usize, E> {
        let (encoder, records, first) = (&mut self.encoder, &mut self.records, &mut self.first);
        self.scan.next_page::<E>(conn, |r| {
            if first.is_none() {
                *first = Some(Cursor {
                    occurred_at: r.occurred_at,
                    id: r.id,
                });
            }
            encoder.record(buf, r, *records);
            *records += 1;
            if buf.len() >= flush_at {
                spill(buf)?;
            }
            Ok(())
        })
    }
}

/// Runs the export on `threads` threads (see [`Source`]). `open` is called
/// at most once, when the first record is found; with no matching rows it
/// is never called and `None` is returned. `progress(records_so_far)` is
/// called after every page or slice.
pub fn run<W: Write>(
    conn: &Connection,
    filters: &Filters,
    encoder: Encoder,
    batch: usize,
    threads: usize,
    open: impl FnOnce() -> io::Result<W>,
    mut progress: impl FnMut(u64),
) -> Result<(ExportStats, Option<W>), ExportError> {
    let mut buf = Vec::with_capacity(FLUSH_AT + 64 * 1024);
    encoder.header(&mut buf);
    let mut source = Source::new(conn, filters, encoder, None, 0, batch, threads)?;
    // Nothing is opened until the first page has a row.
    let first = source.next_into(conn, &mut buf, usize::MAX, |_| Ok::<_, ExportError>(()))?;
    if first == 0 {
        return Ok((ExportStats::default(), None));
    }
    let mut out = open()?;
    let mut bytes = 0u64;
    progress(source.records());
    let mut write = |buf: &mut Vec<u8>| -> Result<(), ExportError> {
        out.write_all(buf)?;
        bytes += buf.len() as u64;
        buf.clear();
        Ok(())
    };
    write(&mut buf)?;
    loop {
        let n = source.next_into(conn, &mut buf, FLUSH_AT, &mut write)?;
        if n == 0 {
            break;
        }
        progress(source.records());
    }
    let records = source.records();
    source.encoder().footer(&mut buf, records);
    write(&mut buf)?;
    out.flush()?;
    Ok((ExportStats { records, bytes }, Some(out)))
}
