//! Notifications: in-app notices and e-mail, through a transactional outbox.
//!
//! - [`enqueue`]: called by the job store inside the transaction of a job's
//!   final transition with a [`Notice`] (a snapshot of the job); writes the
//!   in-app notice and one outbox row per recipient, so a notification
//!   exists exactly when the job ended, whatever crashes afterwards.
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

/// `[notify]` settings.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// SMTP server host name; `None`: no SMTP, messages become `.eml` files.
    pub host: Option<String>,
    /// Default: 587 for starttls, 465 for tls, 25 for none.
    pub port: Option<u16>,
    /// `starttls` (default), `tls` or `none`.
    pub security: SmtpSecurity,
    /// Login user name; the client logs in only when both it and `password` are set.
    pub username: Option<String>,
    /// Login password, used together with `username`.
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

/// How the SMTP connection is secured (`[smtp] security`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, which is required (default port 587).
    Starttls,
    /// TLS from the first byte, "SMTPS" (default port 465).
    Tls,
    /// No encryption (default port 25).
    None,
}

crate::util::text_enum! {
    /// What a notification is about.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind ("notification kind") {
        /// The job completed with a file to download.
        Completed = "export_completed",
        /// The job failed (attempts exhausted, a fatal error, or cancelled).
        Failed = "export_failed",
        /// The job stayed in progress past the job TTL and was expired.
        Expired = "export_expired",
        /// The job completed but no event matched: there is no file.
        NoResults = "export_no_results",
    }
}

impl Kind {
    /// The kind stored under this name (e.g. `export_completed`), if any.
    pub fn parse(s: &str) -> Option<Kind> {
        s.parse().ok()
    }
}

/// A job's end, to announce: in-app to its requesting user, by e-mail to
/// its recipients. Built by the job store; `payload` is the job snapshot
/// the messages are rendered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// How the job ended.
    pub kind: Kind,
    /// The job announced.
    pub job_id: String,
    /// The requesting user, when a user asked (in-app notice).
    pub user_id: Option<i64>,
    /// E-mail addresses of the job's `email_to`, one outbox row each.
    pub recipients: Vec<String>,
    /// The job snapshot as JSON text (id, organization, format, filters,
    /// record count, file, error), stored with the notice and outbox rows.
    pub payload: String,
}

/// Writes the in-app notice and one outbox row per recipient. Must run
/// inside the transaction of the job's final transition.
pub fn enqueue(tx: &Connection, n: &Notice, now: i64) -> rusqlite::Result<()> {
    if let Some(user_id) = n.user_id {
        tx.prepare_cached(
            "INSERT INTO notifications (user_id, kind, job_id, payload, created_at) \
             SELECT id, ?2, ?3, ?4, ?5 FROM users WHERE id = ?1",
        )?
        .execute(params![user_id, n.kind.as_str(), n.job_id, n.payload, now])?;
    }
    let mut st = tx.prepare_cached(
        "INSERT INTO email_outbox (recipient, kind, job_id, payload, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    )?;
    for r in &n.recipients {
        st.execute(params![r, n.kind.as_str(), n.job_id, n.payload, now, now])?;
    }
    Ok(())
}
