//! Recognising events already present: an explicit id seen twice in one
//! input is an error; an id that exists with identical content is
//! unchanged (re-ingesting a file is harmless); with other content, an
//! error.
//!
//! Both checks are per row, so both are kept cheap for the usual input (an
//! export of another instance, ids ascending): the ids seen are kept as
//! runs of consecutive ids, not one entry each, and an id above the
//! largest one in the table needs no lookup.

use std::collections::BTreeMap;

use rusqlite::Connection;

use super::packed::Packed;
use super::FieldError;
use crate::audit::event::NewEvent;

/// The outcome of checking one parsed event against the database.
pub(super) enum Checked {
    New(Packed),
    Unchanged,
}

/// A set of ids as runs `start → end` (inclusive, disjoint, not adjacent).
#[derive(Default)]
struct IdRuns(BTreeMap<i64, i64>);

impl IdRuns {
    /// Adds `id`; false when it was already there.
    fn insert(&mut self, id: i64) -> bool {
        let before = self.0.range(..=id).next_back().map(|(&s, &e)| (s, e));
        if let Some((_, end)) = before {
            if id <= end {
                return false;
            }
        }
        let after = self.0.get(&(id + 1)).copied();
        match (before, after) {
            (Some((s, e)), Some(next_end)) if e + 1 == id => {
                self.0.remove(&(id + 1));
                self.0.insert(s, next_end);
            }
            (Some((s, e)), None) if e + 1 == id => {
                self.0.insert(s, id);
            }
            (_, Some(next_end)) => {
                self.0.remove(&(id + 1));
                self.0.insert(id, next_end);
            }
            _ => {
                self.0.insert(id, id);
            }
        }
        true
    }
}

/// Per-ingest state shared by both passes.
#[derive(Default)]
pub(super) struct Checker {
    seen_ids: IdRuns,
    /// The table's largest id, read once (and again after each commit of
    /// ours, see [`Checker::committed`]).
    max_id: Option<i64>,
    /// The largest explicit id checked (0: none).
    pub(super) max_explicit: i64,
}

impl Checker {
    /// Our own batch committed: ids assigned to id-less events may now be
    /// above the largest id read before.
    pub(super) fn committed(&mut self) {
        self.max_id = None;
    }

    pub(super) fn check(
        &mut self,
        conn: &Connection,
        ev: Packed,
    ) -> Result<Result<Checked, FieldError>, rusqlite::Error> {
        let Some(id) = ev.id() else {
            return Ok(Ok(Checked::New(ev)));
        };
        self.max_explicit = self.max_explicit.max(id);
        if !self.seen_ids.insert(id) {
            return Ok(Err(FieldError::new(
                "id",
                format!("id {id} appears twice in this input"),
            )));
        }
        let max_id = match self.max_id {
            Some(m) => m,
            None => {
                let m = conn.query_row("SELECT coalesce(max(id), 0) FROM audit_logs", [], |r| {
                    r.get(0)
                })?;
                *self.max_id.insert(m)
            }
        };
        if id > max_id {
            return Ok(Ok(Checked::New(ev)));
        }
        match crate::audit::insert::load(conn, id)? {
            None => Ok(Ok(Checked::New(ev))),
            Some(existing) if same_content(&existing, &ev.to_new()) => Ok(Ok(Checked::Unchanged)),
            Some(_) => Ok(Err(FieldError::new(
                "id",
                format!("id {id} already exists with different content"),
            ))),
        }
    }
}

/// Whether a stored event and an incoming one are the same. JSON columns
/// compare as JSON: a database written by an earlier version holds them
/// re-serialised (`1.5` for a sent `1.50`), today's keeps the sent text.
fn same_content(stored: &NewEvent, incoming: &NewEvent) -> bool {
    if stored == incoming {
        return true;
    }
    let json = |t: &Option<String>| {
        t.as_deref()
            .map(|t| serde_json::from_str::<serde_json::Value>(t).ok())
    };
    let same_json = |a: &Option<String>, b: &Option<String>| {
        a == b || matches!((json(a), json(b)), (Some(Some(x)), Some(Some(y))) if x == y)
    };
    same_json(&stored.details, &incoming.details)
        && same_json(&stored.changed_data, &incoming.changed_data)
        && NewEvent {
            details: None,
            changed_data: None,
            ..stored.clone()
        } == NewEvent {
            details: None,
            changed_data: None,
            ..incoming.clone()
        }
}

#[cfg(test)]
mod tests {
    use super::{same_content, IdRuns};
    use crate::audit::event::NewEvent;
    use std::collections::HashSet;

    #[test]
    fn json_columns_compare_as_json() {
        let ev = |details: &str| NewEvent {
            occurred_at: 1,
            organization_id: "acme".into(),
            stream: "audit".into(),
            action: "a".into(),
            details: Some(details.into()),
            ..NewEvent::default()
        };
        assert!(same_content(&ev(r#"{"n":1.5}"#), &ev(r#"{"n":1.50}"#)));
        assert!(same_content(&ev(r#"{"s":"é"}"#), &ev(r#"{"s":"\u00e9"}"#)));
        assert!(!same_content(&ev(r#"{"n":1.5}"#), &ev(r#"{"n":1.6}"#)));
        let mut other = ev(r#"{"n":1.5}"#);
        other.action = "b".into();
        assert!(!same_content(&ev(r#"{"n":1.5}"#), &other));
    }

    #[test]
    fn id_runs_behave_as_a_set_and_stay_merged() {
        // A deterministic shuffle with repeats, against a HashSet.
        let mut runs = IdRuns::default();
        let mut set = HashSet::new();
        let mut x: u64 = 7;
        for _ in 0..60_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let id = (x >> 33) as i64 % 3_000;
            assert_eq!(runs.insert(id), set.insert(id), "id {id}");
        }
        // Every id in 0..3000 was drawn, so everything merged into one run.
        assert_eq!(set.len(), 3_000);
        assert_eq!(runs.0.len(), 1);
        // Ascending ids are one run, however many.
        let mut asc = IdRuns::default();
        for id in 1..=100_000 {
            assert!(asc.insert(id));
        }
        assert_eq!(asc.0.len(), 1);
        assert!(!asc.insert(50_000));
    }
}
