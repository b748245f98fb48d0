//! Raw-layout CSV input: the header names the 17 columns in any order (a
//! BOM is accepted); each record becomes an event, and errors carry the
//! physical line they start on. One thread cuts records (the csv crate),
//! every core parses them (see `parallel`).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::packed::{Builder, Slot};
use super::parallel::Sink;
use super::{FieldError, IngestError, MAX_EXPLICIT_ID};
use crate::audit::event::COLUMNS;
use crate::time;

/// Cuts a CSV file into records for the parsers (see `parallel`): each
/// record's cells in [`COLUMNS`] order, encoded by [`encode`]; a malformed
/// record is a line error, a bad header the run's error.
pub(super) fn split_records(
    file: File,
    path: &Path,
    sink: &mut Sink<'_>,
) -> Result<(), IngestError> {
    let read_err = |source| IngestError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut buffered = BufReader::with_capacity(1 << 16, file);
    // The csv crate's record line numbers are one short in a file
    // whose header ends in CRLF (the header's LF is not counted);
    // with LF they are exact. Verified both ways, also across
    // quoted multi-line cells. People count physical lines.
    let skew = u64::from(header_ends_in_crlf(&mut buffered).map_err(read_err)?);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(buffered);
    let headers = reader
        .headers()
        .map_err(|e| IngestError::CsvHeader(e.to_string()))?
        .clone();
    let index = header_index(&headers)?;
    let mut rec = csv::StringRecord::new();
    let mut unit = Vec::new();
    let physical =
        |p: Option<&csv::Position>, fallback: u64| p.map_or(fallback, |p| p.line() + skew);
    loop {
        let fallback = reader.position().line() + 1;
        match reader.read_record(&mut rec) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let line = physical(rec.position(), fallback);
                encode(&rec, &index, &mut unit);
                sink.push(line, Ok(&unit))?;
            }
            Err(e) => {
                // A malformed record (wrong field count, bad UTF-8)
                // is a line error; the reader carries on after it.
                let line = physical(e.position(), fallback);
                sink.push(
                    line,
                    Err(FieldError::new("", format!("malformed CSV: {e}"))),
                )?;
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    return Err(IngestError::Read {
                        path: path.display().to_string(),
                        source: std::io::Error::other(e.to_string()),
                    });
                }
            }
        }
    }
}

/// A record's cells in [`COLUMNS`] order (`index[i]` is the position of
/// `COLUMNS[i]` in the file): 17 little-endian `u32` lengths, then the
/// cells back to back.
fn encode(rec: &csv::StringRecord, index: &[usize; 17], out: &mut Vec<u8>) {
    out.clear();
    let cell = |i: usize| rec.get(index[i]).unwrap_or("");
    for i in 0..17 {
        // Capped, a longer cell fails `decode` as malformed; `parallel`
        // refuses a record over 1 GiB before that.
        let len = u32::try_from(cell(i).len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
    }
    for i in 0..17 {
        out.extend_from_slice(cell(i).as_bytes());
    }
}

/// The cells [`encode`] wrote.
fn decode(unit: &[u8]) -> Option<[&str; 17]> {
    let (lens, mut rest) = unit.split_at_checked(17 * 4)?;
    let mut cells = [""; 17];
    for (i, len) in lens.chunks_exact(4).enumerate() {
        let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
        let (cell, tail) = rest.split_at_checked(len)?;
        // Whole cells of a `StringRecord`: valid UTF-8 (checked anyway).
        cells[i] = simdutf8::basic::from_utf8(cell).ok()?;
        rest = tail;
    }
    Some(cells)
}

/// Parses one record [`split_records`] cut, appending its text to the
/// chunk's (see `packed`).
pub(super) fn parse_unit(unit: &[u8], text: &mut String) -> Result<Slot, FieldError> {
    let cells = decode(unit).ok_or_else(|| FieldError::new("", "malformed CSV record"))?;
    let cell = |i: usize| Some(cells[i]).filter(|v| !v.is_empty());
    let required = |i: usize| cell(i).ok_or_else(|| FieldError::new(COLUMNS[i], "is required"));
    let json = |i: usize| -> Result<Option<String>, FieldError> {
        match cell(i) {
            None => Ok(None),
            Some(s) => {
                let not_json = |e: serde_json::Error| {
                    FieldError::new(COLUMNS[i], format!("is not valid JSON: {e}"))
                };
                // Checked, then kept as sent minus white space (numbers,
                // escapes and key order exactly), like a JSON event's.
                let raw =
                    serde_json::from_str::<&serde_json::value::RawValue>(s).map_err(not_json)?;
                let text = match super::fast::minify(raw.get()) {
                    Some(t) => t,
                    // Syntax fine, content not (see `minify`): the exact
                    // parse says why, or stores what it accepts.
                    None => serde_json::from_str::<serde_json::Value>(s)
                        .map_err(not_json)?
                        .to_string(),
                };
                Ok((text != "null").then_some(text))
            }
        }
    };
    let id = match cell(0) {
        None => None,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=MAX_EXPLICIT_ID).contains(&n) => Some(n),
            _ => {
                return Err(FieldError::new(
                    "id",
                    format!("must be an integer from 1 to {MAX_EXPLICIT_ID}"),
                ))
            }
        },
    };
    let occurred_raw = required(1)?;
    let occurred_at = time::parse_rfc3339_ms(occurred_raw).ok_or_else(|| {
        FieldError::new(
            "occurred_at",
            format!("{occurred_raw:?} is not an RFC 3339 instant"),
        )
    })?;
    let (org, stream, action) = (required(2)?, required(3)?, required(4)?);
    let (changed_data, details) = (json(15)?, json(16)?);
    let mut b = Builder::new(text);
    b.push(Some(org));
    b.push(Some(stream));
    b.push(Some(action));
    for i in 5..15 {
        b.push(cell(i));
    }
    b.push(changed_data.as_deref());
    b.push(details.as_deref());
    Ok(b.finish(id, occurred_at))
}

/// Whether the first line of the buffered file ends in CRLF (peeks only).
fn header_ends_in_crlf(r: &mut BufReader<File>) -> std::io::Result<bool> {
    let buf = r.fill_buf()?;
    Ok(match buf.iter().position(|&b| b == b'\n') {
        Some(i) => i > 0 && buf[i - 1] == b'\r',
        None => false,
    })
}

fn header_index(headers: &csv::StringRecord) -> Result<[usize; 17], IngestError> {
    let mut index = [usize::MAX; 17];
    for (pos, h) in headers.iter().enumerate() {
        let h = if pos == 0 {
            h.trim_start_matches('\u{feff}')
        } else {
            h
        };
        match COLUMNS.iter().position(|c| *c == h.trim()) {
            Some(i) if index[i] == usize::MAX => index[i] = pos,
            Some(_) => {
                return Err(IngestError::CsvHeader(format!(
                    "column {h:?} appears twice"
                )))
            }
            None => {
                return Err(IngestError::CsvHeader(format!(
                    "unknown column {h:?}; expected the raw layout: {}",
                    COLUMNS.join(",")
                )))
            }
        }
    }
    if let Some(i) = index.iter().position(|&p| p == usize::MAX) {
        return Err(IngestError::CsvHeader(format!(
            "missing column {:?}",
            COLUMNS[i]
        )));
    }
    Ok(index)
}
