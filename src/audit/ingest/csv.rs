//! Raw-layout CSV input: the header names the 17 columns in any order (a
//! BOM is accepted); each record becomes an event, and errors carry the
//! physical line they start on.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::{FieldError, IngestError, MAX_EXPLICIT_ID};
use crate::audit::event::{NewEvent, COLUMNS};
use crate::time;

/// Calls `f(line, parsed)` for every record of a CSV file, in order.
pub(super) fn for_each_record(
    file: File,
    path: &Path,
    mut f: impl FnMut(u64, Result<NewEvent, FieldError>) -> Result<(), IngestError>,
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
    let physical =
        |p: Option<&csv::Position>, fallback: u64| p.map_or(fallback, |p| p.line() + skew);
    loop {
        let fallback = reader.position().line() + 1;
        match reader.read_record(&mut rec) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let line = physical(rec.position(), fallback);
                f(line, parse_csv_record(&rec, &index))?
            }
            Err(e) => {
                // A malformed record (wrong field count, bad UTF-8)
                // is a line error; the reader carries on after it.
                let line = physical(e.position(), fallback);
                f(
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

/// Parses one CSV record in the raw column layout; `index[i]` is the
/// position of `COLUMNS[i]` in the file.
pub(super) fn parse_csv_record(
    rec: &csv::StringRecord,
    index: &[usize; 17],
) -> Result<NewEvent, FieldError> {
    let cell = |i: usize| -> Option<String> {
        let v = rec.get(index[i]).unwrap_or("");
        (!v.is_empty()).then(|| v.to_string())
    };
    let required = |i: usize| -> Result<String, FieldError> {
        cell(i).ok_or_else(|| FieldError::new(COLUMNS[i], "is required"))
    };
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
                    serde_json::from_str::<&serde_json::value::RawValue>(&s).map_err(not_json)?;
                let text = match super::fast::minify(raw.get()) {
                    Some(t) => t,
                    // Syntax fine, content not (see `minify`): the exact
                    // parse says why, or stores what it accepts.
                    None => serde_json::from_str::<serde_json::Value>(&s)
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
    let occurred_at = time::parse_rfc3339_ms(&occurred_raw).ok_or_else(|| {
        FieldError::new(
            "occurred_at",
            format!("{occurred_raw:?} is not an RFC 3339 instant"),
        )
    })?;
    Ok(NewEvent {
        id,
        occurred_at,
        organization_id: required(2)?,
        stream: required(3)?,
        action: required(4)?,
        actor_type: cell(5),
        actor_id: cell(6),
        actor_name: cell(7),
        actor_email: cell(8),
        target_type: cell(9),
        target_id: cell(10),
        target_name: cell(11),
        ip_address: cell(12),
        user_agent: cell(13),
        request_id: cell(14),
        changed_data: json(15)?,
        details: json(16)?,
    })
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
