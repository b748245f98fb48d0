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

use serde::{Deserialize, Serialize};

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
    pub organization: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    #[serde(default)]
    pub actors: Vec<String>,
    #[serde(default)]
    pub actions: Vec<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    #[serde(default)]
    pub streams: Vec<String>,
    pub q: Option<String>,
}

/// An action filter: an exact name, or a prefix written `user.*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ActionPattern {
    Exact(String),
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
    pub organization: String,
    /// Inclusive start, UTC milliseconds.
    pub from_ms: i64,
    /// Exclusive end, UTC milliseconds (`to` as given, plus its day or 1 ms).
    pub to_ms: i64,
    /// Actor ids or e-mails; sorted, deduplicated.
    pub actors: Vec<String>,
    /// Sorted, deduplicated.
    pub actions: Vec<ActionPattern>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// Sorted, deduplicated.
    pub streams: Vec<String>,
    /// Free text, trimmed; `None` when empty.
    pub q: Option<String>,
}

/// The stable code of a filter error (shared by CLI and HTTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterErrorCode {
    OrganizationRequired,
    InvalidOrganization,
    FromRequired,
    ToRequired,
    InvalidFrom,
    InvalidTo,
    RangeReversed,
    RangeTooLong,
    InvalidActor,
    InvalidAction,
    InvalidStream,
    InvalidTargetType,
    InvalidTargetId,
    TargetIdWithoutType,
    InvalidQuery,
    TooManyValues,
}

impl FilterErrorCode {
    pub const ALL: [FilterErrorCode; 16] = [
        FilterErrorCode::OrganizationRequired,
        FilterErrorCode::InvalidOrganization,
        FilterErrorCode::FromRequired,
        FilterErrorCode::ToRequired,
        FilterErrorCode::InvalidFrom,
        FilterErrorCode::InvalidTo,
        FilterErrorCode::RangeReversed,
        FilterErrorCode::RangeTooLong,
        FilterErrorCode::InvalidActor,
        FilterErrorCode::InvalidAction,
        FilterErrorCode::InvalidStream,
        FilterErrorCode::InvalidTargetType,
        FilterErrorCode::InvalidTargetId,
        FilterErrorCode::TargetIdWithoutType,
        FilterErrorCode::InvalidQuery,
        FilterErrorCode::TooManyValues,
    ];

    /// The machine-readable code, e.g. `range_too_long`.
    pub fn as_str(self) -> &'static str {
        use FilterErrorCode::*;
        match self {
            OrganizationRequired => "organization_required",
            InvalidOrganization => "invalid_organization",
            FromRequired => "from_required",
            ToRequired => "to_required",
            InvalidFrom => "invalid_from",
            InvalidTo => "invalid_to",
            RangeReversed => "range_reversed",
            RangeTooLong => "range_too_long",
            InvalidActor => "invalid_actor",
            InvalidAction => "invalid_action",
            InvalidStream => "invalid_stream",
            InvalidTargetType => "invalid_target_type",
            InvalidTargetId => "invalid_target_id",
            TargetIdWithoutType => "target_id_without_type",
            InvalidQuery => "invalid_q",
            TooManyValues => "too_many_values",
        }
    }

    /// The filter field the error is about (`from`, `actors`, ...), in the
    /// HTTP API's names; the CLI maps these to its flags.
    pub fn field(self) -> &'static str {
        use FilterErrorCode::*;
        match self {
            OrganizationRequired | InvalidOrganization => "organization",
            FromRequired | InvalidFrom => "from",
            ToRequired | InvalidTo | RangeReversed | RangeTooLong => "to",
            InvalidActor => "actors",
            InvalidAction => "actions",
            InvalidStream => "streams",
            InvalidTargetType => "target_type",
            InvalidTargetId | TargetIdWithoutType => "target_id",
            InvalidQuery => "q",
            TooManyValues => "filters",
        }
    }
}

/// A rejected filter: stable code plus a one-line message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FilterError {
    pub code: FilterErrorCode,
    pub message: String,
}

impl FilterError {
    fn new(code: FilterErrorCode, message: impl Into<String>) -> Self {
        FilterError {
            code,
            message: message.into(),
        }
    }
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

/// The canonical serialized form: keys in fixed order, lists sorted,
/// instants as RFC 3339 UTC milliseconds with `to` exclusive.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Canonical {
    organization: String,
    from: String,
    to_exclusive: String,
    actors: Vec<String>,
    actions: Vec<String>,
    target_type: Option<String>,
    target_id: Option<String>,
    streams: Vec<String>,
    q: Option<String>,
}

impl Filters {
    /// The canonical JSON form: equal filter sets give equal strings.
    pub fn canonical_json(&self) -> String {
        let c = Canonical {
            organization: self.organization.clone(),
            from: time::format_rfc3339_ms(self.from_ms),
            to_exclusive: time::format_rfc3339_ms(self.to_ms),
            actors: self.actors.clone(),
            actions: self.actions.iter().map(ActionPattern::as_text).collect(),
            target_type: self.target_type.clone(),
            target_id: self.target_id.clone(),
            streams: self.streams.clone(),
            q: self.q.clone(),
        };
        serde_json::to_string(&c).expect("plain data serializes")
    }

    /// SHA-256 (hex) of [`Filters::canonical_json`].
    pub fn hash(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.canonical_json().as_bytes());
        crate::util::hex(digest.as_ref())
    }

    /// Reads back a [`Filters::canonical_json`] string (e.g. from a job row),
    /// re-validating it with `limits`.
    pub fn from_canonical_json(s: &str, limits: &Limits) -> Result<Filters, FilterError> {
        let c: Canonical = serde_json::from_str(s).map_err(|e| {
            FilterError::new(
                FilterErrorCode::InvalidFrom,
                format!("stored filters are unreadable: {e}"),
            )
        })?;
        // The stored end is exclusive; turn it back into the inclusive
        // instant the validator expects.
        let to_excl = time::parse_rfc3339_ms(&c.to_exclusive).ok_or_else(|| {
            FilterError::new(FilterErrorCode::InvalidTo, "stored end is unreadable")
        })?;
        FilterInput {
            organization: Some(c.organization),
            from: Some(c.from),
            to: Some(time::format_rfc3339_ms(to_excl - 1)),
            actors: c.actors,
            actions: c.actions,
            target_type: c.target_type,
            target_id: c.target_id,
            streams: c.streams,
            q: c.q,
        }
        .validate(limits)
    }

    /// A short human summary, for file names, e-mails and logs.
    pub fn summary(&self) -> String {
        let mut parts = vec![format!(
            "{} from {} to {} (exclusive)",
            self.organization,
            time::format_rfc3339_ms(self.from_ms),
            time::format_rfc3339_ms(self.to_ms)
        )];
        if !self.actors.is_empty() {
            parts.push(format!("actors {}", self.actors.join(", ")));
        }
        if !self.actions.is_empty() {
            let a: Vec<_> = self.actions.iter().map(ActionPattern::as_text).collect();
            parts.push(format!("actions {}", a.join(", ")));
        }
        if let Some(t) = &self.target_type {
            match &self.target_id {
                Some(id) => parts.push(format!("target {t}/{id}")),
                None => parts.push(format!("target type {t}")),
            }
        }
        if !self.streams.is_empty() {
            parts.push(format!("streams {}", self.streams.join(", ")));
        }
        if let Some(q) = &self.q {
            parts.push(format!("text {q:?}"));
        }
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FilterErrorCode as C;

    fn base() -> FilterInput {
        FilterInput {
            organization: Some("acme".into()),
            from: Some("2025-01-01".into()),
            to: Some("2025-01-31".into()),
            ..Default::default()
        }
    }

    fn code(input: FilterInput) -> FilterErrorCode {
        input.validate(&Limits::default()).unwrap_err().code
    }

    #[test]
    fn bare_to_date_includes_the_whole_day_half_open() {
        let f = base().validate(&Limits::default()).unwrap();
        assert_eq!(f.from_ms, time::parse_date_ms("2025-01-01").unwrap());
        assert_eq!(f.to_ms, time::parse_date_ms("2025-02-01").unwrap());
    }

    #[test]
    fn instant_to_is_inclusive_of_its_millisecond() {
        let mut i = base();
        i.to = Some("2025-01-05T10:00:00.500+01:00".into());
        let f = i.validate(&Limits::default()).unwrap();
        assert_eq!(
            f.to_ms,
            time::parse_rfc3339_ms("2025-01-05T09:00:00.501Z").unwrap()
        );
    }

    #[test]
    fn same_set_in_any_order_gives_the_same_hash() {
        let mut a = base();
        a.actors = vec!["u_2".into(), "ada@acme.example".into(), "u_1".into()];
        a.actions = vec![
            "user.*".into(),
            "page.updated".into(),
            "role.assigned".into(),
        ];
        a.streams = vec!["scim".into(), "audit".into()];
        let mut b = base();
        b.actors = vec![
            " u_1".into(),
            "u_2".into(),
            "ada@acme.example".into(),
            "u_1".into(),
        ];
        b.actions = vec![
            "role.assigned".into(),
            "user.*".into(),
            "page.updated".into(),
        ];
        b.streams = vec!["audit".into(), "scim".into(), "audit".into()];
        // The same range, spelled as instants with another offset.
        b.from = Some("2025-01-01T01:00:00+01:00".into());
        b.to = Some("2025-01-31T23:59:59.999Z".into());
        let fa = a.validate(&Limits::default()).unwrap();
        let fb = b.validate(&Limits::default()).unwrap();
        assert_eq!(fa.canonical_json(), fb.canonical_json());
        assert_eq!(fa.hash(), fb.hash());
        assert_eq!(fa.hash().len(), 64);
    }

    #[test]
    fn different_sets_give_different_hashes() {
        let fa = base().validate(&Limits::default()).unwrap();
        let mut b = base();
        b.q = Some("x".into());
        let fb = b.validate(&Limits::default()).unwrap();
        let mut c = base();
        c.actions = vec!["user.login".into()];
        let fc = c.validate(&Limits::default()).unwrap();
        let mut d = base();
        d.actions = vec!["user.login*".into()];
        let fd = d.validate(&Limits::default()).unwrap();
        let hashes = [fa.hash(), fb.hash(), fc.hash(), fd.hash()];
        for i in 0..hashes.len() {
            for j in i + 1..hashes.len() {
                assert_ne!(hashes[i], hashes[j]);
            }
        }
    }

    #[test]
    fn canonical_json_round_trips() {
        let mut a = base();
        a.actors = vec!["u_1".into()];
        a.actions = vec!["user.*".into()];
        a.target_type = Some("page".into());
        a.target_id = Some("p_9".into());
        a.streams = vec!["audit".into()];
        a.q = Some("50%_off".into());
        a.to = Some("2025-01-05T10:00:00.123Z".into());
        let f = a.validate(&Limits::default()).unwrap();
        let back = Filters::from_canonical_json(&f.canonical_json(), &Limits::default()).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn every_error_code_is_reachable() {
        let mut seen = std::collections::HashSet::new();
        let mut check = |input: FilterInput, expected: FilterErrorCode| {
            assert_eq!(code(input), expected);
            seen.insert(expected);
        };
        check(
            FilterInput {
                organization: None,
                ..base()
            },
            C::OrganizationRequired,
        );
        check(
            FilterInput {
                organization: Some("  ".into()),
                ..base()
            },
            C::OrganizationRequired,
        );
        check(
            FilterInput {
                organization: Some("a\u{0}b".into()),
                ..base()
            },
            C::InvalidOrganization,
        );
        check(
            FilterInput {
                from: None,
                ..base()
            },
            C::FromRequired,
        );
        check(FilterInput { to: None, ..base() }, C::ToRequired);
        check(
            FilterInput {
                from: Some("2025-13-01".into()),
                ..base()
            },
            C::InvalidFrom,
        );
        check(
            FilterInput {
                from: Some("yesterday".into()),
                ..base()
            },
            C::InvalidFrom,
        );
        check(
            FilterInput {
                to: Some("2025/01/31".into()),
                ..base()
            },
            C::InvalidTo,
        );
        check(
            FilterInput {
                from: Some("2025-02-01".into()),
                ..base()
            },
            C::RangeReversed,
        );
        check(
            FilterInput {
                to: Some("2026-01-02".into()),
                ..base()
            },
            C::RangeTooLong,
        );
        check(
            FilterInput {
                actors: vec!["".into()],
                ..base()
            },
            C::InvalidActor,
        );
        check(
            FilterInput {
                actions: vec!["*".into()],
                ..base()
            },
            C::InvalidAction,
        );
        check(
            FilterInput {
                actions: vec!["us*er".into()],
                ..base()
            },
            C::InvalidAction,
        );
        check(
            FilterInput {
                streams: vec!["a b".into()],
                ..base()
            },
            C::InvalidStream,
        );
        check(
            FilterInput {
                target_type: Some(" ".into()),
                ..base()
            },
            C::InvalidTargetType,
        );
        check(
            FilterInput {
                target_type: Some("page".into()),
                target_id: Some("".into()),
                ..base()
            },
            C::InvalidTargetId,
        );
        check(
            FilterInput {
                target_id: Some("p_1".into()),
                ..base()
            },
            C::TargetIdWithoutType,
        );
        check(
            FilterInput {
                q: Some("x".repeat(MAX_Q_CHARS + 1)),
                ..base()
            },
            C::InvalidQuery,
        );
        check(
            FilterInput {
                actors: (0..=MAX_LIST_VALUES).map(|i| i.to_string()).collect(),
                ..base()
            },
            C::TooManyValues,
        );
        for c in FilterErrorCode::ALL {
            assert!(seen.contains(&c), "no test reaches {}", c.as_str());
        }
    }

    #[test]
    fn range_limit_is_configurable_and_a_leap_year_fits() {
        let leap = FilterInput {
            from: Some("2024-01-01".into()),
            to: Some("2024-12-31".into()),
            ..base()
        };
        assert!(leap.validate(&Limits::default()).is_ok());
        assert_eq!(
            leap.validate(&Limits { max_span_days: 30 })
                .unwrap_err()
                .code,
            C::RangeTooLong
        );
        // A single day (from == to as dates) is a valid, non-empty range.
        let day = FilterInput {
            from: Some("2024-03-01".into()),
            to: Some("2024-03-01".into()),
            ..base()
        };
        let f = day.validate(&Limits::default()).unwrap();
        assert_eq!(f.to_ms - f.from_ms, DAY_MS);
    }

    #[test]
    fn empty_q_means_no_text_filter() {
        let f = FilterInput {
            q: Some("   ".into()),
            ..base()
        }
        .validate(&Limits::default())
        .unwrap();
        assert_eq!(f.q, None);
    }
}
