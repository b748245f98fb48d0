//! Notifications against a real SMTP server (aiosmtpd, Maildir) started by
//! the test: completed / failed / expired / no-results mails with the right
//! content, a link that downloads the very file, SMTP down then up, a kill
//! between completion and sending (sent once after restart), and the
//! in-app endpoints with their isolation. Under CI=true a missing aiosmtpd
//! fails instead of skipping.

mod common;

use std::time::{Duration, Instant};

use common::http::req;
use common::smtp::{decode, free_port, link_in, mails, smtp_env, start_smtp, wait_mails};
use common::Env;
use serde_json::{json, Value};

fn with<'a>(base: &'a [(String, String)], extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    base.iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(extra.iter().copied())
        .collect()
}

fn post(addr: &str, token: &str, body: &Value) -> Value {
    let r = req(
        addr,
        "POST",
        "/api/v1/exports",
        Some(token),
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

#[test]
fn mails_for_every_outcome_and_the_link_downloads_the_file() {
    let env = Env::new();
    env.ingest_fixtures();
    let Some(smtp) = start_smtp(free_port(), &env.path("maildir")) else {
        return;
    };
    let base = smtp_env(smtp.port);
    let srv = env.serve(&with(&base, &[]));
    let a = &srv.addr;
    let ada = env.user("acme", "ada@acme.example", "compliance");
    let peer = env.user("acme", "peer@acme.example", "viewer");

    // Completed: one mail to the requester, whose link downloads the file.
    let job = post(
        a,
        &ada,
        &json!({"format": "csv", "filters": {"from": "2025-07-01", "to": "2026-01-31"}}),
    );
    let id = job["id"].as_str().unwrap();
    env.wait_job(id, 60, |s| s == "completed");
    let m = wait_mails(&smtp.maildir, 1, 30);
    assert_eq!(m.len(), 1);
    assert!(m[0].contains("To: ada@acme.example"), "{}", m[0]);
    assert!(m[0].contains("Subject: Your audit log export is ready (1100 records)"));
    for needle in [
        "Records:  1100",
        "SHA-256:",
        "acme from 2025-07-01",
        "The link expires at",
    ] {
        assert!(m[0].contains(needle), "{needle} missing in {}", m[0]);
    }
    // The link is followed as mailed: host and port included.
    let url = link_in(&m[0]);
    let rest = url.strip_prefix("http://").expect("an http link");
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    assert_eq!(host, a.as_str(), "the mailed link points at this server");
    let dl = req(host, "GET", path, None, None);
    assert_eq!(dl.status, 200);
    let stored_key: String = env
        .db()
        .query_row("SELECT file_key FROM export_jobs WHERE id = ?", [id], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(dl.body == std::fs::read(env.data_dir().join("exports").join(stored_key)).unwrap());

    // No results: an explicitly async export that matches nothing still
    // runs as a job, mailed here to a verified colleague.
    let none = post(
        a,
        &ada,
        &json!({"format": "json", "mode": "async", "email_to": "peer@acme.example",
                "filters": {"from": "2024-01-01", "to": "2024-01-31", "actions": ["user.*"]}}),
    );
    assert_eq!(none["progress"]["estimated"], 0, "{none}");
    env.wait_job(none["id"].as_str().unwrap(), 60, |s| s == "completed");
    let m = wait_mails(&smtp.maildir, 2, 30);
    assert!(
        m[1].contains("To: peer@acme.example") && m[1].contains("found no records"),
        "{}",
        m[1]
    );
    assert!(
        m[1].contains("actions user.*") && m[1].contains("2024-01-01"),
        "{}",
        m[1]
    );

    // In-app: ada has two unread notices, peer none; isolation holds.
    let list = req(a, "GET", "/api/v1/notifications", Some(&ada), None).json();
    assert_eq!(list["unread"], 2);
    let kinds: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["export_no_results", "export_completed"]);
    let first = list["data"][1]["id"].as_i64().unwrap();
    // The in-app notice carries the same signed link, not the storage key.
    let notice = &list["data"][1]["payload"];
    assert_eq!(notice["download_url"].as_str().unwrap(), url);
    assert!(notice["file"].get("key").is_none());
    assert_eq!(
        req(a, "GET", "/api/v1/notifications", Some(&peer), None).json()["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let r = req(
        a,
        "POST",
        &format!("/api/v1/notifications/{first}/read"),
        Some(&peer),
        None,
    );
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));
    assert_eq!(
        req(
            a,
            "POST",
            &format!("/api/v1/notifications/{first}/read"),
            Some(&ada),
            None
        )
        .status,
        200
    );
    let list = req(a, "GET", "/api/v1/notifications?limit=1", Some(&ada), None).json();
    assert_eq!(list["unread"], 1);
    assert_eq!(list["data"][0]["read"], false, "unread first");
    let next = list["next_cursor"].as_str().unwrap();
    let page2 = req(
        a,
        "GET",
        &format!("/api/v1/notifications?limit=1&cursor={next}"),
        Some(&ada),
        None,
    )
    .json();
    assert_eq!(page2["data"][0]["id"], first);
    assert_eq!(page2["data"][0]["read"], true);
    assert_eq!(
        req(
            a,
            "POST",
            "/api/v1/notifications/read-all",
            Some(&ada),
            None
        )
        .json()["updated"],
        1
    );
    assert_eq!(
        req(a, "GET", "/api/v1/notifications", None, None).status,
        401
    );
    drop(srv);

    // Failed: storage that can never work (an S3 endpoint nobody serves).
    let dead = format!("http://127.0.0.1:{}", free_port());
    let srv = env.serve(&with(
        &base,
        &[
            ("AUDIT_EXPORT_STORAGE_KIND", "s3"),
            ("AUDIT_EXPORT_STORAGE_BUCKET", "b"),
            ("AUDIT_EXPORT_STORAGE_ENDPOINT", &dead),
            ("AUDIT_EXPORT_STORAGE_ACCESS_KEY_ID", "k"),
            ("AUDIT_EXPORT_STORAGE_SECRET_ACCESS_KEY", "s"),
            // Fail each attempt at once instead of riding out the "outage".
            ("AUDIT_EXPORT_STORAGE_RETRY_SECS", "0"),
        ],
    ));
    let failed = post(
        &srv.addr,
        &ada,
        &json!({"format": "jsonl", "filters": {"from": "2025-08-01", "to": "2025-08-31"}}),
    );
    env.wait_job(failed["id"].as_str().unwrap(), 60, |s| s == "failed");
    let m = wait_mails(&smtp.maildir, 3, 30);
    assert!(
        m[2].contains("Subject: Your audit log export failed")
            && m[2].contains("storage_error")
            && m[2].contains("To retry"),
        "{}",
        m[2]
    );
    drop(srv);

    // Expired: a job left in progress past a zero TTL, expired by the
    // clean-up that runs at start.
    let srv = env.serve(&with(
        &base,
        &[("AUDIT_EXPORT_JOBS_MAX_PARALLEL_JOBS", "0")],
    ));
    let stuck = post(
        &srv.addr,
        &ada,
        &json!({"format": "csv", "filters": {"from": "2025-09-01", "to": "2025-09-30"}}),
    );
    drop(srv);
    let _srv = env.serve(&with(
        &base,
        &[
            ("AUDIT_EXPORT_JOBS_MAX_PARALLEL_JOBS", "0"),
            ("AUDIT_EXPORT_JOBS_JOB_TTL_SECS", "0"),
        ],
    ));
    env.wait_job(stuck["id"].as_str().unwrap(), 60, |s| s == "expired");
    let m = wait_mails(&smtp.maildir, 4, 30);
    assert!(
        m[3].contains("Subject: Your audit log export expired") && m[3].contains("2025-09-01"),
        "{}",
        m[3]
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(mails(&smtp.maildir).len(), 4, "no duplicates");
}

#[test]
fn smtp_down_then_kill_then_up_delivers_exactly_once() {
    let env = Env::new();
    env.ingest_fixtures();
    let port = free_port();
    let base = smtp_env(port);
    let ada = env.user("acme", "ada@acme.example", "admin");
    // No SMTP server yet: the job completes, the mail waits in the outbox.
    let mut srv = env.serve(&with(&base, &[]));
    let job = post(
        &srv.addr,
        &ada,
        &json!({"format": "csv", "filters": {"from": "2025-07-01", "to": "2026-01-31"}}),
    );
    let id = job["id"].as_str().unwrap().to_string();
    env.wait_job(&id, 60, |s| s == "completed");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (attempts, sent): (i64, Option<i64>) = env
            .db()
            .query_row(
                "SELECT attempts, sent_at FROM email_outbox WHERE job_id = ?",
                [&id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(sent.is_none());
        if attempts >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no delivery attempt was made");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Killed with the mail still unsent.
    srv.child.kill().unwrap();
    srv.child.wait().unwrap();
    drop(srv);
    let Some(smtp) = start_smtp(port, &env.path("maildir")) else {
        return;
    };
    let mut worker = env.spawn_worker(&with(&base, &[]), "worker.log");
    let m = wait_mails(&smtp.maildir, 1, 30);
    assert!(m[0].contains("To: ada@acme.example") && m[0].contains(&id));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(mails(&smtp.maildir).len(), 1, "exactly once");
    let sent: Option<i64> = env
        .db()
        .query_row(
            "SELECT sent_at FROM email_outbox WHERE job_id = ?",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sent.is_some());
    assert!(common::terminate(&mut worker).success());
}

#[test]
fn without_smtp_mails_become_eml_files() {
    let env = Env::new();
    env.ingest_fixtures();
    let ada = env.user("acme", "ada@acme.example", "admin");
    let srv = env.serve(&[
        ("AUDIT_EXPORT_HTTP_SYNC_THRESHOLD", "1"),
        ("AUDIT_EXPORT_NOTIFY_DELIVERY_INTERVAL_MS", "100"),
    ]);
    let job = post(
        &srv.addr,
        &ada,
        &json!({"format": "csv", "filters": {"from": "2025-07-01", "to": "2025-07-31"}}),
    );
    env.wait_job(job["id"].as_str().unwrap(), 60, |s| s == "completed");
    let dir = env.data_dir().join("outbox");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let files: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().collect())
            .unwrap_or_default();
        if let Some(f) = files.first() {
            assert!(f.path().extension().is_some_and(|e| e == "eml"));
            let text = decode(&std::fs::read_to_string(f.path()).unwrap());
            assert!(
                text.contains("To: ada@acme.example") && text.contains("/download/"),
                "{text}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no .eml written");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The CLI: `--requester` naming a user makes the job theirs (their list,
/// their in-app notice, their verified address by default); `--email-to`
/// obeys the same rule as the API's `email_to`; `worker --drain` sends what
/// its jobs queued before it exits (here as `.eml` files: no SMTP set).
#[test]
fn cli_jobs_notify_the_requesting_user_and_check_email_to() {
    let env = Env::new();
    env.ingest_fixtures();
    env.user("acme", "co@acme.example", "compliance");
    env.user("globex", "g@globex.example", "admin");
    let nothing = [
        "--org",
        "acme",
        "--from",
        "2025-07-01",
        "--to",
        "2025-07-10",
        "--format",
        "csv",
        "--action",
        "nothing.here",
    ];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        let mut v = vec!["export", "--async"];
        v.extend(nothing);
        v.extend(extra);
        v
    };
    for (extra, needle) in [
        (&["--email-to", "stranger@example.com"][..], "--email-to:"),
        (&["--email-to", "g@globex.example"][..], "--email-to:"),
        (&["--requester", "user:999"][..], "--requester:"),
        (
            &[
                "--requester",
                "g@globex.example",
                "--email-to",
                "co@acme.example",
            ][..],
            "",
        ),
    ] {
        let out = env.run(&with(extra));
        let err = String::from_utf8_lossy(&out.stderr);
        let want = if needle.is_empty() { 0 } else { 2 };
        assert_eq!(out.status.code(), Some(want), "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
    // --email-to belongs to background jobs only.
    let direct = [
        &["export"][..],
        &nothing,
        &["--output", "x.csv", "--email-to", "co@acme.example"],
    ];
    let out = env.run(&direct.concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--email-to: only with --async"));

    let id = env.enqueue(
        &[
            &nothing[..],
            &["--requester", "CO@acme.example", "--restart"],
        ]
        .concat(),
        &[],
    );
    let out = env.run(&["worker", "--drain"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (requester, state, count): (String, String, i64) = env
        .db()
        .query_row(
            "SELECT requester, state, record_count FROM export_jobs WHERE id = ?",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let co: i64 = env
        .db()
        .query_row(
            "SELECT id FROM users WHERE email = 'co@acme.example'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        (requester, state.as_str(), count),
        (format!("user:{co}"), "completed", 0)
    );
    let kind: String = env
        .db()
        .query_row(
            "SELECT kind FROM notifications WHERE job_id = ?",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kind, "export_no_results");
    let mails: Vec<String> = std::fs::read_dir(env.data_dir().join("outbox"))
        .unwrap()
        .flatten()
        .map(|f| decode(&std::fs::read_to_string(f.path()).unwrap()))
        .collect();
    let to_co: Vec<&String> = mails.iter().filter(|m| m.contains(&id)).collect();
    assert_eq!(to_co.len(), 1, "{mails:?}");
    assert!(
        to_co[0].contains("To: co@acme.example") && to_co[0].contains("found no records"),
        "{}",
        to_co[0]
    );
}
