//! Opening the SQLite database and applying `schema.sql`.
//!
//! Every connection is opened the same way: WAL journal (readers never block
//! the writer), a busy timeout (concurrent writers wait instead of failing
//! with SQLITE_BUSY), foreign keys on. The schema is applied at every open;
//! it is idempotent. This module holds no business rules.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

/// The whole schema, compiled into the binary from the repository root.
pub const SCHEMA: &str = include_str!("../schema.sql");

/// The schema version `schema.sql` sets (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 4;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "audit-export.db";

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "database schema version {found} is newer than this binary supports ({supported}); upgrade audit-export"
    )]
    TooNew { found: i64, supported: i64 },
}

/// Path of the database file in `data_dir`.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DB_FILE)
}

/// Opens (creating if needed) `<data_dir>/audit-export.db` and applies the schema.
pub fn open_data_dir(data_dir: &Path) -> Result<Connection, DbError> {
    std::fs::create_dir_all(data_dir).map_err(|source| DbError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    open(&db_path(data_dir))
}

/// Opens the database file at `path` and applies the schema.
pub fn open(path: &Path) -> Result<Connection, DbError> {
    let conn = connect(path)?;
    apply_schema(&conn)?;
    Ok(conn)
}

/// Opens another connection to a database whose schema this process has
/// already applied (worker threads): same settings, no DDL.
pub fn connect(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // journal_mode returns a row, so it is read rather than executed.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    Ok(conn)
}

/// Applies `schema.sql` inside one immediate transaction, refusing a
/// database written by a newer binary.
pub fn apply_schema(conn: &Connection) -> Result<(), DbError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(DbError::TooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    // IMMEDIATE so two processes starting at once serialize here instead
    // of one failing halfway through the DDL.
    conn.execute_batch(&format!("BEGIN IMMEDIATE;\n{SCHEMA}\nCOMMIT;"))?;
    Ok(())
}

/// Starts a `BEGIN IMMEDIATE` transaction: the write lock is taken up
/// front, so a read-then-write inside it can never fail with SQLITE_BUSY
/// on lock upgrade (it waits on the busy timeout instead).
pub fn immediate(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(conn: &Connection) -> Vec<(String, String)> {
        let mut st = conn
            .prepare("SELECT type, name FROM sqlite_schema ORDER BY type, name")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn schema_applies_to_empty_and_existing_database() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_data_dir(dir.path()).unwrap();
        let first = objects(&conn);
        assert!(first.iter().any(|(t, n)| t == "table" && n == "audit_logs"));
        conn.execute(
            "INSERT INTO audit_logs (organization_id, occurred_at, stream, action) VALUES ('o', 1, 's', 'a')",
            [],
        )
        .unwrap();
        drop(conn);
        let conn = open_data_dir(dir.path()).unwrap();
        assert_eq!(objects(&conn), first, "re-applying changed the schema");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM audit_logs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "re-applying lost data");
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn refuses_a_newer_database() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_data_dir(dir.path()).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(conn);
        match open_data_dir(dir.path()) {
            Err(DbError::TooNew { found: 99, .. }) => {}
            other => panic!("expected TooNew, got {other:?}"),
        }
    }

    #[test]
    fn constraints_reject_bad_rows() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_data_dir(dir.path()).unwrap();
        let bad_json = conn.execute(
            "INSERT INTO audit_logs (organization_id, occurred_at, stream, action, details) VALUES ('o', 1, 's', 'a', '{oops')",
            [],
        );
        assert!(bad_json.is_err());
        let empty_org = conn.execute(
            "INSERT INTO audit_logs (organization_id, occurred_at, stream, action) VALUES ('', 1, 's', 'a')",
            [],
        );
        assert!(empty_org.is_err());
    }
}
