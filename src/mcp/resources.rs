//! Read-only reference texts an agent can fetch instead of guessing: the
//! filter syntax and the shape of an event.

use rmcp::model::Resource;

/// URI of the resource describing the `filters` object (Markdown).
pub const FILTERS_URI: &str = "audit-export://filters";
/// URI of the JSON Schema of an event, as exported and ingested.
pub const EVENT_URI: &str = "audit-export://event-schema";

const FILTERS: &str = r#"# Filters

Every tool that takes `filters` takes this object. Your organization is
implied by your token; naming another one is forbidden.

| key | rule |
| --- | --- |
| from, to | required. `YYYY-MM-DD` (a UTC day) or an RFC 3339 instant with any offset. A bare date as `to` includes that whole day; an instant as `to` includes that millisecond. `to` not before `from`; at most 366 days. |
| actors | list; matches the actor id exactly, or the actor e-mail ignoring case |
| actions | list; exact (`user.login`) or a prefix pattern (`user.*`) |
| target_type, target_id | exact; `target_id` needs `target_type` |
| streams | list, e.g. `audit`, `scim`, `workflow` |
| q | free text: case-insensitive substring of action, actor id/name/e-mail, target type/id/name, request id or details, or the exact event id |

Lists hold at most 100 values. Each violation is a tool error whose `code`
names it (`invalid_from`, `range_reversed`, `range_too_long`,
`invalid_action`, `target_id_without_type`, …) and whose `field` names the
filter.

Examples:
- SSO changes last week: `{"from": "2026-11-16", "to": "2026-11-22", "actions": ["sso.*"]}`
- SCIM events of one month: `{"from": "2026-10-01", "to": "2026-10-31", "streams": ["scim"]}`
- Everything one person did: `{"from": "2026-01-01", "to": "2026-06-30", "actors": ["ada@acme.example"]}`
"#;

const EVENT: &str = r#"{
  "description": "One audit event as search_audit_logs and JSON/JSONL exports give it. Values under sensitive keys (password, token, secret, api_key, authorization, cookie, ...) read \"[REDACTED]\".",
  "type": "object",
  "properties": {
    "id": {"type": "integer", "description": "Unique, increasing with ingestion"},
    "organization_id": {"type": "string"},
    "occurred_at": {"type": "string", "description": "RFC 3339, UTC, milliseconds"},
    "stream": {"type": "string", "description": "audit, scim, workflow, ..."},
    "action": {"type": "string", "description": "dotted name, e.g. user.login, sso.connection.updated"},
    "actor": {"type": "object", "properties": {"type": {"type": "string"}, "id": {"type": "string"}, "name": {"type": ["string", "null"]}, "email": {"type": ["string", "null"]}}},
    "target": {"type": ["object", "null"], "properties": {"type": {"type": "string"}, "id": {"type": "string"}, "name": {"type": ["string", "null"]}}},
    "context": {"type": ["object", "null"], "properties": {"ip_address": {"type": ["string", "null"]}, "user_agent": {"type": ["string", "null"]}, "request_id": {"type": ["string", "null"]}}},
    "changed_data": {"type": ["object", "null"], "description": "field -> {from, to}"},
    "details": {"type": ["object", "null"], "description": "free-form, per action"}
  }
}
"#;

/// The resources `resources/list` gives.
pub fn list() -> Vec<Resource> {
    vec![
        Resource::new(FILTERS_URI, "filters")
            .with_description("The filter syntax every search and export takes")
            .with_mime_type("text/markdown"),
        Resource::new(EVENT_URI, "event-schema")
            .with_description("The JSON shape of one audit event")
            .with_mime_type("application/schema+json"),
    ]
}

/// A resource's text and MIME type, if `uri` names one.
pub fn read(uri: &str) -> Option<(&'static str, &'static str)> {
    match uri {
        FILTERS_URI => Some((FILTERS, "text/markdown")),
        EVENT_URI => Some((EVENT, "application/schema+json")),
        _ => None,
    }
}
