//! One export run: keyset pages of the filtered query → an [`Encoder`] →
//! a byte sink, with memory bounded by one page and one output buffer.
//!
//! The sink is opened only once the first matching row is known to exist,
//! so an export that matches nothing creates no file. This module decides
//! nothing about where bytes end up (the CLI writes a temporary file and
//! renames it; HTTP streams a response; jobs write a spool).

use std::io::{self, Write};

use rusqlite::Connection;

use crate::audit::query::Scan;
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

/// Runs the export. `open` is called at most once, when the first record is
/// found; with no matching rows it is never called and `None` is returned.
/// `progress(records_so_far)` is called after every page.
pub fn run<W: Write>(
    conn: &Connection,
    filters: &Filters,
    encoder: &Encoder,
    batch: usize,
    open: impl FnOnce() -> io::Result<W>,
    mut progress: impl FnMut(u64),
) -> Result<(ExportStats, Option<W>), ExportError> {
    let mut scan = Scan::new(filters, batch);
    let mut buf = Vec::with_capacity(FLUSH_AT + 64 * 1024);
    encoder.header(&mut buf);
    let mut records = 0u64;
    let first = scan.next_page::<ExportError>(conn, |r| {
        encoder.record(&mut buf, r, records);
        records += 1;
        Ok(())
    })?;
    if first == 0 {
        return Ok((ExportStats::default(), None));
    }
    let mut out = open()?;
    let mut bytes = 0u64;
    progress(records);
    loop {
        let n = scan.next_page::<ExportError>(conn, |r| {
            encoder.record(&mut buf, r, records);
            records += 1;
            if buf.len() >= FLUSH_AT {
                out.write_all(&buf)?;
                bytes += buf.len() as u64;
                buf.clear();
            }
            Ok(())
        })?;
        if n == 0 {
            break;
        }
        progress(records);
    }
    encoder.footer(&mut buf, records);
    out.write_all(&buf)?;
    bytes += buf.len() as u64;
    out.flush()?;
    Ok((ExportStats { records, bytes }, Some(out)))
}
