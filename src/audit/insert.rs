//! Writing events: one insert path for ingest (files, HTTP), the engine's
//! own audit trail and host applications, and the lookup of one event by
//! id. This module never parses input.

use rusqlite::{params, CachedStatement, Connection, OptionalExtension, Statement};

use crate::audit::event::{NewEvent, Record};

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
    let mut st = insert_statement(tx)?;
    for e in events {
        insert_one(&mut st, e.id, &e.as_record(0))?;
        ids.push(e.id.unwrap_or_else(|| tx.last_insert_rowid()));
    }
    Ok(ids)
}

/// Inserts events (`id: None`: the next id; a record's own id is not used)
/// inside the caller's transaction; an explicit id that already exists is
/// left untouched. (Several rows per statement measured slower: binding
/// dominates, not the statement runs.)
pub(crate) fn insert_rows<'r>(
    tx: &Connection,
    rows: impl Iterator<Item = (Option<i64>, Record<'r>)>,
) -> rusqlite::Result<()> {
    let mut st = insert_statement(tx)?;
    for (id, r) in rows {
        insert_one(&mut st, id, &r)?;
    }
    Ok(())
}

/// The cached statement [`insert_one`] runs.
pub(crate) fn insert_statement(tx: &Connection) -> rusqlite::Result<CachedStatement<'_>> {
    tx.prepare_cached(
        "INSERT INTO audit_logs (id, occurred_at, organization_id, stream, action, \
         actor_type, actor_id, actor_name, actor_email, target_type, target_id, target_name, \
         ip_address, user_agent, request_id, changed_data, details) \
         VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO NOTHING",
    )
}

/// Inserts one event (`id: None`: the next id; the record's own id is not
/// used); an explicit id that already exists is left untouched.
pub(crate) fn insert_one(
    st: &mut Statement<'_>,
    id: Option<i64>,
    r: &Record<'_>,
) -> rusqlite::Result<()> {
    st.execute(params![
        id,
        r.occurred_at,
        r.organization_id,
        r.stream,
        r.action,
        r.actor_type,
        r.actor_id,
        r.actor_name,
        r.actor_email,
        r.target_type,
        r.target_id,
        r.target_name,
        r.ip_address,
        r.user_agent,
        r.request_id,
        r.changed_data,
        r.details
    ])?;
    Ok(())
}
