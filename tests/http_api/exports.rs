//! Exports over HTTP: sync answers equal the CLI's bytes, async jobs end in signed links, failures never look like files.

use super::common::http::{req, Server};
use super::common::Env;
use super::support::*;
use serde_json::{json, Value};

/// Fixtures, a server answering below 1,000 rows at once and storing
/// files unzipped, and a compliance officer's token.
fn setup() -> (Env, Server, String) {
    let env = Env::new();
    env.ingest_fixtures();
    let srv = env.serve(&[
        ("AUDIT_EXPORT_HTTP_SYNC_THRESHOLD", "1000"),
        ("AUDIT_EXPORT_JOBS_COMPRESS", "never"),
    ]);
    let t = env.user("acme", "ada@acme.example", "compliance");
    (env, srv, t)
}

#[test]
fn sync_exports_are_the_cli_bytes_and_estimate_names_the_mode() {
    let (env, srv, t) = setup();
    let a = &srv.addr;
    let cli = |format: &str, from: &str| env.export_stdout("acme", from, "2026-01-31", format, &[]);
    // Small (330 rows < 1000): streamed at once, byte for byte the CLI's.
    for format in ["csv", "json", "jsonl"] {
        let body = json!({"format": format, "filters": {"from": "2025-12-01", "to": "2026-01-31"}});
        let r = post(a, "/api/v1/exports", &t, &body);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert!(
            r.body == cli(format, "2025-12-01"),
            "{format}: HTTP body differs from the CLI export"
        );
        let ct = r.header("Content-Type").unwrap();
        assert!(
            ct.starts_with(match format {
                "csv" => "text/csv",
                "json" => "application/json",
                _ => "application/x-ndjson",
            }),
            "{ct}"
        );
        let cd = r.header("Content-Disposition").unwrap();
        assert!(
            cd.starts_with("attachment; filename=\"audit-logs_acme_2025-12-01_2026-01-31_")
                && cd.ends_with(&format!(".{format}\"")),
            "{cd}"
        );
    }
    // Nothing matched: a warning, no file.
    let none = post(
        a,
        "/api/v1/exports",
        &t,
        &json!({"format": "csv", "filters": {"from": "2024-01-01", "to": "2024-01-31"}}),
    );
    assert_eq!(none.status, 200);
    assert_eq!(
        none.json(),
        json!({"record_count": 0, "warning": "no_records"})
    );
    // Estimate says which mode auto picks.
    let est = post(
        a,
        "/api/v1/exports/estimate",
        &t,
        &json!({"filters": {"from": "2025-07-01", "to": "2026-01-31"}}),
    )
    .json();
    assert_eq!(
        est,
        json!({"record_count": 1100, "mode": "async", "link_ttl_seconds": 86400})
    );

    // Each is in the audit trail.
    let exported: i64 = env
        .db()
        .query_row(
            "SELECT count(*) FROM audit_logs WHERE action = 'audit_log.exported' AND target_type = 'audit_export'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(exported, 4, "3 sync + 1 empty");
}

#[test]
fn async_links_download_the_stored_file_signed_and_in_time() {
    let (env, srv, t) = setup();
    let a = &srv.addr;
    let cli = |format: &str, from: &str| env.export_stdout("acme", from, "2026-01-31", format, &[]);
    // Large (1,100 ≥ 1000): a job, then a signed link to the stored file.
    let r = post(a, "/api/v1/exports", &t, &export_body("csv", "auto"));
    assert_eq!(r.status, 202);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let job = wait_completed(a, &t, &id);
    assert_eq!(job["record_count"], 1100);
    assert_eq!(job["progress"]["exported"], 1100);
    let url = job["download_url"].as_str().unwrap().to_string();
    assert!(job["expires_at"].is_string());
    let dl = req(a, "GET", &path_of(&url), None, None);
    assert_eq!(dl.status, 200);
    assert!(
        dl.body == cli("csv", "2025-07-01"),
        "downloaded file differs"
    );
    assert_eq!(
        dl.header("Content-Length").unwrap(),
        job["file"]["size"].to_string()
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, &dl.body);
    assert_eq!(
        audit_export::util::hex(digest.as_ref()),
        job["file"]["sha256"].as_str().unwrap()
    );

    // Any changed byte of id, expiry or signature → 403.
    let p = path_of(&url);
    let (base, query) = p.split_once('?').unwrap();
    let expires = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("expires="))
        .unwrap();
    let sig = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("sig="))
        .unwrap();
    let flip = |s: &str, i: usize| {
        let mut b = s.as_bytes().to_vec();
        b[i] = if b[i] == b'0' { b'1' } else { b'0' };
        String::from_utf8(b).unwrap()
    };
    let tampered = [
        format!("/download/{}?expires={expires}&sig={sig}", flip(&id, 5)),
        format!(
            "{base}?expires={}&sig={sig}",
            flip(expires, expires.len() - 1)
        ),
        format!("{base}?expires={expires}&sig={}", flip(sig, 10)),
        format!("{base}?expires={expires}"),
        base.to_string(),
        // Other spellings of the same values are other links.
        format!("{base}?expires=0{expires}&sig={sig}"),
        format!("{base}?expires=%2B{expires}&sig={sig}"),
        format!("{base}?expires={expires}&sig={}", sig.to_ascii_uppercase()),
        format!("{base}?expires={expires}&sig={sig}&sig=00"),
        format!("{base}?expires={expires}&expires={expires}&sig={sig}"),
    ];
    for t in tampered {
        let r = req(a, "GET", &t, None, None);
        assert_eq!((r.status, r.code().as_str()), (403, "forbidden"), "{t}");
    }
    // An expired link, properly signed with the server's secret → 410.
    let secret = std::fs::read_to_string(env.data_dir().join("link-secret")).unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.trim().as_bytes());
    let file_key: String = env
        .db()
        .query_row(
            "SELECT file_key FROM export_jobs WHERE id = ?",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    let past = 1_700_000_000i64;
    let sig = audit_export::util::hex(
        ring::hmac::sign(&key, format!("{id}\n{file_key}\n{past}").as_bytes()).as_ref(),
    );
    let r = req(
        a,
        "GET",
        &format!("{base}?expires={past}&sig={sig}"),
        None,
        None,
    );
    assert_eq!((r.status, r.code().as_str()), (410, "link_expired"));
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("2023-11-14T22:13:20.000Z"));
    // The file pruned from storage → 410.
    std::fs::remove_file(env.data_dir().join("exports").join(&file_key)).unwrap();
    let r = req(a, "GET", &p, None, None);
    assert_eq!((r.status, r.code().as_str()), (410, "file_pruned"));

    // Every export and the download are in the audit trail.
    let conn = env.db();
    type Row = (String, String, Option<String>, String, Option<String>);
    let rows: Vec<Row> = conn
        .prepare("SELECT action, actor_email, ip_address, details, user_agent FROM audit_logs WHERE action LIKE 'audit_log.export%' AND target_type = 'audit_export' ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let exported: Vec<_> = rows
        .iter()
        .filter(|r| r.0 == "audit_log.exported")
        .collect();
    assert_eq!(exported.len(), 1, "the async export");
    let downloads: Vec<_> = rows
        .iter()
        .filter(|r| r.0 == "audit_log.export_downloaded")
        .collect();
    assert_eq!(downloads.len(), 1);
    for (_, email, ip, details, agent) in &rows {
        assert_eq!(email, "ada@acme.example");
        assert_eq!(ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(agent.as_deref(), Some(super::common::http::USER_AGENT));
        let d: Value = serde_json::from_str(details).unwrap();
        assert!(
            d["filters"]["organization"] == "acme"
                && d["format"].is_string()
                && d.get("record_count").is_some()
                && d.get("job_id").is_some(),
            "{d}"
        );
    }
    let async_row: Value = serde_json::from_str(&exported[0].3).unwrap();
    assert_eq!(async_row["job_id"], id.as_str());
    assert_eq!(async_row["record_count"], 1100);
}

#[test]
fn a_sync_export_failing_midway_answers_an_error_never_a_partial_file() {
    let env = Env::new();
    env.ingest_fixtures();
    // A row the export cannot read (text that is not UTF-8), at the end of
    // the range, after many pages have been written.
    env.db()
        .execute(
            "INSERT INTO audit_logs (organization_id, occurred_at, stream, action, actor_name) \
             VALUES ('acme', 1769903000000, 'audit', 'user.login', CAST(x'ff00fe' AS TEXT))",
            [],
        )
        .unwrap();
    let srv = env.serve(&[("AUDIT_EXPORT_EXPORT_BATCH_SIZE", "100")]);
    let t = env.user("acme", "ada@acme.example", "admin");
    let body = json!({"format": "csv", "mode": "sync", "filters": {"from": "2025-07-01", "to": "2026-01-31"}});
    let r = req(
        &srv.addr,
        "POST",
        "/api/v1/exports",
        Some(&t),
        Some(body.to_string().as_bytes()),
    );
    // The file is complete before its first byte is sent: a failure is an
    // error answer, not a file cut short.
    assert_eq!(
        r.status,
        500,
        "{}",
        String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
    );
    assert_eq!(r.code(), "internal_error");
    assert!(r.header("Content-Disposition").is_none());
    // Nothing is left in the work folder.
    let tmp = env.data_dir().join("tmp");
    assert_eq!(std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0), 0);
    // A complete export of a range without the bad row does end properly.
    let ok = req(&srv.addr, "POST", "/api/v1/exports", Some(&t), Some(json!({"format": "csv", "mode": "sync", "filters": {"from": "2025-07-01", "to": "2025-12-31"}}).to_string().as_bytes()));
    assert_eq!(ok.status, 200);
    assert!(ok.body.ends_with(b"\r\n"));
    assert_eq!(
        ok.header("Content-Length")
            .map(|l| l.parse::<usize>().unwrap()),
        Some(ok.body.len())
    );
}
