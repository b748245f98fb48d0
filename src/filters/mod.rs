//! Export filters: parse, validate, canonicalize and hash.
//!
//! A [`FilterInput`] is what a user typed (CLI flags or an HTTP body); a
//! validated [`Filters`] is what the engine runs. Validation turns each
//! mistake into a [`FilterError`] with a stable machine code and a one-line
//! message. The canonical form (sorted, deduplicated lists; instants as
//! half-open UTC milliseconds) makes equal filter sets byte-equal, and its
//! SHA-256 identifies the set (duplicate-job detection keys on it).
//!
//! This module never builds SQL: `audit::query` turns [`Filters`] into a
//! statement.

mod canonical;
mod error;

use serde::Deserialize;

pub use error::{FilterError, FilterErrorCode};

use crate::time::{self, DAY_MS};

/// Longest accepted free-text query, in characters.
pub const MAX_Q_CHARS: usize = 256;
/// Most values accepted in one list filter (actors, actions, streams).
pub const MAX_LIST_VALUES: usize = 100;
/// Longest accepted single value (organization, actor, action, ...).
pub const MAX_VALUE_CHARS: usize = 512;

/// Limits that depend on configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest allowed range, in days (default 366: one year, leap or not).
    pub max_span_days: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_span_days: 366 }
    }
}

/// Filters as a user gave them, before validation.
///
/// Field names are the HTTP API's; unknown fields are rejected so a typo
/// (`"actor"` for `"actors"`) is an error instead of a silently wider export.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterInput {
    /// The organization to scan (required; for a user, their own when left out).
    pub organization: Option<String>,
    /// Start of the range (required): a date (its midnight UTC) or an RFC
    /// 3339 instant, inclusive.
    pub from: Option<String>,
    /// End of the range (required): a date (that whole day included) or an
    /// RFC 3339 instant (that millisecond included).
    pub to: Option<String>,
    /// Actor ids, or e-mails matched ignoring ASCII case; any of them matches.
    #[serde(default)]
    pub actors: Vec<String>,
    /// Action names, or prefixes written `user.*`; any of them matches.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Only events whose target is of this type.
    pub target_type: Option<String>,
    /// Only events about this target id (needs `target_type`).
    pub target_id: Option<String>,
    /// Only events of these streams; any of them matches.
    #[serde(default)]
    pub streams: Vec<String>,
    /// Free text: the event id exactly, or a case-insensitive substring of
    /// action, actor, target, request id or details.
    pub q: Option<String>,
}

/// An action filter: an exact name, or a prefix written `user.*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ActionPattern {
    /// This action name exactly.
    Exact(String),
    /// Actions starting with this text (case-sensitive), stored without the `*`.
    Prefix(String),
}

impl ActionPattern {
    fn parse(raw: &str) -> Result<Self, FilterError> {
        let v = raw.trim();
        let bad = |why: &str| {
            FilterError::new(
                FilterErrorCode::InvalidAction,
                format!("action {raw:?} {why}"),
            )
        };
        if v.is_empty() {
            return Err(bad("is empty"));
        }
        if v.chars().count() > MAX_VALUE_CHARS {
            return Err(bad("is too long"));
        }
        match v.find('*') {
            None => Ok(ActionPattern::Exact(v.to_string())),
            Some(i) if i == v.len() - 1 && i > 0 => Ok(ActionPattern::Prefix(v[..i].to_string())),
            Some(_) => Err(bad(
                "has a '*' that is not a trailing prefix wildcard (write e.g. user.*)",
            )),
        }
    }

    /// The pattern as the user writes it (`user.login` or `user.*`).
    pub fn as_text(&self) -> String {
        match self {
            ActionPattern::Exact(a) => a.clone(),
            ActionPattern::Prefix(p) => format!("{p}*"),
        }
    }
}

/// Validated filters. Construct through [`FilterInput::validate`] or
/// [`Filters::from_canonical_json`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filters {
    /// The one organization scanned, trimmed.
    pub organization: String,
    /// Inclusive start, UTC milliseconds.
    pub from_ms: i64,
    /// Exclusive end, UTC milliseconds (`to` as given, plus its day or 1 ms).
    pub to_ms: i64,
    /// Actor ids or e-mails; sorted, deduplicated.
    pub actors: Vec<String>,
    /// Sorted, deduplicated.
    pub actions: Vec<ActionPattern>,
    /// Exact target type, trimmed; `None`: any.
    pub target_type: Option<String>,
    /// Exact target id, trimmed (only with `target_type`); `None`: any.
    pub target_id: Option<String>,
    /// Sorted, deduplicated.
    pub streams: Vec<String>,
    /// Free text, trimmed; `None` when empty.
    pub q: Option<String>,
}

fn trimmed(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn check_len(v: &str, code: FilterErrorCode, what: &str) -> Result<(), FilterError> {
    if v.chars().count() > MAX_VALUE_CHARS {
        return Err(FilterError::new(
            code,
            format!("{what} is longer than {MAX_VALUE_CHARS} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(FilterError::new(
            code,
            format!("{what} contains control characters"),
        ));
    }
    Ok(())
}

fn check_count(n: usize, field: &str) -> Result<(), FilterError> {
    if n > MAX_LIST_VALUES {
        return Err(FilterError::new(
            FilterErrorCode::TooManyValues,
            format!("{field}: {n} values given, at most {MAX_LIST_VALUES} allowed"),
        ));
    }
    Ok(())
}

/// Parses the start of the range: a date means its midnight UTC.
fn parse_from(raw: &str) -> Option<i64> {
    time::parse_date_ms(raw).or_else(|| time::parse_rfc3339_ms(raw))
}

/// Parses the end of the range into an exclusive bound: a bare date
/// includes that whole day; an instant includes that millisecond.
fn parse_to_exclusive(raw: &str) -> Option<i64> {
    match time::parse_date_ms(raw) {
        Some(day) => day.checked_add(DAY_MS),
        None => time::parse_rfc3339_ms(raw)?.checked_add(1),
    }
}

impl FilterInput {
    /// Validates and canonicalizes. The first problem found is returned.
    pub fn validate(&self, limits: &Limits) -> Result<Filters, FilterError> {
        use FilterErrorCode as C;
        let organization = trimmed(&self.organization).ok_or_else(|| {
            FilterError::new(C::OrganizationRequired, "an organization is required")
        })?;
        check_len(organization, C::InvalidOrganization, "organization")?;

        let from_raw = trimmed(&self.from)
            .ok_or_else(|| FilterError::new(C::FromRequired, "a start date (from) is required"))?;
        let to_raw = trimmed(&self.to)
            .ok_or_else(|| FilterError::new(C::ToRequired, "an end date (to) is required"))?;
        let from_ms = parse_from(from_raw).ok_or_else(|| {
            FilterError::new(
                C::InvalidFrom,
                format!("from {from_raw:?} is not a date (YYYY-MM-DD) or an RFC 3339 instant"),
            )
        })?;
        let to_ms = parse_to_exclusive(to_raw).ok_or_else(|| {
            FilterError::new(
                C::InvalidTo,
                format!("to {to_raw:?} is not a date (YYYY-MM-DD) or an RFC 3339 instant"),
            )
        })?;
        if to_ms <= from_ms {
            return Err(FilterError::new(
                C::RangeReversed,
                format!("to ({to_raw}) is before from ({from_raw})"),
            ));
        }
        let max_ms = i64::from(limits.max_span_days) * DAY_MS;
        if to_ms - from_ms > max_ms {
            return Err(FilterError::new(
                C::RangeTooLong,
                format!(
                    "the range {from_raw} .. {to_raw} is longer than {} days; split the export",
                    limits.max_span_days
                ),
            ));
        }

        check_count(self.actors.len(), "actors")?;
        let mut actors = Vec::with_capacity(self.actors.len());
        for a in &self.actors {
            let v = a.trim();
            if v.is_empty() {
                return Err(FilterError::new(C::InvalidActor, "an actor value is empty"));
            }
            check_len(v, C::InvalidActor, "actor")?;
            actors.push(v.to_string());
        }
        actors.sort();
        actors.dedup();

        check_count(self.actions.len(), "actions")?;
        let mut actions = self
            .actions
            .iter()
            .map(|a| ActionPattern::parse(a))
            .collect::<Result<Vec<_>, _>>()?;
        actions.sort();
        actions.dedup();

        check_count(self.streams.len(), "streams")?;
        let mut streams = Vec::with_capacity(self.streams.len());
        for s in &self.streams {
            let v = s.trim();
            let ok = !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !ok {
                return Err(FilterError::new(
                    C::InvalidStream,
                    format!("stream {s:?} must be 1-64 characters of a-z, 0-9, '_', '.', '-'"),
                ));
            }
            streams.push(v.to_string());
        }
        streams.sort();
        streams.dedup();

        let target_type = match &self.target_type {
            None => None,
            Some(t) => {
                let v = t.trim();
                if v.is_empty() {
                    return Err(FilterError::new(
                        C::InvalidTargetType,
                        "target_type is empty",
                    ));
                }
                check_len(v, C::InvalidTargetType, "target_type")?;
                Some(v.to_string())
            }
        };
        let target_id = match &self.target_id {
            None => None,
            Some(t) => {
                let v = t.trim();
                if v.is_empty() {
                    return Err(FilterError::new(C::InvalidTargetId, "target_id is empty"));
                }
                check_len(v, C::InvalidTargetId, "target_id")?;
                if target_type.is_none() {
                    return Err(FilterError::new(
                        C::TargetIdWithoutType,
                        "target_id needs target_type (ids are only unique within a type)",
                    ));
                }
                Some(v.to_string())
            }
        };

        let q = match trimmed(&self.q) {
            None => None,
            Some(v) if v.chars().count() > MAX_Q_CHARS => {
                return Err(FilterError::new(
                    C::InvalidQuery,
                    format!("q is longer than {MAX_Q_CHARS} characters"),
                ))
            }
            Some(v) if v.chars().any(char::is_control) => {
                return Err(FilterError::new(
                    C::InvalidQuery,
                    "q contains control characters",
                ))
            }
            Some(v) => Some(v.to_string()),
        };

        Ok(Filters {
            organization: organization.to_string(),
            from_ms,
            to_ms,
            actors,
            actions,
            target_type,
            target_id,
            streams,
            q,
        })
    }
}

#[cfg(test)]
mod tests;
