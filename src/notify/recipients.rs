//! Who may receive an export's e-mail: the requester's own verified address
//! by default; otherwise only verified users of the job's organization or
//! addresses in one of its allowed recipient domains (`[notify]` config).
//! Shared by the HTTP API (`email_to`) and the CLI (`--email-to`).
//!
//! This module only decides; it never sends or stores anything.

use rusqlite::Connection;

use super::NotifyConfig;
use crate::users::{find_by_email, User};

/// Most recipients one export may name.
pub const MAX_RECIPIENTS: usize = 20;

/// Why a recipient list was refused.
#[derive(Debug, thiserror::Error)]
pub enum RecipientError {
    /// This text is not an e-mail address.
    #[error("{0:?} is not an e-mail address")]
    Invalid(String),
    /// More than [`MAX_RECIPIENTS`] addresses.
    #[error("at most {MAX_RECIPIENTS} recipients")]
    TooMany,
    /// This address is neither a verified user of the organization nor in
    /// one of its allowed recipient domains.
    #[error(
        "{0} is neither a verified user of the organization nor in an allowed recipient domain"
    )]
    Unverified(String),
    /// Looking up users failed.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
}

/// The default: the user's own address, if verified.
pub fn default_for(user: &User) -> Vec<String> {
    if user.email_verified {
        vec![user.email.clone()]
    } else {
        Vec::new()
    }
}

/// Checks explicitly named recipients for organization `org`; returns them
/// normalized (trimmed, lower case, sorted, without duplicates).
pub fn check(
    conn: &Connection,
    cfg: &NotifyConfig,
    org: &str,
    list: &[String],
) -> Result<Vec<String>, RecipientError> {
    if list.len() > MAX_RECIPIENTS {
        return Err(RecipientError::TooMany);
    }
    let allowed: Vec<&String> = [org, "*"]
        .iter()
        .filter_map(|k| cfg.allowed_recipient_domains.get(*k))
        .flatten()
        .collect();
    let mut out = Vec::with_capacity(list.len());
    for raw in list {
        let addr = raw.trim().to_ascii_lowercase();
        let parsed: lettre::Address = addr
            .parse()
            .map_err(|_| RecipientError::Invalid(raw.clone()))?;
        let domain = parsed.domain();
        let verified_user = find_by_email(conn, org, &addr)
            .map_err(|e| match e {
                crate::users::UserError::Db(e) => RecipientError::Db(e),
                other => RecipientError::Invalid(other.to_string()),
            })?
            .is_some_and(|u| u.email_verified);
        let allowed_domain = allowed.iter().any(|d| {
            d.trim()
                .trim_start_matches('@')
                .eq_ignore_ascii_case(domain)
        });
        if !(verified_user || allowed_domain) {
            return Err(RecipientError::Unverified(addr));
        }
        out.push(addr);
    }
    out.sort();
    out.dedup();
    Ok(out)
}
