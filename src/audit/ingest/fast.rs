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

/// The stored text of a JSON column (see the module docs); `None` when
/// the exact path must decide.
fn column(raw: Option<&RawValue>) -> Option<Option<String>> {
    match raw {
        None => Some(None),
        Some(r) => minify(r.get()).map(Some),
    }
}

/// Parses one event; `None` when the exact path must decide (see the
/// module docs).
pub(super) fn parse(bytes: &[u8]) -> Option<NewEvent> {
    parse_with(bytes, None)
}

/// [`parse`], with `default_org` standing in for a missing or null
/// `organization_id` (the HTTP API takes it from the token).
pub(super) fn parse_with(bytes: &[u8], default_org: Option<&str>) -> Option<NewEvent> {
    let mut e: Event<'_> = serde_json::from_slice(bytes).ok()?;
    if e.organization_id.is_none() {
        e.organization_id = default_org.map(|o| Cow::Owned(o.to_owned()));
    }
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
        changed_data: column(e.changed_data)?,
        details: column(e.details)?,
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
    let b = json.as_bytes();
    let mut out = Vec::with_capacity(b.len());
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
                out.extend_from_slice(&b[start..i]);
            }
            c @ (b'{' | b'[') => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return None;
                }
                out.push(c);
                i += 1;
            }
            c @ (b'}' | b']') => {
                depth = depth.saturating_sub(1);
                out.push(c);
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
                out.extend_from_slice(num.as_bytes());
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
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
            if let Some(mut fast) = parse(c.as_bytes()) {
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
        assert!(parse(cases[0].as_bytes()).is_some());
        assert!(parse(cases[1].as_bytes()).is_some());
    }
}
