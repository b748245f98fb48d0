//! The engine's own audit trail: exports and downloads are audit events
//! too (`audit_log.exported`, `audit_log.export_downloaded`), written into
//! `audit_logs` like any other event, in the requester's organization.

use rusqlite::Connection;
use serde_json::Value;

use crate::audit::event::NewEvent;

/// Who did it.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// Actor type recorded (`actor_type`): `user` or `system`.
    pub kind: String,
    /// Actor id: the user's requester id, or a system label (`host`, `schedule:<name>`).
    pub id: Option<String>,
    /// Display name of a user; `None` for the system.
    pub name: Option<String>,
    /// E-mail address of a user; `None` for the system.
    pub email: Option<String>,
}

/// Where a request came from, as the events record it.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The peer address of the connection (a forwarding header is not
    /// trusted: anyone can send one).
    pub ip: Option<String>,
    /// The client's `User-Agent` header, if it sent one.
    pub user_agent: Option<String>,
    /// The caller's `X-Request-Id`, to tie the event to their logs.
    pub request_id: Option<String>,
}

/// One event of the engine's own.
#[derive(Debug, Clone)]
pub struct OwnEvent<'a> {
    /// Organization the event is recorded in (the requester's).
    pub org: &'a str,
    /// Event action, e.g. `audit_log.exported` or `audit_log.export_downloaded`.
    pub action: &'a str,
    /// Who did it.
    pub actor: &'a Actor,
    /// The export job id, or the filter hash of a synchronous export.
    pub target_id: &'a str,
    /// Where the request came from.
    pub client: &'a Client,
    /// Event details, stored as JSON text in `details`.
    pub details: &'a Value,
}

/// Records one engine event at `now`; returns its id.
pub fn record(conn: &mut Connection, e: &OwnEvent<'_>, now: i64) -> rusqlite::Result<i64> {
    Ok(crate::audit::insert::insert_events(conn, &[event(e, now)])?[0])
}

/// [`record`] inside the caller's transaction (so the event commits with
/// what it records, e.g. a scheduled fire's job).
pub fn record_in(tx: &Connection, e: &OwnEvent<'_>, now: i64) -> rusqlite::Result<i64> {
    Ok(crate::audit::insert::insert_in(tx, &[event(e, now)])?[0])
}

fn event(e: &OwnEvent<'_>, now: i64) -> NewEvent {
    NewEvent {
        id: None,
        occurred_at: now,
        organization_id: e.org.to_string(),
        stream: "audit".into(),
        action: e.action.to_string(),
        actor_type: Some(e.actor.kind.clone()),
        actor_id: e.actor.id.clone(),
        actor_name: e.actor.name.clone(),
        actor_email: e.actor.email.clone(),
        target_type: Some("audit_export".into()),
        target_id: Some(e.target_id.to_string()),
        target_name: None,
        ip_address: e.client.ip.clone(),
        user_agent: e.client.user_agent.clone(),
        request_id: e.client.request_id.clone(),
        changed_data: None,
        details: Some(e.details.to_string()),
    }
}
