//! One export run: keyset pages of the filtered query → an [`Encoder`] →
//! a byte sink, with memory bounded by one page and one output buffer.
//!
//! The sink is opened only once the first matching row is known to exist,
//! so an export that matches nothing creates no file. This module decides
//! nothing about where bytes end up (the CLI writes a temporary file and
//! renames it; HTTP streams a response; jobs write a spool).

use std::io::{self, Write};

use rusqlite::Connection;

use crate::audit::query::{Cursor, Scan};
use crate::filters::Filters;
use crate::format::Encoder;

/// Output buffer size: large enough to amortize write syscalls, small
/// enough to keep memory flat.
const FLUSH_AT: usize = 256 * 1024;

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    pub records: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
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

    pub fn records(&self) -> u64 {
        self.records
    }

    /// The last row encoded so far.
    pub fn cursor(&self) -> Option<Cursor> {
        self.scan.cursor()
    }

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

/// Runs the export. `open` is called at most once, when the first record is
/// found; with no matching rows it is never called and `None` is returned.
/// `progress(records_so_far)` is called after every page.
pub fn run<W: Write>(
    conn: &Connection,
    filters: &Filters,
    encoder: Encoder,
    batch: usize,
    open: impl FnOnce() -> io::Result<W>,
    mut progress: impl FnMut(u64),
) -> Result<(ExportStats, Option<W>), ExportError> {
    let mut buf = Vec::with_capacity(FLUSH_AT + 64 * 1024);
    encoder.header(&mut buf);
    let mut pages = Pages::new(Scan::new(filters, batch), encoder, 0);
    // Nothing is opened until the first page has a row.
    let first = pages.next_into(conn, &mut buf, usize::MAX, |_| Ok::<_, ExportError>(()))?;
    if first == 0 {
        return Ok((ExportStats::default(), None));
    }
    let mut out = open()?;
    let mut bytes = 0u64;
    progress(pages.records());
    let mut write = |buf: &mut Vec<u8>| -> Result<(), ExportError> {
        out.write_all(buf)?;
        bytes += buf.len() as u64;
        buf.clear();
        Ok(())
    };
    loop {
        let n = pages.next_into(conn, &mut buf, FLUSH_AT, &mut write)?;
        if n == 0 {
            break;
        }
        progress(pages.records());
    }
    let records = pages.records();
    pages.encoder().footer(&mut buf, records);
    write(&mut buf)?;
    out.flush()?;
    Ok((ExportStats { records, bytes }, Some(out)))
}
