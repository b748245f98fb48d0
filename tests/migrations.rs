//! Upgrading databases of every earlier schema version (built from the
//! historical `schema.sql` files in `tests/fixtures/schema/`): the result
//! has exactly the schema of a new database, every row is kept, a backup at
//! the old version is left in `backups/`, and the upgraded data dir works —
//! its queued job runs, its unsent mail goes out, its tokens still log in.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::Env;
use rusqlite::Connection;

/// (name, historical schema, the version it records).
const VERSIONS: &[(&str, &str, i64)] = &[
    ("v1", include_str!("fixtures/schema/v1.sql"), 1),
    ("v2", include_str!("fixtures/schema/v2.sql"), 2),
    ("v3", include_str!("fixtures/schema/v3.sql"), 3),
    (
        "v4 before the claim_token fix",
        include_str!("fixtures/schema/v4-without-claim-token.sql"),
        4,
    ),
    ("v4", include_str!("fixtures/schema/v4.sql"), 4),
    ("v5", include_str!("fixtures/schema/v5.sql"), 5),
    ("v6", include_str!("fixtures/schema/v6.sql"), 6),
    ("v7", include_str!("fixtures/schema/v7.sql"), 7),
    ("v8", include_str!("fixtures/schema/v8.sql"), 8),
];

/// Rows of every table a version may have; each insert runs only where its
/// table exists.
const ROWS: &[(&str, &str)] = &[
    (
        "audit_logs",
        "INSERT INTO audit_logs (organization_id, occurred_at, stream, action, actor_id, details) VALUES
         ('acme', 1751328000000, 'audit', 'user.login', 'u_1', '{\"k\":1}'),
         ('acme', 1751414400000, 'audit', 'user.logout', 'u_1', NULL),
         ('globex', 1751500800000, 'scim', 'scim.user.created', 'idp', '[1,2]')",
    ),
    (
        "export_jobs",
        "INSERT INTO export_jobs (id, organization_id, requester, filters, filter_hash, format, state,
            next_attempt_at, recipients, created_at, updated_at) VALUES
         ('01JOBQUEUED0000000000000000', 'acme', 'user:1',
          '{\"organization\":\"acme\",\"from\":\"2025-07-01T00:00:00.000Z\",\"to_exclusive\":\"2025-07-03T00:00:00.000Z\",\"actors\":[],\"actions\":[],\"target_type\":null,\"target_id\":null,\"streams\":[],\"q\":null}',
          'h1', 'csv', 'exporting', 0, '[\"ada@acme.example\"]',
          unixepoch() * 1000, unixepoch() * 1000)",
    ),
    (
        "export_job_transitions",
        "INSERT INTO export_job_transitions (job_id, from_state, to_state, event, at)
         VALUES ('01JOBQUEUED0000000000000000', NULL, 'exporting', 'create', 1)",
    ),
    (
        "users",
        "INSERT INTO users (id, organization_id, email, name, role, created_at)
         VALUES (1, 'acme', 'ada@acme.example', 'Ada', 'admin', 1)",
    ),
    (
        "api_tokens",
        // The SHA-256 of `ae_migrated`.
        "INSERT INTO api_tokens (user_id, token_sha256, prefix, created_at)
         VALUES (1, '1f2601213ca35f4427333f7eb66e5b1bd22a5d302de1ec7ada3e0f49b312abbd', 'ae_migrat', 1)",
    ),
    (
        "notifications",
        "INSERT INTO notifications (user_id, kind, job_id, payload, created_at)
         VALUES (1, 'export_failed', 'OLDJOB', '{\"job_id\":\"OLDJOB\"}', 1)",
    ),
    (
        "email_outbox",
        "INSERT INTO email_outbox (recipient, kind, job_id, payload, next_attempt_at, created_at)
         VALUES ('ada@acme.example', 'export_failed', 'OLDJOB',
                 '{\"job_id\":\"OLDJOB\",\"format\":\"csv\",\"summary\":\"acme\",\"error\":{\"code\":\"storage_error\",\"message\":\"disk\"}}', 0, 1)",
    ),
];

fn tables(conn: &Connection) -> Vec<String> {
    let mut st = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn counts(conn: &Connection) -> BTreeMap<String, i64> {
    tables(conn)
        .into_iter()
        .map(|t| {
            let n = conn
                .query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))
                .unwrap();
            (t, n)
        })
        .collect()
}

/// SQL text without comments and with whitespace collapsed (comments
/// inside a CREATE TABLE are stored verbatim, and wording may change
/// between versions without changing the schema).
fn normalize(sql: &str) -> String {
    sql.lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Everything that defines a schema: every object's normalized SQL, every
/// table's columns (in order, with type, nullability, default, key) and
/// every index's columns.
fn schema(conn: &Connection) -> Vec<String> {
    let mut out = Vec::new();
    let mut st = conn
        .prepare("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name")
        .unwrap();
    let objects: Vec<(String, String, String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (kind, name, table, sql) in objects {
        out.push(format!("{kind} {name} on {table}: {}", normalize(&sql)));
        let pragma = if kind == "table" {
            "table_info"
        } else {
            "index_xinfo"
        };
        let mut st = conn
            .prepare(&format!("SELECT * FROM pragma_{pragma}(?1)"))
            .unwrap();
        let n = st.column_count();
        let rows: Vec<String> = st
            .query_map([&name], |r| {
                Ok((0..n)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for row in rows {
            out.push(format!("  {pragma} {name}: {row}"));
        }
    }
    out
}

/// A data dir whose database is at a historical version, with rows.
fn old_data_dir(env: &Env, schema_sql: &str) -> BTreeMap<String, i64> {
    std::fs::create_dir_all(env.data_dir()).unwrap();
    let conn = Connection::open(env.data_dir().join("audit-export.db")).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
    conn.execute_batch(schema_sql).unwrap();
    let present = tables(&conn);
    for (table, sql) in ROWS {
        if present.iter().any(|t| t == table) {
            conn.execute_batch(sql).unwrap();
        }
    }
    counts(&conn)
}

fn fresh_schema() -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let conn = audit_export::db::open_data_dir(dir.path()).unwrap();
    schema(&conn)
}

fn backups(data: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(data.join("backups"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn every_earlier_version_upgrades_to_exactly_the_new_schema_with_its_rows() {
    let fresh = fresh_schema();
    for (name, sql, version) in VERSIONS {
        let env = Env::new();
        let before = old_data_dir(&env, sql);
        let mut conn = audit_export::db::connect(&env.data_dir().join("audit-export.db")).unwrap();
        assert_eq!(audit_export::db::user_version(&conn).unwrap(), *version);
        let migrated =
            audit_export::db::migrate::migrate(&mut conn, &env.data_dir(), 1_795_000_000_000)
                .unwrap();
        let audit_export::db::Migrated::Upgraded { from, to, backup } = migrated else {
            panic!("{name}: expected an upgrade, got {migrated:?}");
        };
        assert_eq!(
            (from, to),
            (*version, audit_export::db::SCHEMA_VERSION),
            "{name}"
        );

        // Exactly the schema of a new database.
        let got = schema(&conn);
        let diff: Vec<String> = fresh
            .iter()
            .filter(|l| !got.contains(l))
            .map(|l| format!("missing: {l}"))
            .chain(
                got.iter()
                    .filter(|l| !fresh.contains(l))
                    .map(|l| format!("extra:   {l}")),
            )
            .collect();
        assert!(diff.is_empty(), "{name}:\n{}", diff.join("\n"));

        // Every row kept; tables the old version lacked are new and empty.
        let after = counts(&conn);
        for (table, n) in &before {
            assert_eq!(after.get(table), Some(n), "{name}: rows of {table}");
        }
        for (table, n) in &after {
            if !before.contains_key(table) {
                assert_eq!(*n, 0, "{name}: new table {table}");
            }
        }

        // The backup is the old database, at its old version, with its rows.
        assert_eq!(
            backup.file_name().unwrap().to_string_lossy(),
            format!("audit-export-v{version}-20261118T110640Z.db"),
            "{name}"
        );
        assert_eq!(backups(&env.data_dir()), vec![backup.clone()], "{name}");
        let copy = Connection::open(&backup).unwrap();
        assert_eq!(
            audit_export::db::user_version(&copy).unwrap(),
            *version,
            "{name}"
        );
        assert_eq!(counts(&copy), before, "{name}: backup rows");
        let check: String = copy
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");

        // Opening again changes nothing and takes no new backup.
        drop(conn);
        audit_export::db::open_data_dir(&env.data_dir()).unwrap();
        assert_eq!(backups(&env.data_dir()).len(), 1, "{name}");
    }
}

/// Today's release (v4) and the release before the claim_token fix, opened
/// by the new binary: the queued job runs, the unsent mail is sent, the
/// user and the token still work.
#[test]
fn an_upgraded_data_dir_keeps_working_through_the_binary() {
    for (name, sql, _) in &VERSIONS[3..] {
        let env = Env::new();
        old_data_dir(&env, sql);
        let out = env.run(&["users", "list"]);
        assert_eq!(out.status.code(), Some(0), "{name}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("ada@acme.example"));
        let out = env.run(&["worker", "--drain"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let db = env.db();
        let state: String = db
            .query_row(
                "SELECT state FROM export_jobs WHERE id = '01JOBQUEUED0000000000000000'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(state, "completed", "{name}: the queued job ran");
        let unsent: i64 = db
            .query_row(
                "SELECT count(*) FROM email_outbox WHERE sent_at IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(unsent, 0, "{name}: every queued mail was sent");
        let eml = std::fs::read_dir(env.data_dir().join("outbox"))
            .unwrap()
            .count();
        assert_eq!(eml, 2, "{name}: the old mail and the job's mail");
        let user = audit_export::users::authenticate(&db, "ae_migrated")
            .unwrap()
            .expect("the old token still authenticates");
        assert_eq!(user.email, "ada@acme.example");
        let server = env.serve(&[]);
        let resp = common::http::req(
            &server.addr,
            "GET",
            "/api/v1/exports",
            Some("ae_migrated"),
            None,
        );
        assert_eq!(resp.status, 200, "{name}");
        assert_eq!(resp.json()["data"].as_array().unwrap().len(), 1, "{name}");
        assert_eq!(backups(&env.data_dir()).len(), 1, "{name}");
    }
}
