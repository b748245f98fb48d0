//! Recognising events already present: an explicit id seen twice in one
//! input is an error; an id that exists with identical content is
//! unchanged (re-ingesting a file is harmless); with other content, an
//! error.

use std::collections::HashSet;

use rusqlite::Connection;

use super::FieldError;
use crate::audit::event::NewEvent;

/// The outcome of checking one parsed event against the database.
pub(super) enum Checked {
    New(Box<NewEvent>),
    Unchanged,
}

/// Per-ingest state shared by both passes.
#[derive(Default)]
pub(super) struct Checker {
    seen_ids: HashSet<i64>,
}

impl Checker {
    pub(super) fn check(
        &mut self,
        conn: &Connection,
        ev: NewEvent,
    ) -> Result<Result<Checked, FieldError>, rusqlite::Error> {
        let Some(id) = ev.id else {
            return Ok(Ok(Checked::New(Box::new(ev))));
        };
        if !self.seen_ids.insert(id) {
            return Ok(Err(FieldError::new(
                "id",
                format!("id {id} appears twice in this input"),
            )));
        }
        match crate::audit::insert::load(conn, id)? {
            None => Ok(Ok(Checked::New(Box::new(ev)))),
            Some(existing) if existing == ev => Ok(Ok(Checked::Unchanged)),
            Some(_) => Ok(Err(FieldError::new(
                "id",
                format!("id {id} already exists with different content"),
            ))),
        }
    }
}
