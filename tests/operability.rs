//! Running the engine for real: a consistent backup under load, a restore
//! that refuses a live database, shutdown that stops accepting at once
//! while requests in flight finish, `config show`, variable and log
//! settings, and read-only commands that never create a database.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::http::req;
use common::Env;
use serde_json::json;

fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Data records of a CSV export (cells may hold line breaks).
fn csv_records(body: &[u8]) -> usize {
    let mut n = 0;
    for r in csv::Reader::from_reader(body).records() {
        r.unwrap();
        n += 1;
    }
    n
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes the request and reads the status line and headers of a sync
/// export, leaving the body on the socket; with its Content-Length.
fn start_sync_export(addr: &str, token: &str, to: &str) -> (BufReader<TcpStream>, usize) {
    let body = json!({"format": "csv", "mode": "sync",
        "filters": {"from": "2025-01-01", "to": to}})
    .to_string();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST /api/v1/exports HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let mut length = None;
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if let Some(v) = line.strip_prefix("Content-Length:") {
            length = Some(v.trim().parse().unwrap());
        }
        if line.trim().is_empty() {
            return (r, length.expect("a Content-Length"));
        }
    }
}

/// Reads a body to the end of the connection; `None` if it was cut short
/// of its Content-Length.
fn rest_of_body((r, length): &mut (BufReader<TcpStream>, usize)) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    r.read_to_end(&mut body).ok()?;
    (body.len() == *length).then_some(body)
}

#[test]
fn a_backup_taken_under_load_is_consistent_and_holds_every_committed_row() {
    let env = Env::new();
    env.expect(&["seed", "--rows", "200000", "--orgs", "1"], 0);
    let srv = env.serve(&[
        ("AUDIT_EXPORT_HTTP_SYNC_THRESHOLD", "100000000"),
        // The job runs 10 s at least: still exporting when the backup runs.
        ("AUDIT_EXPORT_JOBS_ROWS_PER_SECOND", "20000"),
    ]);
    let admin = env.user("org_1", "ada@org1.example", "admin");
    // A background job writing its spool and checkpoints…
    let job = req(
        &srv.addr,
        "POST",
        "/api/v1/exports",
        Some(&admin),
        Some(
            json!({"format": "jsonl", "mode": "async", "filters": {"from": "2025-01-01", "to": "2025-12-31"}})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(job.status, 202, "{}", String::from_utf8_lossy(&job.body));
    // …a sync export streaming to a client that has read only its headers…
    let mut stream = start_sync_export(&srv.addr, &admin, "2025-12-31");
    // …and a writer committing events all along.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (addr, token, s) = (srv.addr.clone(), admin.clone(), stop.clone());
    let writer = std::thread::spawn(move || {
        let mut batches = 0;
        while !s.load(std::sync::atomic::Ordering::SeqCst) {
            let events: String = (0..50)
                .map(|i| {
                    format!("{{\"occurred_at\":\"2026-02-01T00:00:{:02}Z\",\"stream\":\"audit\",\"action\":\"load.write\"}}\n", i % 60)
                })
                .collect();
            let r = req(
                &addr,
                "POST",
                "/api/v1/audit-logs",
                Some(&token),
                Some(events.as_bytes()),
            );
            assert_eq!(r.status, 201);
            batches += 1;
        }
        batches
    });
    std::thread::sleep(Duration::from_millis(300));
    let job_id = serde_json::from_slice::<serde_json::Value>(&job.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let state: String = env
        .db()
        .query_row(
            "SELECT state FROM export_jobs WHERE id = ?",
            [&job_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(state, "exporting", "the backup is taken while the job runs");
    let committed = count(&env.db(), "SELECT count(*) FROM audit_logs");
    let copy = env.path("copy.db");
    let out = env.run(&["backup", copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let batches = writer.join().unwrap();
    assert!(batches > 0);
    let body = rest_of_body(&mut stream).expect("the sync export completed");
    assert_eq!(csv_records(&body), 200_000);

    let c = rusqlite::Connection::open(&copy).unwrap();
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let in_copy = count(&c, "SELECT count(*) FROM audit_logs");
    assert!(
        in_copy >= committed,
        "the copy lost committed rows: {in_copy} < {committed}"
    );
    // Rows are whole batches: ids are dense, none half-written.
    assert_eq!(
        count(&c, "SELECT max(id) FROM audit_logs"),
        in_copy,
        "ids are contiguous in the copy"
    );
    assert_eq!(count(&c, "SELECT count(*) FROM export_jobs"), 1);
    assert_eq!(count(&c, "SELECT count(*) FROM users"), 1);
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "a backup is one self-contained file");
    assert!(!env.path("copy.db-wal").exists());

    // Restore refuses while serve holds the database.
    let out = env.run(&["restore", copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    drop(srv);
    let out = env.run(&["restore", copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(count(&env.db(), "SELECT count(*) FROM audit_logs"), in_copy);
}

#[test]
fn sigterm_stops_accepting_at_once_and_finishes_the_requests_in_flight() {
    let env = Env::new();
    env.expect(&["seed", "--rows", "100000", "--orgs", "1"], 0);
    let srv = env.serve(&[("AUDIT_EXPORT_HTTP_SYNC_THRESHOLD", "100000000")]);
    let admin = env.user("org_1", "ada@org1.example", "admin");
    let mut stream = start_sync_export(&srv.addr, &admin, "2025-12-31");
    let pid = srv.child.id();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    // New connections are refused promptly: no polling interval to wait out.
    let t = Instant::now();
    loop {
        match TcpStream::connect(&srv.addr) {
            Err(_) => break,
            Ok(_) => {
                assert!(
                    // Prompt, with room for a loaded CI machine.
                    t.elapsed() < Duration::from_secs(2),
                    "still accepting {} ms after SIGTERM",
                    t.elapsed().as_millis()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    // The export in flight completes, whole.
    let body = rest_of_body(&mut stream).expect("the request in flight finished");
    assert_eq!(csv_records(&body), 100_000);
    let mut srv = srv;
    let status = srv.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn config_show_names_each_source_and_masks_secrets() {
    let env = Env::new();
    std::fs::write(
        env.path("audit-export.toml"),
        "[smtp]\nhost = \"mail.example\"\npassword = \"hunter2\"\n",
    )
    .unwrap();
    let out = env.run_env(
        &["config", "show"],
        &[("AUDIT_EXPORT_JOBS_MAX_ATTEMPTS", "5")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let line = |k: &str| text.lines().find(|l| l.starts_with(k)).unwrap_or("");
    assert!(
        line("max_attempts = 5").contains("AUDIT_EXPORT_JOBS_MAX_ATTEMPTS"),
        "{text}"
    );
    assert!(
        line("host = \"mail.example\"").contains("audit-export.toml"),
        "{text}"
    );
    assert!(line("batch_size = 5000").contains("default"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!env.data_dir().exists(), "config show created the data dir");
}

#[test]
fn a_misspelled_variable_is_named_and_logs_can_be_json() {
    let env = Env::new();
    for var in [
        "AUDIT_EXPORT_JOBS_MAX_PARALEL_JOBS",
        "AUDIT_EXPORT_JOB_MAX_ATTEMPTS",
    ] {
        let out = env.run_env(&["users", "list"], &[(var, "3")]);
        assert_eq!(out.status.code(), Some(2), "{var}");
        let err = stderr(&out);
        assert!(err.contains(var), "{err}");
        assert!(!err.contains("config file"), "{err}");
    }
    for (name, var) in [("json", "AUDIT_EXPORT_LOG"), ("json", "RUST_LOG")] {
        let out = env.run_env(
            &[
                "--log-format",
                name,
                "ingest",
                common::fixtures().to_str().unwrap(),
            ],
            &[(var, "info")],
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let json_lines = stderr(&out)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["level"] == "INFO")
            .count();
        assert!(json_lines > 0, "{var}: {}", stderr(&out));
        std::fs::remove_dir_all(env.data_dir()).unwrap();
    }
}

#[test]
fn read_only_commands_on_a_data_dir_without_a_database_exit_2_and_create_nothing() {
    let env = Env::new();
    for args in [
        &["jobs", "list"][..],
        &["jobs", "show", "X"],
        &["users", "list"],
        &["tokens", "create", "--org", "a", "--email", "a@b.c"],
        &["backup", "x.db"],
        &[
            "export",
            "--org",
            "a",
            "--from",
            "2025-01-01",
            "--to",
            "2025-01-02",
            "--format",
            "csv",
            "--output",
            "x.csv",
        ],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("no database"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(
            !env.data_dir().join("audit-export.db").exists(),
            "{args:?} created a database"
        );
    }
}

/// `restore` refuses while any command uses the database, not only serve
/// and worker: here an ingest, which spends its validation pass with no
/// transaction open (SQLite alone would not stop a restore then).
#[test]
fn restore_refuses_while_a_cli_ingest_runs() {
    let env = Env::new();
    env.ingest_fixtures();
    let copy = env.path("copy.db");
    let out = env.run(&["backup", copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let file = env.path("many.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    for i in 0..200_000 {
        writeln!(
            f,
            r#"{{"organization_id":"acme","occurred_at":"2025-08-01T00:00:{:02}Z","stream":"audit","action":"user.login","context":{{"request_id":"r{i}"}}}}"#,
            i % 60
        )
        .unwrap();
    }
    drop(f);
    let mut ingest = std::process::Command::new(env!("CARGO_BIN_EXE_audit-export"))
        .arg("--data-dir")
        .arg(env.data_dir())
        .arg("ingest")
        .arg(&file)
        .env_remove("AUDIT_EXPORT_DATA_DIR")
        .current_dir(env.path(""))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Once it has the database open (it takes the lock before), restore
    // is refused for as long as it runs.
    let fds = format!("/proc/{}/fd", ingest.id());
    let has_db = || {
        std::fs::read_dir(&fds)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| std::fs::read_link(e.path()).is_ok_and(|p| p.ends_with("audit-export.db")))
    };
    let t = Instant::now();
    while !has_db() {
        assert!(
            ingest.try_wait().unwrap().is_none(),
            "the ingest ended early"
        );
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the ingest never opened the database"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // (200,000 lines keep it busy for a second or more.)
    let out = env.run(&["restore", copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    assert!(ingest.wait().unwrap().success());
    assert_eq!(count(&env.db(), "SELECT count(*) FROM audit_logs"), 202_400);
    // Once it is done, restore runs.
    let out = env.run(&["restore", copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(count(&env.db(), "SELECT count(*) FROM audit_logs"), 2_400);
}
