//! Writing events: one insert path for ingest (files, HTTP), the engine's
//! own audit trail and host applications, and the lookup of one event by
//! id. This module never parses input.

use std::ffi::c_int;

use rusqlite::{ffi, Connection, OptionalExtension};

use crate::audit::event::{NewEvent, Record};
use crate::audit::raw::{self, Stmt};

/// The stored event with this id, if any.
pub fn load(conn: &Connection, id: i64) -> rusqlite::Result<Option<NewEvent>> {
    let mut st = conn.prepare_cached(
        "SELECT id, occurred_at, organization_id, stream, action, actor_type, actor_id, \
         actor_name, actor_email, target_type, target_id, target_name, ip_address, \
         user_agent, request_id, changed_data, details FROM audit_logs WHERE id = ?",
    )?;
    st.query_row([id], |r| {
        Ok(NewEvent {
            id: r.get(0)?,
            occurred_at: r.get(1)?,
            organization_id: r.get(2)?,
            stream: r.get(3)?,
            action: r.get(4)?,
            actor_type: r.get(5)?,
            actor_id: r.get(6)?,
            actor_name: r.get(7)?,
            actor_email: r.get(8)?,
            target_type: r.get(9)?,
            target_id: r.get(10)?,
            target_name: r.get(11)?,
            ip_address: r.get(12)?,
            user_agent: r.get(13)?,
            request_id: r.get(14)?,
            changed_data: r.get(15)?,
            details: r.get(16)?,
        })
    })
    .optional()
}

/// Inserts events in one transaction; returns the id of each (assigned or
/// given). An explicit id that already exists is left untouched (callers
/// check content first).
pub fn insert_events(conn: &mut Connection, events: &[NewEvent]) -> rusqlite::Result<Vec<i64>> {
    let tx = crate::db::immediate(conn)?;
    let ids = insert_in(&tx, events)?;
    tx.commit()?;
    Ok(ids)
}

/// [`insert_events`] inside the caller's transaction.
pub fn insert_in(tx: &Connection, events: &[NewEvent]) -> rusqlite::Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(events.len());
    let mut st = Inserter::new(tx)?;
    for e in events {
        st.insert(e.id, &e.as_record(0))?;
        ids.push(e.id.unwrap_or_else(|| tx.last_insert_rowid()));
    }
    Ok(ids)
}

/// Inserts events (`id: None`: the next id; a record's own id is not used)
/// inside the caller's transaction; an explicit id that already exists is
/// left untouched. On an error the caller must roll the transaction back:
/// which of the rows before the failing one stay is unspecified (a group
/// statement undoes its own rows, the rows of earlier statements stay).
pub(crate) fn insert_rows<'r>(
    tx: &Connection,
    rows: impl Iterator<Item = (Option<i64>, Record<'r>)>,
) -> rusqlite::Result<()> {
    let mut st = Inserter::new(tx)?;
    let mut group = Vec::with_capacity(GROUP);
    for row in rows {
        group.push(row);
        if let Ok(full) = <&[_; GROUP]>::try_from(group.as_slice()) {
            st.insert_group(full)?;
            group.clear();
        }
    }
    for (id, r) in &group {
        st.insert(*id, r)?;
    }
    Ok(())
}

/// Rows per statement in [`insert_rows`]. Each statement run has a fixed
/// cost besides its rows — AUTOINCREMENT reads and rewrites its
/// `sqlite_sequence` row, cursors open and close — which a group of rows
/// shares. (A several-row statement opens a statement journal, one per
/// group, which also makes a group all or nothing.)
const GROUP: usize = 32;

const INSERT_SQL: &str = "INSERT INTO audit_logs (id, occurred_at, organization_id, stream, \
    action, actor_type, actor_id, actor_name, actor_email, target_type, target_id, target_name, \
    ip_address, user_agent, request_id, changed_data, details) VALUES ";
const ROW_SQL: &str = "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
const CONFLICT_SQL: &str = " ON CONFLICT(id) DO NOTHING";
/// Parameters per row.
const PARAMS: c_int = 17;

/// The INSERT of events, prepared once per batch and bound through
/// SQLite's C API. Why not rusqlite's `execute`: it binds every text with
/// `SQLITE_TRANSIENT`, so SQLite copies each of an event's 15 strings into
/// memory of its own and frees it after the row — ~12% of the inserting
/// thread's instructions in a profile of `ingest`, the one serial step.
/// Here the strings are bound `SQLITE_STATIC`: SQLite reads them in place.
///
/// Soundness: SQLite reads a static binding only when the statement
/// steps. An insert binds every parameter of its statement (from records
/// that outlive the call) before it steps — which is why a group statement
/// takes exactly [`GROUP`] rows, by type — so a binding left from an
/// earlier run is never read; finalizing reads none. The statements are
/// finalized on drop, while the borrowed connection is still open.
pub(crate) struct Inserter<'c> {
    conn: &'c Connection,
    one: Stmt<'c>,
    /// [`GROUP`] rows per run, prepared on first use.
    group: Option<Stmt<'c>>,
}

impl<'c> Inserter<'c> {
    pub(crate) fn new(conn: &'c Connection) -> rusqlite::Result<Self> {
        Ok(Inserter {
            conn,
            one: prepare(conn, 1)?,
            group: None,
        })
    }

    /// Inserts one event (`id: None`: the next id; the record's own id is
    /// not used); an explicit id that already exists is left untouched.
    pub(crate) fn insert(&mut self, id: Option<i64>, r: &Record<'_>) -> rusqlite::Result<()> {
        // SAFETY: `one` is live; `r` outlives the call (see the type's docs).
        let rc = unsafe { bind_row(self.one.ptr(), 0, id, r) };
        self.step(&self.one, rc)
    }

    /// [`Inserter::insert`] for [`GROUP`] rows, in one statement.
    fn insert_group(&mut self, rows: &[(Option<i64>, Record<'_>); GROUP]) -> rusqlite::Result<()> {
        let st = match self.group.take() {
            Some(st) => st,
            None => prepare(self.conn, GROUP)?,
        };
        let mut rc = ffi::SQLITE_OK;
        for (i, (id, r)) in rows.iter().enumerate() {
            if rc != ffi::SQLITE_OK {
                break;
            }
            // SAFETY: `st` is live, with GROUP * PARAMS parameters; the
            // rows outlive the call.
            rc = unsafe { bind_row(st.ptr(), i as c_int * PARAMS, *id, r) };
        }
        let out = self.step(&st, rc);
        self.group = Some(st);
        out
    }

    /// Runs `st` once its binding answered `rc`, then resets it.
    fn step(&self, st: &Stmt<'_>, mut rc: c_int) -> rusqlite::Result<()> {
        // SAFETY: `st` is a live statement of ours (a failed prepare never
        // makes an `Inserter`), every parameter bound.
        unsafe {
            if rc == ffi::SQLITE_OK {
                rc = match ffi::sqlite3_step(st.ptr()) {
                    ffi::SQLITE_DONE => ffi::SQLITE_OK,
                    other => other,
                };
            }
            // The step's error is also what reset answers; the one to report
            // is the first, read before reset clears the message.
            let out = raw::check(self.conn, rc);
            ffi::sqlite3_reset(st.ptr());
            out
        }
    }
}

/// Prepares the INSERT of `rows` rows.
fn prepare(conn: &Connection, rows: usize) -> rusqlite::Result<Stmt<'_>> {
    let mut sql = String::from(INSERT_SQL);
    for i in 0..rows {
        sql.push_str(if i == 0 { "" } else { "," });
        sql.push_str(ROW_SQL);
    }
    sql.push_str(CONFLICT_SQL);
    raw::prepare(conn, &sql)
}

/// Binds one row's 17 parameters after the first `base`.
///
/// # Safety
/// `st` is a live statement with at least `base + 17` parameters; the
/// texts of `r` stay valid until the statement has stepped.
unsafe fn bind_row(
    st: *mut ffi::sqlite3_stmt,
    base: c_int,
    id: Option<i64>,
    r: &Record<'_>,
) -> c_int {
    let texts = [
        Some(r.organization_id),
        Some(r.stream),
        Some(r.action),
        r.actor_type,
        r.actor_id,
        r.actor_name,
        r.actor_email,
        r.target_type,
        r.target_id,
        r.target_name,
        r.ip_address,
        r.user_agent,
        r.request_id,
        r.changed_data,
        r.details,
    ];
    let mut rc = match id {
        Some(id) => ffi::sqlite3_bind_int64(st, base + 1, id),
        None => ffi::sqlite3_bind_null(st, base + 1),
    };
    if rc == ffi::SQLITE_OK {
        rc = ffi::sqlite3_bind_int64(st, base + 2, r.occurred_at);
    }
    for (i, t) in texts.iter().enumerate() {
        if rc != ffi::SQLITE_OK {
            break;
        }
        let col = base + i as c_int + 3;
        rc = match t {
            Some(t) => ffi::sqlite3_bind_text64(
                st,
                col,
                // An empty string's pointer may dangle (Rust's is 1): a
                // static one instead, as rusqlite does.
                if t.is_empty() { "" } else { t }.as_ptr().cast(),
                t.len() as ffi::sqlite3_uint64,
                ffi::SQLITE_STATIC(),
                ffi::SQLITE_UTF8 as u8,
            ),
            None => ffi::sqlite3_bind_null(st, col),
        };
    }
    rc
}

#[cfg(test)]
mod tests {
    use super::{insert_in, insert_rows, load, GROUP};
    use crate::audit::event::NewEvent;
    use rusqlite::Connection;

    use crate::db::temp_db as db;

    fn event(n: usize, id: Option<i64>) -> NewEvent {
        NewEvent {
            id,
            occurred_at: 1_700_000_000_000 + n as i64,
            organization_id: format!("org_{}", n % 3),
            stream: "audit".into(),
            action: format!("a.{n}"),
            actor_name: n.is_multiple_of(2).then(|| format!("Ann \u{e9} {n}")),
            // An empty text is stored empty, not NULL.
            actor_id: n.is_multiple_of(7).then(String::new),
            // A NUL inside a text is kept (bound by length, not as C text).
            target_name: n.is_multiple_of(5).then(|| format!("x\0y{n}")),
            details: n
                .is_multiple_of(4)
                .then(|| format!(r#"{{"n":{n},"s":"é"}}"#)),
            ..NewEvent::default()
        }
    }

    /// Every row of the table, in id order.
    fn rows(conn: &Connection) -> Vec<NewEvent> {
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM audit_logs ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        ids.into_iter()
            .map(|id| load(conn, id).unwrap().unwrap())
            .collect()
    }

    #[test]
    fn grouped_rows_store_what_one_by_one_stores() {
        // Explicit ids, id-less events and an id already present, across
        // several whole groups and a remainder. (Explicit ids descend, so
        // that none is one AUTOINCREMENT gives an id-less event first.)
        let n = 3 * GROUP + 7;
        let events: Vec<NewEvent> = (0..n)
            .map(|i| event(i, (i % 3 != 1).then_some(10_000 - i as i64)))
            .collect();
        let (_a, mut one) = db();
        let (_b, mut grouped) = db();
        for conn in [&mut one, &mut grouped] {
            let tx = conn.transaction().unwrap();
            insert_in(&tx, &[event(99, Some(10_000 - 5))]).unwrap();
            tx.commit().unwrap();
        }
        let tx = one.transaction().unwrap();
        for e in &events {
            insert_in(&tx, std::slice::from_ref(e)).unwrap();
        }
        tx.commit().unwrap();
        let tx = grouped.transaction().unwrap();
        insert_rows(&tx, events.iter().map(|e| (e.id, e.as_record(0)))).unwrap();
        tx.commit().unwrap();
        let stored = rows(&grouped);
        assert_eq!(stored, rows(&one));
        // Every event but the conflicting one, plus the earlier event.
        assert_eq!(stored.len(), n);
        let kept = stored.iter().find(|e| e.id == Some(9_995)).unwrap();
        assert_eq!(kept.action, "a.99", "an existing id is left untouched");
        let nul = stored.iter().find(|e| e.action == "a.10").unwrap();
        assert_eq!(nul.target_name.as_deref(), Some("x\0y10"));
        let empty = stored.iter().find(|e| e.action == "a.14").unwrap();
        assert_eq!(empty.actor_id.as_deref(), Some(""));
    }

    #[test]
    fn a_refused_row_fails_its_group_with_sqlites_error() {
        let (_d, mut conn) = db();
        let mut events: Vec<NewEvent> = (0..GROUP).map(|i| event(i, None)).collect();
        events[GROUP / 2].details = Some("{not json".into());
        let tx = conn.transaction().unwrap();
        let err = insert_rows(&tx, events.iter().map(|e| (e.id, e.as_record(0)))).unwrap_err();
        assert_eq!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::ConstraintViolation),
            "{err}"
        );
        assert!(err.to_string().contains("CHECK"), "{err}");
        // The statement's earlier rows went with it.
        let n: i64 = tx
            .query_row("SELECT count(*) FROM audit_logs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        // And the connection goes on: the same inserter path works after.
        events[GROUP / 2].details = None;
        insert_rows(&tx, events.iter().map(|e| (e.id, e.as_record(0)))).unwrap();
        tx.commit().unwrap();
        assert_eq!(rows(&conn).len(), GROUP);
    }
}
