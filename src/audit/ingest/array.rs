//! Reading one top-level JSON array (what `export --format json` writes)
//! element by element, without parsing, so memory holds one element at a
//! time however large the file; each element carries the line it starts on.

use std::fs::File;
use std::io::{BufRead, BufReader};

use super::{FieldError, IngestError};

/// Whether the file, past a BOM and white space, starts with `[` (looks at
/// the first buffer only); consumes the BOM if so, nothing otherwise.
pub(super) fn starts_with_array(r: &mut BufReader<File>) -> std::io::Result<bool> {
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

pub(super) enum ArrayError {
    Io(std::io::Error),
    Stop(IngestError),
}

/// Splits a top-level JSON array into its elements without parsing them,
/// so memory holds one element at a time however large the file is. Calls
/// `f(line, element bytes)` with the line each element starts on; a
/// structural problem (an empty element, no closing bracket, text after
/// it) is a line error, and the last two end the read.
pub(super) fn for_each_array_element(
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
        let mut i = 0;
        while i < n {
            if in_string && !escaped {
                // Copy a run of plain string bytes at once: most of a
                // file is inside strings.
                let run = memchr::memchr3(b'"', b'\\', b'\n', &buf[i..]).unwrap_or(n - i);
                if run > 0 {
                    elem.extend_from_slice(&buf[i..i + run]);
                    i += run;
                    continue;
                }
            }
            let b = buf[i];
            i += 1;
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
                    let rest = buf[i..].to_vec();
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
