//! Redaction, applied before any formatting, in every format: the value
//! under a key that looks sensitive (`password`, `token`, `secretRef`,
//! `*_secret`, … matched case-insensitively, and any key ending in such
//! words however spelled: `accessToken`, `clientSecret`, `passwordHash`;
//! extendable with `[redaction] keys`) becomes `"[REDACTED]"`, however deep in objects and
//! arrays; so does a string that is itself a credential (`Bearer …`,
//! `Basic …`) under any key.
//!
//! The JSON columns are rewritten as text in one pass, copying everything
//! else byte for byte: every other key and value, key order, number
//! spelling and white space stay exactly as stored (lossless), and a value
//! with nothing to redact costs one scan, no allocation.

use serde::{Deserialize, Serialize};

use super::scan::{skip_ws, string_end, value_end};
use words::{sensitive_words, WORD_LAST};

mod verdicts;
mod words;

/// What replaces a redacted value.
pub const REDACTED: &str = "[REDACTED]";

/// The built-in sensitive keys (case-insensitive; `*` at either end is a
/// wildcard).
pub const DEFAULT_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "secretref",
    "secret_ref",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "x-api-key",
    "access_key",
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "private_key",
    "privatekey",
    "client_secret",
    "credential",
    "*_secret",
    "*_token",
    "*_password",
    "*_api_key",
    "*_private_key",
    "*-token",
    "*-secret",
];

/// `[redaction]` settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedactionConfig {
    /// Keys redacted besides the built-in ones (same matching).
    pub keys: Vec<String>,
}

/// Decides which keys and values are sensitive.
#[derive(Debug, Clone)]
pub struct Redactor {
    /// Exact keys by length (index 63: 63 bytes and longer), so a key is
    /// only compared with those of its own length.
    exact: Vec<Vec<String>>,
    prefixes: Vec<String>,
    suffixes: Vec<String>,
    /// Quick rejections, since nearly every key is not sensitive: the
    /// lengths of the exact keys, the first bytes of the prefixes and the
    /// last bytes of the suffixes (lowercase).
    exact_len: [bool; 64],
    first: [bool; 256],
    last: [bool; 256],
    /// Tells this redactor's remembered verdicts from another's.
    id: u64,
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new(&[])
    }
}

impl Redactor {
    /// The built-in keys plus `extra`.
    pub fn new(extra: &[String]) -> Redactor {
        let mut r = Redactor {
            exact: vec![Vec::new(); 64],
            prefixes: Vec::new(),
            suffixes: Vec::new(),
            exact_len: [false; 64],
            first: [false; 256],
            last: [false; 256],
            id: verdicts::new_id(),
        };
        for k in DEFAULT_KEYS
            .iter()
            .map(|s| s.to_string())
            .chain(extra.iter().cloned())
        {
            let k = k.trim().to_ascii_lowercase();
            if let Some(s) = k.strip_prefix('*') {
                if !s.is_empty() {
                    r.suffixes.push(s.to_string());
                }
            } else if let Some(p) = k.strip_suffix('*') {
                if !p.is_empty() {
                    r.prefixes.push(p.to_string());
                }
            } else if !k.is_empty() {
                r.exact[k.len().min(63)].push(k);
            }
        }
        for (len, keys) in r.exact.iter().enumerate() {
            r.exact_len[len] = !keys.is_empty();
        }
        for p in &r.prefixes {
            r.first[p.as_bytes()[0] as usize] = true;
        }
        for s in &r.suffixes {
            r.last[s.as_bytes()[s.len() - 1] as usize] = true;
        }
        r
    }

    /// Whether a value under `key` is hidden.
    pub fn is_sensitive_key(&self, key: &str) -> bool {
        let n = key.len();
        let b = key.as_bytes();
        let (Some(&f), Some(&l)) = (b.first(), b.last()) else {
            return false;
        };
        // The word rule ignores trailing separators (`password_`).
        let word_l = b
            .iter()
            .rev()
            .find(|c| !matches!(c, b'_' | b'-' | b'.' | b' '))
            .copied()
            .unwrap_or(l);
        if WORD_LAST[word_l.to_ascii_lowercase() as usize] && sensitive_words(key) {
            return true;
        }
        // Each list is only walked when the key could be in it: this runs
        // for every key of every exported row.
        let (f, l) = (f.to_ascii_lowercase(), l.to_ascii_lowercase());
        (self.exact_len[n.min(63)]
            && self.exact[n.min(63)]
                .iter()
                .any(|e| e.eq_ignore_ascii_case(key)))
            || (self.last[l as usize]
                && self.suffixes.iter().any(|s| {
                    n > s.len()
                        && key.is_char_boundary(n - s.len())
                        && key[n - s.len()..].eq_ignore_ascii_case(s)
                }))
            || (self.first[f as usize]
                && self.prefixes.iter().any(|p| {
                    n > p.len()
                        && key.is_char_boundary(p.len())
                        && key[..p.len()].eq_ignore_ascii_case(p)
                }))
    }

    /// [`Redactor::is_sensitive_key`], remembered per thread: the rows of
    /// an export repeat the same few keys.
    fn is_sensitive_key_cached(&self, key: &str) -> bool {
        verdicts::verdict(self.id, key, |k| self.is_sensitive_key(k))
    }

    /// Whether a string is itself a credential (`Bearer …`, `Basic …`).
    pub fn is_credential(value: &str) -> bool {
        may_start_credential(value.as_bytes()) && is_credential_full(value)
    }

    /// Appends the JSON text `json` to `out` with sensitive values replaced
    /// by `"[REDACTED]"`. Text that is not JSON is copied unchanged (the
    /// database only holds valid JSON).
    pub fn json_into(&self, json: &str, out: &mut Vec<u8>) {
        let b = json.as_bytes();
        let mut w = Rewrite {
            text: json,
            src: b,
            out,
            copied: 0,
            redactor: self,
        };
        let start = w.out.len();
        match w.value(skip_ws(b, 0), None) {
            Some(_) => w.finish(),
            None => {
                w.out.truncate(start);
                w.out.extend_from_slice(b);
            }
        }
    }

    /// [`Redactor::json_into`] as a string.
    pub fn json(&self, json: &str) -> String {
        let mut out = Vec::with_capacity(json.len());
        self.json_into(json, &mut out);
        String::from_utf8(out).unwrap_or_else(|_| json.to_string())
    }
}

/// The credential rule itself, without the quick rejection.
fn is_credential_full(value: &str) -> bool {
    let b = value.trim_start().as_bytes();
    [b"bearer ".as_slice(), b"basic ".as_slice()]
        .iter()
        .any(|p| b.len() > p.len() && b[..p.len()].eq_ignore_ascii_case(p))
}

/// Whether text starting like `b` could be a credential, possibly behind
/// white space or, in raw JSON, an escape: false for nearly every value
/// (this runs for every field and JSON string of every exported row), so
/// the full check — Unicode white space trimmed, escapes decoded — only
/// runs for the few that start with `b`, `B`, white space, `\` or a
/// non-ASCII byte.
fn may_start_credential(b: &[u8]) -> bool {
    match b.first() {
        None => false,
        // 0x09..=0x0D and space: the ASCII characters `trim_start` removes.
        Some(&c) => !c.is_ascii() || matches!(c, b'b' | b'B' | b'\\' | b' ' | 0x09..=0x0D),
    }
}

/// A top-level text field as exported: itself, or `[REDACTED]` when it is
/// a credential.
pub fn text(value: &str) -> &str {
    if Redactor::is_credential(value) {
        REDACTED
    } else {
        value
    }
}

/// One pass over JSON text: spans are copied lazily, a replaced value
/// writes what came before it, then `"[REDACTED]"`.
struct Rewrite<'a, 'o> {
    /// `src` as text: slices between quotes are taken from it (a `"` is
    /// always a character boundary), never validated as UTF-8 again.
    text: &'a str,
    src: &'a [u8],
    out: &'o mut Vec<u8>,
    copied: usize,
    redactor: &'a Redactor,
}

impl Rewrite<'_, '_> {
    fn replace(&mut self, start: usize, end: usize) {
        self.out.extend_from_slice(&self.src[self.copied..start]);
        self.out.push(b'"');
        self.out.extend_from_slice(REDACTED.as_bytes());
        self.out.push(b'"');
        self.copied = end;
    }

    fn finish(&mut self) {
        self.out.extend_from_slice(&self.src[self.copied..]);
    }

    /// The value at `i` (no leading white space); `key` is the member name
    /// it belongs to, if any. Returns the index after it.
    fn value(&mut self, i: usize, key: Option<bool>) -> Option<usize> {
        let b = self.src;
        let end = match *b.get(i)? {
            b'{' => return self.object(i),
            b'[' => return self.array(i),
            _ => value_end(b, i)?,
        };
        let is_null = &b[i..end] == b"null";
        // A value is stored as sent, escapes included (`\u0042earer …`):
        // one with a backslash is decoded before it is judged.
        let credential = b[i] == b'"'
            && b.get(i + 1..end - 1).is_some_and(may_start_credential)
            && self.text.get(i + 1..end - 1).is_some_and(|raw| {
                if raw.contains('\\') {
                    self.text
                        .get(i..end)
                        .and_then(|quoted| serde_json::from_str::<String>(quoted).ok())
                        .is_some_and(|v| Redactor::is_credential(&v))
                } else {
                    Redactor::is_credential(raw)
                }
            });
        if (key == Some(true) && !is_null) || credential {
            self.replace(i, end);
        }
        Some(end)
    }

    fn object(&mut self, i: usize) -> Option<usize> {
        let b = self.src;
        let mut j = skip_ws(b, i + 1);
        if *b.get(j)? == b'}' {
            return Some(j + 1);
        }
        loop {
            if *b.get(j)? != b'"' {
                return None;
            }
            let kend = string_end(b, j)?;
            let raw = self.text.get(j + 1..kend - 1)?;
            let sensitive = if raw.contains('\\') {
                serde_json::from_str::<String>(self.text.get(j..kend)?)
                    .ok()
                    .is_some_and(|k| self.redactor.is_sensitive_key(&k))
            } else {
                self.redactor.is_sensitive_key_cached(raw)
            };
            j = skip_ws(b, kend);
            if *b.get(j)? != b':' {
                return None;
            }
            j = skip_ws(b, j + 1);
            if sensitive && matches!(b.get(j), Some(b'{' | b'[')) {
                // The whole structure goes: find its end without rewriting inside.
                let end = value_end(b, j)?;
                self.replace(j, end);
                j = end;
            } else {
                j = self.value(j, Some(sensitive))?;
            }
            j = skip_ws(b, j);
            match *b.get(j)? {
                b',' => j = skip_ws(b, j + 1),
                b'}' => return Some(j + 1),
                _ => return None,
            }
        }
    }

    fn array(&mut self, i: usize) -> Option<usize> {
        let b = self.src;
        let mut j = skip_ws(b, i + 1);
        if *b.get(j)? == b']' {
            return Some(j + 1);
        }
        loop {
            j = self.value(j, None)?;
            j = skip_ws(b, j);
            match *b.get(j)? {
                b',' => j = skip_ws(b, j + 1),
                b']' => return Some(j + 1),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(json: &str) -> String {
        Redactor::default().json(json)
    }

    #[test]
    fn sensitive_keys_are_redacted_at_any_depth_and_the_rest_is_byte_identical() {
        let src = r#"{"z":1,"password":"hunter2","nested":{"a":[{"Token":"t1"},{"ok":"x"}],"secretRef":"vault:kv/x"},"n":1e2,"list":[1,2.50,"s"]}"#;
        assert_eq!(
            r(src),
            r#"{"z":1,"password":"[REDACTED]","nested":{"a":[{"Token":"[REDACTED]"},{"ok":"x"}],"secretRef":"[REDACTED]"},"n":1e2,"list":[1,2.50,"s"]}"#
        );
        // Whole structures under a sensitive key go; null stays (nothing to hide).
        assert_eq!(
            r(
                r#"{"credentials":{"username":"u","password":"p"},"password":{"from":"a","to":"b"},"api_key":null}"#
            ),
            r#"{"credentials":{"username":"u","password":"[REDACTED]"},"password":"[REDACTED]","api_key":null}"#
        );
        // A passphrase, however spelled.
        assert_eq!(
            r(r#"{"passphrase":"open sesame","keyPassphrase":"x","passphrase_hint":"h"}"#),
            r#"{"passphrase":"[REDACTED]","keyPassphrase":"[REDACTED]","passphrase_hint":"h"}"#
        );
        // Suffixes, case, escapes in keys, white space kept.
        assert_eq!(
            r("{ \"client_SECRET\" : 5 , \"refresh_token\":[1], \"pass\\u0077ord\":\"x\", \"keep\" : true }"),
            "{ \"client_SECRET\" : \"[REDACTED]\" , \"refresh_token\":\"[REDACTED]\", \"pass\\u0077ord\":\"[REDACTED]\", \"keep\" : true }"
        );
        // Not sensitive: similar-looking keys.
        let keep = r#"{"workflow_key":"k","tokens_used":3,"passenger":"p","author":"a"}"#;
        assert_eq!(r(keep), keep);
    }

    #[test]
    fn credentials_are_redacted_under_any_key() {
        assert_eq!(
            r(
                r#"{"h":"Bearer abc.def","b":["basic dXNlcjpwYXNz","Bearerish"],"s":"the Bearer x"}"#
            ),
            r#"{"h":"[REDACTED]","b":["[REDACTED]","Bearerish"],"s":"the Bearer x"}"#
        );
        assert_eq!(r(r#""Bearer top""#), r#""[REDACTED]""#);
        // Escaped as sent: judged decoded.
        assert_eq!(
            r(r#"{"a":"\tBearer x","b":"\u0042earer y","c":"tab\there"}"#),
            r#"{"a":"[REDACTED]","b":"[REDACTED]","c":"tab\there"}"#
        );
        assert_eq!(text("Basic abc"), REDACTED);
        assert_eq!(text("Basically fine"), "Basically fine");
    }

    #[test]
    fn the_quick_rejection_keeps_every_credential() {
        // Every start the full check could accept passes the quick one.
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            for rest in ["Bearer x", "basic x"] {
                let v = format!("{c}{rest}");
                if is_credential_full(&v) || c == 'b' || c == 'B' {
                    assert!(may_start_credential(v.as_bytes()), "{c:?}");
                }
            }
        }
        // As raw JSON text: an escape may decode to one of them.
        assert_eq!(
            r(r#"["\u0020Bearer x","\u00a0Basic y"]"#),
            r#"["[REDACTED]","[REDACTED]"]"#
        );
        assert_eq!(r(r#"["\u000bBearer x"]"#), r#"["[REDACTED]"]"#);
        assert_eq!(text("\u{a0}Bearer x"), REDACTED);
        assert_eq!(text("\u{b}basic x"), REDACTED);
        assert_eq!(text("xBearer y"), "xBearer y");
    }

    #[test]
    fn extra_keys_extend_the_list() {
        let red = Redactor::new(&["SSN".into(), "pin_*".into()]);
        assert_eq!(
            red.json(r#"{"ssn":"1","pin_code":"2","pinned":"3"}"#),
            r#"{"ssn":"[REDACTED]","pin_code":"[REDACTED]","pinned":"3"}"#
        );
    }

    #[test]
    fn text_that_is_not_json_is_copied() {
        assert_eq!(r("{oops"), "{oops");
        assert_eq!(r(""), "");
    }
}
