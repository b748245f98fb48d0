//! Ingest: audit events from JSONL files (or one JSON array, as the JSON
//! export writes it), raw-layout CSV files, or parsed JSON values (the HTTP
//! API), into `audit_logs`.
//!
//! A file is read twice. The first pass validates every line and names each
//! bad line and field; unless the caller allows skipping, one bad line
//! rejects the whole file before anything is written. The second pass
//! inserts in transactions of at most [`INSERT_BATCH`] rows, so a large
//! file never holds the write lock for long. Both passes parse on every
//! core (`parallel`), into events packed one text per chunk (`packed`).
//! Memory stays flat in the file size, but for the set of explicit ids
//! seen (to catch an id used twice in a file).
//!
//! Re-ingesting the same file is harmless. A file is known by the SHA-256
//! of its content (`ingest_files`): each batch commits together with the
//! last line it covers, so a re-run of an interrupted file resumes after
//! that line, and a re-run of a completed file inserts nothing, whether or
//! not its events carry ids. Besides, an event whose explicit `id` already
//! exists with identical content is counted as unchanged; one whose `id`
//! exists with different content is an error.

mod array;
mod csv;
mod dedup;
mod event;
mod fast;
mod file;
mod packed;
mod parallel;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::Value;

pub use event::parse_event;
pub use file::ingest_file;

use self::array::{for_each_array_element, starts_with_array, ArrayError};
use self::packed::{Packed, Slot};
use crate::audit::event::NewEvent;

/// Rows per insert transaction.
pub const INSERT_BATCH: usize = 5_000;
/// Largest explicit id accepted (2^53 - 1, exact in every JSON reader). A
/// larger one would leave AUTOINCREMENT no room for the ids it assigns.
pub const MAX_EXPLICIT_ID: i64 = (1 << 53) - 1;
/// How many line errors a report keeps (the count covers all of them).
pub const MAX_REPORTED_ERRORS: usize = 50;

/// Input file layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// JSON Lines, or one JSON array of events: a file whose first
    /// character is `[` is read as an array, element by element.
    Jsonl,
    /// Raw-layout CSV: a header naming the [`COLUMNS`](crate::audit::COLUMNS), in any order.
    Csv,
}

impl InputFormat {
    /// Guesses from the file extension (`.csv` → CSV, anything else JSON).
    pub fn from_path(p: &Path) -> InputFormat {
        match p.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => InputFormat::Csv,
            _ => InputFormat::Jsonl,
        }
    }
}

/// A problem with one field of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path, e.g. `occurred_at` or `actor.email`; empty for the line.
    pub field: String,
    /// What is wrong with it, for people.
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "field `{}`: {}", self.field, self.message)
        }
    }
}

/// A bad line of an input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number (for CSV, the line the record starts on).
    pub line: u64,
    /// What is wrong on that line.
    pub error: FieldError,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.error)
    }
}

/// What an ingest did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Events this run inserted (not counting unchanged or skipped ones).
    pub inserted: u64,
    /// Events already present with identical content.
    pub unchanged: u64,
    /// Invalid lines skipped (only with `skip_invalid`).
    pub skipped: u64,
    /// The first [`MAX_REPORTED_ERRORS`] invalid lines.
    pub errors: Vec<LineError>,
    /// An earlier run of this file was interrupted: this one went on after
    /// this line.
    pub resumed_after: Option<u64>,
    /// The file had been ingested completely before: nothing was done.
    pub already: Option<AlreadyIngested>,
    /// SHA-256 of the file's content (its identity).
    pub sha256: String,
}

/// A completed earlier ingest of the same content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlreadyIngested {
    /// When it completed (ms).
    pub at: i64,
    /// Events it inserted, over all its runs.
    pub inserted: u64,
    /// The file name it was ingested from.
    pub name: String,
}

/// Why a file ingest failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file's path, as given.
        path: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// Some lines are invalid and `skip_invalid` is off: nothing was inserted.
    #[error("{invalid} invalid line(s); nothing was ingested")]
    Invalid {
        /// How many lines are invalid.
        invalid: u64,
        /// The first [`MAX_REPORTED_ERRORS`] of them.
        errors: Vec<LineError>,
    },
    /// The CSV header is not the raw layout (unknown, repeated or missing column).
    #[error("CSV header: {0}")]
    CsvHeader(String),
    /// The database refused a read or an insert.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
}

/// Options of a file ingest.
#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    /// Layout of the input file.
    pub format: InputFormat,
    /// Insert the valid lines and count the bad ones instead of rejecting.
    pub skip_invalid: bool,
}

/// Calls `each` with every element of one top-level JSON array read from
/// `r` (what `export --format json` writes), one element in memory at a
/// time; `broken` is set when the array is malformed.
pub fn each_array_element(
    r: impl BufRead,
    broken: &mut bool,
    mut each: impl FnMut(&[u8]),
) -> std::io::Result<()> {
    let res = for_each_array_element(r, |_, element| {
        match element {
            Ok(e) => each(e),
            Err(_) => *broken = true,
        }
        Ok(())
    });
    match res {
        Ok(()) => Ok(()),
        Err(ArrayError::Io(e)) => Err(e),
        Err(ArrayError::Stop(_)) => {
            *broken = true;
            Ok(())
        }
    }
}

/// The HTTP API's fast path: one event's JSON text straight into a
/// [`NewEvent`] (a missing `organization_id` is `org`), or `None` when the
/// caller must take the exact path through a `Value` (which words errors).
pub fn parse_event_fast(bytes: &[u8], org: &str) -> Option<NewEvent> {
    fast::parse_with(bytes, Some(org))
}

/// Parses one event from its JSON text: the fast path when it applies,
/// else through a `Value` (which also words the error).
fn parse_event_bytes(bytes: &[u8], text: &mut String) -> Result<Slot, FieldError> {
    if let Some(slot) = fast::parse(bytes, text) {
        return Ok(slot);
    }
    serde_json::from_slice::<Value>(bytes)
        .map_err(|e| FieldError::new("", format!("not valid JSON: {e}")))
        .and_then(|v| parse_event(&v))
        .map(|ev| Slot::write_new(&ev, text))
}

/// Calls `f(line, parsed)` for every event of a file, in order. Events
/// are parsed on every core (see `parallel`).
fn for_each_event(
    path: &Path,
    format: InputFormat,
    f: impl FnMut(u64, Result<Packed, FieldError>) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let read_err = |source| IngestError::Read {
        path: path.display().to_string(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if format == InputFormat::Csv {
        let split = |sink: &mut parallel::Sink<'_>| csv::split_records(file, path, sink);
        return parallel::run(threads, split, csv::parse_unit, f);
    }
    let mut reader = BufReader::with_capacity(1 << 16, file);
    if starts_with_array(&mut reader).map_err(read_err)? {
        let split = |sink: &mut parallel::Sink<'_>| {
            for_each_array_element(reader, |line, element| Ok(sink.push(line, element)?)).map_err(
                |e| match e {
                    ArrayError::Io(e) => read_err(e),
                    ArrayError::Stop(e) => e,
                },
            )
        };
        return parallel::run(threads, split, parse_event_bytes, f);
    }
    // Lines are handed on straight from the read buffer; only a line cut
    // by the buffer's end is copied to be completed.
    let split = |sink: &mut parallel::Sink<'_>| {
        fn unit(
            sink: &mut parallel::Sink<'_>,
            line: u64,
            mut bytes: &[u8],
        ) -> Result<(), IngestError> {
            if line == 1 {
                bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            }
            if !bytes.iter().all(u8::is_ascii_whitespace) {
                sink.push(line, Ok(bytes))?;
            }
            Ok(())
        }
        let mut partial = Vec::new();
        let mut line = 0u64;
        loop {
            let buf = reader.fill_buf().map_err(read_err)?;
            if buf.is_empty() {
                if !partial.is_empty() {
                    unit(sink, line + 1, &partial)?;
                }
                return Ok(());
            }
            let n = buf.len();
            let mut start = 0;
            while let Some(k) = memchr::memchr(b'\n', &buf[start..]) {
                let end = start + k + 1;
                line += 1;
                if partial.is_empty() {
                    unit(sink, line, &buf[start..end])?;
                } else {
                    partial.extend_from_slice(&buf[start..end]);
                    unit(sink, line, &partial)?;
                    partial.clear();
                }
                start = end;
            }
            partial.extend_from_slice(&buf[start..]);
            reader.consume(n);
        }
    };
    parallel::run(threads, split, parse_event_bytes, f)
}
