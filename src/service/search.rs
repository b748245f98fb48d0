//! Reading events a page at a time (the log viewer, the console, MCP's
//! `search_audit_logs`): the caller's organization only, redacted exactly
//! as exports are, keyset-paginated by an opaque cursor. Never writes.

use rusqlite::Connection;

use super::{Service, ServiceError};
use crate::audit::query::{Cursor, Scan};
use crate::filters::FilterInput;
use crate::format::{Encoder, ExportOptions, Format};
use crate::users::Requester;

/// One page of events.
#[derive(Debug, Clone)]
pub struct Page {
    /// The events as a JSON array (the export's JSON encoding).
    pub json: Vec<u8>,
    /// Number of events in the page.
    pub count: usize,
    /// Pass back as `cursor` for the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

impl Service {
    /// Up to `limit` events matching `input` after `cursor`, oldest first.
    pub fn search(
        &self,
        conn: &Connection,
        who: &Requester,
        input: FilterInput,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page, ServiceError> {
        let filters = self.scoped_filters(who, input, false)?;
        let cursor = cursor.map(parse_cursor).transpose()?;
        let mut scan = Scan::new(&filters, limit).resume_after(cursor);
        let mut enc = Encoder::with(
            Format::Json,
            ExportOptions::default(),
            self.runner.redactor.clone(),
            Default::default(),
        );
        let mut json = Vec::new();
        enc.header(&mut json);
        let mut n = 0u64;
        scan.next_page::<rusqlite::Error>(conn, |r| {
            enc.record(&mut json, r, n);
            n += 1;
            Ok(())
        })?;
        enc.footer(&mut json, n);
        json.truncate(json.trim_ascii_end().len());
        let next_cursor = (n as usize == limit)
            .then(|| scan.cursor().map(|c| format!("{}_{}", c.occurred_at, c.id)))
            .flatten();
        Ok(Page {
            json,
            count: n as usize,
            next_cursor,
        })
    }
}

/// Reads a `next_cursor` value back.
fn parse_cursor(s: &str) -> Result<Cursor, ServiceError> {
    let bad = || {
        ServiceError::invalid(
            "invalid_cursor",
            "cursor",
            "cursor must be a next_cursor value from a previous page",
        )
    };
    let (a, b) = s.split_once('_').ok_or_else(bad)?;
    Ok(Cursor {
        occurred_at: a.parse().map_err(|_| bad())?,
        id: b.parse().map_err(|_| bad())?,
    })
}
