//! `POST /api/v1/audit-logs` (admin: ingest a JSON array or JSONL body,
//! all or nothing) and `GET /api/v1/audit-logs` (any role: the
//! keyset-paginated view, with the export filters).

use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::error::ApiError;
use super::routes::{boxed, json, Ctx, Reply};
use super::util::header;
use crate::filters::FilterInput;
use crate::users::Role;

/// Most errors listed in one 422 answer.
const MAX_ERRORS: usize = 100;

/// `POST /api/v1/audit-logs` (admin): ingests a JSON array or JSONL body of
/// events into the caller's organization; all or nothing (`422` listing the bad
/// events), `201` with the new ids; an `Idempotency-Key` replays the first answer.
pub fn ingest(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let user = ctx.user()?;
    if user.role != Role::Admin {
        return Err(ApiError::forbidden("only admins may ingest audit events"));
    }
    // A retry of the same request answers what the first one did.
    let idempotency = match ctx.header("Idempotency-Key") {
        None => None,
        Some(k) if !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Some(k)
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
            .with(json!({"field": "Idempotency-Key"})))
        }
    };
    let body = ctx.body(ctx.state.cfg().http.max_body_bytes)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("invalid_body", "the body is not UTF-8"))?;
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_json",
            "a JSON array or JSONL body is required",
        ));
    }
    // A JSON array, or one event object per line.
    // Elements are kept as their text: most take the typed fast path, only
    // the others (and bad ones, to word the error) become a `Value`.
    let values: Vec<Result<&RawValue, String>> = if trimmed.starts_with('[') {
        match serde_json::from_str::<Vec<&RawValue>>(trimmed) {
            Ok(v) => v.into_iter().map(Ok).collect(),
            Err(e) => {
                return Err(ApiError::bad_request(
                    "invalid_json",
                    format!("not a JSON array: {e}"),
                ))
            }
        }
    } else {
        trimmed
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str::<&RawValue>(l).map_err(|e| format!("not valid JSON: {e}"))
            })
            .collect()
    };
    if values.len() > 100_000 {
        return Err(ApiError::new(
            413,
            "too_many_events",
            "at most 100,000 events per request",
        ));
    }
    let mut events = Vec::with_capacity(values.len());
    let mut errors = Vec::new();
    for (index, v) in values.into_iter().enumerate() {
        let fast = v.as_ref().ok().and_then(|raw| {
            crate::audit::ingest::parse_event_fast(raw.get().as_bytes(), &user.organization_id)
        });
        if let Some(ev) =
            fast.filter(|e| e.id.is_none() && e.organization_id == user.organization_id)
        {
            events.push(ev);
            continue;
        }
        let parsed = v
            .map_err(|m| crate::audit::ingest::FieldError {
                field: String::new(),
                message: m,
            })
            .and_then(|raw| {
                serde_json::from_str::<Value>(raw.get()).map_err(|e| {
                    crate::audit::ingest::FieldError {
                        field: String::new(),
                        message: format!("not valid JSON: {e}"),
                    }
                })
            })
            .and_then(|mut v| {
                // The organization comes from the token; naming another is
                // an error. Ids are the server's to assign: an explicit one
                // could probe or collide with another organization's events.
                if let Value::Object(m) = &mut v {
                    if m.get("id").is_some_and(|id| !id.is_null()) {
                        return Err(crate::audit::ingest::FieldError {
                            field: "id".into(),
                            message: "ids are assigned by the server; leave id out".into(),
                        });
                    }
                    match m.get("organization_id") {
                        None | Some(Value::Null) => {
                            m.insert("organization_id".into(), json!(user.organization_id));
                        }
                        Some(Value::String(o)) if *o == user.organization_id => {}
                        Some(_) => {
                            return Err(crate::audit::ingest::FieldError {
                                field: "organization_id".into(),
                                message: "must be your own organization (or left out)".into(),
                            })
                        }
                    }
                }
                crate::audit::ingest::parse_event(&v)
            });
        match parsed {
            Ok(e) => events.push(e),
            Err(e) if errors.len() < MAX_ERRORS => {
                errors.push(json!({"index": index, "field": e.field, "message": e.message}))
            }
            Err(_) => {}
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::new(
            422,
            "invalid_events",
            "some events are invalid; nothing was ingested",
        )
        .with(json!({"errors": errors})));
    }
    let who = crate::users::Requester::User(user);
    let answer = |ids: &[i64]| json!({"ingested": ids.len(), "ids": ids});
    let Some(key) = idempotency else {
        let ids = ctx.state.svc.ingest(ctx.conn, &who, &events)?;
        return Ok(json(201, &answer(&ids)));
    };
    let key = crate::service::Idempotency {
        key,
        request_sha256: crate::util::sha256_hex(&body),
    };
    match ctx
        .state
        .svc
        .ingest_once(ctx.conn, &who, &events, &key, |ids| {
            (201, answer(ids).to_string())
        })? {
        crate::service::Ingested::New(ids) => Ok(json(201, &answer(&ids))),
        crate::service::Ingested::Replayed { status, body } => {
            let mut reply = boxed(
                tiny_http::Response::from_data(body.into_bytes())
                    .with_status_code(status)
                    .with_header(header("Content-Type", "application/json")),
            );
            reply.add_header(header("Idempotent-Replayed", "true"));
            Ok(reply)
        }
    }
}

/// `GET /api/v1/audit-logs`: one page of the caller's organization's events
/// matching the query's filters, with `next_cursor` for the next page
/// (`limit` 1 to 1000, default 100).
pub fn view(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let user = ctx.user()?;
    let mut input = FilterInput::default();
    let mut cursor = None;
    let mut limit = 100usize;
    let mut seen = std::collections::HashSet::new();
    for (k, v) in &ctx.query {
        let single = !matches!(k.as_str(), "action" | "actor" | "stream");
        if single && !seen.insert(k.as_str()) {
            return Err(super::routes::duplicate_parameter(k));
        }
        match k.as_str() {
            "from" => input.from = Some(v.clone()),
            "to" => input.to = Some(v.clone()),
            "action" => input.actions.push(v.clone()),
            "actor" => input.actors.push(v.clone()),
            "stream" => input.streams.push(v.clone()),
            "target_type" => input.target_type = Some(v.clone()),
            "target_id" => input.target_id = Some(v.clone()),
            "q" => input.q = Some(v.clone()),
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request("invalid_limit", "limit must be 1..1000")
                    })?
            }
            "cursor" => cursor = Some(v.clone()),
            other => {
                return Err(ApiError::bad_request(
                    "unknown_parameter",
                    format!("unknown query parameter {other:?}"),
                ))
            }
        }
    }
    let page = ctx.state.svc.search(
        ctx.conn,
        &crate::users::Requester::User(user),
        input,
        limit,
        cursor.as_deref(),
    )?;
    let mut body = b"{\"data\":".to_vec();
    body.extend_from_slice(&page.json);
    body.extend_from_slice(format!(",\"next_cursor\":{}}}", json!(page.next_cursor)).as_bytes());
    Ok(boxed(
        tiny_http::Response::from_data(body)
            .with_header(header("Content-Type", "application/json")),
    ))
}
