//! The event JSON shape, shared by the JSON and JSONL formats and by ingest:
//! `{"id", "organization_id", "occurred_at", "stream", "action", "actor":
//! {type,id,name,email}, "target": {type,id,name}, "context": {ip_address,
//! user_agent, request_id}, "changed_data", "details"}`. An object whose
//! fields are all null is written as `null`.
//!
//! Written by hand (no serde on the hot path): strings are escaped here, and
//! the JSON columns, already compact and validated in the database, are
//! embedded verbatim.

use crate::audit::Record;
use crate::time::Zone;

use super::special::json_special;

/// One event; `changed` and `details` are the JSON columns as exported
/// (redacted), `text` the treatment of the text fields.
pub(super) fn event(
    out: &mut Vec<u8>,
    r: &Record<'_>,
    zone: &Zone,
    changed: Option<&str>,
    details: Option<&str>,
    text: fn(&str) -> &str,
) {
    out.extend_from_slice(b"{\"id\":");
    out.extend_from_slice(r.id.to_string().as_bytes());
    out.extend_from_slice(b",\"organization_id\":");
    push_str(out, r.organization_id);
    out.extend_from_slice(b",\"occurred_at\":\"");
    zone.push_rfc3339(out, r.occurred_at);
    out.extend_from_slice(b"\",\"stream\":");
    push_str(out, r.stream);
    out.extend_from_slice(b",\"action\":");
    push_str(out, r.action);
    out.extend_from_slice(b",\"actor\":");
    object(
        out,
        &[
            ("type", r.actor_type),
            ("id", r.actor_id),
            ("name", r.actor_name),
            ("email", r.actor_email),
        ],
        text,
    );
    out.extend_from_slice(b",\"target\":");
    object(
        out,
        &[
            ("type", r.target_type),
            ("id", r.target_id),
            ("name", r.target_name),
        ],
        text,
    );
    out.extend_from_slice(b",\"context\":");
    object(
        out,
        &[
            ("ip_address", r.ip_address),
            ("user_agent", r.user_agent),
            ("request_id", r.request_id),
        ],
        text,
    );
    out.extend_from_slice(b",\"changed_data\":");
    out.extend_from_slice(changed.unwrap_or("null").as_bytes());
    out.extend_from_slice(b",\"details\":");
    out.extend_from_slice(details.unwrap_or("null").as_bytes());
    out.push(b'}');
}

fn object(out: &mut Vec<u8>, fields: &[(&str, Option<&str>)], text: fn(&str) -> &str) {
    if fields.iter().all(|(_, v)| v.is_none()) {
        out.extend_from_slice(b"null");
        return;
    }
    out.push(b'{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"\":");
        match v {
            Some(s) => push_str(out, text(s)),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
}

/// Appends `s` as a JSON string literal.
pub(super) fn push_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.push(b'"');
    let mut start = 0;
    loop {
        let i = json_special(bytes, start);
        out.extend_from_slice(&bytes[start..i]);
        let Some(&b) = bytes.get(i) else { break };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]),
        }
        start = i + 1;
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_through_serde_json() {
        for s in [
            "plain",
            "quote \" backslash \\ slash /",
            "nl\ncr\rtab\tnul\u{0}bell\u{7}",
            "日本語 🚀 العربية",
            "\u{2028}\u{1f}",
        ] {
            let mut out = Vec::new();
            push_str(&mut out, s);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, s);
        }
    }

    /// The escape of one byte, as the table says (the reference).
    fn reference(s: &str) -> Vec<u8> {
        let mut out = vec![b'"'];
        for &b in s.as_bytes() {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b if b < 0x20 => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
                b => out.push(b),
            }
        }
        out.push(b'"');
        out
    }

    #[test]
    fn every_escaped_byte_is_found_at_every_position() {
        // Bytes next to the special ones in value (and multi-byte UTF-8)
        // never count; each special byte, alone or in a run, at every
        // position of strings around the word size.
        let plain = "az09 !#[]^_`{|}~\u{7f}é€🚀 ";
        let specials = (0u8..0x20).chain([b'"', b'\\']);
        for len in 0..40 {
            let base: String = plain.chars().cycle().take(len).collect();
            let mut out = Vec::new();
            push_str(&mut out, &base);
            assert_eq!(out, reference(&base), "{base:?}");
            for c in specials.clone() {
                for at in 0..=base.len() {
                    if !base.is_char_boundary(at) {
                        continue;
                    }
                    for run in [1, 2, 9] {
                        let mut s = base.clone();
                        s.insert_str(at, &(c as char).to_string().repeat(run));
                        let mut out = Vec::new();
                        push_str(&mut out, &s);
                        assert_eq!(out, reference(&s), "{s:?}");
                    }
                }
            }
        }
    }
}
