//! Writing events: one insert path for ingest (files, HTTP), the engine's
//! own audit trail and host applications, and the lookup of one event by
//! id. This module never parses input.

use rusqlite::{params, Connection, OptionalExtension};

use crate::audit::event::NewEvent;

/// The stored event with this id, if any.
pub fn load(conn: &Connection, id: i64) -> rusqlite::Result<Option<NewEvent>> {
    let mut st = conn.prepare_cached(
        "SELECT id, occurred_at, organization_id, stream, action, actor_type, actor_id, \
         actor_name, actor_email, target_type, target_id, target_name, ip_address, \
         user_agent, request_id, changed_data, details FROM audit_logs WHERE id = ?",
    )?;
    st.query_row([id], |r| {
        Ok(NewEvent {
            id: r.get(0)?,
            occurred_at: r.get(1)?,
            organization_id: r.get(2)?,
            stream: r.get(3)?,
            action: r.get(4)?,
            actor_type: r.get(5)?,
            actor_id: r.get(6)?,
            actor_name: r.get(7)?,
            actor_email: r.get(8)?,
            target_type: r.get(9)?,
            target_id: r.get(10)?,
            target_name: r.get(11)?,
            ip_address: r.get(12)?,
            user_agent: r.get(13)?,
            request_id: r.get(14)?,
            changed_data: r.get(15)?,
            details: r.get(16)?,
        })
    })
    .optional()
}

/// Inserts events in one transaction; returns the id of each (assigned or
/// given). An explicit id that already exists is left untouched (callers
/// check content first).
pub fn insert_events(conn: &mut Connection, events: &[NewEvent]) -> rusqlite::Result<Vec<i64>> {
    let tx = crate::db::immediate(conn)?;
    let ids = insert_in(&tx, events)?;
    tx.commit()?;
    Ok(ids)
}

/// [`insert_events`] inside the caller's transaction.
pub fn insert_in(tx: &Connection, events: &[NewEvent]) -> rusqlite::Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(events.len());
    {
        let mut st = tx.prepare_cached(
            "INSERT INTO audit_logs (id, occurred_at, organization_id, stream, action, \
             actor_type, actor_id, actor_name, actor_email, target_type, target_id, target_name, \
             ip_address, user_agent, request_id, changed_data, details) \
             VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO NOTHING",
        )?;
        for e in events {
            st.execute(params![
                e.id,
                e.occurred_at,
                e.organization_id,
                e.stream,
                e.action,
                e.actor_type,
                e.actor_id,
                e.actor_name,
                e.actor_email,
                e.target_type,
                e.target_id,
                e.target_name,
                e.ip_address,
                e.user_agent,
                e.request_id,
                e.changed_data,
                e.details
            ])?;
            ids.push(e.id.unwrap_or_else(|| tx.last_insert_rowid()));
        }
    }
    Ok(ids)
}
