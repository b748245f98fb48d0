//! Shared helpers for integration tests: a temporary data directory, the
//! real binary, and an independent reader of the database.
#![allow(dead_code)]

pub mod http;
pub mod smtp;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_audit-export");

/// Whether an outside tool the test needs is here (`check`: a shell
/// command that succeeds when it is). Missing under `CI=true`: a panic
/// naming `what`, since CI must install it; missing locally: `false`, and
/// the test says it skipped.
#[allow(dead_code)]
pub fn have_tool(check: &str, what: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", check])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{what} is required in CI (scripts/test.sh installs it)");
        }
        eprintln!("SKIPPED: {what} missing; run scripts/test.sh to install it");
    }
    ok
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/audit_events.jsonl")
}

/// A data directory under a temp dir, removed on drop.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs the binary with `--data-dir` set and the given args.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(BIN);
        c.arg("--data-dir").arg(self.data_dir()).args(args);
        c.env_remove("AUDIT_EXPORT_DATA_DIR");
        c.current_dir(self.dir.path());
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    /// Runs and asserts the exit code, returning stderr.
    pub fn expect(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "args {args:?}\nstderr: {stderr}\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        stderr
    }

    /// `export` of `org` from `from` to `to` as `format` on stdout, with
    /// `extra` flags; the bytes (the command must succeed).
    #[allow(dead_code)]
    pub fn export_stdout(
        &self,
        org: &str,
        from: &str,
        to: &str,
        format: &str,
        extra: &[&str],
    ) -> Vec<u8> {
        let mut args = vec![
            "export", "--org", org, "--from", from, "--to", to, "--format", format, "--output", "-",
        ];
        args.extend(extra);
        let out = self.run(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    pub fn ingest_fixtures(&self) {
        self.expect(&["ingest", fixtures().to_str().unwrap()], 0);
    }

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.data_dir().join("audit-export.db")).unwrap()
    }
}

/// One row as 17 nullable strings in the raw column order, read straight
/// from SQLite (times formatted by chrono, not by the engine).
pub type Row = Vec<Option<String>>;

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Runs `SELECT <17 columns> FROM audit_logs WHERE <where_sql> ORDER BY
/// occurred_at, id` and returns the rows.
pub fn oracle(conn: &rusqlite::Connection, where_sql: &str) -> Vec<Row> {
    let sql = format!(
        "SELECT id, occurred_at, organization_id, stream, action, actor_type, actor_id, \
         actor_name, actor_email, target_type, target_id, target_name, ip_address, user_agent, \
         request_id, changed_data, details FROM audit_logs WHERE {where_sql} ORDER BY occurred_at, id"
    );
    let mut st = conn.prepare(&sql).unwrap();
    st.query_map([], |r| {
        let mut row: Row = Vec::with_capacity(17);
        row.push(Some(r.get::<_, i64>(0)?.to_string()));
        row.push(Some(rfc3339(r.get::<_, i64>(1)?)));
        for i in 2..17 {
            row.push(r.get::<_, Option<String>>(i)?);
        }
        Ok(row)
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Milliseconds of a UTC date `YYYY-MM-DD` at midnight.
pub fn day_ms(d: &str) -> i64 {
    chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

/// Environment for fast job tests: short leases, quick polls and retries.
pub const FAST_JOBS: &[(&str, &str)] = &[
    ("AUDIT_EXPORT_JOBS_LEASE_SECS", "1"),
    ("AUDIT_EXPORT_JOBS_POLL_INTERVAL_MS", "50"),
    ("AUDIT_EXPORT_JOBS_RETRY_BASE_MS", "50"),
    ("AUDIT_EXPORT_LOG", "warn"),
];

impl Env {
    /// Starts `audit-export worker` on this data dir; stderr goes to a file.
    pub fn spawn_worker(&self, env: &[(&str, &str)], log_name: &str) -> std::process::Child {
        let log = std::fs::File::create(self.path(log_name)).unwrap();
        let mut c = Command::new(BIN);
        c.arg("--data-dir").arg(self.data_dir()).arg("worker");
        c.current_dir(self.dir.path());
        c.env_remove("AUDIT_EXPORT_DATA_DIR");
        for (k, v) in FAST_JOBS.iter().chain(env) {
            c.env(k, v);
        }
        c.stdout(std::process::Stdio::null()).stderr(log);
        c.spawn().unwrap()
    }

    /// Enqueues `export --async` and returns the job id.
    pub fn enqueue(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let mut all = vec!["export", "--async"];
        all.extend(args);
        let out = self.run_env(&all, env);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Polls the job's state until `pred` holds (or panics after `secs`).
    pub fn wait_job(&self, id: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Ok(state) =
                self.db()
                    .query_row("SELECT state FROM export_jobs WHERE id = ?", [id], |r| {
                        r.get::<_, String>(0)
                    })
            {
                if pred(&state) {
                    return state;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "job {id} did not reach the expected state in {secs} s"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Sends SIGTERM and waits for the process to exit.
pub fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap()
}
