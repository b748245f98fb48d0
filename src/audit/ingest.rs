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

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{Map, Value};

use crate::audit::event::{NewEvent, COLUMNS};
use crate::time;

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

// ---------------------------------------------------------------- parsing

fn opt_string(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(FieldError::new(
            path,
            format!("expected a string or null, got {}", kind(other)),
        )),
    }
}

fn required_string(obj: &Map<String, Value>, key: &str) -> Result<String, FieldError> {
    match opt_string(obj, key, key)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        Some(_) => Err(FieldError::new(key, "must not be empty")),
        None => Err(FieldError::new(key, "is required")),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads a nested object (`actor`, `target`, `context`) with known keys.
fn nested<const N: usize>(
    obj: &Map<String, Value>,
    key: &str,
    fields: [&str; N],
) -> Result<[Option<String>; N], FieldError> {
    let inner = match obj.get(key) {
        None | Some(Value::Null) => return Ok(std::array::from_fn(|_| None)),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(FieldError::new(
                key,
                format!("expected an object or null, got {}", kind(other)),
            ))
        }
    };
    if let Some(unknown) = inner.keys().find(|k| !fields.contains(&k.as_str())) {
        return Err(FieldError::new(
            format!("{key}.{unknown}"),
            format!("unknown field (expected {})", fields.join(", ")),
        ));
    }
    let mut out: [Option<String>; N] = std::array::from_fn(|_| None);
    for (i, f) in fields.iter().enumerate() {
        out[i] = opt_string(inner, f, &format!("{key}.{f}"))?;
    }
    Ok(out)
}

fn json_column(obj: &Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(v) => Some(serde_json::to_string(v).expect("a Value serializes")),
    }
}

const TOP_LEVEL: [&str; 10] = [
    "id",
    "organization_id",
    "occurred_at",
    "stream",
    "action",
    "actor",
    "target",
    "context",
    "changed_data",
    "details",
];

/// Parses one event in the JSON shape (see `format::json`).
pub fn parse_event(v: &Value) -> Result<NewEvent, FieldError> {
    let obj = match v {
        Value::Object(m) => m,
        other => {
            return Err(FieldError::new(
                "",
                format!("expected an event object, got {}", kind(other)),
            ))
        }
    };
    if let Some(unknown) = obj.keys().find(|k| !TOP_LEVEL.contains(&k.as_str())) {
        return Err(FieldError::new(unknown.as_str(), "unknown field"));
    }
    let id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(n) if (1..=MAX_EXPLICIT_ID).contains(&n) => Some(n),
            _ => {
                return Err(FieldError::new(
                    "id",
                    format!("must be an integer from 1 to {MAX_EXPLICIT_ID}"),
                ))
            }
        },
    };
    let organization_id = required_string(obj, "organization_id")?;
    let occurred_raw = required_string(obj, "occurred_at")?;
    let occurred_at = time::parse_rfc3339_ms(&occurred_raw).ok_or_else(|| {
        FieldError::new(
            "occurred_at",
            format!("{occurred_raw:?} is not an RFC 3339 instant (e.g. 2026-01-05T10:00:00.000Z)"),
        )
    })?;
    let stream = required_string(obj, "stream")?;
    let action = required_string(obj, "action")?;
    let [actor_type, actor_id, actor_name, actor_email] =
        nested(obj, "actor", ["type", "id", "name", "email"])?;
    let [target_type, target_id, target_name] = nested(obj, "target", ["type", "id", "name"])?;
    let [ip_address, user_agent, request_id] =
        nested(obj, "context", ["ip_address", "user_agent", "request_id"])?;
    Ok(NewEvent {
        id,
        occurred_at,
        organization_id,
        stream,
        action,
        actor_type,
        actor_id,
        actor_name,
        actor_email,
        target_type,
        target_id,
        target_name,
        ip_address,
        user_agent,
        request_id,
        changed_data: json_column(obj, "changed_data"),
        details: json_column(obj, "details"),
    })
}

/// Parses one CSV record in the raw column layout; `index[i]` is the
/// position of `COLUMNS[i]` in the file.
fn parse_csv_record(rec: &csv::StringRecord, index: &[usize; 17]) -> Result<NewEvent, FieldError> {
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
                let v: Value = serde_json::from_str(&s)
                    .map_err(|e| FieldError::new(COLUMNS[i], format!("is not valid JSON: {e}")))?;
                Ok((!v.is_null()).then(|| v.to_string()))
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

// ---------------------------------------------------------------- reading

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
        InputFormat::Csv => {
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
    }
}

/// Whether the file, past a BOM and white space, starts with `[` (looks at
/// the first buffer only); consumes the BOM if so, nothing otherwise.
fn starts_with_array(r: &mut BufReader<File>) -> std::io::Result<bool> {
    let buf = r.fill_buf()?;
    let bom = if buf.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    let is_array = buf[bom..]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'[');
    if is_array {
        r.consume(bom);
    }
    Ok(is_array)
}

enum ArrayError {
    Io(std::io::Error),
    Stop(IngestError),
}

/// Splits a top-level JSON array into its elements without parsing them,
/// so memory holds one element at a time however large the file is. Calls
/// `f(line, element bytes)` with the line each element starts on; a
/// structural problem (an empty element, no closing bracket, text after
/// it) is a line error, and the last two end the read.
fn for_each_array_element(
    mut r: impl BufRead,
    mut f: impl FnMut(u64, Result<&[u8], FieldError>) -> Result<(), IngestError>,
) -> Result<(), ArrayError> {
    let mut line = 1u64;
    // 0: before `[`; 1: between elements; 2 and more: inside an element.
    let mut depth = 0u32;
    let mut in_string = false;
    let mut escaped = false;
    let mut after_comma = false;
    let mut elem: Vec<u8> = Vec::new();
    let mut elem_line = 0u64;
    // Ends the current element (at a `,` or the closing `]`).
    macro_rules! emit {
        () => {
            if elem.is_empty() {
                fail(&mut f, line, "empty array element")?;
            } else {
                let out = f(elem_line, Ok(elem.trim_ascii_end()));
                elem.clear();
                out.map_err(ArrayError::Stop)?;
            }
        };
    }
    loop {
        let buf = r.fill_buf().map_err(ArrayError::Io)?;
        if buf.is_empty() {
            return fail(&mut f, line, "the JSON array is not closed (missing `]`)");
        }
        let n = buf.len();
        for (i, &b) in buf.iter().enumerate() {
            if b == b'\n' {
                line += 1;
            }
            if in_string {
                elem.push(b);
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                continue;
            }
            match (depth, b) {
                (_, b' ' | b'\t' | b'\r' | b'\n') if elem.is_empty() => {}
                (0, b'[') => depth = 1,
                (1, b',') => {
                    emit!();
                    after_comma = true;
                }
                (1, b']') => {
                    // `[]` has no element; `[…,]` ends in an empty one.
                    if !elem.is_empty() || after_comma {
                        emit!();
                    }
                    let rest = buf[i + 1..].to_vec();
                    r.consume(n);
                    return trailing(r, rest, line, &mut f);
                }
                _ => {
                    if elem.is_empty() {
                        elem_line = line;
                        after_comma = false;
                    }
                    elem.push(b);
                    match b {
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => depth = depth.saturating_sub(1).max(1),
                        b'"' => in_string = true,
                        _ => {}
                    }
                }
            }
        }
        r.consume(n);
    }
}

/// Reports a structural line error through `f`.
fn fail(
    f: &mut impl FnMut(u64, Result<&[u8], FieldError>) -> Result<(), IngestError>,
    line: u64,
    message: &str,
) -> Result<(), ArrayError> {
    f(line, Err(FieldError::new("", message))).map_err(ArrayError::Stop)
}

/// After the closing `]` only white space may follow.
fn trailing(
    mut r: impl BufRead,
    mut rest: Vec<u8>,
    mut line: u64,
    f: &mut impl FnMut(u64, Result<&[u8], FieldError>) -> Result<(), IngestError>,
) -> Result<(), ArrayError> {
    loop {
        for &b in &rest {
            if b == b'\n' {
                line += 1;
            } else if !b.is_ascii_whitespace() {
                return fail(f, line, "text after the closing `]`");
            }
        }
        rest.clear();
        let buf = r.fill_buf().map_err(ArrayError::Io)?;
        if buf.is_empty() {
            return Ok(());
        }
        rest.extend_from_slice(buf);
        let n = buf.len();
        r.consume(n);
    }
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

// ---------------------------------------------------------------- writing

/// The outcome of checking one parsed event against the database.
enum Checked {
    New(Box<NewEvent>),
    Unchanged,
}

/// Per-ingest state shared by both passes.
struct Checker {
    seen_ids: HashSet<i64>,
}

impl Checker {
    fn check(
        &mut self,
        conn: &Connection,
        ev: NewEvent,
    ) -> Result<Result<Checked, FieldError>, rusqlite::Error> {
        let Some(id) = ev.id else {
            return Ok(Ok(Checked::New(Box::new(ev))));
        };
        if !self.seen_ids.insert(id) {
            return Ok(Err(FieldError::new(
                "id",
                format!("id {id} appears twice in this input"),
            )));
        }
        match load(conn, id)? {
            None => Ok(Ok(Checked::New(Box::new(ev)))),
            Some(existing) if existing == ev => Ok(Ok(Checked::Unchanged)),
            Some(_) => Ok(Err(FieldError::new(
                "id",
                format!("id {id} already exists with different content"),
            ))),
        }
    }
}

fn load(conn: &Connection, id: i64) -> rusqlite::Result<Option<NewEvent>> {
    let mut st = conn.prepare_cached(
        "SELECT id, occurred_at, organization_id, stream, action, actor_type, actor_id, \
         actor_name, actor_email, target_type, target_id, target_name, ip_address, \
         user_agent, request_id, changed_data, details FROM audit_logs WHERE id = ?",
    )?;
    st.query_row([id], |r| {
        Ok(NewEvent {
            id: r.get(0)?,
            occurred_at: r.get(1)?,
            organization_id: r.get(2)?,
            stream: r.get(3)?,
            action: r.get(4)?,
            actor_type: r.get(5)?,
            actor_id: r.get(6)?,
            actor_name: r.get(7)?,
            actor_email: r.get(8)?,
            target_type: r.get(9)?,
            target_id: r.get(10)?,
            target_name: r.get(11)?,
            ip_address: r.get(12)?,
            user_agent: r.get(13)?,
            request_id: r.get(14)?,
            changed_data: r.get(15)?,
            details: r.get(16)?,
        })
    })
    .optional()
}

/// Inserts events in one transaction; returns the id of each (assigned or
/// given). An explicit id that already exists is left untouched (callers
/// check content first).
pub fn insert_events(conn: &mut Connection, events: &[NewEvent]) -> rusqlite::Result<Vec<i64>> {
    let tx = crate::db::immediate(conn)?;
    let mut ids = Vec::with_capacity(events.len());
    {
        let mut st = tx.prepare_cached(
            "INSERT INTO audit_logs (id, occurred_at, organization_id, stream, action, \
             actor_type, actor_id, actor_name, actor_email, target_type, target_id, target_name, \
             ip_address, user_agent, request_id, changed_data, details) \
             VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO NOTHING",
        )?;
        for e in events {
            st.execute(params![
                e.id,
                e.occurred_at,
                e.organization_id,
                e.stream,
                e.action,
                e.actor_type,
                e.actor_id,
                e.actor_name,
                e.actor_email,
                e.target_type,
                e.target_id,
                e.target_name,
                e.ip_address,
                e.user_agent,
                e.request_id,
                e.changed_data,
                e.details
            ])?;
            ids.push(e.id.unwrap_or_else(|| tx.last_insert_rowid()));
        }
    }
    tx.commit()?;
    Ok(ids)
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
    let mut checker = Checker {
        seen_ids: HashSet::new(),
    };
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
    let mut checker = Checker {
        seen_ids: HashSet::new(),
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({"organization_id":"acme","occurred_at":"2026-01-05T10:00:00.000Z","stream":"audit","action":"user.login"})
    }

    #[test]
    fn minimal_event_parses_with_nulls() {
        let e = parse_event(&good()).unwrap();
        assert_eq!(e.id, None);
        assert_eq!(e.actor_id, None);
        assert_eq!(e.details, None);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({"occurred_at": 5}), "occurred_at"),
            (json!({"occurred_at": "yesterday"}), "occurred_at"),
            (json!({"organization_id": ""}), "organization_id"),
            (json!({"action": null}), "action"),
            (json!({"actor": {"email": 3}}), "actor.email"),
            (json!({"actor": {"mail": "x"}}), "actor.mail"),
            (json!({"target": "page"}), "target"),
            (json!({"id": -4}), "id"),
            (json!({"id": "7"}), "id"),
            // Beyond 2^53 - 1: would exhaust AUTOINCREMENT for everyone.
            (json!({"id": 9_007_199_254_740_992i64}), "id"),
            (json!({"colour": "red"}), "colour"),
        ];
        for (patch, field) in cases {
            let mut v = good();
            for (k, val) in patch.as_object().unwrap() {
                v[k] = val.clone();
            }
            let err = parse_event(&v).unwrap_err();
            assert_eq!(err.field, field, "{patch}");
        }
        assert_eq!(parse_event(&json!([1])).unwrap_err().field, "");
    }

    #[test]
    fn json_columns_are_stored_compact_in_original_key_order() {
        let mut v = good();
        v["details"] = json!({"z": 1, "a": {"k": [1, 2]}});
        let e = parse_event(&v).unwrap();
        assert_eq!(e.details.as_deref(), Some(r#"{"z":1,"a":{"k":[1,2]}}"#));
    }
}
