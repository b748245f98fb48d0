//! Streaming output formats: CSV (raw and readable profiles), JSON and
//! JSONL, with redaction and time zones.
//!
//! An [`Encoder`] appends bytes for the header, one record, and the footer
//! to a caller's buffer. It holds no I/O; its per-export state is small and
//! bounded (a scratch buffer, the zone's cached offset, the readable
//! profile's user directory), so the memory of an export is one buffer,
//! independent of the row count, and a job resuming from a checkpoint only
//! needs to know how many records it already wrote (JSON's separator
//! depends on it).
//!
//! - [`csv`]: the raw profile (the 17 stored columns, or `--fields`) and
//!   the cell rules (RFC 4180 quoting, formula guard).
//! - [`readable`]: the readable profile.
//! - `json`: the event JSON shape.
//! - [`redact`]: sensitive keys and credentials, applied before any
//!   formatting.
//! - [`scan`]: reading stored JSON text without building trees.
//!
//! This module never reads the database (the readable profile's user
//! directory is handed in).

pub mod csv;
mod json;
pub mod readable;
pub mod redact;
pub mod scan;
mod special;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::audit::Record;
use crate::time::Zone;

pub use self::csv::{push_csv_cell, CsvOptions, CsvProfile, Fields};
pub use self::redact::{RedactionConfig, Redactor};

crate::util::text_enum! {
    /// An output format.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
    pub enum Format ("format") {
        // Variant docs as `#[doc = concat!(..)]`: clap ignores them there, while
        // a `///` would become the value's help and change the `--help` output.
        #[doc = concat!("CSV (RFC 4180), in the raw or the readable profile (`text/csv`).")]
        Csv = "csv",
        #[doc = concat!("One JSON array of events (`application/json`).")]
        Json = "json",
        #[doc = concat!(
            "JSON Lines: one event object per line (`application/x-ndjson`); ",
            "also accepted as `ndjson`."
        )]
        #[value(alias = "ndjson")]
        Jsonl = "jsonl",
    }
}

impl Format {
    /// File extension (without the dot).
    pub fn extension(self) -> &'static str {
        self.as_str()
    }

    /// HTTP Content-Type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
            Format::Jsonl => "application/x-ndjson",
        }
    }

    /// A format as people type it: any case, surrounding space, and
    /// `ndjson` for JSONL.
    pub fn parse_lenient(s: &str) -> Result<Format, crate::util::UnknownName> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ndjson" => Ok(Format::Jsonl),
            other => {
                other
                    .parse()
                    .map_err(|e: crate::util::UnknownName| crate::util::UnknownName {
                        got: s.to_string(),
                        ..e
                    })
            }
        }
    }
}

/// How an export is written, beyond its format: CSV options, the time
/// zone of timestamps, redaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportOptions {
    /// CSV settings; must stay at their defaults for JSON and JSONL.
    pub csv: CsvOptions,
    /// IANA zone timestamps are rendered in (with their offset); `None`:
    /// UTC with `Z`.
    pub timezone: Option<String>,
    /// `false` only when an admin turned redaction off.
    pub redact: Redact,
}

/// Whether sensitive values are redacted (on unless turned off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redact(pub bool);

impl Default for Redact {
    fn default() -> Self {
        Redact(true)
    }
}

/// A bad export option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OptionError {
    /// `invalid_timezone`, `unknown_field`, `invalid_csv_options`.
    pub code: &'static str,
    /// The option it is about (`timezone`, `csv.fields`, `csv.profile`).
    pub field: &'static str,
    /// One-line explanation for people.
    pub message: String,
}

impl ExportOptions {
    /// Checks the options against `format`; the zone by name.
    pub fn check(&self, format: Format) -> Result<(), OptionError> {
        if let Some(tz) = &self.timezone {
            if Zone::parse(tz).is_none() {
                return Err(OptionError {
                    code: "invalid_timezone",
                    field: "timezone",
                    message: format!(
                        "{tz:?} is not an IANA time zone name (e.g. Europe/Paris, UTC)"
                    ),
                });
            }
        }
        if format != Format::Csv && self.csv != CsvOptions::default() {
            return Err(OptionError {
                code: "invalid_csv_options",
                field: "csv",
                message: "csv options apply to format csv only".into(),
            });
        }
        if self.csv.profile == CsvProfile::Readable && self.csv.fields.is_some() {
            return Err(OptionError {
                code: "invalid_csv_options",
                field: "csv.fields",
                message: "fields choose the columns of the raw profile; the readable profile has fixed columns".into(),
            });
        }
        Ok(())
    }

    /// The options stored with a job (`export_jobs.options`), beside the
    /// CSV BOM and guard columns.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&StoredOptions {
            profile: self.csv.profile,
            fields: self
                .csv
                .fields
                .map(|f| f.names().into_iter().map(String::from).collect()),
            timezone: self.timezone.clone(),
            redact: self.redact.0,
        })
        .expect("options serialize")
    }

    /// Reads stored options back (a missing value: the defaults).
    pub fn from_stored(
        json: Option<&str>,
        bom: bool,
        formula_guard: bool,
    ) -> Result<ExportOptions, String> {
        let s: StoredOptions = match json {
            None => StoredOptions::default(),
            Some(j) => {
                serde_json::from_str(j).map_err(|e| format!("stored export options: {e}"))?
            }
        };
        let fields = match &s.fields {
            None => None,
            Some(names) => Some(Fields::parse(names).map_err(|e| e.message)?),
        };
        Ok(ExportOptions {
            csv: CsvOptions {
                bom,
                formula_guard,
                profile: s.profile,
                fields,
            },
            timezone: s.timezone,
            redact: Redact(s.redact),
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(default)]
struct StoredOptions {
    profile: CsvProfile,
    fields: Option<Vec<String>>,
    timezone: Option<String>,
    redact: bool,
}

impl Default for StoredOptions {
    fn default() -> Self {
        StoredOptions {
            profile: CsvProfile::Raw,
            fields: None,
            timezone: None,
            redact: true,
        }
    }
}

/// Encodes records in one format with one set of options.
#[derive(Debug, Clone)]
pub struct Encoder {
    /// The format written.
    pub format: Format,
    /// The options it writes with (CSV settings, time zone, redaction).
    pub opts: ExportOptions,
    zone: Zone,
    redactor: Option<Arc<Redactor>>,
    directory: Arc<readable::Directory>,
    /// Redacted JSON columns of the current record.
    scratch: Vec<u8>,
    scratch2: Vec<u8>,
    /// The readable profile's per-row buffers.
    readable: readable::Scratch,
}

impl Encoder {
    /// An encoder with the built-in redaction and no user directory.
    pub fn new(format: Format, opts: ExportOptions) -> Encoder {
        Encoder::with(
            format,
            opts,
            Arc::new(Redactor::default()),
            Default::default(),
        )
    }

    /// An encoder with a configured redactor and (readable profile) the
    /// exported organization's users. An unknown zone renders in UTC:
    /// options are checked before an export starts.
    pub fn with(
        format: Format,
        opts: ExportOptions,
        redactor: Arc<Redactor>,
        directory: Arc<readable::Directory>,
    ) -> Encoder {
        let zone = opts
            .timezone
            .as_deref()
            .and_then(Zone::parse)
            .unwrap_or_default();
        Encoder {
            format,
            redactor: opts.redact.0.then_some(redactor),
            opts,
            zone,
            directory,
            scratch: Vec::with_capacity(4096),
            scratch2: Vec::with_capacity(4096),
            readable: Default::default(),
        }
    }

    /// The zone timestamps are written in.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// Bytes before the first record (CSV: BOM and header row; JSON: `[`).
    pub fn header(&self, out: &mut Vec<u8>) {
        match self.format {
            Format::Csv => csv::header(out, &self.opts.csv, &self.zone),
            Format::Json => out.extend_from_slice(b"[\n"),
            Format::Jsonl => {}
        }
    }

    /// The bytes of record number `index` (0-based) of this export.
    pub fn record(&mut self, out: &mut Vec<u8>, r: &Record<'_>, index: u64) {
        // The JSON columns, redacted once for whichever format.
        let (changed, details) = match &self.redactor {
            None => (r.changed_data, r.details),
            Some(red) => {
                self.scratch.clear();
                self.scratch2.clear();
                if let Some(c) = r.changed_data {
                    red.json_into(c, &mut self.scratch);
                }
                if let Some(d) = r.details {
                    red.json_into(d, &mut self.scratch2);
                }
                (
                    r.changed_data.map(|_| utf8(&self.scratch)),
                    r.details.map(|_| utf8(&self.scratch2)),
                )
            }
        };
        let text: fn(&str) -> &str = if self.redactor.is_some() {
            redact::text
        } else {
            |v| v
        };
        match self.format {
            Format::Csv => match self.opts.csv.profile {
                CsvProfile::Raw => {
                    csv::record(out, r, &self.opts.csv, &self.zone, changed, details, text)
                }
                CsvProfile::Readable => readable::record(
                    out,
                    r,
                    details,
                    changed,
                    &self.zone,
                    &self.directory,
                    self.opts.csv.formula_guard,
                    text,
                    &mut self.readable,
                ),
            },
            Format::Json => {
                if index > 0 {
                    out.extend_from_slice(b",\n");
                }
                json::event(out, r, &self.zone, changed, details, text);
            }
            Format::Jsonl => {
                json::event(out, r, &self.zone, changed, details, text);
                out.push(b'\n');
            }
        }
    }

    /// What `record` puts before every record but the first (JSON: `,\n`).
    pub fn separator(&self) -> &'static [u8] {
        match self.format {
            Format::Json => b",\n",
            Format::Csv | Format::Jsonl => b"",
        }
    }

    /// Bytes after the last of `count` records (JSON: `]`).
    pub fn footer(&self, out: &mut Vec<u8>, count: u64) {
        if self.format == Format::Json {
            if count > 0 {
                out.push(b'\n');
            }
            out.extend_from_slice(b"]\n");
        }
    }
}

/// The scratch buffers only ever hold UTF-8 (JSON text from the database,
/// rewritten on ASCII boundaries).
fn utf8(b: &[u8]) -> &str {
    simdutf8::basic::from_utf8(b).unwrap_or("")
}
