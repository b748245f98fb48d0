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
    // The current element: its bytes from earlier buffers in `elem`, and
    // from `seg` on in the current one (copied a buffer at a time, not a
    // byte at a time: most of a file is copied exactly once).
    let mut elem: Vec<u8> = Vec::new();
    let mut started = false;
    let mut seg = 0usize;
    let mut elem_line = 0u64;
    loop {
        let buf = r.fill_buf().map_err(ArrayError::Io)?;
        if buf.is_empty() {
            return fail(&mut f, line, "the JSON array is not closed (missing `]`)");
        }
        let n = buf.len();
        let mut i = 0;
        // Ends the current element just before `buf[i - 1]` (its `,` or
        // the closing `]`).
        macro_rules! emit {
            () => {
                if !started {
                    fail(&mut f, line, "empty array element")?;
                } else {
                    let out = if elem.is_empty() {
                        // All in this buffer: no copy.
                        f(elem_line, Ok(buf[seg..i - 1].trim_ascii_end()))
                    } else {
                        elem.extend_from_slice(&buf[seg..i - 1]);
                        let out = f(elem_line, Ok(elem.trim_ascii_end()));
                        elem.clear();
                        out
                    };
                    out.map_err(ArrayError::Stop)?;
                }
            };
        }
        while i < n {
            if in_string && !escaped {
                // Skip a run of plain string bytes at once.
                i += memchr::memchr3(b'"', b'\\', b'\n', &buf[i..]).unwrap_or(n - i);
                if i == n {
                    break;
                }
            }
            let b = buf[i];
            i += 1;
            if b == b'\n' {
                line += 1;
            }
            if in_string {
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
                (_, b' ' | b'\t' | b'\r' | b'\n') if !started => {}
                (0, b'[') => depth = 1,
                (1, b',') => {
                    emit!();
                    started = false;
                    after_comma = true;
                }
                (1, b']') => {
                    // `[]` has no element; `[…,]` ends in an empty one.
                    if started || after_comma {
                        emit!();
                    }
                    let rest = buf[i..].to_vec();
                    r.consume(n);
                    return trailing(r, rest, line, &mut f);
                }
                _ => {
                    if !started {
                        started = true;
                        seg = i - 1;
                        elem_line = line;
                        after_comma = false;
                    }
                    match b {
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => depth = depth.saturating_sub(1).max(1),
                        b'"' => in_string = true,
                        _ => {}
                    }
                }
            }
        }
        if started {
            elem.extend_from_slice(&buf[seg..n]);
            seg = 0;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    /// Every element and error with its line, reading `text` through a
    /// buffer of `cap` bytes.
    fn split(text: &str, cap: usize) -> Vec<(u64, Result<String, String>)> {
        let mut out = Vec::new();
        let r = BufReader::with_capacity(cap, text.as_bytes());
        let res = for_each_array_element(r, |line, e| {
            out.push((
                line,
                e.map(|b| String::from_utf8(b.to_vec()).unwrap())
                    .map_err(|e| e.message),
            ));
            Ok(())
        });
        assert!(res.is_ok());
        out
    }

    #[test]
    fn elements_are_the_same_whatever_the_buffer_size() {
        let text =
            "[\n{\"a\":\"x,]\\\"y\",\"b\":[1,{\"c\":2}]},\n  \"s\\\\\" , 3 ,\n\n[ ] ,{}\n]\n";
        let want = split(text, 1 << 16);
        assert_eq!(
            want,
            vec![
                (2, Ok(r#"{"a":"x,]\"y","b":[1,{"c":2}]}"#.to_string())),
                (3, Ok(r#""s\\""#.to_string())),
                (3, Ok("3".to_string())),
                (5, Ok("[ ]".to_string())),
                (5, Ok("{}".to_string())),
            ]
        );
        for cap in 1..24 {
            assert_eq!(split(text, cap), want, "buffer of {cap} bytes");
        }
        // Structure errors, also across buffers.
        for cap in [1, 3, 1 << 16] {
            let errs = split("[1,,2,]", cap);
            assert_eq!(errs[1], (1, Err("empty array element".to_string())));
            assert_eq!(
                errs.last().unwrap().1,
                Err("empty array element".to_string())
            );
            let open = split("[1, \"]", cap);
            assert_eq!(
                open.last().unwrap().1,
                Err("the JSON array is not closed (missing `]`)".to_string())
            );
            let after = split("[1]\n x", cap);
            assert_eq!(
                after.last().unwrap(),
                &(2, Err("text after the closing `]`".to_string()))
            );
        }
    }
}
