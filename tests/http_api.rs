//! The HTTP API over real sockets against a spawned `audit-export serve`.

mod common;

use common::http::{req, Resp};
use common::Env;
use serde_json::{json, Value};

const ACME_ALL: &str = r#"{"from":"2025-07-01","to":"2026-01-31"}"#;

fn post(addr: &str, path: &str, token: &str, body: &Value) -> Resp {
    req(
        addr,
        "POST",
        path,
        Some(token),
        Some(body.to_string().as_bytes()),
    )
}

fn export_body(format: &str, mode: &str) -> Value {
    json!({"format": format, "filters": serde_json::from_str::<Value>(ACME_ALL).unwrap(), "mode": mode})
}

fn wait_completed(addr: &str, token: &str, id: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let r = req(
            addr,
            "GET",
            &format!("/api/v1/exports/{id}"),
            Some(token),
            None,
        );
        assert_eq!(r.status, 200);
        let v = r.json();
        if v["state"] == "completed" {
            return v;
        }
        assert!(v["state"] != "failed", "{v}");
        assert!(
            std::time::Instant::now() < deadline,
            "job did not complete: {v}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn path_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    rest[rest.find('/').unwrap()..].to_string()
}

#[test]
fn roles_tenancy_and_the_role_by_endpoint_matrix() {
    let env = Env::new();
    env.ingest_fixtures();
    // No worker claims anything here: jobs stay in progress.
    let srv = env.serve(&[
        ("AUDIT_EXPORT_JOBS_MAX_PARALLEL_JOBS", "0"),
        ("AUDIT_EXPORT_HTTP_SYNC_THRESHOLD", "1"),
    ]);
    let a = &srv.addr;
    let admin = env.user("acme", "admin@acme.example", "admin");
    let comp = env.user("acme", "comp@acme.example", "compliance");
    let viewer = env.user("acme", "viewer@acme.example", "viewer");
    let other = env.user("globex", "admin@globex.example", "admin");

    // No or bad token.
    for (m, p) in [
        ("GET", "/api/v1/audit-logs?from=2025-07-01&to=2025-08-01"),
        ("POST", "/api/v1/exports"),
        ("GET", "/api/v1/exports"),
    ] {
        let r = req(a, m, p, None, Some(b"{}"));
        assert_eq!(
            (r.status, r.code().as_str()),
            (401, "unauthorized"),
            "{m} {p}"
        );
        let r = req(a, m, p, Some("ae_nope"), Some(b"{}"));
        assert_eq!(r.status, 401, "{m} {p}");
    }
    // Matrix: (token, may export, may ingest).
    for (tok, export_ok, ingest_ok) in [
        (&admin, true, true),
        (&comp, true, false),
        (&viewer, false, false),
    ] {
        let view = req(
            a,
            "GET",
            "/api/v1/audit-logs?from=2025-07-01&to=2025-08-01&limit=5",
            Some(tok),
            None,
        );
        assert_eq!(view.status, 200);
        let est = post(
            a,
            "/api/v1/exports/estimate",
            tok,
            &json!({"filters": {"from": "2025-07-01", "to": "2025-08-01"}}),
        );
        assert_eq!(est.status, if export_ok { 200 } else { 403 });
        let ex = post(a, "/api/v1/exports", tok, &export_body("csv", "async"));
        if export_ok {
            assert_eq!(ex.status, 202, "{}", String::from_utf8_lossy(&ex.body));
        } else {
            assert_eq!((ex.status, ex.code().as_str()), (403, "forbidden"));
        }
        let ing = req(a, "POST", "/api/v1/audit-logs", Some(tok), Some(b"[]"));
        assert_eq!(
            ing.status == 403,
            !ingest_ok,
            "ingest as {tok}: {}",
            ing.status
        );
        assert_eq!(
            req(a, "GET", "/api/v1/exports", Some(tok), None).status,
            200
        );
    }
    // Compliance sees only its own jobs; admin sees the organization's.
    let mine = req(a, "GET", "/api/v1/exports", Some(&comp), None).json();
    assert_eq!(mine["data"].as_array().unwrap().len(), 1);
    let all = req(a, "GET", "/api/v1/exports", Some(&admin), None).json();
    assert_eq!(all["data"].as_array().unwrap().len(), 2);
    let comp_job = mine["data"][0]["id"].as_str().unwrap().to_string();
    // A same-organization colleague without admin rights cannot see it.
    let colleague = env.user("acme", "comp2@acme.example", "compliance");
    let r = req(
        a,
        "GET",
        &format!("/api/v1/exports/{comp_job}"),
        Some(&colleague),
        None,
    );
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));
    assert_eq!(
        req(
            a,
            "GET",
            &format!("/api/v1/exports/{comp_job}"),
            Some(&admin),
            None
        )
        .status,
        200
    );
    // Another organization: 404 everywhere, and an empty list.
    for (m, p) in [
        ("GET", format!("/api/v1/exports/{comp_job}")),
        ("DELETE", format!("/api/v1/exports/{comp_job}")),
        ("POST", format!("/api/v1/exports/{comp_job}/restart")),
    ] {
        let r = req(a, m, &p, Some(&other), None);
        assert_eq!((r.status, r.code().as_str()), (404, "not_found"), "{m} {p}");
    }
    assert_eq!(
        req(a, "GET", "/api/v1/exports", Some(&other), None).json()["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // The viewer cannot cancel; the admin can; cancelling twice is a 409.
    assert_eq!(
        req(
            a,
            "DELETE",
            &format!("/api/v1/exports/{comp_job}"),
            Some(&viewer),
            None
        )
        .status,
        403
    );
    let c = req(
        a,
        "DELETE",
        &format!("/api/v1/exports/{comp_job}"),
        Some(&admin),
        None,
    );
    assert_eq!(c.status, 200);
    assert_eq!(c.json()["state"], "failed");
    assert_eq!(c.json()["error"]["code"], "cancelled");
    let again = req(
        a,
        "DELETE",
        &format!("/api/v1/exports/{comp_job}"),
        Some(&admin),
        None,
    );
    assert_eq!(
        (again.status, again.code().as_str()),
        (409, "not_in_progress")
    );
    // Another organization's data never shows in a view.
    let v = req(
        a,
        "GET",
        "/api/v1/audit-logs?from=2025-07-01&to=2026-01-31&limit=1000",
        Some(&other),
        None,
    )
    .json();
    assert!(v["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["organization_id"] == "globex"));
    // Naming another organization in filters is refused.
    let r = post(
        a,
        "/api/v1/exports",
        &admin,
        &json!({"format": "csv", "filters": {"organization": "globex", "from": "2025-07-01", "to": "2025-08-01"}}),
    );
    assert_eq!(r.status, 403);
}

#[test]
fn duplicates_limits_and_restart() {
    let env = Env::new();
    env.ingest_fixtures();
    let srv = env.serve(&[
        ("AUDIT_EXPORT_JOBS_MAX_PARALLEL_JOBS", "0"),
        ("AUDIT_EXPORT_JOBS_MAX_IN_PROGRESS_PER_REQUESTER", "2"),
    ]);
    let a = &srv.addr;
    let t = env.user("acme", "a@acme.example", "admin");
    let first = post(a, "/api/v1/exports", &t, &export_body("csv", "async"));
    assert_eq!(first.status, 202);
    let id = first.json()["id"].as_str().unwrap().to_string();
    let dup = post(a, "/api/v1/exports", &t, &export_body("csv", "async"));
    assert_eq!((dup.status, dup.code().as_str()), (409, "duplicate_export"));
    assert_eq!(dup.json()["error"]["job_id"], id.as_str());
    assert_eq!(
        dup.json()["error"]["created_at"],
        first.json()["created_at"]
    );
    let mut restart = export_body("csv", "async");
    restart["restart"] = json!(true);
    let r = post(a, "/api/v1/exports", &t, &restart);
    assert_eq!(r.status, 202);
    assert_eq!(r.json()["id"], id.as_str());
    assert_eq!(r.json()["restart_requested"], true);
    assert_eq!(
        post(a, "/api/v1/exports", &t, &export_body("json", "async")).status,
        202
    );
    let many = post(a, "/api/v1/exports", &t, &export_body("jsonl", "async"));
    assert_eq!(
        (many.status, many.code().as_str()),
        (429, "too_many_exports")
    );
}

#[test]
fn sync_export_equals_the_cli_and_async_links_download_the_stored_file() {
    let env = Env::new();
    env.ingest_fixtures();
    let srv = env.serve(&[
        ("AUDIT_EXPORT_HTTP_SYNC_THRESHOLD", "1000"),
        ("AUDIT_EXPORT_JOBS_COMPRESS", "never"),
    ]);
    let a = &srv.addr;
    let t = env.user("acme", "ada@acme.example", "compliance");
    let cli = |format: &str, from: &str| {
        let o = env.run(&[
            "export",
            "--org",
            "acme",
            "--from",
            from,
            "--to",
            "2026-01-31",
            "--format",
            format,
            "--output",
            "-",
        ]);
        assert_eq!(o.status.code(), Some(0));
        o.stdout
    };
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
    assert_eq!(exported.len(), 5, "3 sync + 1 empty + 1 async");
    let downloads: Vec<_> = rows
        .iter()
        .filter(|r| r.0 == "audit_log.export_downloaded")
        .collect();
    assert_eq!(downloads.len(), 1);
    for (_, email, ip, details, agent) in &rows {
        assert_eq!(email, "ada@acme.example");
        assert_eq!(ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(agent.as_deref(), Some(common::http::USER_AGENT));
        let d: Value = serde_json::from_str(details).unwrap();
        assert!(
            d["filters"]["organization"] == "acme"
                && d["format"].is_string()
                && d.get("record_count").is_some()
                && d.get("job_id").is_some(),
            "{d}"
        );
    }
    let async_row: Value = serde_json::from_str(&exported[4].3).unwrap();
    assert_eq!(async_row["job_id"], id.as_str());
    assert_eq!(async_row["record_count"], 1100);
}

#[test]
fn ingest_view_pagination_and_service_endpoints() {
    let env = Env::new();
    env.ingest_fixtures();
    let srv = env.serve(&[("AUDIT_EXPORT_HTTP_MAX_BODY_BYTES", "20000")]);
    let a = &srv.addr;
    let admin = env.user("initech", "root@initech.example", "admin");
    // Ingest: a JSON array and JSONL; the organization comes from the token.
    let ev = |action: &str| json!({"occurred_at": "2026-01-20T10:00:00.000Z", "stream": "audit", "action": action, "actor": {"id": "u_x"}});
    let r = post(
        a,
        "/api/v1/audit-logs",
        &admin,
        &json!([ev("http.one"), ev("http.two")]),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["ingested"], 2);
    let jsonl = format!("{}\n{}\n", ev("http.three"), ev("http.four"));
    assert_eq!(
        req(
            a,
            "POST",
            "/api/v1/audit-logs",
            Some(&admin),
            Some(jsonl.as_bytes())
        )
        .status,
        201
    );
    // Per-event errors name index and field; nothing is ingested.
    let bad = json!([ev("ok"), {"occurred_at": "nope", "stream": "audit", "action": "x"}, {"stream": "s", "action": "y", "occurred_at": "2026-01-01T00:00:00Z", "actor": {"email": 5}}]);
    let r = post(a, "/api/v1/audit-logs", &admin, &bad);
    assert_eq!((r.status, r.code().as_str()), (422, "invalid_events"));
    let errs = r.json()["error"]["errors"].clone();
    assert_eq!(errs[0]["index"], 1);
    assert_eq!(errs[0]["field"], "occurred_at");
    assert_eq!(errs[1]["index"], 2);
    assert_eq!(errs[1]["field"], "actor.email");
    let other_org = post(
        a,
        "/api/v1/audit-logs",
        &admin,
        &json!([{"organization_id": "acme", "occurred_at": "2026-01-01T00:00:00Z", "stream": "a", "action": "b"}]),
    );
    assert_eq!(other_org.status, 422);
    let with_id = post(
        a,
        "/api/v1/audit-logs",
        &admin,
        &json!([{"id": 5, "occurred_at": "2026-01-01T00:00:00Z", "stream": "a", "action": "b"}]),
    );
    assert_eq!(
        (with_id.status, with_id.code().as_str()),
        (422, "invalid_events")
    );
    assert_eq!(with_id.json()["error"]["errors"][0]["field"], "id");
    let big = vec![b' '; 20_001];
    assert_eq!(
        req(a, "POST", "/api/v1/audit-logs", Some(&admin), Some(&big)).status,
        413
    );
    let n: i64 = env.db().query_row("SELECT count(*) FROM audit_logs WHERE organization_id = 'initech' AND action LIKE 'http.%'", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 4);

    // The view walks every page with the cursor, in (occurred_at, id) order.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = req(
            a,
            "GET",
            &format!(
                "/api/v1/audit-logs?from=2025-07-01&to=2026-01-31&limit=37&action=user.%2A{cursor}"
            ),
            Some(&admin),
            None,
        );
        assert_eq!(r.status, 200);
        let v = r.json();
        seen.extend(
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_i64().unwrap()),
        );
        match v["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let expected: Vec<i64> = env
        .db()
        .prepare("SELECT id FROM audit_logs WHERE organization_id = 'initech' AND action LIKE 'user.%' ORDER BY occurred_at, id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(expected.len() > 37);
    assert_eq!(seen, expected);
    for (q, code) in [
        ("from=2025-07-01", "to_required"),
        ("from=2025-07-01&to=2025-08-01&limit=0", "invalid_limit"),
        ("from=2025-07-01&to=2025-08-01&cursor=zz", "invalid_cursor"),
        (
            "from=2025-07-01&to=2025-08-01&colour=red",
            "unknown_parameter",
        ),
        (
            "from=2025-07-01&to=2025-08-01&from=2025-07-02",
            "duplicate_parameter",
        ),
    ] {
        let r = req(
            a,
            "GET",
            &format!("/api/v1/audit-logs?{q}"),
            Some(&admin),
            None,
        );
        assert_eq!((r.status, r.code().as_str()), (400, code), "{q}");
    }

    // Service endpoints.
    assert_eq!(req(a, "GET", "/healthz", None, None).json()["status"], "ok");
    let doc = req(a, "GET", "/api/v1/openapi.json", None, None).json();
    assert_eq!(doc["openapi"], "3.1.0");
    let metrics = String::from_utf8(req(a, "GET", "/metrics", None, None).body).unwrap();
    for needle in [
        "audit_export_jobs{state=\"completed\"}",
        "audit_export_rows_exported{mode=\"sync\"}",
        "audit_export_job_duration_seconds_count",
        "audit_export_http_requests_total{status=\"201\"}",
    ] {
        assert!(
            metrics.contains(needle),
            "metrics lack {needle}:\n{metrics}"
        );
    }
    let r = req(a, "PUT", "/api/v1/exports", Some(&admin), None);
    assert_eq!((r.status, r.code().as_str()), (405, "method_not_allowed"));
    assert_eq!(req(a, "GET", "/nope", None, None).code(), "not_found");
}

#[test]
fn email_to_must_be_a_verified_colleague_or_an_allowed_domain() {
    let env = Env::new();
    env.ingest_fixtures();
    let srv = env.serve(&[
        ("AUDIT_EXPORT_JOBS_MAX_PARALLEL_JOBS", "0"),
        (
            "AUDIT_EXPORT_NOTIFY_ALLOWED_RECIPIENT_DOMAINS",
            "{acme = [\"auditors.example\"]}",
        ),
    ]);
    let a = &srv.addr;
    let t = env.user("acme", "boss@acme.example", "admin");
    env.user("acme", "peer@acme.example", "viewer");
    let out = env.run(&[
        "users",
        "add",
        "--org",
        "acme",
        "--email",
        "new@acme.example",
        "--name",
        "New",
        "--role",
        "viewer",
        "--unverified",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let globex = env.user("globex", "x@globex.example", "admin");
    // acme's allowed domain is acme's alone.
    let mut b = export_body("csv", "async");
    b["email_to"] = json!("lead@auditors.example");
    let r = post(a, "/api/v1/exports", &globex, &b);
    assert_eq!((r.status, r.code().as_str()), (422, "unverified_recipient"));
    let with = |to: Value, format: &str| {
        let mut b = export_body(format, "async");
        b["email_to"] = to;
        post(a, "/api/v1/exports", &t, &b)
    };
    for bad in [
        json!("new@acme.example"),
        json!("x@globex.example"),
        json!(["peer@acme.example", "stranger@example.com"]),
    ] {
        let r = with(bad.clone(), "csv");
        assert_eq!(
            (r.status, r.code().as_str()),
            (422, "unverified_recipient"),
            "{bad}"
        );
    }
    assert_eq!(with(json!("not-an-address"), "csv").status, 400);
    assert_eq!(
        with(json!(["peer@acme.example", "Lead@Auditors.example"]), "csv").status,
        202
    );
    let recipients: String = env
        .db()
        .query_row("SELECT recipients FROM export_jobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        recipients,
        r#"["lead@auditors.example","peer@acme.example"]"#
    );
    // Once verified, the same address is accepted; an unknown user is bad input.
    let verify = |email: &str| {
        env.run(&["users", "verify", "--org", "acme", "--email", email])
            .status
            .code()
    };
    assert_eq!(verify("nobody@acme.example"), Some(2));
    assert_eq!(verify("New@acme.example"), Some(0));
    assert_eq!(with(json!("new@acme.example"), "jsonl").status, 202);
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

#[test]
fn refused_exports_are_audited_and_failed_logins_counted() {
    let env = Env::new();
    env.ingest_fixtures();
    let srv = env.serve(&[
        ("AUDIT_EXPORT_HTTP_METRICS_TOKEN", "m3tr1cs"),
        ("AUDIT_EXPORT_JOBS_MAX_IN_PROGRESS_PER_REQUESTER", "1"),
        // No job runs here, so the first one stays in progress.
        ("AUDIT_EXPORT_JOBS_MAX_PARALLEL_JOBS", "0"),
    ]);
    let a = &srv.addr;
    let admin = env.user("acme", "ada@acme.example", "admin");
    let viewer = env.user("acme", "vi@acme.example", "viewer");
    let denied = |reason: &str| -> i64 {
        env.db()
            .query_row(
                "SELECT count(*) FROM audit_logs WHERE action = 'audit_log.export_denied' \
                 AND json_extract(details, '$.reason') = ?",
                [reason],
                |r| r.get(0),
            )
            .unwrap()
    };
    // A viewer's export.
    assert_eq!(
        post(a, "/api/v1/exports", &viewer, &export_body("csv", "async")).status,
        403
    );
    assert_eq!(denied("forbidden"), 1);
    // Another organization.
    let mut other = export_body("csv", "async");
    other["filters"]["organization"] = json!("globex");
    assert_eq!(post(a, "/api/v1/exports", &admin, &other).status, 403);
    assert_eq!(denied("forbidden"), 2);
    // An unverified recipient.
    let mut stranger = export_body("csv", "async");
    stranger["email_to"] = json!("who@evil.example");
    assert_eq!(post(a, "/api/v1/exports", &admin, &stranger).status, 422);
    assert_eq!(denied("unverified_recipient"), 1);
    // A duplicate, then one too many (the limit is 1 here).
    let first = post(a, "/api/v1/exports", &admin, &export_body("csv", "async"));
    assert_eq!(first.status, 202);
    assert_eq!(
        post(a, "/api/v1/exports", &admin, &export_body("csv", "async")).status,
        409
    );
    assert_eq!(denied("duplicate_export"), 1);
    assert_eq!(
        post(a, "/api/v1/exports", &admin, &export_body("jsonl", "async")).status,
        429
    );
    assert_eq!(denied("too_many_exports"), 1);
    // The refusals name who asked.
    let actor: String = env
        .db()
        .query_row(
            "SELECT actor_email FROM audit_logs WHERE action = 'audit_log.export_denied' ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(actor, "vi@acme.example");

    // Failed logins are counted; /metrics wants its own token.
    assert_eq!(req(a, "GET", "/api/v1/exports", None, None).status, 401);
    assert_eq!(
        req(a, "GET", "/api/v1/exports", Some("ae_nope"), None).status,
        401
    );
    assert_eq!(req(a, "GET", "/metrics", None, None).status, 401);
    assert_eq!(req(a, "GET", "/metrics", Some(&admin), None).status, 401);
    let m = req(a, "GET", "/metrics", Some("m3tr1cs"), None);
    assert_eq!(m.status, 200);
    let text = String::from_utf8_lossy(&m.body).into_owned();
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
    };
    assert_eq!(
        value("audit_export_auth_failures_total{reason=\"missing\"}"),
        2.0
    );
    assert_eq!(
        value("audit_export_auth_failures_total{reason=\"invalid\"}"),
        2.0
    );
    assert!(value("audit_export_http_connections") >= 1.0);
}
