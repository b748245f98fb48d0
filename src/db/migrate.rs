//! Schema versions: `schema.sql` for a new database, numbered forward-only
//! steps for an existing one.
//!
//! `PRAGMA user_version` is the version. A new (empty) database gets
//! `schema.sql` whole, which ends by setting the latest version. An older
//! database first gets an online backup in `<data-dir>/backups/`, then every
//! missing step in order, under one `BEGIN IMMEDIATE` transaction, each
//! step setting its version as it completes. One transaction rather than
//! one per step so that a step that fails leaves the database exactly at
//! the version it had before the upgrade (not halfway), and a second
//! process starting at the same moment waits and then finds it current.
//!
//! Each step carries the DDL of its own version (`migrations/NNNN_*.sql`),
//! never the current `schema.sql`: a later change to a table must not
//! change what an earlier step creates. `tests/migrations.rs` builds a
//! database of every earlier version from the historical schemas and
//! checks the upgrade yields the schema of a new database, rows kept.
//!
//! A step that changes a table's columns rebuilds it (create the new
//! layout, copy, drop the old) rather than `ALTER TABLE ADD COLUMN`, which
//! would append the column and leave upgraded databases laid out unlike
//! new ones.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, Transaction};

use super::{backup, user_version, DbError};

/// The whole schema, compiled into the binary from the repository root.
pub const SCHEMA: &str = include_str!("../../schema.sql");

/// The version `schema.sql` sets: the last step's.
pub const SCHEMA_VERSION: i64 = 9;

/// One numbered migration step.
#[derive(Clone, Copy)]
pub struct Step {
    /// The version the database is at once this step has run.
    pub version: i64,
    /// What it changes, for messages.
    pub what: &'static str,
    /// Applies the step inside the migration transaction.
    pub run: fn(&Transaction<'_>) -> rusqlite::Result<()>,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Step({} {})", self.version, self.what)
    }
}

/// Every step, in order. Append only.
pub const STEPS: &[Step] = &[
    Step {
        version: 1,
        what: "audit events",
        run: |tx| tx.execute_batch(include_str!("migrations/0001_audit_logs.sql")),
    },
    Step {
        version: 2,
        what: "export jobs and their history",
        run: |tx| tx.execute_batch(include_str!("migrations/0002_export_jobs.sql")),
    },
    Step {
        version: 3,
        what: "users and API tokens",
        run: |tx| tx.execute_batch(include_str!("migrations/0003_users_tokens.sql")),
    },
    Step {
        version: 4,
        what: "notifications and the e-mail outbox",
        run: |tx| tx.execute_batch(include_str!("migrations/0004_notifications_outbox.sql")),
    },
    Step {
        version: 5,
        what: "e-mail outbox claim tokens",
        run: |tx| {
            if has_column(tx, "email_outbox", "claim_token")? {
                return Ok(());
            }
            tx.execute_batch(include_str!("migrations/0005_outbox_claim_token.sql"))
        },
    },
    Step {
        version: 6,
        what: "scheduled exports",
        run: |tx| tx.execute_batch(include_str!("migrations/0006_schedules.sql")),
    },
    Step {
        version: 7,
        what: "export options",
        run: |tx| tx.execute_batch(include_str!("migrations/0007_export_options.sql")),
    },
    Step {
        version: 8,
        what: "signed export manifests",
        run: |tx| tx.execute_batch(include_str!("migrations/0008_manifests.sql")),
    },
    Step {
        version: 9,
        what: "ingest progress and idempotency keys",
        run: |tx| tx.execute_batch(include_str!("migrations/0009_ingest_progress.sql")),
    },
];

/// What opening did to the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Migrated {
    /// A new database: `schema.sql` applied.
    Created,
    /// Already at the current version.
    Current,
    /// Upgraded through the steps after `from`, a backup taken first.
    Upgraded {
        /// The schema version found.
        from: i64,
        /// The schema version reached, [`SCHEMA_VERSION`].
        to: i64,
        /// The backup taken before the first step.
        backup: PathBuf,
    },
}

/// Brings the database to [`SCHEMA_VERSION`]; see the module doc.
pub fn migrate(conn: &mut Connection, data_dir: &Path, now_ms: i64) -> Result<Migrated, DbError> {
    migrate_with(conn, data_dir, now_ms, STEPS)
}

/// [`migrate`] with a given step list (tests inject a failing step).
pub fn migrate_with(
    conn: &mut Connection,
    data_dir: &Path,
    now_ms: i64,
    steps: &[Step],
) -> Result<Migrated, DbError> {
    let target = steps.last().map_or(0, |s| s.version);
    // The common case, without taking the write lock.
    let found = user_version(conn)?;
    if found == target {
        return Ok(Migrated::Current);
    }
    if found > target {
        return Err(DbError::TooNew {
            found,
            supported: target,
        });
    }
    // Rebuilding a table must not trip foreign keys halfway; they are
    // checked as a whole before committing. (The pragma is a no-op inside
    // a transaction, hence here.)
    conn.execute_batch("PRAGMA foreign_keys = OFF")?;
    let result = upgrade(conn, data_dir, now_ms, steps, target);
    conn.execute_batch("PRAGMA foreign_keys = ON")?;
    result
}

fn upgrade(
    conn: &mut Connection,
    data_dir: &Path,
    now_ms: i64,
    steps: &[Step],
    target: i64,
) -> Result<Migrated, DbError> {
    let tx = super::immediate(conn)?;
    // Re-read under the write lock: another process may have just done it.
    let found = user_version(&tx)?;
    if found == target {
        return Ok(Migrated::Current);
    }
    if found > target {
        return Err(DbError::TooNew {
            found,
            supported: target,
        });
    }
    if found == 0 {
        let tables: i64 = tx.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            [],
            |r| r.get(0),
        )?;
        if tables > 0 {
            return Err(DbError::Foreign(super::db_path(data_dir)));
        }
        tx.execute_batch(SCHEMA)?;
        let set = user_version(&tx)?;
        if set != target {
            // schema.sql and the step list disagree: a bug, caught by tests.
            return Err(DbError::TooNew {
                found: set,
                supported: target,
            });
        }
        tx.commit()?;
        tracing::info!(version = target, "created a new database");
        return Ok(Migrated::Created);
    }
    // The backup reads through its own connection: in WAL mode it sees the
    // last committed state, which nobody can change while we hold the
    // write lock.
    let backup = backup::before_upgrade(&super::db_path(data_dir), data_dir, found, now_ms)?;
    for step in steps.iter().filter(|s| s.version > found) {
        let failed = |source| DbError::Migration {
            from: found,
            step: step.version,
            what: step.what,
            source,
            backup: Some(backup.clone()),
        };
        (step.run)(&tx).map_err(failed)?;
        tx.pragma_update(None, "user_version", step.version)
            .map_err(failed)?;
        tracing::info!(
            version = step.version,
            what = step.what,
            "migration step applied"
        );
    }
    let broken: i64 = tx.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
        r.get(0)
    })?;
    if broken > 0 {
        return Err(DbError::Migration {
            from: found,
            step: target,
            what: "foreign key check",
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
                Some(format!("{broken} rows would break a foreign key")),
            ),
            backup: Some(backup),
        });
    }
    tx.commit()?;
    tracing::warn!(from = found, to = target, backup = %backup.display(), "database upgraded");
    Ok(Migrated::Upgraded {
        from: found,
        to: target,
        backup,
    })
}

/// Whether `table` has a column `column`.
pub fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_sql_sets_the_last_steps_version() {
        assert_eq!(STEPS.last().unwrap().version, SCHEMA_VERSION);
        assert!(SCHEMA.contains(&format!("PRAGMA user_version = {SCHEMA_VERSION};")));
        for (i, s) in STEPS.iter().enumerate() {
            assert_eq!(s.version, i as i64 + 1, "steps are numbered 1, 2, 3…");
        }
    }

    /// A v4 database with an event, then an upgrade whose last step fails
    /// after changing things: everything is rolled back, the backup exists.
    #[test]
    fn a_step_failing_midway_leaves_the_old_version_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = super::super::db_path(dir.path());
        let mut conn = super::super::connect(&path).unwrap();
        {
            let tx = super::super::immediate(&mut conn).unwrap();
            for s in &STEPS[..4] {
                (s.run)(&tx).unwrap();
            }
            tx.pragma_update(None, "user_version", 4).unwrap();
            tx.execute(
                "INSERT INTO audit_logs (organization_id, occurred_at, stream, action) VALUES ('o', 1, 's', 'a')",
                [],
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let mut steps = STEPS.to_vec();
        steps.push(Step {
            version: SCHEMA_VERSION + 1,
            what: "a step that breaks",
            run: |tx| {
                tx.execute_batch(
                    "CREATE TABLE half_done (x); DELETE FROM audit_logs; ALTER TABLE users ADD COLUMN y",
                )?;
                tx.execute_batch("SELECT * FROM no_such_table")
            },
        });
        let err = migrate_with(&mut conn, dir.path(), 0, &steps).unwrap_err();
        let msg = err.to_string();
        let DbError::Migration {
            from: 4,
            step,
            backup: Some(backup),
            ..
        } = &err
        else {
            panic!("expected a migration error, got {err:?}");
        };
        assert_eq!(*step, SCHEMA_VERSION + 1);
        assert!(msg.contains("unchanged at v4"), "{msg}");
        assert!(msg.contains(&backup.display().to_string()), "{msg}");
        assert_eq!(user_version(&conn).unwrap(), 4);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM audit_logs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "the failed step's delete was rolled back");
        assert!(!has_column(&conn, "users", "y").unwrap());
        let half: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'half_done'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(half, 0);
        let copy = Connection::open(backup).unwrap();
        assert_eq!(user_version(&copy).unwrap(), 4);
        // And the real steps still upgrade it afterwards.
        assert!(matches!(
            migrate(&mut conn, dir.path(), 1).unwrap(),
            Migrated::Upgraded {
                from: 4,
                to: SCHEMA_VERSION,
                ..
            }
        ));
    }
}
