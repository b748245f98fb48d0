//! Recording events on a requester's behalf: a user must be an admin and
//! records into their own organization; a system requester (the CLI, a
//! host application) into any.

use rusqlite::Connection;

use super::{Service, ServiceError};
use crate::audit::NewEvent;
use crate::users::{Requester, Role};

impl Service {
    /// Checks and inserts `events` in one transaction (all or nothing);
    /// returns their ids.
    pub fn ingest(
        &self,
        conn: &mut Connection,
        who: &Requester,
        events: &[NewEvent],
    ) -> Result<Vec<i64>, ServiceError> {
        if let Requester::User(u) = who {
            if u.role != Role::Admin {
                return Err(ServiceError::Forbidden(
                    "only admins may ingest audit events".into(),
                ));
            }
            if let Some(other) = events
                .iter()
                .find(|e| e.organization_id != u.organization_id)
            {
                return Err(ServiceError::Forbidden(format!(
                    "organization_id {:?} is not your organization",
                    other.organization_id
                )));
            }
        }
        for (i, e) in events.iter().enumerate() {
            let bad = |field: &'static str, why: &str| {
                ServiceError::invalid("invalid_event", field, format!("event {i}: {field} {why}"))
            };
            for (field, v) in [
                ("organization_id", &e.organization_id),
                ("stream", &e.stream),
                ("action", &e.action),
            ] {
                if v.trim().is_empty() {
                    return Err(bad(field, "is required"));
                }
            }
            for (field, v) in [("changed_data", &e.changed_data), ("details", &e.details)] {
                if let Some(text) = v {
                    if serde_json::from_str::<serde_json::Value>(text).is_err() {
                        return Err(bad(field, "is not valid JSON"));
                    }
                }
            }
        }
        Ok(crate::audit::insert::insert_events(conn, events)?)
    }
}
