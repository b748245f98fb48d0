//! Parsed events without a string per field: the shape events take
//! between the parsers and the insert on ingest's hot path.
//!
//! A [`NewEvent`] owns up to fifteen separate strings; a file of a million
//! events made and freed ~16 million of them, across threads (parsed on
//! the workers, freed by the inserting thread, where glibc's cross-arena
//! frees cost about a second per million events). Here the text of every
//! event a worker parses in one chunk lives in one shared string, and an
//! event is offsets into it: one allocation per chunk. A [`Packed`] must
//! hold exactly what the `NewEvent` it stands for holds:
//! [`Packed::to_new`] gives it back.

use std::sync::Arc;

use crate::audit::event::{NewEvent, Record};

/// Text fields, in [`COLUMNS`](crate::audit::COLUMNS) order after
/// `occurred_at`: organization_id, stream, action, the ten optional
/// columns, changed_data, details.
const FIELDS: usize = 15;

/// One event's place in a shared text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    id: Option<i64>,
    occurred_at: i64,
    /// Where its first field starts.
    start: u32,
    /// End offset of each field (a field starts where the previous one
    /// ends).
    ends: [u32; FIELDS],
    /// Bit `i`: field `i` is present (not NULL).
    present: u16,
}

impl Slot {
    /// Appends `e`'s text to `text`.
    pub(super) fn write_new(e: &NewEvent, text: &mut String) -> Slot {
        let r = e.as_record(0);
        let mut b = Builder::new(text);
        b.push(Some(r.organization_id));
        b.push(Some(r.stream));
        b.push(Some(r.action));
        for c in r.optional_columns() {
            b.push(c);
        }
        b.finish(e.id, e.occurred_at)
    }
}

/// A parsed event: its [`Slot`] in a text shared with the other events of
/// its chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Packed {
    slot: Slot,
    text: Arc<String>,
}

/// Appends one event's fields, in order, to a shared text.
pub(super) struct Builder<'a> {
    text: &'a mut String,
    start: usize,
    ends: [u32; FIELDS],
    present: u16,
    next: usize,
}

/// Offsets are `u32`: a chunk's text stays far below 4 GiB (`parallel`
/// refuses a unit over 1 GiB, and a chunk holds ~1 MiB besides).
fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl<'a> Builder<'a> {
    /// Starts an event at the end of `text`.
    pub(super) fn new(text: &'a mut String) -> Builder<'a> {
        let start = text.len();
        Builder {
            text,
            start,
            ends: [0; FIELDS],
            present: 0,
            next: 0,
        }
    }

    /// Appends the next field.
    pub(super) fn push(&mut self, value: Option<&str>) {
        if let Some(v) = value {
            self.text.push_str(v);
        }
        self.close(value.is_some());
    }

    /// Appends the next field by letting `write` add its text; `false`
    /// from `write` abandons the event (its text is removed again).
    pub(super) fn push_with(&mut self, write: impl FnOnce(&mut String) -> bool) -> bool {
        if !write(self.text) {
            self.text.truncate(self.start);
            return false;
        }
        self.close(true);
        true
    }

    /// Appends a NULL field.
    pub(super) fn push_null(&mut self) {
        self.close(false);
    }

    fn close(&mut self, present: bool) {
        self.ends[self.next] = offset(self.text.len());
        if present {
            self.present |= 1 << self.next;
        }
        self.next += 1;
    }

    /// The event's slot; every field must have been pushed.
    pub(super) fn finish(self, id: Option<i64>, occurred_at: i64) -> Slot {
        debug_assert_eq!(self.next, FIELDS, "every field pushed");
        Slot {
            id,
            occurred_at,
            start: offset(self.start),
            ends: self.ends,
            present: self.present,
        }
    }
}

impl Packed {
    /// The event at `slot` in `text` (the text its slot was built in).
    pub(super) fn new(slot: Slot, text: Arc<String>) -> Packed {
        Packed { slot, text }
    }

    /// The same event as a [`NewEvent`], in a text of its own.
    #[cfg(test)]
    pub(super) fn from_new(e: &NewEvent) -> Packed {
        let mut text = String::new();
        let slot = Slot::write_new(e, &mut text);
        Packed::new(slot, Arc::new(text))
    }

    /// Whether both share one chunk's text.
    pub(super) fn shares_text(&self, other: &Packed) -> bool {
        Arc::ptr_eq(&self.text, &other.text)
    }

    /// The explicit id, if any.
    pub(super) fn id(&self) -> Option<i64> {
        self.slot.id
    }

    /// Field `i` (see [`FIELDS`]).
    fn get(&self, i: usize) -> Option<&str> {
        let s = &self.slot;
        if s.present & (1 << i) == 0 {
            return None;
        }
        let start = if i == 0 { s.start } else { s.ends[i - 1] };
        self.text.get(start as usize..s.ends[i] as usize)
    }

    /// Borrows the event as a [`Record`] (id 0 when it has none).
    pub(super) fn as_record(&self) -> Record<'_> {
        let f = |i| self.get(i);
        Record {
            id: self.slot.id.unwrap_or(0),
            occurred_at: self.slot.occurred_at,
            organization_id: f(0).unwrap_or(""),
            stream: f(1).unwrap_or(""),
            action: f(2).unwrap_or(""),
            actor_type: f(3),
            actor_id: f(4),
            actor_name: f(5),
            actor_email: f(6),
            target_type: f(7),
            target_id: f(8),
            target_name: f(9),
            ip_address: f(10),
            user_agent: f(11),
            request_id: f(12),
            changed_data: f(13),
            details: f(14),
        }
    }

    /// The same event as a [`NewEvent`].
    pub(super) fn to_new(&self) -> NewEvent {
        let r = self.as_record();
        let s = |t: Option<&str>| t.map(str::to_owned);
        NewEvent {
            id: self.slot.id,
            occurred_at: r.occurred_at,
            organization_id: r.organization_id.to_owned(),
            stream: r.stream.to_owned(),
            action: r.action.to_owned(),
            actor_type: s(r.actor_type),
            actor_id: s(r.actor_id),
            actor_name: s(r.actor_name),
            actor_email: s(r.actor_email),
            target_type: s(r.target_type),
            target_id: s(r.target_id),
            target_name: s(r.target_name),
            ip_address: s(r.ip_address),
            user_agent: s(r.user_agent),
            request_id: s(r.request_id),
            changed_data: s(r.changed_data),
            details: s(r.details),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_field_null_empty_or_set() {
        let full = NewEvent {
            id: Some(7),
            occurred_at: 1_700_000_000_123,
            organization_id: "acme".into(),
            stream: "audit".into(),
            action: "user.login".into(),
            actor_type: Some("user".into()),
            actor_id: Some(String::new()),
            actor_name: Some("Zoë".into()),
            actor_email: None,
            target_type: Some("doc".into()),
            target_id: None,
            target_name: Some("Q3 «plan»".into()),
            ip_address: Some("10.0.0.1".into()),
            user_agent: None,
            request_id: Some("r1".into()),
            changed_data: Some(r#"{"a":1}"#.into()),
            details: None,
        };
        let bare = NewEvent {
            id: None,
            occurred_at: -5,
            organization_id: "o".into(),
            stream: "s".into(),
            action: "a".into(),
            ..NewEvent::default()
        };
        for e in [full.clone(), bare.clone()] {
            let p = Packed::from_new(&e);
            assert_eq!(p.to_new(), e);
            assert_eq!(p.as_record(), e.as_record(e.id.unwrap_or(0)));
        }
        // Several events in one shared text, and an abandoned one between.
        let mut text = String::from("prefix");
        let a = Slot::write_new(&full, &mut text);
        let mut b = Builder::new(&mut text);
        b.push(Some("half"));
        assert!(!b.push_with(|t| {
            t.push_str("partial");
            false
        }));
        let c = Slot::write_new(&bare, &mut text);
        let text = Arc::new(text);
        assert_eq!(Packed::new(a, Arc::clone(&text)).to_new(), full);
        assert_eq!(Packed::new(c, text).to_new(), bare);
    }
}
