//! Recording events on a requester's behalf: a user must be an admin and
//! records into their own organization; a system requester (the CLI, a
//! host application) into any.

use rusqlite::{params, Connection, OptionalExtension};

use super::{Service, ServiceError};
use crate::audit::NewEvent;
use crate::users::{Requester, Role};

pub use crate::jobs::cleanup::IDEMPOTENCY_TTL_MS;

/// An `Idempotency-Key` and the SHA-256 of the request it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// The key as sent: 1 to 255 visible ASCII characters.
    pub key: String,
    /// SHA-256 (hex) of the request body; the same key with another body is
    /// a conflict.
    pub request_sha256: String,
}

/// What an ingest under an Idempotency-Key answered.
#[derive(Debug, Clone)]
pub enum Ingested {
    /// Inserted now: the event ids.
    New(Vec<i64>),
    /// A retry: the first answer, status and JSON body, nothing inserted.
    Replayed {
        /// HTTP status of the first answer.
        status: u16,
        /// JSON body of the first answer.
        body: String,
    },
}

impl Service {
    /// [`Service::ingest`] once per `(user, key)`: the events and the answer
    /// `answer(ids)` commit together, so a retry after a lost answer gets
    /// the same answer and inserts nothing; the same key with another body
    /// is [`ServiceError::IdempotencyConflict`].
    pub fn ingest_once(
        &self,
        conn: &mut Connection,
        who: &Requester,
        events: &[NewEvent],
        key: &Idempotency,
        answer: impl FnOnce(&[i64]) -> (u16, String),
    ) -> Result<Ingested, ServiceError> {
        let Requester::User(u) = who else {
            return Err(ServiceError::invalid(
                "invalid_idempotency_key",
                "Idempotency-Key",
                "Idempotency-Key is for API users",
            ));
        };
        self.check_ingest(who, events)?;
        let tx = crate::db::immediate(conn)?;
        let earlier: Option<(String, u16, String)> = tx
            .query_row(
                "SELECT request_sha256, status, response FROM idempotency_keys \
                 WHERE user_id = ? AND key = ? AND created_at > ?",
                params![u.id, key.key, self.now_ms() - IDEMPOTENCY_TTL_MS],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        if let Some((sha, status, body)) = earlier {
            if sha != key.request_sha256 {
                return Err(ServiceError::IdempotencyConflict(key.key.clone()));
            }
            return Ok(Ingested::Replayed { status, body });
        }
        let ids = crate::audit::insert::insert_in(&tx, events)?;
        let (status, body) = answer(&ids);
        tx.execute(
            "INSERT OR REPLACE INTO idempotency_keys (user_id, key, request_sha256, status, response, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
            params![u.id, key.key, key.request_sha256, status, body, self.now_ms()],
        )?;
        tx.commit()?;
        Ok(Ingested::New(ids))
    }

    /// Checks and inserts `events` in one transaction (all or nothing);
    /// returns their ids.
    pub fn ingest(
        &self,
        conn: &mut Connection,
        who: &Requester,
        events: &[NewEvent],
    ) -> Result<Vec<i64>, ServiceError> {
        self.check_ingest(who, events)?;
        Ok(crate::audit::insert::insert_events(conn, events)?)
    }

    /// Who may record what: admins into their own organization.
    fn check_ingest(&self, who: &Requester, events: &[NewEvent]) -> Result<(), ServiceError> {
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
        Ok(())
    }
}
