//! CSV, raw profile: the 17 stored columns in [`COLUMNS`] order (or the
//! ones `--fields` chooses, in its order), RFC 4180 quoting, CRLF row ends,
//! optional UTF-8 BOM, and a formula-injection guard — also the cell rules
//! the readable profile uses.
//!
//! The guard exists because audit data is attacker-controlled (a user can
//! name a page `=HYPERLINK(...)`) and compliance officers open exports in
//! spreadsheets: any cell whose first non-space character is `=`, `+`, `-`,
//! `@`, tab or carriage return is prefixed with `'` so it is read as text.

use serde::{Deserialize, Serialize};

use super::OptionError;
use crate::audit::{Record, COLUMNS};
use crate::time::Zone;

/// Which columns a CSV export has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CsvProfile {
    /// The stored columns, lossless (re-ingestable without the guard).
    #[default]
    Raw,
    /// Columns for people: event labels, actors, flattened details.
    Readable,
}

impl CsvProfile {
    /// The profile's name: `raw` or `readable`.
    pub fn as_str(self) -> &'static str {
        match self {
            CsvProfile::Raw => "raw",
            CsvProfile::Readable => "readable",
        }
    }

    /// A profile by name (surrounding space ignored); another name is an
    /// `invalid_csv_options` error about `csv.profile`.
    pub fn parse(s: &str) -> Result<CsvProfile, OptionError> {
        match s.trim() {
            "raw" => Ok(CsvProfile::Raw),
            "readable" => Ok(CsvProfile::Readable),
            other => Err(OptionError {
                code: "invalid_csv_options",
                field: "csv.profile",
                message: format!("unknown CSV profile {other:?}: expected raw or readable"),
            }),
        }
    }
}

/// Raw-profile columns chosen and ordered (`--fields`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    /// Indexes into [`COLUMNS`].
    idx: [u8; 17],
    len: u8,
}

impl Fields {
    /// From column names; an unknown one is `unknown_field` naming it.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Fields, OptionError> {
        let mut f = Fields {
            idx: [0; 17],
            len: 0,
        };
        for n in names {
            let n = n.as_ref().trim();
            let Some(i) = COLUMNS.iter().position(|c| *c == n) else {
                return Err(OptionError {
                    code: "unknown_field",
                    field: "csv.fields",
                    message: format!(
                        "unknown field {n:?}; the raw columns are {}",
                        COLUMNS.join(", ")
                    ),
                });
            };
            if f.idx[..f.len as usize].contains(&(i as u8)) {
                return Err(OptionError {
                    code: "invalid_csv_options",
                    field: "csv.fields",
                    message: format!("field {n:?} is listed twice"),
                });
            }
            f.idx[f.len as usize] = i as u8;
            f.len += 1;
        }
        if f.len == 0 {
            return Err(OptionError {
                code: "invalid_csv_options",
                field: "csv.fields",
                message: "name at least one field".into(),
            });
        }
        Ok(f)
    }

    /// The chosen columns' indexes, in order.
    pub fn indexes(&self) -> &[u8] {
        &self.idx[..self.len as usize]
    }

    /// The chosen columns' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.indexes()
            .iter()
            .map(|&i| COLUMNS[i as usize])
            .collect()
    }
}

/// CSV options; BOM and guard default to on, the profile to raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvOptions {
    /// Start the file with a UTF-8 byte order mark (so Excel reads UTF-8).
    pub bom: bool,
    /// Prefix formula-like cells with `'`.
    pub formula_guard: bool,
    /// Which columns: the raw stored ones or the readable ones.
    pub profile: CsvProfile,
    /// Raw profile: these columns only, in this order.
    pub fields: Option<Fields>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            bom: true,
            formula_guard: true,
            profile: CsvProfile::Raw,
            fields: None,
        }
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The header row (BOM first when asked): the timestamp column names its
/// zone when it is not UTC (`occurred_at (Europe/Paris)`).
pub(super) fn header(out: &mut Vec<u8>, opts: &CsvOptions, zone: &Zone) {
    if opts.bom {
        out.extend_from_slice(BOM);
    }
    let names: Vec<&str> = match (opts.profile, &opts.fields) {
        (CsvProfile::Readable, _) => super::readable::COLUMNS.to_vec(),
        (CsvProfile::Raw, Some(f)) => f.names(),
        (CsvProfile::Raw, None) => COLUMNS.to_vec(),
    };
    for (i, c) in names.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(c.as_bytes());
        if !zone.is_utc() && matches!(*c, "occurred_at" | "timestamp") {
            out.extend_from_slice(format!(" ({})", zone.name()).as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// One raw-profile row; `changed` and `details` are the JSON columns as
/// exported (redacted), `text` the treatment of the text columns.
pub(super) fn record(
    out: &mut Vec<u8>,
    r: &Record<'_>,
    opts: &CsvOptions,
    zone: &Zone,
    changed: Option<&str>,
    details: Option<&str>,
    text: fn(&str) -> &str,
) {
    let guard = opts.formula_guard;
    if let Some(f) = &opts.fields {
        for (n, &i) in f.indexes().iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            cell(out, r, i as usize, zone, changed, details, text, guard);
        }
        out.extend_from_slice(b"\r\n");
        return;
    }
    // All columns, unrolled: the hot path of the default export.
    push_int(out, r.id);
    out.push(b',');
    zone.push_rfc3339(out, r.occurred_at);
    out.push(b',');
    push_csv_cell(out, r.organization_id, guard);
    out.push(b',');
    push_csv_cell(out, r.stream, guard);
    out.push(b',');
    push_csv_cell(out, r.action, guard);
    let cols = r.optional_columns();
    for v in &cols[..10] {
        out.push(b',');
        if let Some(v) = v {
            push_csv_cell(out, text(v), guard);
        }
    }
    for v in [changed, details] {
        out.push(b',');
        if let Some(v) = v {
            push_csv_cell(out, v, guard);
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Column `i` of [`COLUMNS`] for one record.
#[allow(clippy::too_many_arguments)]
fn cell(
    out: &mut Vec<u8>,
    r: &Record<'_>,
    i: usize,
    zone: &Zone,
    changed: Option<&str>,
    details: Option<&str>,
    text: fn(&str) -> &str,
    guard: bool,
) {
    match i {
        0 => push_int(out, r.id),
        1 => zone.push_rfc3339(out, r.occurred_at),
        2 => push_csv_cell(out, r.organization_id, guard),
        3 => push_csv_cell(out, r.stream, guard),
        4 => push_csv_cell(out, r.action, guard),
        15 => push_csv_cell(out, changed.unwrap_or(""), guard),
        16 => push_csv_cell(out, details.unwrap_or(""), guard),
        _ => {
            if let Some(v) = r.optional_columns()[i - 5] {
                push_csv_cell(out, text(v), guard);
            }
        }
    }
}

fn push_int(out: &mut Vec<u8>, v: i64) {
    let mut buf = itoa_buf(v);
    out.extend_from_slice(buf.as_bytes_mut());
}

/// Decimal digits of `v` without allocating.
fn itoa_buf(v: i64) -> IntBuf {
    let mut b = IntBuf {
        bytes: [0; 20],
        start: 20,
    };
    let neg = v < 0;
    let mut n = v.unsigned_abs();
    loop {
        b.start -= 1;
        b.bytes[b.start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if neg {
        b.start -= 1;
        b.bytes[b.start] = b'-';
    }
    b
}

struct IntBuf {
    bytes: [u8; 20],
    start: usize,
}

impl IntBuf {
    fn as_bytes_mut(&mut self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

/// Whether a cell must be quoted: it holds a comma, quote, CR or LF.
fn needs_quote(bytes: &[u8]) -> bool {
    super::special::csv_special(bytes, 0) < bytes.len()
}

fn is_formula_like(v: &str) -> bool {
    match v.bytes().find(|&b| b != b' ') {
        Some(b) => matches!(b, b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r'),
        None => false,
    }
}

/// Appends one CSV cell: guarded if asked and formula-like, quoted (with
/// doubled quotes) if it contains a comma, quote, CR or LF.
pub fn push_csv_cell(out: &mut Vec<u8>, v: &str, formula_guard: bool) {
    let guard = formula_guard && is_formula_like(v);
    let bytes = v.as_bytes();
    if !needs_quote(bytes) {
        if guard {
            out.push(b'\'');
        }
        out.extend_from_slice(bytes);
        return;
    }
    out.push(b'"');
    if guard {
        out.push(b'\'');
    }
    let mut start = 0;
    for i in memchr::memchr_iter(b'"', bytes) {
        out.extend_from_slice(&bytes[start..=i]);
        out.push(b'"');
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(v: &str, guard: bool) -> String {
        let mut out = Vec::new();
        push_csv_cell(&mut out, v, guard);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn needs_quote_finds_each_special_byte_at_every_position() {
        for len in 0..40 {
            let plain: Vec<u8> = (0..len).map(|i| b"az09 ;\t'\x7f\xff"[i % 10]).collect();
            assert!(!needs_quote(&plain), "{plain:?}");
            for at in 0..len {
                for c in [b',', b'"', b'\n', b'\r'] {
                    let mut v = plain.clone();
                    v[at] = c;
                    assert!(needs_quote(&v), "{v:?}");
                }
            }
        }
        // Bytes next to the special ones in value do not count.
        assert!(!needs_quote(b"+-./!#\x0b\x0c\x0e\x2b\x2d\xac\xa2\x8d\x8a"));
    }

    #[test]
    fn quoting_follows_rfc_4180() {
        assert_eq!(cell("plain", true), "plain");
        assert_eq!(cell("a,b", true), "\"a,b\"");
        assert_eq!(cell("say \"hi\"", true), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines", true), "\"two\nlines\"");
        assert_eq!(cell("cr\rlf", true), "\"cr\rlf\"");
        assert_eq!(cell("tab\there", true), "tab\there");
        assert_eq!(cell("日本語 🚀", true), "日本語 🚀");
        assert_eq!(cell("", true), "");
    }

    #[test]
    fn formula_guard_prefixes_dangerous_cells() {
        for v in ["=1+1", "+1 555", "-2 days", "@channel", "\tx", "  =cmd"] {
            assert_eq!(cell(v, true), format!("'{v}"), "{v:?}");
            assert_eq!(cell(v, false), v);
        }
        assert_eq!(cell("\rx", true), "\"'\rx\"");
        assert_eq!(
            cell("=HYPERLINK(\"a\",\"b\")", true),
            "\"'=HYPERLINK(\"\"a\"\",\"\"b\"\")\""
        );
        for v in ["a=b", "x-1", "1+1", "mail@x", "   ", " a"] {
            assert_eq!(cell(v, true), v, "{v:?} should not be guarded");
        }
    }

    #[test]
    fn integers_format_like_display() {
        for v in [0i64, 7, -7, 1234567890, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            push_int(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
    }
}
