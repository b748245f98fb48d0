//! CSV, raw profile: the 17 stored columns in [`COLUMNS`] order, RFC 4180
//! quoting, CRLF row ends, optional UTF-8 BOM, and a formula-injection guard.
//!
//! The guard exists because audit data is attacker-controlled (a user can
//! name a page `=HYPERLINK(...)`) and compliance officers open exports in
//! spreadsheets: any cell whose first non-space character is `=`, `+`, `-`,
//! `@`, tab or carriage return is prefixed with `'` so it is read as text.

use crate::audit::{Record, COLUMNS};

/// CSV options; both default to on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvOptions {
    /// Start the file with a UTF-8 byte order mark (so Excel reads UTF-8).
    pub bom: bool,
    /// Prefix formula-like cells with `'`.
    pub formula_guard: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            bom: true,
            formula_guard: true,
        }
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

pub(super) fn header(out: &mut Vec<u8>, opts: &CsvOptions) {
    if opts.bom {
        out.extend_from_slice(BOM);
    }
    for (i, c) in COLUMNS.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(c.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

pub(super) fn record(out: &mut Vec<u8>, r: &Record<'_>, opts: &CsvOptions) {
    let guard = opts.formula_guard;
    push_int(out, r.id);
    out.push(b',');
    crate::time::push_rfc3339_ms(out, r.occurred_at);
    out.push(b',');
    push_csv_cell(out, r.organization_id, guard);
    out.push(b',');
    push_csv_cell(out, r.stream, guard);
    out.push(b',');
    push_csv_cell(out, r.action, guard);
    for cell in r.optional_columns() {
        out.push(b',');
        if let Some(v) = cell {
            push_csv_cell(out, v, guard);
        }
    }
    out.extend_from_slice(b"\r\n");
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

/// True for bytes that force a CSV cell to be quoted.
const fn quote_table() -> [bool; 256] {
    let mut t = [false; 256];
    t[b',' as usize] = true;
    t[b'"' as usize] = true;
    t[b'\n' as usize] = true;
    t[b'\r' as usize] = true;
    t
}
static NEEDS_QUOTE: [bool; 256] = quote_table();

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
    if !bytes.iter().any(|&b| NEEDS_QUOTE[b as usize]) {
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
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'"' {
            out.extend_from_slice(&bytes[start..=i]);
            out.push(b'"');
            start = i + 1;
        }
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
