//! `GET /api/v1/manifests` (admin, compliance: the caller's organization's
//! signed manifests, oldest first, paginated by sequence) and
//! `GET /api/v1/signing-key` (anyone: the public keys manifests verify
//! with; old keys stay listed after a rotation).

use serde_json::{json, Value};

use super::error::ApiError;
use super::routes::{json, Ctx, Reply};

/// `GET /api/v1/manifests` (exporters): the organization's signed manifests,
/// oldest first, paged by sequence (`limit` default 100, at most 1000; `cursor`).
pub fn list(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let user = ctx.exporter()?;
    let limit = super::util::limit(ctx.param("limit")?, 100, 1000)?;
    let after = match ctx.param("cursor")? {
        None => 0,
        Some(c) => c.parse::<u64>().map_err(|_| {
            ApiError::bad_request(
                "invalid_cursor",
                "cursor must be a next_cursor value from a previous page",
            )
        })?,
    };
    let rows = crate::manifest::store::list(ctx.conn, &user.organization_id, after, limit)?;
    let next = (rows.len() as u32 == limit)
        .then(|| rows.last().map(|r| r.sequence.to_string()))
        .flatten();
    let data: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "sequence": r.sequence,
                "job_id": r.job_id,
                "sha256": r.sha256,
                "key_id": r.key_id,
                "created_at": crate::time::format_rfc3339_ms(r.created_at),
                "document": serde_json::from_str::<Value>(&r.document).unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(json(200, &json!({"data": data, "next_cursor": next})))
}

/// `GET /api/v1/signing-key`: the active key id and every public key manifests
/// verify with (rotated-out keys included).
pub fn signing_key(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let keys = ctx.state.svc.runner.keys();
    Ok(json(
        200,
        &json!({"active": keys.active_id(), "keys": keys.public_keys()}),
    ))
}
