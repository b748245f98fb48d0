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
    pub id: i64,
    /// Milliseconds since the Unix epoch, UTC.
    pub occurred_at: i64,
    pub organization_id: &'a str,
    pub stream: &'a str,
    pub action: &'a str,
    pub actor_type: Option<&'a str>,
    pub actor_id: Option<&'a str>,
    pub actor_name: Option<&'a str>,
    pub actor_email: Option<&'a str>,
    pub target_type: Option<&'a str>,
    pub target_id: Option<&'a str>,
    pub target_name: Option<&'a str>,
    pub ip_address: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub changed_data: Option<&'a str>,
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
    pub id: Option<i64>,
    pub occurred_at: i64,
    pub organization_id: String,
    pub stream: String,
    pub action: String,
    pub actor_type: Option<String>,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub actor_email: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub target_name: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub changed_data: Option<String>,
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
