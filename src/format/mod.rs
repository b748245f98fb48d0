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

use std::fmt;
use std::str::FromStr;

use crate::audit::Record;

pub use self::csv::{push_csv_cell, CsvOptions};

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Csv,
    Json,
    Jsonl,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Csv, Format::Json, Format::Jsonl];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
        }
    }

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
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown format name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {0:?}: expected csv, json or jsonl")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            _ => Err(UnknownFormat(s.to_string())),
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
