//! Statements run through SQLite's C API, for the two paths every event
//! crosses: the grouped INSERT of ingest (`insert`) and the page query of
//! every export and search (`query`). Everything else goes through
//! rusqlite. This module never builds SQL and never formats output.
//!
//! Why by hand: rusqlite reads a cell as `sqlite3_column_type` then
//! `sqlite3_column_text` then `sqlite3_column_bytes` (three look-ups of the
//! column, each taking the connection's mutex) behind a bounds-checked
//! `Row::get_ref`: getting cells out was 23% of a one-thread export's
//! instructions, and reading them here saves half of that (−11%).
//! `audit_logs` is `STRICT`, so a text column holds text or NULL: reading
//! the text answers both (a NULL pointer is NULL), in two look-ups.

use std::ffi::{c_int, CStr};
use std::marker::PhantomData;

use rusqlite::types::{Type, Value};
use rusqlite::{ffi, Connection};

use crate::audit::event::{Record, COLUMNS};

/// A prepared statement we own, on a connection that outlives it;
/// finalized on drop.
pub(crate) struct Stmt<'c>(*mut ffi::sqlite3_stmt, PhantomData<&'c Connection>);

impl Drop for Stmt<'_> {
    fn drop(&mut self) {
        // SAFETY: a statement we prepared, or null (a failed prepare),
        // which `sqlite3_finalize` accepts as a no-op.
        unsafe {
            ffi::sqlite3_finalize(self.0);
        }
    }
}

impl Stmt<'_> {
    /// The statement, for the C API; live as long as `self`.
    pub(crate) fn ptr(&self) -> *mut ffi::sqlite3_stmt {
        self.0
    }
}

/// Prepares one statement (`sql` holds exactly one).
pub(crate) fn prepare<'c>(conn: &'c Connection, sql: &str) -> rusqlite::Result<Stmt<'c>> {
    let mut stmt = std::ptr::null_mut();
    let mut tail: *const std::ffi::c_char = std::ptr::null();
    // SAFETY: the handle is live; the SQL is a valid buffer of the given
    // length; `stmt` receives a statement or null, `tail` a pointer into
    // `sql` (where its first statement ends).
    let rc = unsafe {
        ffi::sqlite3_prepare_v3(
            conn.handle(),
            sql.as_ptr().cast(),
            sql.len() as c_int,
            0,
            &mut stmt,
            &mut tail,
        )
    };
    let stmt = Stmt(stmt, PhantomData);
    check(conn, rc)?;
    if stmt.0.is_null() {
        // Only white space or a comment: nothing to run.
        return Err(rusqlite::Error::InvalidQuery);
    }
    // What follows the first statement must be nothing (a second one
    // would be silently ignored), as rusqlite requires.
    let used = (tail as usize).saturating_sub(sql.as_ptr() as usize);
    if sql.get(used..).is_some_and(|rest| !rest.trim().is_empty()) {
        return Err(rusqlite::Error::MultipleStatement);
    }
    Ok(stmt)
}

/// `rc` as a result, with SQLite's message for an error.
pub(crate) fn check(conn: &Connection, rc: c_int) -> rusqlite::Result<()> {
    if rc == ffi::SQLITE_OK {
        return Ok(());
    }
    // SAFETY: the handle is live; the message is copied out before any
    // other call on the connection.
    let msg = unsafe {
        let db = conn.handle();
        // The connection's message when it is about this error, else the
        // code's generic one (as rusqlite does).
        let m = if ffi::sqlite3_extended_errcode(db) == rc || ffi::sqlite3_errcode(db) == rc {
            ffi::sqlite3_errmsg(db)
        } else {
            ffi::sqlite3_errstr(rc)
        };
        (!m.is_null()).then(|| CStr::from_ptr(m).to_string_lossy().into_owned())
    };
    Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), msg))
}

/// The rows of a query selecting [`COLUMNS`] in order, read as
/// [`Record`]s borrowed from the statement (one at a time: the next step
/// overwrites them, which the borrow of [`Records::next`] enforces).
pub(crate) struct Records<'c, 'p> {
    conn: &'c Connection,
    st: Stmt<'c>,
    /// Texts and blobs are bound in place (`SQLITE_STATIC`): the borrow
    /// keeps them alive while the statement can read them.
    _params: PhantomData<&'p [Value]>,
    /// Stepped to its end or failed: stepping again would restart it.
    done: bool,
}

impl<'c, 'p> Records<'c, 'p> {
    /// Prepares `sql` (selecting [`COLUMNS`]) and binds `params` in order.
    pub(crate) fn query(
        conn: &'c Connection,
        sql: &str,
        params: &'p [Value],
    ) -> rusqlite::Result<Self> {
        let st = prepare(conn, sql)?;
        // SAFETY: `st` is live.
        let (n, cols) = unsafe {
            (
                ffi::sqlite3_bind_parameter_count(st.0),
                ffi::sqlite3_column_count(st.0),
            )
        };
        if n as usize != params.len() {
            return Err(rusqlite::Error::InvalidParameterCount(
                params.len(),
                n as usize,
            ));
        }
        if cols as usize != COLUMNS.len() {
            return Err(rusqlite::Error::SqliteFailure(
                ffi::Error::new(ffi::SQLITE_MISUSE),
                Some(format!(
                    "a record query selects {} columns, not {cols}",
                    COLUMNS.len()
                )),
            ));
        }
        for (i, v) in params.iter().enumerate() {
            // SAFETY: `st` is live with `params.len()` parameters; texts and
            // blobs outlive the statement's reads ('p, see `_params`).
            let rc = unsafe { bind(st.0, i as c_int + 1, v) };
            check(conn, rc)?;
        }
        Ok(Records {
            conn,
            st,
            _params: PhantomData,
            done: false,
        })
    }

    /// The next row, or `None` after the last.
    pub(crate) fn next(&mut self) -> rusqlite::Result<Option<Record<'_>>> {
        if self.done {
            return Ok(None);
        }
        // SAFETY: `st` is live with every parameter bound.
        match unsafe { ffi::sqlite3_step(self.st.0) } {
            ffi::SQLITE_ROW => {}
            ffi::SQLITE_DONE => {
                self.done = true;
                return Ok(None);
            }
            rc => {
                self.done = true;
                return check(self.conn, rc).map(|()| None);
            }
        }
        let st = self.st.0;
        // SAFETY: `st` holds a row of COLUMNS.len() columns (checked at
        // prepare). The texts stay valid until the next step, reset or
        // finalize, each of which needs `&mut self` or `self` — after the
        // returned record's borrow ends.
        unsafe {
            Ok(Some(Record {
                id: ffi::sqlite3_column_int64(st, 0),
                occurred_at: ffi::sqlite3_column_int64(st, 1),
                organization_id: required(st, 2)?,
                stream: required(st, 3)?,
                action: required(st, 4)?,
                actor_type: text(st, 5)?,
                actor_id: text(st, 6)?,
                actor_name: text(st, 7)?,
                actor_email: text(st, 8)?,
                target_type: text(st, 9)?,
                target_id: text(st, 10)?,
                target_name: text(st, 11)?,
                ip_address: text(st, 12)?,
                user_agent: text(st, 13)?,
                request_id: text(st, 14)?,
                changed_data: text(st, 15)?,
                details: text(st, 16)?,
            }))
        }
    }
}

/// Binds one parameter (1-based `i`); texts and blobs in place.
///
/// # Safety
/// `st` is live with at least `i` parameters; a text or blob stays valid
/// until the statement is finalized or rebound.
unsafe fn bind(st: *mut ffi::sqlite3_stmt, i: c_int, v: &Value) -> c_int {
    match v {
        Value::Null => ffi::sqlite3_bind_null(st, i),
        Value::Integer(n) => ffi::sqlite3_bind_int64(st, i, *n),
        Value::Real(x) => ffi::sqlite3_bind_double(st, i, *x),
        Value::Text(t) => ffi::sqlite3_bind_text64(
            st,
            i,
            // An empty string's pointer may dangle (Rust's is 1): a static
            // one instead, as rusqlite does.
            if t.is_empty() { "" } else { t }.as_ptr().cast(),
            t.len() as ffi::sqlite3_uint64,
            ffi::SQLITE_STATIC(),
            ffi::SQLITE_UTF8 as u8,
        ),
        Value::Blob(b) if b.is_empty() => ffi::sqlite3_bind_zeroblob(st, i, 0),
        Value::Blob(b) => ffi::sqlite3_bind_blob64(
            st,
            i,
            b.as_ptr().cast(),
            b.len() as ffi::sqlite3_uint64,
            ffi::SQLITE_STATIC(),
        ),
    }
}

/// Column `i` of the current row as text, `None` for NULL.
///
/// # Safety
/// `st` holds a row with a column `i`; the text is valid until the
/// statement steps, resets or is finalized.
unsafe fn text<'a>(st: *mut ffi::sqlite3_stmt, i: c_int) -> rusqlite::Result<Option<&'a str>> {
    // Text first, then its length (SQLite's documented order: the length
    // of the converted value).
    let p = ffi::sqlite3_column_text(st, i);
    if p.is_null() {
        // NULL — or no memory to convert a non-text value, which a STRICT
        // text column never holds but is not worth a wrong `None`.
        return match ffi::sqlite3_column_type(st, i) {
            ffi::SQLITE_NULL => Ok(None),
            _ => Err(rusqlite::Error::SqliteFailure(
                ffi::Error::new(ffi::SQLITE_NOMEM),
                None,
            )),
        };
    }
    let n = ffi::sqlite3_column_bytes(st, i);
    let b = std::slice::from_raw_parts(p, n as usize);
    utf8(b)
        .map(Some)
        .map_err(|e| rusqlite::Error::Utf8Error(i as usize, e))
}

/// [`text`] of a NOT NULL column: NULL is an error, not a panic.
///
/// # Safety
/// As [`text`].
unsafe fn required<'a>(st: *mut ffi::sqlite3_stmt, i: c_int) -> rusqlite::Result<&'a str> {
    text(st, i)?.ok_or_else(|| {
        rusqlite::Error::InvalidColumnType(i as usize, COLUMNS[i as usize].into(), Type::Null)
    })
}

/// Text as UTF-8, checked (SQLite does not guarantee it).
fn utf8(b: &[u8]) -> Result<&str, std::str::Utf8Error> {
    // Most cells are short and ASCII, where both UTF-8 checks pay a setup
    // per call (~6% of an export); `is_ascii` reads them a word at a time.
    if b.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(b) });
    }
    match simdutf8::basic::from_utf8(b) {
        Ok(s) => Ok(s),
        // The standard check only to describe the failure.
        Err(_) => std::str::from_utf8(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::db::temp_db as db;

    const SELECT: &str = "SELECT id, occurred_at, organization_id, stream, action, \
        actor_type, actor_id, actor_name, actor_email, target_type, target_id, target_name, \
        ip_address, user_agent, request_id, changed_data, details FROM audit_logs";

    #[test]
    fn records_read_what_rusqlite_reads() {
        let (_d, conn) = db();
        conn.execute_batch(
            "INSERT INTO audit_logs (id, occurred_at, organization_id, stream, action, \
             actor_type, actor_id, actor_name, target_name, details) VALUES \
             (7, 1000, 'o', 'audit', 'a.b', NULL, '', 'Zoë 🚀', 'x' || char(0) || 'y', '{\"k\":1}'), \
             (9, 2000, 'o', 's', 'c', 'user', 'u1', NULL, NULL, NULL), \
             (8, 3000, 'p', 's', 'd', NULL, NULL, NULL, NULL, NULL)",
        )
        .unwrap();
        let params = [Value::Text("o".into()), Value::Integer(0)];
        let sql = format!("{SELECT} WHERE organization_id = ? AND occurred_at > ? ORDER BY id");
        let mut rows = Records::query(&conn, &sql, &params).unwrap();
        let mut got = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            got.push(format!("{r:?}"));
        }
        // Done stays done (a step after the end would restart the query).
        assert!(rows.next().unwrap().is_none());
        let mut st = conn.prepare(&sql).unwrap();
        let want: Vec<String> = st
            .query_map(rusqlite::params_from_iter(params.iter()), |r| {
                Ok(format!(
                    "{:?}",
                    Record {
                        id: r.get(0)?,
                        occurred_at: r.get(1)?,
                        organization_id: r.get_ref(2)?.as_str()?,
                        stream: r.get_ref(3)?.as_str()?,
                        action: r.get_ref(4)?.as_str()?,
                        actor_type: r.get_ref(5)?.as_str_or_null()?,
                        actor_id: r.get_ref(6)?.as_str_or_null()?,
                        actor_name: r.get_ref(7)?.as_str_or_null()?,
                        actor_email: r.get_ref(8)?.as_str_or_null()?,
                        target_type: r.get_ref(9)?.as_str_or_null()?,
                        target_id: r.get_ref(10)?.as_str_or_null()?,
                        target_name: r.get_ref(11)?.as_str_or_null()?,
                        ip_address: r.get_ref(12)?.as_str_or_null()?,
                        user_agent: r.get_ref(13)?.as_str_or_null()?,
                        request_id: r.get_ref(14)?.as_str_or_null()?,
                        changed_data: r.get_ref(15)?.as_str_or_null()?,
                        details: r.get_ref(16)?.as_str_or_null()?,
                    }
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got, want);
        assert_eq!(got.len(), 2);
        assert!(got[0].contains(r#"actor_id: Some("")"#), "{}", got[0]);
        assert!(got[0].contains("actor_type: None"), "{}", got[0]);
        assert!(got[0].contains(r#""x\0y""#), "{}", got[0]);
        assert!(got[0].contains("Zoë 🚀"), "{}", got[0]);
    }

    #[test]
    fn bad_text_and_bad_queries_are_errors() {
        let (_d, conn) = db();
        // Text that is not UTF-8 (SQLite stores what it is given).
        conn.execute_batch(
            "INSERT INTO audit_logs (id, occurred_at, organization_id, stream, action, details) \
             VALUES (1, 1, 'o', 's', 'a', NULL), (2, 2, 'o', 's', 'a', NULL); \
             UPDATE audit_logs SET actor_name = CAST(x'41ff42' AS TEXT) WHERE id = 2",
        )
        .unwrap();
        let mut rows = Records::query(&conn, &format!("{SELECT} ORDER BY id"), &[]).unwrap();
        assert_eq!(rows.next().unwrap().unwrap().id, 1);
        let err = rows.next().unwrap_err();
        assert!(matches!(err, rusqlite::Error::Utf8Error(7, _)), "{err:?}");
        // Wrong parameter count, wrong columns, bad SQL: errors at prepare.
        let err = Records::query(&conn, &format!("{SELECT} WHERE id = ?"), &[]).err();
        assert!(
            matches!(err, Some(rusqlite::Error::InvalidParameterCount(0, 1))),
            "{err:?}"
        );
        let err = Records::query(&conn, "SELECT id FROM audit_logs", &[]).err();
        assert!(format!("{err:?}").contains("not 1"), "{err:?}");
        let err = Records::query(&conn, &format!("{SELECT}; SELECT 1"), &[]).err();
        assert!(
            matches!(err, Some(rusqlite::Error::MultipleStatement)),
            "{err:?}"
        );
        // A trailing `;` and white space are one statement.
        assert!(Records::query(&conn, &format!("{SELECT} ; \n"), &[]).is_ok());
        // A NULL in a NOT NULL column (only possible in a query) is an error.
        let sql = SELECT.replace("organization_id, stream", "organization_id, NULL");
        let mut rows = Records::query(&conn, &sql, &[]).unwrap();
        let err = rows.next().unwrap_err();
        assert!(
            matches!(err, rusqlite::Error::InvalidColumnType(3, _, Type::Null)),
            "{err:?}"
        );
        let err = Records::query(&conn, "SELECT nope FROM audit_logs", &[]).err();
        assert!(format!("{err:?}").contains("no such column"), "{err:?}");
        // A runtime error (here: a failing function) ends the rows.
        let sql = format!("{SELECT} WHERE abs(-9223372036854775808) > 0");
        let mut rows = Records::query(&conn, &sql, &[]).unwrap();
        let err = rows.next().unwrap_err();
        assert!(err.to_string().contains("integer overflow"), "{err}");
        assert!(rows.next().unwrap().is_none());
    }
}
