//! In-app notices: list (unread first, keyset-paginated), mark read.
//! Every query is scoped to one user.

use rusqlite::{params, Connection};
use serde_json::{json, Value};

/// One page of a user's notices and the cursor of the next.
pub fn list(
    conn: &Connection,
    user_id: i64,
    after: Option<(i64, i64)>,
    limit: u32,
) -> rusqlite::Result<(Vec<Value>, Option<String>)> {
    // Order: unread (0) before read (1), newest first within each.
    let (r, id) = after.unwrap_or((-1, i64::MAX));
    let mut st = conn.prepare_cached(
        "SELECT id, kind, job_id, payload, created_at, read_at, (read_at IS NOT NULL) AS r FROM notifications \
         WHERE user_id = ?1 AND ((read_at IS NOT NULL) > ?2 OR ((read_at IS NOT NULL) = ?2 AND id < ?3)) \
         ORDER BY r, id DESC LIMIT ?4",
    )?;
    let rows: Vec<(Value, i64, i64)> = st
        .query_map(params![user_id, r, id, limit], |row| {
            let payload: String = row.get(3)?;
            let read_at: Option<i64> = row.get(5)?;
            Ok((
                json!({
                    "id": row.get::<_, i64>(0)?,
                    "kind": row.get::<_, String>(1)?,
                    "job_id": row.get::<_, String>(2)?,
                    "payload": serde_json::from_str::<Value>(&payload).unwrap_or_default(),
                    "created_at": crate::time::format_rfc3339_ms(row.get(4)?),
                    "read": read_at.is_some(),
                    "read_at": read_at.map(crate::time::format_rfc3339_ms),
                }),
                row.get::<_, i64>(6)?,
                row.get::<_, i64>(0)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let next = (rows.len() as u32 == limit)
        .then(|| rows.last().map(|(_, r, id)| format!("{r}_{id}")))
        .flatten();
    Ok((rows.into_iter().map(|(v, _, _)| v).collect(), next))
}

/// Marks one of the user's notices read; false if it is not theirs.
pub fn mark_read(conn: &Connection, user_id: i64, id: i64, now: i64) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE notifications SET read_at = coalesce(read_at, ?3) WHERE id = ?1 AND user_id = ?2",
        params![id, user_id, now],
    )?;
    Ok(n == 1)
}

/// Marks all of the user's notices read; returns how many changed.
pub fn mark_all_read(conn: &Connection, user_id: i64, now: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE notifications SET read_at = ?2 WHERE user_id = ?1 AND read_at IS NULL",
        params![user_id, now],
    )
}

/// Unread count (for badges).
pub fn unread(conn: &Connection, user_id: i64) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT count(*) FROM notifications WHERE user_id = ? AND read_at IS NULL",
        [user_id],
        |r| r.get(0),
    )
}
