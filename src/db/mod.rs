//! Opening the SQLite database, migrating it, and copying it safely.
//!
//! Every connection is opened the same way: WAL journal (readers never block
//! the writer), a busy timeout (concurrent writers wait instead of failing
//! with SQLITE_BUSY), foreign keys on. A new database gets `schema.sql`
//! whole; an existing one is brought to the current version by the numbered
//! steps of [`migrate`], after an online backup. This module holds no
//! business rules.

pub mod backup;
pub mod checkpointer;
pub mod migrate;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

pub use migrate::{Migrated, SCHEMA, SCHEMA_VERSION};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "audit-export.db";

/// Folder of the data directory where backups go.
pub const BACKUP_DIR: &str = "backups";

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the database could not be opened, migrated, backed up or restored.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite refused an operation.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The data directory's path.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// There is no database file at this path (and none may be created here).
    #[error("no database at {0} (ingest or seed events first, or check --data-dir)")]
    Missing(PathBuf),
    /// The database was written by a newer audit-export.
    #[error(
        "database schema version {found} is newer than this binary supports ({supported}); upgrade audit-export"
    )]
    TooNew {
        /// The database's schema version (`PRAGMA user_version`).
        found: i64,
        /// The newest version this binary knows, [`SCHEMA_VERSION`].
        supported: i64,
    },
    /// The file at this path has tables but no schema version: another application's.
    #[error("{0} is not an audit-export database (it has tables but no schema version)")]
    Foreign(PathBuf),
    /// A backup, a restore or the data directory's lock failed; the message says which.
    #[error("backup: {0}")]
    Backup(String),
    /// A migration step failed; nothing of the upgrade was kept.
    #[error(
        "upgrading the database from v{from} failed at step {step} ({what}): {source}; \
         the database is unchanged at v{from}{}",
        backup.as_ref().map(|b| format!("; a backup taken before the upgrade is at {}", b.display())).unwrap_or_default()
    )]
    Migration {
        /// The schema version the database was, and still is, at.
        from: i64,
        /// The version the failing step would have reached.
        step: i64,
        /// What that step changes (or `foreign key check`).
        what: &'static str,
        /// The SQLite error that stopped it.
        source: rusqlite::Error,
        /// The backup taken before the upgrade, if one was.
        backup: Option<PathBuf>,
    },
}

/// Path of the database file in `data_dir`.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DB_FILE)
}

/// Opens (creating if needed) `<data_dir>/audit-export.db`, bringing its
/// schema to the current version (a backup first if an existing database
/// is upgraded).
pub fn open_data_dir(data_dir: &Path) -> Result<Connection, DbError> {
    std::fs::create_dir_all(data_dir).map_err(|source| DbError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let mut conn = connect(&db_path(data_dir))?;
    migrate::migrate(&mut conn, data_dir, crate::time::Clock::system().now_ms())?;
    Ok(conn)
}

/// Like [`open_data_dir`] for commands that only make sense on an existing
/// database (reading jobs, users, exporting): a missing database is
/// [`DbError::Missing`], and nothing is created.
pub fn open_existing(data_dir: &Path) -> Result<Connection, DbError> {
    let path = db_path(data_dir);
    if !path.is_file() {
        return Err(DbError::Missing(path));
    }
    open_data_dir(data_dir)
}

/// Opens another connection to a database whose schema is already current
/// (worker threads, request threads): same settings, no DDL.
pub fn connect(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open(path)?;
    configure(&conn)?;
    Ok(conn)
}

/// Opens an existing database without creating or migrating anything.
pub fn connect_existing(path: &Path) -> Result<Connection, DbError> {
    if !path.is_file() {
        return Err(DbError::Missing(path.to_path_buf()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn)?;
    Ok(conn)
}

fn configure(conn: &Connection) -> Result<(), DbError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // journal_mode returns a row, so it is read rather than executed.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    Ok(())
}

/// The schema version a database records.
pub fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Starts a `BEGIN IMMEDIATE` transaction: the write lock is taken up
/// front, so a read-then-write inside it can never fail with SQLITE_BUSY
/// on lock upgrade (it waits on the busy timeout instead).
pub fn immediate(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// Whether a SQLite error means the disk (or the database's quota) is full.
pub fn is_disk_full(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull)
}

/// A fresh data directory with its database open (unit tests).
#[cfg(test)]
pub(crate) fn temp_db() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let conn = open_data_dir(dir.path()).expect("a fresh database opens");
    (dir, conn)
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
        assert_eq!(objects(&conn), first, "re-opening changed the schema");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM audit_logs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "re-opening lost data");
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert!(
            !dir.path().join(BACKUP_DIR).exists(),
            "a current database needs no backup"
        );
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
    fn refuses_a_foreign_database_and_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(db_path(dir.path())).unwrap();
        conn.execute_batch("CREATE TABLE notes (x)").unwrap();
        drop(conn);
        assert!(matches!(
            open_data_dir(dir.path()),
            Err(DbError::Foreign(_))
        ));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            open_existing(empty.path()),
            Err(DbError::Missing(_))
        ));
        assert!(!db_path(empty.path()).exists(), "nothing created");
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
