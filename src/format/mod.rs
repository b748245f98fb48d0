//! Streaming output formats: CSV (raw profile), JSON and JSONL.
//!
//! An [`Encoder`] appends bytes for the header, one record, and the footer
//! to a caller's buffer. It holds no I/O and no per-export state beyond the
//! options, so the memory of an export is one buffer, independent of the row
//! count, and a job resuming from a checkpoint only needs to know how many
//! records it already wrote (JSON's separator depends on it).
//!
//! This module never reads the database.

mod csv;
mod json;

use crate::audit::Record;

pub use self::csv::{push_csv_cell, CsvOptions};

crate::util::text_enum! {
    /// An output format.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
    pub enum Format ("format") {
        Csv = "csv",
        Json = "json",
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

/// Encodes records in one format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoder {
    pub format: Format,
    pub csv: CsvOptions,
}

impl Encoder {
    pub fn new(format: Format, csv: CsvOptions) -> Encoder {
        Encoder { format, csv }
    }

    /// Bytes before the first record (CSV: BOM and header row; JSON: `[`).
    pub fn header(&self, out: &mut Vec<u8>) {
        match self.format {
            Format::Csv => csv::header(out, &self.csv),
            Format::Json => out.extend_from_slice(b"[\n"),
            Format::Jsonl => {}
        }
    }

    /// The bytes of record number `index` (0-based) of this export.
    pub fn record(&self, out: &mut Vec<u8>, r: &Record<'_>, index: u64) {
        match self.format {
            Format::Csv => csv::record(out, r, &self.csv),
            Format::Json => {
                if index > 0 {
                    out.extend_from_slice(b",\n");
                }
                json::event(out, r);
            }
            Format::Jsonl => {
                json::event(out, r);
                out.push(b'\n');
            }
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
