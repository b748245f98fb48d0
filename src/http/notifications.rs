//! The caller's in-app notices: list (unread first), mark read, read all.

use serde_json::json;

use super::error::ApiError;
use super::routes::{json, Ctx, Reply};
use crate::notify::inapp;

/// `GET /api/v1/notifications`: the caller's in-app notices (unread first,
/// `limit` default 50, at most 200, `cursor`), with signed download links
/// instead of storage keys, and the unread count.
pub fn list(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let user = ctx.user()?;
    let limit = super::util::limit(ctx.param("limit")?, 50, 200)?;
    let after = match ctx.param("cursor")? {
        None => None,
        Some(c) => {
            let bad = || {
                ApiError::bad_request(
                    "invalid_cursor",
                    "cursor must be a next_cursor value from a previous page",
                )
            };
            let (r, id) = c.split_once('_').ok_or_else(bad)?;
            Some((
                r.parse::<i64>().map_err(|_| bad())?,
                id.parse::<i64>().map_err(|_| bad())?,
            ))
        }
    };
    let (mut data, next) = inapp::list(ctx.conn, user.id, after, limit)?;
    // Notices carry the signed link, not the storage key.
    for n in &mut data {
        let p = &mut n["payload"];
        let key = p["file"]["key"].as_str().map(str::to_string);
        if let (Some(key), Some(done), Some(job)) = (
            key,
            p["completed_at"].as_i64(),
            p["job_id"].as_str().map(str::to_string),
        ) {
            let link = ctx.state.svc.links.for_file(&job, &key, done);
            p["download_url"] = json!(link.url);
            p["expires_at"] = json!(link.expires_at());
        }
        if let Some(file) = p["file"].as_object_mut() {
            file.remove("key");
        }
    }
    let unread = inapp::unread(ctx.conn, user.id)?;
    Ok(json(
        200,
        &json!({"data": data, "unread": unread, "next_cursor": next}),
    ))
}

/// `POST /api/v1/notifications/{id}/read`: marks one of the caller's notices
/// read; `404` if it is not theirs.
pub fn read(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let user = ctx.user()?;
    let id: i64 = ctx
        .id
        .as_deref()
        .and_then(|s| s.parse().ok())
        .ok_or_else(ApiError::not_found)?;
    if !inapp::mark_read(ctx.conn, user.id, id, ctx.state.svc.now_ms())? {
        return Err(ApiError::not_found());
    }
    Ok(json(200, &json!({"id": id, "read": true})))
}

/// `POST /api/v1/notifications/read-all`: marks all the caller's notices read;
/// answers how many changed.
pub fn read_all(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let user = ctx.user()?;
    let n = inapp::mark_all_read(ctx.conn, user.id, ctx.state.svc.now_ms())?;
    Ok(json(200, &json!({"updated": n})))
}
