//! Reading stored JSON text without building a tree: the members of an
//! object as (name, raw value text) in order, and what a raw value is.
//! The readable CSV profile reads every row's `details` and
//! `changed_data` this way, which costs a scan instead of an allocation
//! per node.

use std::borrow::Cow;

/// The index after any white space from `i`.
pub(super) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The index after the string starting at `i` (its opening quote).
pub(super) fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// The index after the value starting at `i` (any kind).
pub(super) fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// A JSON string literal's text (`raw` includes the quotes).
pub fn string(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// The members of the object `json`, in order: (name, raw value text).
/// `None` when `json` is not an object.
pub fn members(json: &str) -> Option<Vec<(Cow<'_, str>, &str)>> {
    let b = json.as_bytes();
    let mut i = skip_ws(b, 0);
    if *b.get(i)? != b'{' {
        return None;
    }
    let mut out = Vec::new();
    i = skip_ws(b, i + 1);
    if *b.get(i)? == b'}' {
        return Some(out);
    }
    loop {
        let kend = string_end(b, i)?;
        let key = string(json.get(i..kend)?)?;
        i = skip_ws(b, kend);
        if *b.get(i)? != b':' {
            return None;
        }
        i = skip_ws(b, i + 1);
        let vend = value_end(b, i)?;
        out.push((key, json.get(i..vend)?));
        i = skip_ws(b, vend);
        match *b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return Some(out),
            _ => return None,
        }
    }
}

/// What a raw value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// A number.
    Number,
    /// A string (still quoted and escaped in the raw text).
    String,
    /// An array `[...]`.
    Array,
    /// An object `{...}`.
    Object,
}

/// The kind of the valid JSON value `raw` (no leading white space), told by
/// its first byte; empty text counts as null.
pub fn kind(raw: &str) -> Kind {
    match raw.as_bytes().first() {
        Some(b'"') => Kind::String,
        Some(b'{') => Kind::Object,
        Some(b'[') => Kind::Array,
        Some(b't' | b'f') => Kind::Bool,
        Some(b'n') | None => Kind::Null,
        _ => Kind::Number,
    }
}

/// The number of elements of the array `raw`.
pub fn array_len(raw: &str) -> usize {
    let b = raw.as_bytes();
    let mut i = skip_ws(b, 1);
    if b.get(i) == Some(&b']') {
        return 0;
    }
    let mut n = 0;
    while let Some(end) = value_end(b, i) {
        n += 1;
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            _ => break,
        }
    }
    n
}

/// A scalar raw value as text for people (strings unquoted); `None` for
/// null, arrays and objects.
pub fn scalar_text(raw: &str) -> Option<Cow<'_, str>> {
    match kind(raw) {
        Kind::String => string(raw),
        Kind::Number | Kind::Bool => Some(Cow::Borrowed(raw)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_come_in_order_with_raw_values() {
        let m = members(r#"{"b":1,"a":{"x":[1,"]"]},"c\"q":"s\n","d":null, "e" : [ ] }"#).unwrap();
        let names: Vec<&str> = m.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(names, ["b", "a", "c\"q", "d", "e"]);
        assert_eq!(m[1].1, r#"{"x":[1,"]"]}"#);
        assert_eq!(string(m[2].1).unwrap(), "s\n");
        assert_eq!(kind(m[3].1), Kind::Null);
        assert_eq!(array_len(m[4].1), 0);
        assert_eq!(array_len(r#"[1,{"a":[2,3]},"x"]"#), 3);
        assert!(members("[1]").is_none());
        assert!(members("{oops").is_none());
        assert_eq!(scalar_text("2.50").unwrap(), "2.50");
        assert!(scalar_text("{}").is_none());
    }
}
