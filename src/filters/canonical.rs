//! The canonical form of a filter set: keys in fixed order, lists sorted
//! and deduplicated, instants as RFC 3339 UTC milliseconds with `to`
//! exclusive — equal filter sets give byte-equal text, whose SHA-256
//! identifies the set (duplicate-job detection keys on it). Also the
//! one-line summary people read in notices.

use serde::{Deserialize, Serialize};

use super::{ActionPattern, FilterError, FilterErrorCode, FilterInput, Filters, Limits};
use crate::time;

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
