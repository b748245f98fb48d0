//! Consistent copies of the database: before an upgrade, on demand
//! (`audit-export backup`), and back (`audit-export restore`).
//!
//! Copies use SQLite's online backup API from a connection of their own, in
//! one step: one read transaction, so the copy is the last committed state
//! (WAL: writers go on meanwhile and are simply not in it). A copy is
//! written under a temporary name, made self-contained (rollback journal,
//! no `-wal` beside it), fsynced and only then renamed into place, so a
//! file under the final name is always complete.
//!
//! Processes that run the engine hold a shared lock on
//! `<data-dir>/audit-export.lock` for their lifetime; a restore takes it
//! exclusively, so it refuses to run under a live `serve` or `worker`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{user_version, DbError, BACKUP_DIR, SCHEMA_VERSION};

/// Lock file of a data directory.
pub const LOCK_FILE: &str = "audit-export.lock";

/// `audit-export-v<version>-<UTC time>.db`.
pub fn file_name(version: i64, now_ms: i64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ");
    format!("audit-export-v{version}-{t}.db")
}

/// A name under `dir` that does not exist yet (`…-2.db` on a collision).
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let stem = name.trim_end_matches(".db");
    (2..)
        .map(|i| dir.join(format!("{stem}-{i}.db")))
        .find(|p| !p.exists())
        .expect("some suffix is free")
}

/// Copies the database `src` reads into a new file `dest`.
pub fn copy(src: &Connection, dest: &Path) -> Result<(), DbError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        DbError::Backup(format!("{what} {}: {e}", dest.display()))
    };
    let partial = dest.with_file_name(format!(
        ".{}.partial",
        dest.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = std::fs::remove_file(&partial);
    let result = (|| -> Result<(), DbError> {
        let mut dst = Connection::open(&partial)?;
        {
            let b = Backup::new(src, &mut dst)?;
            // All pages in one step: one read transaction, one snapshot. A
            // step is only refused while another connection holds a lock
            // the copy needs; then it is simply tried again.
            let mut waits = 0;
            loop {
                match b.step(-1)? {
                    StepResult::Done => break,
                    StepResult::More => {}
                    _ if waits < 200 => {
                        waits += 1;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    other => {
                        return Err(DbError::Backup(format!(
                            "the database stayed locked ({other:?})"
                        )))
                    }
                }
            }
        }
        // A single self-contained file: no -wal to carry along.
        let _mode: String = dst.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
        drop(dst);
        File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(|e| fail("cannot sync", &e))?;
        std::fs::rename(&partial, dest).map_err(|e| fail("cannot write", &e))?;
        if let Some(dir) = dest.parent() {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// The backup taken before upgrading the database at `db` from `version`:
/// `<data-dir>/backups/audit-export-v<version>-<UTC time>.db`.
pub fn before_upgrade(
    db: &Path,
    data_dir: &Path,
    version: i64,
    now_ms: i64,
) -> Result<PathBuf, DbError> {
    let dir = data_dir.join(BACKUP_DIR);
    std::fs::create_dir_all(&dir)
        .map_err(|e| DbError::Backup(format!("cannot create {}: {e}", dir.display())))?;
    let dest = free_name(&dir, &file_name(version, now_ms));
    let src = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    src.busy_timeout(Duration::from_secs(10))?;
    copy(&src, &dest)?;
    tracing::info!(backup = %dest.display(), version, "backup taken before upgrading");
    Ok(dest)
}

/// What [`backup_to`] copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// Where the copy was written.
    pub path: PathBuf,
    /// The copy's schema version (`PRAGMA user_version`).
    pub version: i64,
    /// Size of the copy in bytes (0 if it could not be read back).
    pub bytes: u64,
}

/// `audit-export backup PATH`: a consistent copy of the data dir's database
/// (never migrated or created by this), also while `serve` runs.
pub fn backup_to(data_dir: &Path, dest: &Path) -> Result<Copied, DbError> {
    let db = super::db_path(data_dir);
    if !db.is_file() {
        return Err(DbError::Missing(db));
    }
    if dest.exists() {
        return Err(DbError::Backup(format!(
            "{} already exists; choose a new name",
            dest.display()
        )));
    }
    let src = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    src.busy_timeout(Duration::from_secs(10))?;
    copy(&src, dest)?;
    let copied = Connection::open_with_flags(dest, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(Copied {
        path: dest.to_path_buf(),
        version: user_version(&copied)?,
        bytes: std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0),
    })
}

/// A process's hold on a data directory.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

fn lock_file(data_dir: &Path) -> Result<File, DbError> {
    let path = data_dir.join(LOCK_FILE);
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| DbError::Backup(format!("cannot open {}: {e}", path.display())))
}

impl DataDirLock {
    /// Shared: any number of engine processes at once.
    pub fn shared(data_dir: &Path) -> Result<DataDirLock, DbError> {
        let file = lock_file(data_dir)?;
        file.lock_shared()
            .map_err(|e| DbError::Backup(format!("cannot lock {}: {e}", data_dir.display())))?;
        Ok(DataDirLock { _file: file })
    }

    /// Exclusive, or an error saying the data directory is in use.
    fn exclusive(data_dir: &Path) -> Result<DataDirLock, DbError> {
        let file = lock_file(data_dir)?;
        match file.try_lock() {
            Ok(()) => Ok(DataDirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(in_use(data_dir)),
            Err(std::fs::TryLockError::Error(e)) => Err(DbError::Backup(format!(
                "cannot lock {}: {e}",
                data_dir.display()
            ))),
        }
    }
}

fn in_use(data_dir: &Path) -> DbError {
    DbError::Backup(format!(
        "the database in {} is in use by another audit-export process (serve, worker, ingest, export, …); stop it first",
        data_dir.display()
    ))
}

/// What [`restore`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Version of the restored copy (upgraded at the next start if older).
    pub version: i64,
    /// The database as it was before, kept in `backups/`.
    pub previous: Option<PathBuf>,
}

/// `audit-export restore BACKUP`: replaces the data dir's database by the
/// copy at `from`, after checking it and keeping the current database in
/// `backups/`. Refuses while any process uses the database.
pub fn restore(data_dir: &Path, from: &Path, now_ms: i64) -> Result<Restored, DbError> {
    let version = {
        let src = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| DbError::Backup(format!("cannot open {}: {e}", from.display())))?;
        let check: String = src
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| DbError::Backup(format!("{} is not a database: {e}", from.display())))?;
        if check != "ok" {
            return Err(DbError::Backup(format!(
                "{} fails its integrity check: {check}",
                from.display()
            )));
        }
        let has_events: i64 = src.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'audit_logs'",
            [],
            |r| r.get(0),
        )?;
        let version = user_version(&src)?;
        if has_events == 0 || version < 1 {
            return Err(DbError::Backup(format!(
                "{} is not an audit-export database",
                from.display()
            )));
        }
        if version > SCHEMA_VERSION {
            return Err(DbError::TooNew {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        version
    };
    std::fs::create_dir_all(data_dir).map_err(|source| DbError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let _lock = DataDirLock::exclusive(data_dir)?;
    let db = super::db_path(data_dir);
    let previous = if db.is_file() {
        let mut conn = Connection::open(&db)?;
        conn.busy_timeout(Duration::from_millis(200))?;
        // Leaving WAL needs the database to ourselves: a second line of
        // defence against a process that does not take the lock file (an
        // older binary, the sqlite3 shell).
        let mode: String = conn
            .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
            .map_err(|_| in_use(data_dir))?;
        if mode != "delete" {
            return Err(in_use(data_dir));
        }
        let dir = data_dir.join(BACKUP_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| DbError::Backup(format!("cannot create {}: {e}", dir.display())))?;
        let keep = free_name(
            &dir,
            &file_name(user_version(&conn)?, now_ms).replace(".db", "-before-restore.db"),
        );
        copy(&conn, &keep)?;
        conn.restore(
            rusqlite::MAIN_DB,
            from,
            None::<fn(rusqlite::backup::Progress)>,
        )?;
        drop(conn);
        Some(keep)
    } else {
        let mut conn = Connection::open(&db)?;
        conn.restore(
            rusqlite::MAIN_DB,
            from,
            None::<fn(rusqlite::backup::Progress)>,
        )?;
        None
    };
    // Back to the engine's journal mode, and prove the result readable.
    let conn = super::connect(&db)?;
    let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(DbError::Backup(format!(
            "the restored database fails its check: {check}"
        )));
    }
    Ok(Restored { version, previous })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_version_and_utc_time() {
        assert_eq!(
            file_name(4, 1_795_000_000_123),
            "audit-export-v4-20261118T110640Z.db"
        );
    }

    #[test]
    fn backup_and_restore_round_trip_and_restore_refuses_a_live_database() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let conn = super::super::open_data_dir(&data).unwrap();
        conn.execute(
            "INSERT INTO audit_logs (organization_id, occurred_at, stream, action) VALUES ('o', 1, 's', 'a')",
            [],
        )
        .unwrap();
        let copy_path = dir.path().join("copy.db");
        let copied = backup_to(&data, &copy_path).unwrap();
        assert_eq!(copied.version, SCHEMA_VERSION);
        assert!(matches!(
            backup_to(&data, &copy_path),
            Err(DbError::Backup(_))
        ));
        conn.execute("DELETE FROM audit_logs", []).unwrap();
        // A live engine holds the shared lock: restore refuses.
        let live = DataDirLock::shared(&data).unwrap();
        let err = restore(&data, &copy_path, 0).unwrap_err();
        assert!(err.to_string().contains("in use"), "{err}");
        drop(live);
        drop(conn);
        let r = restore(&data, &copy_path, 0).unwrap();
        assert_eq!(r.version, SCHEMA_VERSION);
        assert!(r.previous.as_ref().unwrap().is_file());
        let conn = super::super::open_data_dir(&data).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM audit_logs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "the restored copy's row is back");
        // Not a database at all.
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, b"not sqlite").unwrap();
        drop(conn);
        assert!(restore(&data, &junk, 0).is_err());
    }
}
