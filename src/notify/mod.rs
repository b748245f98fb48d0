//! Notifications: in-app notices and e-mail, through a transactional outbox.
//!
//! - [`enqueue_for_job`]: called by the job store inside the transaction of
//!   a job's final transition; writes the in-app notice and one outbox row
//!   per recipient (with a snapshot of the job), so a notification exists
//!   exactly when the job ended, whatever crashes afterwards.
//! - [`render`]: subject, text and HTML for each kind.
//! - [`deliver`]: the delivery service (SMTP via lettre, or `.eml` files in
//!   `<data-dir>/outbox/` when no SMTP is configured), retrying with backoff
//!   and never blocking or failing an export.
//! - [`inapp`]: the in-app notices a user reads and marks read.
//! - [`recipients`]: who may receive an export's e-mail.
//!
//! This module never decides *when* to notify: the job state machine does.

pub mod deliver;
pub mod inapp;
pub mod recipients;
pub mod render;

use rusqlite::{params, Connection};
use serde::Deserialize;
use serde_json::json;

use crate::jobs::{Job, JobState};

/// `[notify]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Per organization, the domains `email_to` may name besides verified
    /// users of that organization; the key `"*"` applies to every one.
    /// E.g. `[notify.allowed_recipient_domains] acme = ["auditors.example"]`.
    pub allowed_recipient_domains: std::collections::BTreeMap<String, Vec<String>>,
    /// Sender of e-mails.
    pub from: String,
    /// How often the outbox is checked, in milliseconds.
    pub delivery_interval_ms: u64,
    /// Backoff base between attempts, in milliseconds (doubles each time,
    /// up to one hour; a message is retried until it is sent).
    pub retry_base_ms: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            allowed_recipient_domains: Default::default(),
            from: "audit-export <audit-export@localhost>".into(),
            delivery_interval_ms: 1_000,
            retry_base_ms: 5_000,
        }
    }
}

/// `[smtp]` settings; with no host, e-mails are written as `.eml` files.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: Option<String>,
    /// Default: 587 for starttls, 465 for tls, 25 for none.
    pub port: Option<u16>,
    /// `starttls` (default), `tls` or `none`.
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Give up one send after this many seconds.
    pub timeout_secs: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: None,
            port: None,
            security: SmtpSecurity::Starttls,
            username: None,
            password: None,
            timeout_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    Starttls,
    Tls,
    None,
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Completed,
    Failed,
    Expired,
    NoResults,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Completed => "export_completed",
            Kind::Failed => "export_failed",
            Kind::Expired => "export_expired",
            Kind::NoResults => "export_no_results",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        [
            Kind::Completed,
            Kind::Failed,
            Kind::Expired,
            Kind::NoResults,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
    /// The kind for a job in a final state.
    pub fn for_job(job: &Job) -> Option<Kind> {
        match job.state {
            JobState::Completed if job.file.is_none() => Some(Kind::NoResults),
            JobState::Completed => Some(Kind::Completed),
            JobState::Failed => Some(Kind::Failed),
            JobState::Expired => Some(Kind::Expired),
            _ => None,
        }
    }
}

/// Writes the notice and the outbox rows for a job that just reached a
/// final state. Must run inside the transaction of that transition.
pub fn enqueue_for_job(tx: &Connection, job: &Job, now: i64) -> rusqlite::Result<()> {
    let Some(kind) = Kind::for_job(job) else {
        return Ok(());
    };
    let summary = crate::filters::Filters::from_canonical_json(
        &job.filters,
        &crate::filters::Limits {
            max_span_days: u32::MAX,
        },
    )
    .map(|f| f.summary())
    .unwrap_or_else(|_| job.filters.clone());
    let payload = json!({
        "job_id": job.id,
        "organization": job.organization_id,
        "format": job.format.as_str(),
        "filters": serde_json::from_str::<serde_json::Value>(&job.filters).unwrap_or_default(),
        "summary": summary,
        "record_count": job.record_count,
        "file": job.file.as_ref().map(|f| json!({"key": f.key, "name": f.name, "size": f.size, "sha256": f.sha256, "compressed": f.compressed})),
        "completed_at": job.completed_at,
        "error": job.error_code.as_ref().map(|c| json!({"code": c, "message": job.error_message})),
    })
    .to_string();
    if let Some(user_id) = job
        .requester
        .strip_prefix("user:")
        .and_then(|s| s.parse::<i64>().ok())
    {
        tx.prepare_cached(
            "INSERT INTO notifications (user_id, kind, job_id, payload, created_at) \
             SELECT id, ?2, ?3, ?4, ?5 FROM users WHERE id = ?1",
        )?
        .execute(params![user_id, kind.as_str(), job.id, payload, now])?;
    }
    let mut st = tx.prepare_cached(
        "INSERT INTO email_outbox (recipient, kind, job_id, payload, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    )?;
    for r in &job.recipients {
        st.execute(params![r, kind.as_str(), job.id, payload, now, now])?;
    }
    Ok(())
}
