//! The event JSON shape on input (JSONL lines, JSON array elements, HTTP
//! bodies): every field checked and named when wrong, unknown fields
//! refused, JSON columns kept compact in their original key order.

use serde_json::{Map, Value};

use super::{FieldError, MAX_EXPLICIT_ID};
use crate::audit::event::NewEvent;
use crate::time;

fn opt_string(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(FieldError::new(
            path,
            format!("expected a string or null, got {}", kind(other)),
        )),
    }
}

fn required_string(obj: &Map<String, Value>, key: &str) -> Result<String, FieldError> {
    match opt_string(obj, key, key)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        Some(_) => Err(FieldError::new(key, "must not be empty")),
        None => Err(FieldError::new(key, "is required")),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads a nested object (`actor`, `target`, `context`) with known keys.
fn nested<const N: usize>(
    obj: &Map<String, Value>,
    key: &str,
    fields: [&str; N],
) -> Result<[Option<String>; N], FieldError> {
    let inner = match obj.get(key) {
        None | Some(Value::Null) => return Ok(std::array::from_fn(|_| None)),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(FieldError::new(
                key,
                format!("expected an object or null, got {}", kind(other)),
            ))
        }
    };
    if let Some(unknown) = inner.keys().find(|k| !fields.contains(&k.as_str())) {
        return Err(FieldError::new(
            format!("{key}.{unknown}"),
            format!("unknown field (expected {})", fields.join(", ")),
        ));
    }
    let mut out: [Option<String>; N] = std::array::from_fn(|_| None);
    for (i, f) in fields.iter().enumerate() {
        out[i] = opt_string(inner, f, &format!("{key}.{f}"))?;
    }
    Ok(out)
}

fn json_column(obj: &Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(v) => Some(serde_json::to_string(v).expect("a Value serializes")),
    }
}

const TOP_LEVEL: [&str; 10] = [
    "id",
    "organization_id",
    "occurred_at",
    "stream",
    "action",
    "actor",
    "target",
    "context",
    "changed_data",
    "details",
];

/// Parses one event in the JSON shape (see `format::json`).
pub fn parse_event(v: &Value) -> Result<NewEvent, FieldError> {
    let obj = match v {
        Value::Object(m) => m,
        other => {
            return Err(FieldError::new(
                "",
                format!("expected an event object, got {}", kind(other)),
            ))
        }
    };
    if let Some(unknown) = obj.keys().find(|k| !TOP_LEVEL.contains(&k.as_str())) {
        return Err(FieldError::new(unknown.as_str(), "unknown field"));
    }
    let id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(n) if (1..=MAX_EXPLICIT_ID).contains(&n) => Some(n),
            _ => {
                return Err(FieldError::new(
                    "id",
                    format!("must be an integer from 1 to {MAX_EXPLICIT_ID}"),
                ))
            }
        },
    };
    let organization_id = required_string(obj, "organization_id")?;
    let occurred_raw = required_string(obj, "occurred_at")?;
    let occurred_at = time::parse_rfc3339_ms(&occurred_raw).ok_or_else(|| {
        FieldError::new(
            "occurred_at",
            format!("{occurred_raw:?} is not an RFC 3339 instant (e.g. 2026-01-05T10:00:00.000Z)"),
        )
    })?;
    let stream = required_string(obj, "stream")?;
    let action = required_string(obj, "action")?;
    let [actor_type, actor_id, actor_name, actor_email] =
        nested(obj, "actor", ["type", "id", "name", "email"])?;
    let [target_type, target_id, target_name] = nested(obj, "target", ["type", "id", "name"])?;
    let [ip_address, user_agent, request_id] =
        nested(obj, "context", ["ip_address", "user_agent", "request_id"])?;
    Ok(NewEvent {
        id,
        occurred_at,
        organization_id,
        stream,
        action,
        actor_type,
        actor_id,
        actor_name,
        actor_email,
        target_type,
        target_id,
        target_name,
        ip_address,
        user_agent,
        request_id,
        changed_data: json_column(obj, "changed_data"),
        details: json_column(obj, "details"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({"organization_id":"acme","occurred_at":"2026-01-05T10:00:00.000Z","stream":"audit","action":"user.login"})
    }

    #[test]
    fn minimal_event_parses_with_nulls() {
        let e = parse_event(&good()).unwrap();
        assert_eq!(e.id, None);
        assert_eq!(e.actor_id, None);
        assert_eq!(e.details, None);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({"occurred_at": 5}), "occurred_at"),
            (json!({"occurred_at": "yesterday"}), "occurred_at"),
            (json!({"organization_id": ""}), "organization_id"),
            (json!({"action": null}), "action"),
            (json!({"actor": {"email": 3}}), "actor.email"),
            (json!({"actor": {"mail": "x"}}), "actor.mail"),
            (json!({"target": "page"}), "target"),
            (json!({"id": -4}), "id"),
            (json!({"id": "7"}), "id"),
            // Beyond 2^53 - 1: would exhaust AUTOINCREMENT for everyone.
            (json!({"id": 9_007_199_254_740_992i64}), "id"),
            (json!({"colour": "red"}), "colour"),
        ];
        for (patch, field) in cases {
            let mut v = good();
            for (k, val) in patch.as_object().unwrap() {
                v[k] = val.clone();
            }
            let err = parse_event(&v).unwrap_err();
            assert_eq!(err.field, field, "{patch}");
        }
        assert_eq!(parse_event(&json!([1])).unwrap_err().field, "");
    }

    #[test]
    fn json_columns_are_stored_compact_in_original_key_order() {
        let mut v = good();
        v["details"] = json!({"z": 1, "a": {"k": [1, 2]}});
        let e = parse_event(&v).unwrap();
        assert_eq!(e.details.as_deref(), Some(r#"{"z":1,"a":{"k":[1,2]}}"#));
    }
}
