//! The fast path of event parsing: one event's JSON bytes straight into a
//! [`NewEvent`], with no intermediate `Value` tree, for the common case of
//! a well-formed event whose JSON columns are already compact.
//!
//! It must never accept what [`super::event::parse_event`] refuses:
//! whenever it is not sure (any error), it answers `None` and the caller
//! takes the exact, `Value`-based path, which also words the error.
//! Profiling `ingest` put ~60% of its time in building and freeing those
//! trees. JSON columns are stored as their own text with the white space
//! between tokens removed: numbers (`1.50`, integers past 2^64), escapes
//! and key order exactly as sent, which a `Value` round trip would not keep.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::packed::{Builder, Slot};
use super::MAX_EXPLICIT_ID;
use crate::audit::event::NewEvent;
use crate::time;

type Text<'a> = Option<Cow<'a, str>>;
type Field<'a> = Option<Str<'a>>;

/// A JSON string borrowed from the input when it has no escapes. (serde's
/// own `Option<Cow<str>>` always allocates, even with `#[serde(borrow)]`:
/// ~14 allocations per event, ~9% of an ingest.)
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        d.deserialize_str(Visit).map(Str)
    }
}

fn text(f: Field<'_>) -> Text<'_> {
    f.map(|s| s.0)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Event<'a> {
    id: Option<i64>,
    #[serde(borrow)]
    organization_id: Field<'a>,
    #[serde(borrow)]
    occurred_at: Field<'a>,
    #[serde(borrow)]
    stream: Field<'a>,
    #[serde(borrow)]
    action: Field<'a>,
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
    kind: Field<'a>,
    #[serde(borrow)]
    id: Field<'a>,
    #[serde(borrow)]
    name: Field<'a>,
    #[serde(borrow)]
    email: Field<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Target<'a> {
    #[serde(borrow, rename = "type")]
    kind: Field<'a>,
    #[serde(borrow)]
    id: Field<'a>,
    #[serde(borrow)]
    name: Field<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Context<'a> {
    #[serde(borrow)]
    ip_address: Field<'a>,
    #[serde(borrow)]
    user_agent: Field<'a>,
    #[serde(borrow)]
    request_id: Field<'a>,
}

fn owned(t: Text<'_>) -> Option<String> {
    t.map(Cow::into_owned)
}

/// A required string: present and not blank.
fn required(t: Text<'_>) -> Option<Cow<'_, str>> {
    t.filter(|s| !s.trim().is_empty())
}

/// One event's fields, checked, still borrowed from its JSON text.
struct Parts<'a> {
    id: Option<i64>,
    occurred_at: i64,
    organization_id: Cow<'a, str>,
    stream: Cow<'a, str>,
    action: Cow<'a, str>,
    /// actor type/id/name/email, target type/id/name, ip, user agent,
    /// request id: the optional columns in `COLUMNS` order.
    optional: [Text<'a>; 10],
    changed_data: Option<&'a RawValue>,
    details: Option<&'a RawValue>,
}

/// Parses and checks one event; `None` when the exact path must decide.
fn parts<'a>(bytes: &'a [u8], default_org: Option<&str>) -> Option<Parts<'a>> {
    // One UTF-8 check of the whole event, several bytes at a time, instead
    // of serde_json's per string.
    let json = simdutf8::basic::from_utf8(bytes).ok()?;
    let mut e: Event<'a> = serde_json::from_str(json).ok()?;
    if e.organization_id.is_none() {
        e.organization_id = default_org.map(|o| Str(Cow::Owned(o.to_owned())));
    }
    if e.id.is_some_and(|n| !(1..=MAX_EXPLICIT_ID).contains(&n)) {
        return None;
    }
    let occurred_at = time::parse_rfc3339_ms(&e.occurred_at?.0)?;
    let (a, t, c) = (e.actor, e.target, e.context);
    let (a_type, a_id, a_name, a_email) = a.map_or((None, None, None, None), |a| {
        (text(a.kind), text(a.id), text(a.name), text(a.email))
    });
    let (t_type, t_id, t_name) = t.map_or((None, None, None), |t| {
        (text(t.kind), text(t.id), text(t.name))
    });
    let (ip, ua, req) = c.map_or((None, None, None), |c| {
        (text(c.ip_address), text(c.user_agent), text(c.request_id))
    });
    Some(Parts {
        id: e.id,
        occurred_at,
        organization_id: required(text(e.organization_id))?,
        stream: required(text(e.stream))?,
        action: required(text(e.action))?,
        optional: [
            a_type, a_id, a_name, a_email, t_type, t_id, t_name, ip, ua, req,
        ],
        changed_data: e.changed_data,
        details: e.details,
    })
}

/// The stored text of a JSON column (see the module docs); `None` when
/// the exact path must decide.
fn column(raw: Option<&RawValue>) -> Option<Option<String>> {
    match raw {
        None => Some(None),
        Some(r) => minify(r.get()).map(Some),
    }
}

/// Parses one event for ingest, appending its text to `text` (a chunk's
/// shared text, see `packed`); `None` when the exact path must decide (see
/// the module docs), and `text` is then as it was.
pub(super) fn parse(bytes: &[u8], text: &mut String) -> Option<Slot> {
    let p = parts(bytes, None)?;
    let mut b = Builder::new(text);
    b.push(Some(&p.organization_id));
    b.push(Some(&p.stream));
    b.push(Some(&p.action));
    for t in &p.optional {
        b.push(t.as_deref());
    }
    for raw in [p.changed_data, p.details] {
        match raw {
            None => b.push_null(),
            Some(r) => {
                if !b.push_with(|out| minify_into(r.get(), out).is_some()) {
                    return None;
                }
            }
        }
    }
    Some(b.finish(p.id, p.occurred_at))
}

/// Parses one event into a [`NewEvent`], with `default_org` standing in
/// for a missing or null `organization_id` (the HTTP API takes it from the
/// token); `None` when the exact path must decide.
pub(super) fn parse_with(bytes: &[u8], default_org: Option<&str>) -> Option<NewEvent> {
    let p = parts(bytes, default_org)?;
    let [actor_type, actor_id, actor_name, actor_email, target_type, target_id, target_name, ip_address, user_agent, request_id] =
        p.optional;
    Some(NewEvent {
        id: p.id,
        occurred_at: p.occurred_at,
        organization_id: p.organization_id.into_owned(),
        stream: p.stream.into_owned(),
        action: p.action.into_owned(),
        actor_type: owned(actor_type),
        actor_id: owned(actor_id),
        actor_name: owned(actor_name),
        actor_email: owned(actor_email),
        target_type: owned(target_type),
        target_id: owned(target_id),
        target_name: owned(target_name),
        ip_address: owned(ip_address),
        user_agent: owned(user_agent),
        request_id: owned(request_id),
        changed_data: column(p.changed_data)?,
        details: column(p.details)?,
    })
}

/// Deeper nesting goes to the exact path (and its recursion limit).
const MAX_DEPTH: usize = 100;

/// The four hex digits at `b[i..i + 4]`.
fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let s = std::str::from_utf8(b.get(i..i + 4)?).ok()?;
    u32::from_str_radix(s, 16).ok()
}

/// `json` (syntactically valid JSON: a `RawValue`) without the white space
/// between its tokens; everything else byte for byte. `None` for what the
/// exact path refuses although the syntax is fine — nesting past
/// [`MAX_DEPTH`], an unpaired UTF-16 surrogate escape, a number beyond
/// f64's range — so that path decides and words it.
pub(super) fn minify(json: &str) -> Option<String> {
    let mut out = String::with_capacity(json.len());
    minify_into(json, &mut out)?;
    Some(out)
}

/// [`minify`], appending to `out` (left partly written on `None`).
pub(super) fn minify_into(json: &str, out: &mut String) -> Option<()> {
    let b = json.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i;
                i += 1;
                loop {
                    match *b.get(i)? {
                        b'"' => break,
                        b'\\' if b.get(i + 1) == Some(&b'u') => {
                            let unit = hex4(b, i + 2)?;
                            i += 6;
                            if (0xDC00..0xE000).contains(&unit) {
                                return None;
                            }
                            if (0xD800..0xDC00).contains(&unit) {
                                let low = (b.get(i) == Some(&b'\\') && b.get(i + 1) == Some(&b'u'))
                                    .then(|| hex4(b, i + 2))
                                    .flatten()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return None;
                                }
                                i += 6;
                            }
                        }
                        b'\\' => i += 2,
                        _ => i += 1,
                    }
                }
                i += 1;
                out.push_str(&json[start..i]);
            }
            c @ (b'{' | b'[') => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return None;
                }
                out.push(char::from(c));
                i += 1;
            }
            c @ (b'}' | b']') => {
                depth = depth.saturating_sub(1);
                out.push(char::from(c));
                i += 1;
            }
            b' ' | b'\n' | b'\r' | b'\t' => i += 1,
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < b.len() && matches!(b[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let num = &json[start..i];
                let long_or_float = num.len() > 15 || num.contains(['.', 'e', 'E']);
                if long_or_float && !num.parse::<f64>().ok()?.is_finite() {
                    return None;
                }
                out.push_str(num);
            }
            // Outside strings valid JSON is ASCII (a `RawValue` is valid).
            c => {
                out.push(char::from(c));
                i += 1;
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn minify_removes_only_the_white_space_between_tokens() {
        let cases = [
            (
                r#"{"a":1,"b":[true,false,null]}"#,
                r#"{"a":1,"b":[true,false,null]}"#,
            ),
            (
                "{ \"a\" : 1 ,\n\t\"b\" : [ 1 , 2 ] }",
                r#"{"a":1,"b":[1,2]}"#,
            ),
            (r#"{"s":"a b \" c\\"}"#, r#"{"s":"a b \" c\\"}"#),
            (
                r#"{"n": 1.50, "e": 1E3, "big": 123456789012345678901234567890, "z": -0}"#,
                r#"{"n":1.50,"e":1E3,"big":123456789012345678901234567890,"z":-0}"#,
            ),
            (
                r#"{"u": "\u00e9 \/", "a": 1, "a": 2}"#,
                r#"{"u":"\u00e9 \/","a":1,"a":2}"#,
            ),
            ("\"x\"", "\"x\""),
        ];
        for (text, want) in cases {
            let got = minify(text).unwrap();
            assert_eq!(got, want, "{text}");
            // Still the same JSON.
            let v = |t: &str| serde_json::from_str::<Value>(t).unwrap();
            assert_eq!(v(&got), v(text));
        }
        // What the exact path refuses is left to it (it words the error).
        let deep = format!("{}{}", "[".repeat(101), "]".repeat(101));
        for refused in [
            r#"{"x":"\ud800"}"#,
            r#"{"x":"\ud800\u0041"}"#,
            r#"{"x":"\udc00"}"#,
            r#"{"x":1e400}"#,
            r#"{"x":-1e999}"#,
            deep.as_str(),
        ] {
            assert_eq!(minify(refused), None, "{refused}");
        }
        assert!(minify(r#"{"x":"\ud83d\ude00","n":1e-400}"#).is_some());
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
            // None: deferred, the exact path decides. JSON columns keep
            // their own text here, the same JSON as the exact path's.
            let mut text = String::new();
            let packed = parse(c.as_bytes(), &mut text)
                .map(|slot| super::super::packed::Packed::new(slot, text.into()).to_new());
            // Both shapes of the fast path hold the same event.
            assert_eq!(packed, parse_with(c.as_bytes(), None), "{c}");
            if let Some(mut fast) = packed {
                let exact = exact.expect("the exact path accepts it too");
                for (f, e) in [
                    (&mut fast.details, &exact.details),
                    (&mut fast.changed_data, &exact.changed_data),
                ] {
                    let v = |t: &Option<String>| {
                        t.as_deref()
                            .map(|t| serde_json::from_str::<Value>(t).unwrap())
                    };
                    assert_eq!(v(f), v(e), "{c}");
                    f.clone_from(e);
                }
                assert_eq!(fast, exact, "{c}");
            }
        }
        // The common shapes do take the fast path.
        assert!(parse(cases[0].as_bytes(), &mut String::new()).is_some());
        assert!(parse(cases[1].as_bytes(), &mut String::new()).is_some());
        // So does a string with an escape (decoded, not borrowed).
        let mut text = String::new();
        let slot = parse(cases[4].as_bytes(), &mut text).expect("fast path");
        let ev = super::super::packed::Packed::new(slot, text.into()).to_new();
        assert_eq!(ev.actor_name.as_deref(), Some("Aé"));
    }
}
