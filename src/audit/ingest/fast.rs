//! The fast path of event parsing: one event's JSON bytes straight into a
//! [`NewEvent`], with no intermediate `Value` tree, for the common case of
//! a well-formed event whose JSON columns are already compact.
//!
//! It must never decide differently from [`super::event::parse_event`]:
//! whenever it is not sure (any error, a JSON column that a `Value` round
//! trip would rewrite), it answers `None` and the caller takes the exact,
//! `Value`-based path, which also words the error. Profiling `ingest` put
//! ~60% of its time in building and freeing those trees.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::MAX_EXPLICIT_ID;
use crate::audit::event::NewEvent;
use crate::time;

type Text<'a> = Option<Cow<'a, str>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Event<'a> {
    id: Option<i64>,
    #[serde(borrow)]
    organization_id: Text<'a>,
    #[serde(borrow)]
    occurred_at: Text<'a>,
    #[serde(borrow)]
    stream: Text<'a>,
    #[serde(borrow)]
    action: Text<'a>,
    #[serde(borrow)]
    actor: Option<Actor<'a>>,
    #[serde(borrow)]
    target: Option<Target<'a>>,
    #[serde(borrow)]
    context: Option<Context<'a>>,
    #[serde(borrow)]
    changed_data: Option<&'a RawValue>,
    #[serde(borrow)]
    details: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Actor<'a> {
    #[serde(borrow, rename = "type")]
    kind: Text<'a>,
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    name: Text<'a>,
    #[serde(borrow)]
    email: Text<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Target<'a> {
    #[serde(borrow, rename = "type")]
    kind: Text<'a>,
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    name: Text<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Context<'a> {
    #[serde(borrow)]
    ip_address: Text<'a>,
    #[serde(borrow)]
    user_agent: Text<'a>,
    #[serde(borrow)]
    request_id: Text<'a>,
}

fn owned(t: Text<'_>) -> Option<String> {
    t.map(Cow::into_owned)
}

/// A required string: present and not blank.
fn required(t: Text<'_>) -> Option<String> {
    t.filter(|s| !s.trim().is_empty()).map(Cow::into_owned)
}

/// The stored text of a JSON column, when the raw text is exactly what the
/// `Value` path would store; `Err(())` when it is not (caller falls back).
fn column(raw: Option<&RawValue>) -> Result<Option<String>, ()> {
    match raw {
        None => Ok(None),
        Some(r) if is_compact(r.get().as_bytes()) => Ok(Some(r.get().to_owned())),
        Some(_) => Err(()),
    }
}

/// Parses one event; `None` when the exact path must decide (see the
/// module docs).
pub(super) fn parse(bytes: &[u8]) -> Option<NewEvent> {
    let e: Event<'_> = serde_json::from_slice(bytes).ok()?;
    if e.id.is_some_and(|n| !(1..=MAX_EXPLICIT_ID).contains(&n)) {
        return None;
    }
    let occurred_at = time::parse_rfc3339_ms(e.occurred_at.as_deref()?)?;
    let actor = e.actor.unwrap_or(Actor {
        kind: None,
        id: None,
        name: None,
        email: None,
    });
    let target = e.target.unwrap_or(Target {
        kind: None,
        id: None,
        name: None,
    });
    let context = e.context.unwrap_or(Context {
        ip_address: None,
        user_agent: None,
        request_id: None,
    });
    let organization_id = required(e.organization_id)?;
    let stream = required(e.stream)?;
    let action = required(e.action)?;
    Some(NewEvent {
        id: e.id,
        occurred_at,
        organization_id,
        stream,
        action,
        actor_type: owned(actor.kind),
        actor_id: owned(actor.id),
        actor_name: owned(actor.name),
        actor_email: owned(actor.email),
        target_type: owned(target.kind),
        target_id: owned(target.id),
        target_name: owned(target.name),
        ip_address: owned(context.ip_address),
        user_agent: owned(context.user_agent),
        request_id: owned(context.request_id),
        changed_data: column(e.changed_data).ok()?,
        details: column(e.details).ok()?,
    })
}

/// True when `json` (valid JSON) would come back byte for byte from a
/// `serde_json::Value` round trip (`preserve_order`): no whitespace, no
/// escapes, only integers that stay integers, no `-0`, no duplicate key.
/// Conservative: false for anything it does not recognise.
pub(super) fn is_compact(json: &[u8]) -> bool {
    let mut s = Scan { b: json, i: 0 };
    s.value(0) && s.i == json.len()
}

/// Deeper nesting goes to the exact path (and its recursion limit).
const MAX_DEPTH: usize = 64;

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().is_some(),
            Some(b'-' | b'0'..=b'9') => self.integer(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            _ => false,
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    /// A string with no escapes; returns its bytes (without quotes).
    fn string(&mut self) -> Option<&'a [u8]> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.i;
        let len = self.b[start..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\')?;
        if self.b[start + len] != b'"' {
            return None;
        }
        self.i = start + len + 1;
        Some(&self.b[start..start + len])
    }

    /// An integer that serde_json keeps as i64/u64 and prints as written.
    fn integer(&mut self) -> bool {
        let start = self.i;
        self.eat(b'-');
        let digits = self.b[self.i..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        self.i += digits;
        let text = &self.b[start..self.i];
        if digits == 0 || digits > 18 || text == b"-0" {
            return false;
        }
        // A fraction or exponent is printed back differently (ryu).
        !matches!(self.peek(), Some(b'.' | b'e' | b'E'))
    }

    fn array(&mut self, depth: usize) -> bool {
        self.i += 1;
        if self.eat(b']') {
            return true;
        }
        loop {
            if !self.value(depth + 1) {
                return false;
            }
            if self.eat(b']') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    fn object(&mut self, depth: usize) -> bool {
        self.i += 1;
        if self.eat(b'}') {
            return true;
        }
        let mut keys: Vec<&'a [u8]> = Vec::new();
        loop {
            let Some(key) = self.string() else {
                return false;
            };
            // A duplicate key collapses into one in a `Value` map.
            if keys.contains(&key) {
                return false;
            }
            keys.push(key);
            if !self.eat(b':') || !self.value(depth + 1) {
                return false;
            }
            if self.eat(b'}') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// What the exact path stores for this JSON text.
    fn round_trip(s: &str) -> String {
        serde_json::to_string(&serde_json::from_str::<Value>(s).unwrap()).unwrap()
    }

    #[test]
    fn compact_means_unchanged_by_a_value_round_trip() {
        // (text, whether the fast path takes it as it is)
        let cases = [
            (r#"{"a":1,"b":[true,false,null],"c":{"d":"é x"}}"#, true),
            (r#"{"z":1,"a":{"k":[1,2]}}"#, true),
            (r#"[]"#, true),
            (r#"{}"#, true),
            (r#""plain""#, true),
            (r#"-17"#, true),
            (r#"123456789012345678"#, true),
            (r#"[{"a":1},{"a":1}]"#, true),
            (r#"{"a":1, "b":2}"#, false),
            (r#"{"a":1.5}"#, false), // unchanged, but floats are left to ryu
            (r#"{"a":1e3}"#, false),
            (r#"{"a":1E3}"#, false),
            (r#"{"a":-0}"#, false),
            (r#"{"a":12345678901234567890}"#, false),
            (r#"{"a":"x\"y"}"#, false),
            (r#"{"a":"\u00e9"}"#, false),
            (r#"{"a":"a\/b"}"#, false),
            (r#"{"a":1,"a":2}"#, false),
            (r#"{"a":{"b":1,"b":1}}"#, false),
            (" {\"a\":1}", false),
            ("{\"a\":\n1}", false),
        ];
        for (text, compact) in cases {
            assert_eq!(is_compact(text.as_bytes()), compact, "{text}");
            // Whatever it takes as it is, the exact path stores unchanged.
            if compact {
                assert_eq!(round_trip(text), text);
            }
        }
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(!is_compact(deep.as_bytes()));
    }

    #[test]
    fn agrees_with_the_exact_path_or_defers_to_it() {
        let base = r#""organization_id":"acme","occurred_at":"2026-01-05T10:00:00.000Z","stream":"audit","action":"user.login""#;
        let cases = [
            format!("{{{base}}}"),
            format!(
                r#"{{"id":7,{base},"actor":{{"type":"user","id":"u1","name":"Ann","email":"a@x"}},"target":null,"context":{{"ip_address":"10.0.0.1"}},"details":{{"z":1,"a":[1,2]}},"changed_data":null}}"#
            ),
            format!(r#"{{{base},"details":{{"z": 1.50}}}}"#),
            format!(r#"{{{base},"details":"tab\there"}}"#),
            format!(r#"{{{base},"actor":{{"name":"A\u00e9"}}}}"#),
            format!(r#"{{{base},"id":0}}"#),
            format!(r#"{{{base},"id":9007199254740992}}"#),
            format!(r#"{{{base},"colour":"red"}}"#),
            format!(r#"{{{base},"actor":{{"mail":"x"}}}}"#),
            format!(r#"{{{base},"stream":" "}}"#),
            format!(r#"{{{base},"action":"a","action":"b"}}"#),
            r#"{"organization_id":"acme","occurred_at":"yesterday","stream":"s","action":"a"}"#
                .to_string(),
            r#"[1]"#.to_string(),
        ];
        for c in &cases {
            let exact = serde_json::from_str::<Value>(c)
                .ok()
                .and_then(|v| super::super::event::parse_event(&v).ok());
            // None: deferred, the exact path decides.
            if let Some(fast) = parse(c.as_bytes()) {
                assert_eq!(Some(fast), exact, "{c}");
            }
        }
        // The common shapes do take the fast path.
        assert!(parse(cases[0].as_bytes()).is_some());
        assert!(parse(cases[1].as_bytes()).is_some());
    }
}
