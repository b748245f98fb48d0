//! Ingest: audit events from JSONL files (or one JSON array, as the JSON
//! export writes it), raw-layout CSV files, or parsed JSON values (the HTTP
//! API), into `audit_logs`.
//!
//! A file is read twice. The first pass validates every line and names each
//! bad line and field; unless the caller allows skipping, one bad line
//! rejects the whole file before anything is written. The second pass
//! inserts in transactions of [`INSERT_BATCH`] rows, so a large file never
//! holds the write lock for long. Memory stays flat in the file size, but
//! for the set of explicit ids seen (to catch an id used twice in a file).
//!
//! Re-ingesting the same file is harmless: an event whose explicit `id`
//! already exists with identical content is counted as unchanged; one whose
//! `id` exists with different content is an error.

mod array;
mod csv;
mod dedup;
mod event;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use rusqlite::Connection;
use serde_json::Value;

pub use event::parse_event;

use self::array::{for_each_array_element, starts_with_array, ArrayError};
use self::dedup::{Checked, Checker};
use crate::audit::event::NewEvent;
use crate::audit::insert::insert_events;

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
    pub inserted: u64,
    /// Events already present with identical content.
    pub unchanged: u64,
    /// Invalid lines skipped (only with `skip_invalid`).
    pub skipped: u64,
    /// The first [`MAX_REPORTED_ERRORS`] invalid lines.
    pub errors: Vec<LineError>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{invalid} invalid line(s); nothing was ingested")]
    Invalid {
        invalid: u64,
        errors: Vec<LineError>,
    },
    #[error("CSV header: {0}")]
    CsvHeader(String),
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
}

/// Options of a file ingest.
#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    pub format: InputFormat,
    /// Insert the valid lines and count the bad ones instead of rejecting.
    pub skip_invalid: bool,
}

/// Counts the elements of one top-level JSON array read from `r` (what
/// `export --format json` writes), one element in memory at a time;
/// `broken` is set when the array is malformed.
pub fn count_array_elements(
    r: impl BufRead,
    n: &mut u64,
    broken: &mut bool,
) -> std::io::Result<()> {
    let res = for_each_array_element(r, |_, element| {
        match element {
            Ok(_) => *n += 1,
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

/// Calls `f(line, parsed)` for every event of a file, in order.
fn for_each_event(
    path: &Path,
    format: InputFormat,
    mut f: impl FnMut(u64, Result<NewEvent, FieldError>) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let read_err = |source| IngestError::Read {
        path: path.display().to_string(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    match format {
        InputFormat::Jsonl => {
            let mut reader = BufReader::with_capacity(1 << 16, file);
            if starts_with_array(&mut reader).map_err(read_err)? {
                return for_each_array_element(reader, |line, bytes| {
                    let parsed = match bytes {
                        Ok(b) => serde_json::from_slice::<Value>(b)
                            .map_err(|e| FieldError::new("", format!("not valid JSON: {e}")))
                            .and_then(|v| parse_event(&v)),
                        Err(e) => Err(e),
                    };
                    f(line, parsed)
                })
                .map_err(|e| match e {
                    ArrayError::Io(e) => read_err(e),
                    ArrayError::Stop(e) => e,
                });
            }
            let mut buf = Vec::new();
            let mut line_no = 0u64;
            loop {
                buf.clear();
                if reader.read_until(b'\n', &mut buf).map_err(read_err)? == 0 {
                    return Ok(());
                }
                line_no += 1;
                let mut bytes = buf.as_slice();
                if line_no == 1 {
                    bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
                }
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let parsed = serde_json::from_slice::<Value>(bytes)
                    .map_err(|e| FieldError::new("", format!("not valid JSON: {e}")))
                    .and_then(|v| parse_event(&v));
                f(line_no, parsed)?;
            }
        }
        InputFormat::Csv => csv::for_each_record(file, path, f),
    }
}

/// Ingests a whole file (see the module docs for the two passes).
pub fn ingest_file(
    conn: &mut Connection,
    path: &Path,
    opts: IngestOptions,
) -> Result<IngestReport, IngestError> {
    // Pass 1: validate everything, write nothing.
    let mut report = IngestReport::default();
    let mut invalid = 0u64;
    let mut checker = Checker::default();
    for_each_event(path, opts.format, |line, parsed| {
        let verdict = match parsed {
            Ok(ev) => checker.check(conn, ev)?,
            Err(e) => Err(e),
        };
        if let Err(error) = verdict {
            invalid += 1;
            if report.errors.len() < MAX_REPORTED_ERRORS {
                report.errors.push(LineError { line, error });
            }
        }
        Ok(())
    })?;
    if invalid > 0 && !opts.skip_invalid {
        return Err(IngestError::Invalid {
            invalid,
            errors: report.errors,
        });
    }
    report.skipped = invalid;

    // Pass 2: insert the valid events in batches.
    let mut checker = Checker::default();
    let mut batch: Vec<NewEvent> = Vec::with_capacity(INSERT_BATCH);
    let mut inserted = 0u64;
    let mut unchanged = 0u64;
    for_each_event(path, opts.format, |_, parsed| {
        let Ok(ev) = parsed else { return Ok(()) };
        match checker.check(conn, ev)? {
            Ok(Checked::New(ev)) => batch.push(*ev),
            Ok(Checked::Unchanged) => unchanged += 1,
            Err(_) => {}
        }
        if batch.len() >= INSERT_BATCH {
            inserted += insert_events(conn, &batch)?.len() as u64;
            batch.clear();
        }
        Ok(())
    })?;
    if !batch.is_empty() {
        inserted += insert_events(conn, &batch)?.len() as u64;
    }
    report.inserted = inserted;
    report.unchanged = unchanged;
    Ok(report)
}
