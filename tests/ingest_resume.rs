//! Ingest never duplicates: a file ingest killed at a random point resumes
//! after its last committed line when run again, and a completed file is
//! not ingested twice — with events that carry no ids. An HTTP ingest
//! retried with the same Idempotency-Key answers the first answer and
//! inserts nothing.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::http::req;
use common::Env;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_audit-export");

/// Rows so far (0 while the database or its table does not exist yet);
/// opened read-only so watching never creates anything.
fn count(env: &Env) -> i64 {
    let path = env.data_dir().join("audit-export.db");
    rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("SELECT count(*) FROM audit_logs", [], |r| r.get(0)))
        .unwrap_or(0)
}

/// `n` events without ids, each with a distinct request id.
fn write_events(path: &std::path::Path, n: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        writeln!(
            f,
            r#"{{"organization_id":"acme","occurred_at":"2025-{:02}-{:02}T{:02}:{:02}:{:02}.000Z","stream":"audit","action":"user.login","actor":{{"type":"user","id":"u_{}","name":"User {}","email":"u{}@acme.example"}},"context":{{"request_id":"req_{i}"}},"details":{{"n":{i}}}}}"#,
            1 + i % 12,
            1 + i % 28,
            i % 24,
            i % 60,
            (i / 60) % 60,
            i % 97,
            i % 97,
            i % 97
        )
        .unwrap();
    }
}

#[test]
fn an_interrupted_ingest_resumes_and_a_completed_one_is_not_repeated() {
    const N: i64 = 300_000;
    let env = Env::new();
    let file = env.path("events.jsonl");
    write_events(&file, N as usize);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as i64;
    // Somewhere after the first batch, in the first half: the other half
    // is the margin that keeps the ingest running until the kill lands,
    // however fast the machine.
    let kill_at = 10_000 + seed % (N / 2);
    eprintln!("killing after {kill_at} rows");
    let mut child = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(env.data_dir())
        .args(["ingest", file.to_str().unwrap()])
        .env_remove("AUDIT_EXPORT_DATA_DIR")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while count(&env) < kill_at {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the ingest ended before the kill"
        );
        assert!(t.elapsed() < Duration::from_secs(300));
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = count(&env);
    assert!(partial > 0 && partial < N, "{partial}");

    // Again: it resumes where it stopped and ends with every event once.
    let err = env.expect(&["ingest", file.to_str().unwrap()], 0);
    assert!(err.contains("resumed from there"), "{err}");
    assert_eq!(count(&env), N);
    let distinct: i64 = env
        .db()
        .query_row(
            "SELECT count(DISTINCT request_id) FROM audit_logs",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(distinct, N, "no event twice");
    // Once more: nothing to do.
    let err = env.expect(&["ingest", file.to_str().unwrap()], 0);
    assert!(err.contains("already ingested completely"), "{err}");
    assert!(err.contains("300,000 events"), "{err}");
    assert_eq!(count(&env), N);
    // A CSV of other events is its own file.
    let other = env.path("other.jsonl");
    write_events(&other, 10);
    let err = env.expect(&["ingest", other.to_str().unwrap()], 0);
    assert!(err.contains("ingested 10 events"), "{err}");
}

#[test]
fn an_idempotency_key_replays_the_first_answer_and_inserts_nothing() {
    let env = Env::new();
    let srv = env.serve(&[]);
    let admin = env.user("acme", "ada@acme.example", "admin");
    let body = json!([
        {"occurred_at": "2026-01-05T10:00:00Z", "stream": "audit", "action": "user.login",
         "actor": {"type": "user", "id": "u_1"}},
        {"occurred_at": "2026-01-05T10:01:00Z", "stream": "audit", "action": "user.logout",
         "actor": {"type": "user", "id": "u_1"}}
    ])
    .to_string();
    let post = |key: &str, body: &str| {
        let request = format!(
            "POST /api/v1/audit-logs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {admin}\r\n\
             Idempotency-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        common::http::raw(&srv.addr, request.as_bytes()).unwrap()
    };
    let before = count(&env);
    let first = post("batch-2026-01-05-a", &body);
    assert_eq!(
        first.status,
        201,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(count(&env), before + 2);
    // The retry: the same answer, the same ids, nothing inserted.
    let retry = post("batch-2026-01-05-a", &body);
    assert_eq!(retry.status, 201);
    assert_eq!(retry.json(), first.json());
    assert_eq!(retry.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(count(&env), before + 2);
    // The same key with another body: a conflict, nothing inserted.
    let other = body.replace("user.logout", "user.deleted");
    let clash = post("batch-2026-01-05-a", &other);
    assert_eq!(clash.status, 409);
    assert_eq!(clash.code(), "idempotency_conflict");
    assert_eq!(count(&env), before + 2);
    // Another key: inserted.
    assert_eq!(post("batch-2026-01-05-b", &other).status, 201);
    assert_eq!(count(&env), before + 4);
    // A key too long, or not printable: 400.
    let bad = post(&"k".repeat(300), &body);
    assert_eq!(bad.status, 400);
    assert_eq!(bad.code(), "invalid_idempotency_key");
    // Without a key, a retry inserts again (the caller chose so).
    assert_eq!(
        req(
            &srv.addr,
            "POST",
            "/api/v1/audit-logs",
            Some(&admin),
            Some(body.as_bytes())
        )
        .status,
        201
    );
    assert_eq!(count(&env), before + 6);
}
