//! `GET /api/v1/openapi.json`: OpenAPI 3.1 for every route in
//! `routes::ROUTES` (a unit test keeps the two in step).

use serde_json::{json, Value};

fn err(desc: &str) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn ok(desc: &str, schema: Value) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": schema}}})
}

fn id_param() -> Value {
    json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}])
}

/// The OpenAPI 3.1 document served at `GET /api/v1/openapi.json`, one
/// operation per entry of `ROUTES`.
pub fn document() -> Value {
    let auth = json!([{"bearer": []}]);
    let job = json!({"$ref": "#/components/schemas/Job"});
    let common = |extra: Value| {
        let mut r = json!({"401": err("missing or bad token"), "403": err("role not allowed")});
        if let (Value::Object(m), Value::Object(e)) = (&mut r, extra) {
            m.extend(e);
        }
        r
    };
    let view_params: Vec<Value> = ["from", "to", "action", "actor", "target_type", "target_id", "stream", "q", "cursor", "limit"]
        .iter()
        .map(|p| json!({"name": p, "in": "query", "required": matches!(*p, "from" | "to"), "schema": {"type": "string"}}))
        .collect();
    json!({
        "openapi": "3.1.0",
        "info": {"title": "audit-export", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Durable export engine for audit logs. Errors are always {\"error\":{\"code\",\"message\"}}."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
                    "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
                "Filters": {"type": "object", "required": ["from", "to"], "additionalProperties": false, "properties": {
                    "from": {"type": "string", "description": "YYYY-MM-DD or RFC 3339, UTC"},
                    "to": {"type": "string", "description": "inclusive; a bare date includes the whole day"},
                    "actors": {"type": "array", "items": {"type": "string"}},
                    "actions": {"type": "array", "items": {"type": "string"}, "description": "exact, or prefix like user.*"},
                    "target_type": {"type": "string"}, "target_id": {"type": "string"},
                    "streams": {"type": "array", "items": {"type": "string"}}, "q": {"type": "string"},
                    "organization": {"type": "string", "description": "optional; must be the token's organization"}}},
                "ExportRequest": {"type": "object", "required": ["format", "filters"], "additionalProperties": false, "properties": {
                    "format": {"enum": ["csv", "json", "jsonl"]}, "filters": {"$ref": "#/components/schemas/Filters"},
                    "csv": {"type": "object", "properties": {"bom": {"type": "boolean"}, "formula_guard": {"type": "boolean"}}},
                    "email_to": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                    "mode": {"enum": ["auto", "sync", "async"]}, "restart": {"type": "boolean"}}},
                "Job": {"type": "object", "properties": {
                    "id": {"type": "string"}, "state": {"enum": ["exporting", "uploading", "completed", "failed", "expired"]},
                    "format": {"type": "string"}, "filters": {"type": "object"},
                    "progress": {"type": "object", "properties": {"exported": {"type": "integer"}, "estimated": {"type": ["integer", "null"]}}},
                    "record_count": {"type": ["integer", "null"]}, "file": {"type": ["object", "null"]},
                    "download_url": {"type": ["string", "null"]}, "expires_at": {"type": ["string", "null"]},
                    "error": {"type": ["object", "null"]}}}
            }
        },
        "paths": {
            "/healthz": {"get": {"summary": "Liveness and database check", "responses": {"200": ok("ok", json!({"type": "object"}))}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text/plain metrics"}}}},
            "/api/v1/me": {"get": {"summary": "The caller: name, e-mail, role, organization", "security": auth,
                "responses": common(json!({"200": ok("the user", json!({"type": "object"}))}))}},
            "/api/v1/openapi.json": {"get": {"summary": "This document", "responses": {"200": ok("OpenAPI 3.1", json!({"type": "object"}))}}},
            "/api/v1/audit-logs": {
                "post": {"summary": "Ingest events (admin): a JSON array or JSONL body", "security": auth,
                    "responses": common(json!({"201": ok("ingested", json!({"type": "object"})), "400": err("bad body"),
                        "409": err("an explicit id exists"), "413": err("body too large"), "422": err("invalid events; errors name index and field")}))},
                "get": {"summary": "View events, keyset-paginated", "security": auth, "parameters": view_params,
                    "responses": common(json!({"200": ok("a page", json!({"type": "object", "properties": {"data": {"type": "array"}, "next_cursor": {"type": ["string", "null"]}}})),
                        "400": err("bad filters")}))}
            },
            "/api/v1/exports/estimate": {"post": {"summary": "Count matching rows and the mode auto would pick", "security": auth,
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"filters": {"$ref": "#/components/schemas/Filters"}}}}}},
                "responses": common(json!({"200": ok("estimate", json!({"type": "object", "properties": {"record_count": {"type": "integer"}, "mode": {"enum": ["sync", "async"]}}})),
                    "400": err("bad filters")}))}},
            "/api/v1/exports": {
                "post": {"summary": "Export: small ones streamed at once (200), large ones as a job (202)", "security": auth,
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ExportRequest"}}}},
                    "responses": common(json!({"200": {"description": "the file (sync), or {record_count: 0, warning: no_records} when nothing matches (unless mode is async)"},
                        "202": ok("job created", job.clone()), "400": err("bad request"), "409": err("duplicate_export"),
                        "413": err("body too large"), "422": err("unverified_recipient"), "429": err("too_many_exports")}))},
                "get": {"summary": "Jobs: your own (admin: the organization's)", "security": auth,
                    "responses": common(json!({"200": ok("jobs", json!({"type": "object", "properties": {"data": {"type": "array", "items": job.clone()}}}))}))}
            },
            "/api/v1/exports/{id}": {
                "get": {"summary": "One job: state, progress, file, download_url", "security": auth, "parameters": id_param(),
                    "responses": common(json!({"200": ok("the job", job.clone()), "404": err("no such job in your scope")}))},
                "delete": {"summary": "Cancel a job", "security": auth, "parameters": id_param(),
                    "responses": common(json!({"200": ok("cancelled or cancel requested", job.clone()), "404": err("not found"), "409": err("not in progress")}))}
            },
            "/api/v1/exports/{id}/restart": {"post": {"summary": "Restart a job from scratch", "security": auth, "parameters": id_param(),
                "responses": common(json!({"202": ok("restarted or restart requested", job.clone()), "404": err("not found"), "409": err("not in progress")}))}},
            "/api/v1/notifications": {"get": {"summary": "Your in-app notices, unread first (keyset-paginated)", "security": auth,
                "parameters": [{"name": "cursor", "in": "query", "schema": {"type": "string"}}, {"name": "limit", "in": "query", "schema": {"type": "integer"}}],
                "responses": common(json!({"200": ok("notices", json!({"type": "object", "properties": {"data": {"type": "array"}, "unread": {"type": "integer"}, "next_cursor": {"type": ["string", "null"]}}})),
                    "400": err("bad cursor or limit")}))}},
            "/api/v1/notifications/{id}/read": {"post": {"summary": "Mark one of your notices read", "security": auth, "parameters": id_param(),
                "responses": common(json!({"200": ok("marked", json!({"type": "object"})), "404": err("not one of your notices")}))}},
            "/api/v1/notifications/read-all": {"post": {"summary": "Mark all your notices read", "security": auth,
                "responses": common(json!({"200": ok("count marked", json!({"type": "object"}))}))}},
            "/api/v1/schedules": {"get": {"summary": "Your organization's scheduled exports: next fires, last run; invalid files (admins)", "security": auth,
                "responses": common(json!({"200": ok("schedules", json!({"type": "object", "properties": {"data": {"type": "array"}, "invalid": {"type": "array"}}}))}))}},
            "/api/v1/schedules/reload": {"post": {"summary": "Reload workflows/*.toml (admin); a broken file keeps its last good version", "security": auth,
                "responses": common(json!({"200": ok("schedules after the reload", json!({"type": "object"}))}))}},
            "/api/v1/schedules/{name}/run": {"post": {"summary": "Run a schedule now (admin): its range computed at this instant, the job marked manual", "security": auth,
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": common(json!({"202": ok("job created", job.clone()), "404": err("no such schedule in your organization"), "409": err("duplicate_export")}))}},
            "/download/{id}/manifest": {"get": {"summary": "Signed link to the manifest of a file that is not zipped (same scheme)",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "expires", "in": "query", "required": true, "schema": {"type": "integer"}},
                    {"name": "sig", "in": "query", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the manifest JSON"}, "403": err("bad or missing signature"), "410": err("link expired, or pruned")}}},
            "/api/v1/manifests": {"get": {"summary": "Your organization's signed manifests, oldest first (admin, compliance); cursor = last sequence seen", "security": auth,
                "parameters": [{"name": "cursor", "in": "query", "schema": {"type": "string"}}, {"name": "limit", "in": "query", "schema": {"type": "integer"}}],
                "responses": common(json!({"200": ok("manifests", json!({"type": "object", "properties": {"data": {"type": "array"}, "next_cursor": {"type": ["string", "null"]}}}))}))}},
            "/mcp": {"post": {"summary": "MCP (streamable HTTP, stateless, JSON answers): tools search_audit_logs, estimate_export, create_export, get_export, list_exports, cancel_export, restart_export",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "description": "a JSON-RPC 2.0 message"}}}},
                "responses": {"200": {"description": "the JSON-RPC answer"}, "202": {"description": "a notification, accepted"}, "401": err("missing or unknown bearer token")}},
                "get": {"summary": "No server-initiated stream: 405 once the token is checked",
                    "responses": {"401": err("missing or unknown bearer token"), "405": err("method_not_allowed")}},
                "delete": {"summary": "No sessions to end: 405 once the token is checked",
                    "responses": {"401": err("missing or unknown bearer token"), "405": err("method_not_allowed")}}},
            "/api/v1/signing-key": {"get": {"summary": "The instance's Ed25519 public keys (the active one marked)",
                "responses": {"200": ok("keys", json!({"type": "object"}))}}},
            "/download/{id}": {"get": {"summary": "Signed download link (no token needed)",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "expires", "in": "query", "required": true, "schema": {"type": "integer"}},
                    {"name": "sig", "in": "query", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the file, with Content-Length"}, "403": err("bad or missing signature"),
                    "410": err("link expired, or file pruned")}}}
        }
    })
}
