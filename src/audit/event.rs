//! The audit event as stored and exported.
//!
//! [`Record`] borrows its text straight from a SQLite row, so the export hot
//! path copies nothing; [`NewEvent`] owns its data and is what ingest and the
//! seed generator insert. Both list their fields in the raw column order
//! ([`COLUMNS`]), which is also the CSV raw profile's column order.

/// The raw column order: CSV header, `SELECT` list and CSV ingest layout.
pub const COLUMNS: [&str; 17] = [
    "id",
    "occurred_at",
    "organization_id",
    "stream",
    "action",
    "actor_type",
    "actor_id",
    "actor_name",
    "actor_email",
    "target_type",
    "target_id",
    "target_name",
    "ip_address",
    "user_agent",
    "request_id",
    "changed_data",
    "details",
];

/// One stored event, borrowed from a database row.
///
/// `changed_data` and `details` are compact JSON text (validated on ingest
/// and by a CHECK constraint), so writers may embed them verbatim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Row id: never reused, the tie-breaker of the `(occurred_at, id)` scan order.
    pub id: i64,
    /// Milliseconds since the Unix epoch, UTC.
    pub occurred_at: i64,
    /// Tenant the event belongs to; every query is scoped to one.
    pub organization_id: &'a str,
    /// Event category, e.g. `audit`; filterable with `streams`.
    pub stream: &'a str,
    /// What happened, e.g. `user.login`.
    pub action: &'a str,
    /// Kind of actor (JSON `actor.type`), e.g. `user`.
    pub actor_type: Option<&'a str>,
    /// Actor's id (JSON `actor.id`).
    pub actor_id: Option<&'a str>,
    /// Actor's display name (JSON `actor.name`).
    pub actor_name: Option<&'a str>,
    /// Actor's e-mail address (JSON `actor.email`).
    pub actor_email: Option<&'a str>,
    /// Kind of object acted on (JSON `target.type`).
    pub target_type: Option<&'a str>,
    /// Id of the object acted on (JSON `target.id`).
    pub target_id: Option<&'a str>,
    /// Display name of the object acted on (JSON `target.name`).
    pub target_name: Option<&'a str>,
    /// Client IP address (JSON `context.ip_address`).
    pub ip_address: Option<&'a str>,
    /// Client User-Agent (JSON `context.user_agent`).
    pub user_agent: Option<&'a str>,
    /// Correlation id of the request that caused the event (JSON `context.request_id`).
    pub request_id: Option<&'a str>,
    /// Compact JSON of what changed, embedded verbatim by writers.
    pub changed_data: Option<&'a str>,
    /// Compact JSON of any further details, embedded verbatim by writers.
    pub details: Option<&'a str>,
}

impl<'a> Record<'a> {
    /// The nullable text columns after `action`, in [`COLUMNS`] order.
    pub fn optional_columns(&self) -> [Option<&'a str>; 12] {
        [
            self.actor_type,
            self.actor_id,
            self.actor_name,
            self.actor_email,
            self.target_type,
            self.target_id,
            self.target_name,
            self.ip_address,
            self.user_agent,
            self.request_id,
            self.changed_data,
            self.details,
        ]
    }
}

/// An event to insert. `id: None` lets the database assign the next id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewEvent {
    /// Explicit id, 1 to
    /// [`MAX_EXPLICIT_ID`](crate::audit::ingest::MAX_EXPLICIT_ID); `None`:
    /// the database assigns the next one.
    pub id: Option<i64>,
    /// Milliseconds since the Unix epoch, UTC.
    pub occurred_at: i64,
    /// Tenant the event belongs to; must not be empty.
    pub organization_id: String,
    /// Event category, e.g. `audit`; must not be empty.
    pub stream: String,
    /// What happened, e.g. `user.login`; must not be empty.
    pub action: String,
    /// Kind of actor (JSON `actor.type`), e.g. `user`.
    pub actor_type: Option<String>,
    /// Actor's id (JSON `actor.id`).
    pub actor_id: Option<String>,
    /// Actor's display name (JSON `actor.name`).
    pub actor_name: Option<String>,
    /// Actor's e-mail address (JSON `actor.email`).
    pub actor_email: Option<String>,
    /// Kind of object acted on (JSON `target.type`).
    pub target_type: Option<String>,
    /// Id of the object acted on (JSON `target.id`).
    pub target_id: Option<String>,
    /// Display name of the object acted on (JSON `target.name`).
    pub target_name: Option<String>,
    /// Client IP address (JSON `context.ip_address`).
    pub ip_address: Option<String>,
    /// Client User-Agent (JSON `context.user_agent`).
    pub user_agent: Option<String>,
    /// Correlation id of the request that caused the event (JSON `context.request_id`).
    pub request_id: Option<String>,
    /// What changed, as compact JSON text (must be valid JSON).
    pub changed_data: Option<String>,
    /// Further details, as compact JSON text (must be valid JSON).
    pub details: Option<String>,
}

impl NewEvent {
    /// Borrows this event as a [`Record`] with the given id.
    pub fn as_record(&self, id: i64) -> Record<'_> {
        Record {
            id,
            occurred_at: self.occurred_at,
            organization_id: &self.organization_id,
            stream: &self.stream,
            action: &self.action,
            actor_type: self.actor_type.as_deref(),
            actor_id: self.actor_id.as_deref(),
            actor_name: self.actor_name.as_deref(),
            actor_email: self.actor_email.as_deref(),
            target_type: self.target_type.as_deref(),
            target_id: self.target_id.as_deref(),
            target_name: self.target_name.as_deref(),
            ip_address: self.ip_address.as_deref(),
            user_agent: self.user_agent.as_deref(),
            request_id: self.request_id.as_deref(),
            changed_data: self.changed_data.as_deref(),
            details: self.details.as_deref(),
        }
    }
}
