//! The tools' names, one-line descriptions and JSON schemas: what an agent
//! reads to decide which tool to call and with what. The argument shapes
//! are the HTTP API's bodies (one schema for both surfaces), so nothing
//! here is parsed — the HTTP body types parse the arguments.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{json, Value};

/// Most events one search returns.
pub const MAX_SEARCH_LIMIT: usize = 200;

fn filters() -> Value {
    json!({
        "type": "object",
        "description": "Which events; from and to are required (at most 366 days apart). See the resource audit-export://filters.",
        "additionalProperties": false,
        "required": ["from", "to"],
        "properties": {
            "from": {"type": "string", "description": "Start, inclusive: YYYY-MM-DD (a UTC day) or an RFC 3339 instant, e.g. 2026-03-01 or 2026-03-01T08:00:00+01:00"},
            "to": {"type": "string", "description": "End: YYYY-MM-DD includes that whole UTC day; an RFC 3339 instant includes that millisecond. At most 366 days after from."},
            "actors": {"type": "array", "items": {"type": "string"}, "description": "Actor ids, or actor e-mails (case-insensitive)"},
            "actions": {"type": "array", "items": {"type": "string"}, "description": "Exact action names (user.login) or prefix patterns (user.*)"},
            "target_type": {"type": "string", "description": "Exact target type, e.g. user, sso_connection"},
            "target_id": {"type": "string", "description": "Exact target id (needs target_type)"},
            "streams": {"type": "array", "items": {"type": "string"}, "description": "Event streams, e.g. audit, scim, workflow"},
            "q": {"type": "string", "description": "Free text: case-insensitive substring of action, actor, target, request id or details"}
        }
    })
}

fn job_id() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["id"],
        "properties": {"id": {"type": "string", "description": "The export job's id (from create_export or list_exports)"}}
    })
}

fn object(v: Value) -> Arc<JsonObject> {
    match v {
        Value::Object(m) => Arc::new(m),
        _ => unreachable!("schemas are objects"),
    }
}

fn read_only() -> ToolAnnotations {
    ToolAnnotations::new().read_only(true)
}

/// Every tool, in the order `tools/list` gives them.
pub fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "search_audit_logs",
            "Search the organization's audit events (oldest first, redacted as exports are); pass next_cursor back as cursor for more.",
            object(json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["filters"],
                "properties": {
                    "filters": filters(),
                    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_SEARCH_LIMIT, "default": 50, "description": "Events per page"},
                    "cursor": {"type": "string", "description": "next_cursor of the previous page"}
                }
            })),
        )
        .with_annotations(read_only()),
        Tool::new(
            "estimate_export",
            "Count the events an export with these filters would contain, and whether it would be answered at once (sync) or as a background job (async).",
            object(json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["filters"],
                "properties": {"filters": filters()}
            })),
        )
        .with_annotations(read_only()),
        Tool::new(
            "create_export",
            "Export audit events as a file (csv, json or jsonl); small exports return a signed download link at once, large ones return a background job to follow with get_export.",
            object(json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["format", "filters"],
                "properties": {
                    "format": {"type": "string", "enum": ["csv", "json", "jsonl"]},
                    "filters": filters(),
                    "csv": {
                        "type": "object",
                        "additionalProperties": false,
                        "description": "CSV options (format csv only)",
                        "properties": {
                            "profile": {"type": "string", "enum": ["raw", "readable"], "description": "readable: one plain column per fact, for spreadsheets"},
                            "fields": {"type": "array", "items": {"type": "string"}, "description": "raw profile: these columns only, in this order"},
                            "bom": {"type": "boolean", "default": true},
                            "formula_guard": {"type": "boolean", "default": true}
                        }
                    },
                    "timezone": {"type": "string", "description": "IANA zone for timestamps, e.g. Europe/Paris (default UTC)"},
                    "redact": {"type": "boolean", "default": true, "description": "false (admins only) keeps secret values"},
                    "email_to": {"type": "array", "items": {"type": "string"}, "description": "Verified addresses to mail the link to (default for background jobs: your own)"},
                    "mode": {"type": "string", "enum": ["auto", "sync", "async"], "default": "auto", "description": "sync: wait for the file; async: return the job at once"},
                    "restart": {"type": "boolean", "default": false, "description": "Restart an identical export in progress instead of failing with duplicate_export"}
                }
            })),
        ),
        Tool::new(
            "get_export",
            "Get an export job: state, progress, and its download link once completed.",
            object(job_id()),
        )
        .with_annotations(read_only()),
        Tool::new(
            "list_exports",
            "List export jobs, newest first (yours; an admin sees the organization's).",
            object(json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "limit": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}
                }
            })),
        )
        .with_annotations(read_only()),
        Tool::new(
            "cancel_export",
            "Cancel an export job in progress (it ends failed, with the reason cancelled).",
            object(job_id()),
        ),
        Tool::new(
            "restart_export",
            "Restart an export job in progress from its beginning.",
            object(job_id()),
        ),
    ]
}
