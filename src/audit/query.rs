//! The filtered, time-ordered scan over `audit_logs`, and its count.
//!
//! Pages are keyset-paginated on `(occurred_at, id)`: each page seeks the
//! index just past the last row of the previous one, so page N costs the
//! same as page 1 and rows inserted meanwhile can never shift a page
//! boundary. OFFSET is never used. This is the only place where filters
//! become SQL; it never formats output.

use rusqlite::types::Value;
use rusqlite::Connection;

use crate::audit::event::{Record, COLUMNS};
use crate::audit::raw::Records;
use crate::filters::{ActionPattern, Filters};

/// Rows fetched per keyset page unless the caller says otherwise.
pub const DEFAULT_BATCH: usize = 5_000;

/// Position of the last row returned: the next page starts strictly after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    /// `occurred_at` of that row, ms since the Unix epoch (UTC).
    pub occurred_at: i64,
    /// Id of that row; breaks ties between rows of the same instant.
    pub id: i64,
}

/// The WHERE clause and its parameters for one filter set.
struct Predicate {
    sql: String,
    params: Vec<Value>,
}

/// Escapes LIKE wildcards in user text (`\` is the ESCAPE character).
pub fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

fn predicate(f: &Filters) -> Predicate {
    // The lower bound is left to the caller: `count` says `occurred_at >= ?`,
    // a page says `(occurred_at, id) > (?, ?)`, which must be the only lower
    // bound so SQLite seeks the index to the cursor (a second, looser bound
    // could make it seek to the range start and filter: quadratic paging).
    let mut sql = String::from("organization_id = ? AND occurred_at < ?");
    let mut params = vec![Value::Text(f.organization.clone()), Value::Integer(f.to_ms)];
    if !f.actors.is_empty() {
        // An actor value matches the id exactly or the e-mail ignoring ASCII case.
        let ph = placeholders(f.actors.len());
        sql.push_str(&format!(
            " AND (actor_id IN ({ph}) OR actor_email COLLATE NOCASE IN ({ph}))"
        ));
        for _ in 0..2 {
            params.extend(f.actors.iter().map(|a| Value::Text(a.clone())));
        }
    }
    if !f.actions.is_empty() {
        let mut ors = Vec::new();
        let exact: Vec<&String> = f
            .actions
            .iter()
            .filter_map(|a| match a {
                ActionPattern::Exact(s) => Some(s),
                ActionPattern::Prefix(_) => None,
            })
            .collect();
        if !exact.is_empty() {
            ors.push(format!("action IN ({})", placeholders(exact.len())));
            params.extend(exact.into_iter().map(|s| Value::Text(s.clone())));
        }
        for a in &f.actions {
            if let ActionPattern::Prefix(p) = a {
                // substr() compares exactly (case-sensitive, no wildcards),
                // unlike LIKE.
                ors.push("substr(action, 1, ?) = ?".to_string());
                params.push(Value::Integer(p.chars().count() as i64));
                params.push(Value::Text(p.clone()));
            }
        }
        sql.push_str(&format!(" AND ({})", ors.join(" OR ")));
    }
    if let Some(t) = &f.target_type {
        sql.push_str(" AND target_type = ?");
        params.push(Value::Text(t.clone()));
    }
    if let Some(t) = &f.target_id {
        sql.push_str(" AND target_id = ?");
        params.push(Value::Text(t.clone()));
    }
    if !f.streams.is_empty() {
        sql.push_str(&format!(
            " AND stream IN ({})",
            placeholders(f.streams.len())
        ));
        params.extend(f.streams.iter().map(|s| Value::Text(s.clone())));
    }
    if let Some(q) = &f.q {
        // Free text: the id exactly, or a case-insensitive (ASCII) substring
        // of action, actor, target, request id or details.
        let like = format!("%{}%", escape_like(q));
        let cols = [
            "action",
            "actor_id",
            "actor_name",
            "actor_email",
            "target_type",
            "target_id",
            "target_name",
            "request_id",
            "details",
        ];
        let mut ors = vec!["CAST(id AS TEXT) = ?".to_string()];
        params.push(Value::Text(q.clone()));
        for c in cols {
            ors.push(format!("{c} LIKE ? ESCAPE '\\'"));
            params.push(Value::Text(like.clone()));
        }
        sql.push_str(&format!(" AND ({})", ors.join(" OR ")));
    }
    Predicate { sql, params }
}

/// Counts the rows matching `f`.
pub fn count(conn: &Connection, f: &Filters) -> rusqlite::Result<u64> {
    let p = predicate(f);
    let sql = format!(
        "SELECT count(*) FROM audit_logs INDEXED BY audit_logs_org_time \
         WHERE {} AND occurred_at >= ?",
        p.sql
    );
    let mut params = p.params;
    params.push(Value::Integer(f.from_ms));
    let mut st = conn.prepare_cached(&sql)?;
    st.query_row(rusqlite::params_from_iter(params.iter()), |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as u64)
}

/// A keyset scan over the rows matching one filter set.
///
/// Call [`Scan::next_page`] until it returns 0. The cursor can be read and
/// set, which is how a job resumes from its checkpoint.
pub struct Scan {
    sql: String,
    params: Vec<Value>,
    from_ms: i64,
    cursor: Option<Cursor>,
    batch: usize,
}

impl Scan {
    /// A scan from the start of the range, `batch` rows per page.
    pub fn new(f: &Filters, batch: usize) -> Scan {
        let p = predicate(f);
        let sql = format!(
            "SELECT {} FROM audit_logs INDEXED BY audit_logs_org_time \
             WHERE {} AND (occurred_at, id) > (?, ?) ORDER BY occurred_at, id LIMIT ?",
            COLUMNS.join(", "),
            p.sql
        );
        Scan {
            sql,
            params: p.params,
            from_ms: f.from_ms,
            cursor: None,
            batch: batch.max(1),
        }
    }

    /// Stops before the instant `end` (exclusive, within the range): one
    /// piece of a parallel scan. It replaces the range's end, so it stays
    /// the one upper bound and SQLite stops its index walk there.
    pub fn ending(mut self, end: i64) -> Scan {
        // The predicate's second parameter is the exclusive end instant.
        self.params[1] = Value::Integer(end);
        self
    }

    /// Continue after `cursor` (a checkpoint) instead of the range start.
    pub fn resume_after(mut self, cursor: Option<Cursor>) -> Scan {
        self.cursor = cursor;
        self
    }

    /// The last row returned so far.
    pub fn cursor(&self) -> Option<Cursor> {
        self.cursor
    }

    /// Fetches the next page, calling `f` for each row in order. Returns the
    /// number of rows seen; 0 means the scan is done. An error from `f`
    /// stops the page and is returned.
    pub fn next_page<E>(
        &mut self,
        conn: &Connection,
        mut f: impl FnMut(&Record<'_>) -> Result<(), E>,
    ) -> Result<usize, E>
    where
        E: From<rusqlite::Error>,
    {
        self.next_page_while(conn, |r| f(r).map(|()| true))
            .map(|(n, _)| n)
    }

    /// [`Scan::next_page`], where `f` may end the page early by returning
    /// `false` (after taking its row; the cursor is that row). Returns the
    /// rows seen and whether `f` ended the page.
    pub fn next_page_while<E>(
        &mut self,
        conn: &Connection,
        mut f: impl FnMut(&Record<'_>) -> Result<bool, E>,
    ) -> Result<(usize, bool), E>
    where
        E: From<rusqlite::Error>,
    {
        let (after_at, after_id) = match self.cursor {
            Some(c) => (c.occurred_at, c.id),
            // Strictly after (from - 1 ms, max id) is exactly `occurred_at >= from`.
            None => (self.from_ms.saturating_sub(1), i64::MAX),
        };
        let mut params = self.params.clone();
        params.push(Value::Integer(after_at));
        params.push(Value::Integer(after_id));
        params.push(Value::Integer(self.batch as i64));
        // Prepared per page (a page is thousands of rows; a prepare costs
        // tens of microseconds), read through the C API (see `audit::raw`).
        let mut rows = Records::query(conn, &self.sql, &params)?;
        let mut n = 0;
        while let Some(rec) = rows.next()? {
            let more = f(&rec)?;
            self.cursor = Some(Cursor {
                occurred_at: rec.occurred_at,
                id: rec.id,
            });
            n += 1;
            if !more {
                return Ok((n, true));
            }
        }
        Ok((n, false))
    }

    /// Page size.
    pub fn batch(&self) -> usize {
        self.batch
    }
}

/// The first instant of `f`'s organization after `after_ms` and before
/// `before_ms` (both exclusive), if any: one index seek. It ignores the
/// other filters (it is where a parallel scan's next piece starts).
pub fn next_instant(
    conn: &Connection,
    f: &Filters,
    after_ms: i64,
    before_ms: i64,
) -> rusqlite::Result<Option<i64>> {
    let mut st = conn.prepare_cached(
        "SELECT occurred_at FROM audit_logs INDEXED BY audit_logs_org_time \
         WHERE organization_id = ? AND occurred_at > ? AND occurred_at < ? \
         ORDER BY occurred_at LIMIT 1",
    )?;
    let mut rows = st.query(rusqlite::params![f.organization, after_ms, before_ms])?;
    rows.next()?.map(|r| r.get(0)).transpose()
}

/// Walks the keys of `f`'s organization and time range after `after`, in
/// order, reading the index only (no row), and calls `bound` with every
/// `every`-th key: the ends of slices of about `every` rows each (the other
/// filters may thin a slice, never lengthen it). `bound` returns `false` to
/// stop. Returns how many keys were walked. (A parallel export walks one
/// slice of it to decide whether to split at all, and how wide.)
///
/// Two plain index ranges — the rest of `after`'s instant, then the
/// instants after it — rather than one with the row-value bound
/// `(occurred_at, id) > (?, ?)`: SQLite seeks with that bound's first
/// column and checks the whole of it on every key it walks, which makes the
/// walk twice as costly.
pub fn slice_bounds(
    conn: &Connection,
    f: &Filters,
    after: Option<Cursor>,
    every: u64,
    mut bound: impl FnMut(Cursor) -> bool,
) -> rusqlite::Result<u64> {
    let every = every.max(1);
    let mut n = 0u64;
    // Calls `bound` at every `every`-th key of one range; false: stopped.
    let mut walk = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<bool> {
        let mut st = conn.prepare_cached(sql)?;
        let mut rows = st.query(params)?;
        while let Some(r) = rows.next()? {
            n += 1;
            if n.is_multiple_of(every) {
                let key = Cursor {
                    occurred_at: r.get(0)?,
                    id: r.get(1)?,
                };
                if !bound(key) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    };
    let after_at = match after {
        Some(c) => {
            if c.occurred_at < f.to_ms
                && !walk(
                    "SELECT occurred_at, id FROM audit_logs INDEXED BY audit_logs_org_time \
                     WHERE organization_id = ? AND occurred_at = ? AND id > ? ORDER BY id",
                    &[&f.organization, &c.occurred_at, &c.id],
                )?
            {
                return Ok(n);
            }
            c.occurred_at
        }
        // Strictly after `from - 1` is exactly `occurred_at >= from`.
        None => f.from_ms.saturating_sub(1),
    };
    walk(
        "SELECT occurred_at, id FROM audit_logs INDEXED BY audit_logs_org_time \
         WHERE organization_id = ? AND occurred_at > ? AND occurred_at < ? \
         ORDER BY occurred_at, id",
        &[&f.organization, &after_at, &f.to_ms],
    )?;
    Ok(n)
}

#[cfg(test)]
mod tests;
